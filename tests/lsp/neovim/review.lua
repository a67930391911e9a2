-- Drives Neovim (0.7+) headless as a real LSP client of `redline lsp`:
-- "Redline: Ask…" with an instruction, the proposal as hint diagnostics,
-- one hunk accepted and one rejected through code actions, then `:w`;
-- and the instruction-comment flow. Run by server/cli/tests/lsp_neovim.rs:
--
--   REDLINE_NVIM_SERVER=/path/to/redline REDLINE_NVIM_ARGS=lsp \
--   REDLINE_NVIM_WORKDIR=/tmp/w nvim --headless --clean -u NONE -c 'luafile review.lua'
--
-- Exits 0 when every check passed, 1 (with the reason on stderr) otherwise.

local server = assert(os.getenv('REDLINE_NVIM_SERVER'), 'set REDLINE_NVIM_SERVER')
local args = os.getenv('REDLINE_NVIM_ARGS') or ''
local workdir = assert(os.getenv('REDLINE_NVIM_WORKDIR'), 'set REDLINE_NVIM_WORKDIR')
local TIMEOUT = 20000

local function fail(message)
  io.stderr:write('neovim test failed: ' .. message .. '\n')
  vim.cmd('cquit 1')
end

local function check(condition, message)
  if not condition then fail(message) end
end

local function read_file(path)
  local file = assert(io.open(path, 'rb'))
  local text = file:read('*a')
  file:close()
  return text
end

local cmd = { server }
for word in args:gmatch('%S+') do table.insert(cmd, word) end

local client_id = vim.lsp.start_client({
  name = 'redline',
  cmd = cmd,
  root_dir = workdir,
  on_error = function(code) fail('lsp client error ' .. tostring(code)) end,
})
check(client_id, 'cannot start ' .. server)

-- Messages the server shows, for assertions and for debugging failures.
local shown = {}
vim.lsp.handlers['window/showMessage'] = function(_, result)
  table.insert(shown, result.message)
end

local function open(name)
  vim.cmd('edit ' .. workdir .. '/' .. name)
  local buf = vim.api.nvim_get_current_buf()
  vim.lsp.buf_attach_client(buf, client_id)
  return buf
end

local function client()
  return vim.lsp.get_client_by_id(client_id)
end

local function request(method, params, buf)
  local response, err = client().request_sync(method, params, TIMEOUT, buf)
  check(response, method .. ' got no response: ' .. tostring(err))
  check(not response.err, method .. ' failed: ' .. vim.inspect(response.err))
  return response.result
end

local function code_actions(buf, line)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = line, character = 0 }, ['end'] = { line = line, character = 0 } },
    context = { diagnostics = {} },
  }
  return request('textDocument/codeAction', params, buf) or {}
end

local function find(actions, title)
  for _, action in ipairs(actions) do
    if action.title == title then return action end
  end
  local titles = {}
  for _, action in ipairs(actions) do table.insert(titles, action.title) end
  fail('no code action "' .. title .. '" among ' .. vim.inspect(titles))
end

local function run(action, buf)
  return request('workspace/executeCommand', {
    command = action.command.command,
    arguments = action.command.arguments,
  }, buf)
end

local function redline_hints(buf)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.message:find('Redline proposes', 1, true) then table.insert(found, d) end
  end
  return found
end

local function wait_hints(buf, count)
  local ok = vim.wait(TIMEOUT, function() return #redline_hints(buf) == count end, 50)
  check(ok, 'expected ' .. count .. ' redline hints, have ' .. #redline_hints(buf) .. '; messages: ' .. vim.inspect(shown))
end

local function line(buf, index)
  return vim.api.nvim_buf_get_lines(buf, index, index + 1, true)[1]
end

check(vim.wait(TIMEOUT, function() return client() and client().initialized end, 20), 'the server did not initialize')

-- 1. Ask, accept one hunk, reject the other.
local lib = open('lib.rs')
local original = read_file(workdir .. '/lib.rs')
local ask = find(code_actions(lib, 2), 'Redline: Ask…')
ask.command.arguments[1].instruction = 'give f3 and f20 bodies'
local started = run(ask, lib)
check(started and started.taskId, 'no task id from redline.ask')
wait_hints(lib, 2)
local hints = redline_hints(lib)
table.sort(hints, function(a, b) return a.lnum < b.lnum end)
check(hints[1].lnum == 2 and hints[2].lnum == 19, 'hints on lines ' .. hints[1].lnum .. ', ' .. hints[2].lnum)

run(find(code_actions(lib, 2), 'Accept change'), lib)
check(line(lib, 2) == 'fn f3() { three() }', 'buffer line 3 is ' .. line(lib, 2))
check(read_file(workdir .. '/lib.rs') == original, 'the file changed on disk before :w')
wait_hints(lib, 1)

run(find(code_actions(lib, 19), 'Reject change'), lib)
wait_hints(lib, 0)
check(line(lib, 19) == 'fn f20() {}', 'the rejected hunk changed line 20: ' .. line(lib, 19))
vim.cmd('write')
local expected = original:gsub('fn f3%(%) {}', 'fn f3() { three() }', 1)
check(read_file(workdir .. '/lib.rs') == expected, 'disk after :w is ' .. read_file(workdir .. '/lib.rs'))

-- 2. An instruction comment: offered on its line, removed by the proposal.
local todo = open('todo.rs')
local comment_line = 1
check(line(todo, comment_line):find('redline:', 1, true), 'fixture has no instruction comment')
local none_elsewhere = code_actions(todo, 0)
for _, action in ipairs(none_elsewhere) do
  check(action.title ~= 'Redline: do what this comment says', 'comment action offered on the wrong line')
end
run(find(code_actions(todo, comment_line), 'Redline: do what this comment says'), todo)
wait_hints(todo, 1)
run(find(code_actions(todo, comment_line), 'Accept all in file'), todo)
wait_hints(todo, 0)
vim.cmd('write')
local saved = read_file(workdir .. '/todo.rs')
check(not saved:find('redline:', 1, true), 'the instruction comment is still there: ' .. saved)
check(saved:find('"HI"', 1, true), 'the change was not applied: ' .. saved)

client().stop()
vim.cmd('qa!')

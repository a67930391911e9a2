// `redline lsp` with vscode-languageserver-protocol as the client, as VS
// Code is: it advertises changeAnnotationSupport, so the proposal must
// arrive as ONE workspace/applyEdit whose documentChanges carry every hunk
// (text edits, a created and a deleted file), each with a change annotation
// that needs confirmation. We answer `applied: false` (the user cancelled
// the refactor preview): the proposal must stay pending, files untouched.
//
// Env: REDLINE_BIN (the `redline` binary), REDLINE_NODE_WORKDIR (a folder
// with a.rs and old.txt), plus the usual REDLINE_DATA_DIR,
// REDLINE_CONFIG_DIR, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY.
// Exits 0 when every check passed.

import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import * as lsp from 'vscode-languageserver-protocol/node.js';

const bin = process.env.REDLINE_BIN;
const work = process.env.REDLINE_NODE_WORKDIR;
assert.ok(bin && work, 'set REDLINE_BIN and REDLINE_NODE_WORKDIR');
const uri = (name) => pathToFileURL(join(work, name)).href;

const server = spawn(bin, ['lsp'], { cwd: work, stdio: ['pipe', 'pipe', 'inherit'] });
const connection = lsp.createProtocolConnection(
  new lsp.StreamMessageReader(server.stdout),
  new lsp.StreamMessageWriter(server.stdin),
);

let resolveEdit;
const editArrived = new Promise((resolve) => { resolveEdit = resolve; });
const applyEdits = [];
connection.onRequest(lsp.ApplyWorkspaceEditRequest.type, (params) => {
  applyEdits.push(params);
  resolveEdit(params);
  return { applied: false, failureReason: 'the user cancelled the preview' };
});
connection.onRequest(lsp.WorkDoneProgressCreateRequest.type, () => null);
connection.onRequest(lsp.RegistrationRequest.type, () => null);
connection.onNotification(() => {});
connection.listen();

const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms));

try {
  const init = await connection.sendRequest(lsp.InitializeRequest.type, {
    processId: process.pid,
    rootUri: pathToFileURL(work).href,
    workspaceFolders: [{ uri: pathToFileURL(work).href, name: 'work' }],
    capabilities: {
      general: { positionEncodings: ['utf-16'] },
      window: { workDoneProgress: true },
      workspace: {
        applyEdit: true,
        workspaceEdit: {
          documentChanges: true,
          resourceOperations: ['create', 'rename', 'delete'],
          failureHandling: 'textOnlyTransactional',
          changeAnnotationSupport: { groupsOnLabel: true },
        },
      },
    },
  });
  assert.equal(init.capabilities.positionEncoding, 'utf-16');
  await connection.sendNotification(lsp.InitializedNotification.type, {});
  const before = readFileSync(join(work, 'a.rs'), 'utf8');
  await connection.sendNotification(lsp.DidOpenTextDocumentNotification.type, {
    textDocument: { uri: uri('a.rs'), languageId: 'rust', version: 1, text: before },
  });
  const range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  const actions = await connection.sendRequest(lsp.CodeActionRequest.type, {
    textDocument: { uri: uri('a.rs') }, range, context: { diagnostics: [] },
  });
  const ask = actions.find((a) => a.title === 'Redline: Ask…');
  assert.ok(ask, 'no Ask action');
  const argument = { ...ask.command.arguments[0], instruction: 'tidy up the project files' };
  const { taskId } = await connection.sendRequest(lsp.ExecuteCommandRequest.type, {
    command: ask.command.command, arguments: [argument],
  });
  assert.match(taskId, /^t-/);

  const params = await Promise.race([editArrived, timeout(30000, 'workspace/applyEdit')]);
  const proposal = await connection.sendRequest('redline/proposal', { taskId });
  const hunkIds = proposal.changes.flatMap((c) => c.hunks.map((h) => h.id)).sort();
  assert.equal(hunkIds.length, 4, 'two text hunks, a creation and a deletion');

  const { documentChanges, changeAnnotations } = params.edit;
  const used = new Set();
  const kinds = [];
  for (const change of documentChanges) {
    if (change.kind) {
      kinds.push(`${change.kind} ${change.uri.split('/').pop()}`);
      assert.ok(change.annotationId, `${change.kind} carries an annotation`);
      used.add(change.annotationId);
    } else {
      kinds.push(`edit ${change.textDocument.uri.split('/').pop()}`);
      for (const edit of change.edits) {
        assert.ok(edit.annotationId, 'every text edit carries an annotation');
        used.add(edit.annotationId);
      }
    }
  }
  assert.deepEqual(kinds, ['edit a.rs', 'create new.txt', 'edit new.txt', 'delete old.txt']);
  assert.deepEqual([...used].sort(), hunkIds, 'one annotation per hunk, covering every hunk');
  assert.deepEqual(Object.keys(changeAnnotations).sort(), hunkIds);
  for (const annotation of Object.values(changeAnnotations)) {
    assert.equal(annotation.needsConfirmation, true);
    assert.ok(annotation.label.length > 0);
  }
  const aEdits = documentChanges[0];
  assert.equal(aEdits.textDocument.version, 1, 'edits are pinned to the open version');
  assert.equal(aEdits.edits.length, 2);

  // We answered applied: false. Nothing may be recorded or written.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await connection.sendRequest('redline/proposal', { taskId });
  const statuses = after.changes.flatMap((c) => c.hunks.map((h) => h.status));
  assert.deepEqual(statuses, ['pending', 'pending', 'pending', 'pending']);
  assert.equal(readFileSync(join(work, 'a.rs'), 'utf8'), before);
  assert.equal(existsSync(join(work, 'new.txt')), false);
  assert.equal(readFileSync(join(work, 'old.txt'), 'utf8'), 'obsolete\n');
  assert.equal(applyEdits.length, 1, 'exactly one workspace/applyEdit');

  await connection.sendRequest(lsp.ShutdownRequest.type);
  await connection.sendNotification(lsp.ExitNotification.type);
  console.log('ok');
  process.exit(0);
} catch (error) {
  console.error(`node client test failed: ${error.stack ?? error}`);
  server.kill();
  process.exit(1);
}

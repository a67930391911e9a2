//! `redline lsp` driven by real Neovim (headless, Debian's `neovim`
//! package) through `tests/lsp/neovim/review.lua`: ask, review the hunks as
//! diagnostics, accept one, reject one, save; then the instruction-comment
//! flow. The Lua script asserts the buffer and the file on disk.

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use redline_test_support::{MockModelServer, Script};
use serde_json::json;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script() -> Script {
    Script::from_value(json!([
        { "match": "bodies", "turns": [
            { "content": [
                { "tool_use": { "name": "edit", "input": { "path": "lib.rs", "old_string": "fn f3() {}\n", "new_string": "fn f3() { three() }\n" } } },
                { "tool_use": { "name": "edit", "input": { "path": "lib.rs", "old_string": "fn f20() {}\n", "new_string": "fn f20() { twenty() }\n" } } }
            ] },
            { "content": [{ "text": "done" }] }
        ] },
        { "match": "greet loud", "turns": [
            { "content": [
                { "tool_use": { "name": "edit", "input": { "path": "todo.rs",
                    "old_string": "// redline: make greet loud\nfn greet() -> &'static str {\n    \"hi\"\n",
                    "new_string": "fn greet() -> &'static str {\n    \"HI\"\n" } } }
            ] },
            { "content": [{ "text": "done" }] }
        ] }
    ]))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neovim_asks_reviews_and_saves_through_redline_lsp() {
    let mock = MockModelServer::start(script()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let lib: String = (1..=30).map(|i| format!("fn f{i}() {{}}\n")).collect();
    std::fs::write(work.path().join("lib.rs"), &lib).unwrap();
    std::fs::write(
        work.path().join("todo.rs"),
        "fn keep() {}\n// redline: make greet loud\nfn greet() -> &'static str {\n    \"hi\"\n}\n",
    )
    .unwrap();
    let child = tokio::process::Command::new("nvim")
        .args(["--headless", "--clean", "-u", "NONE", "-c"])
        .arg(format!(
            "luafile {}",
            repo_root().join("tests/lsp/neovim/review.lua").display()
        ))
        .current_dir(work.path())
        .env("HOME", data.path())
        .env("XDG_STATE_HOME", data.path())
        .env("REDLINE_NVIM_SERVER", env!("CARGO_BIN_EXE_redline"))
        .env("REDLINE_NVIM_ARGS", "lsp")
        .env("REDLINE_NVIM_WORKDIR", work.path())
        .env("REDLINE_DATA_DIR", data.path())
        .env("REDLINE_CONFIG_DIR", config.path())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run nvim: install Debian's `neovim` package (scripts/test does)");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("neovim did not finish within 90 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "neovim script failed ({}): {stderr}",
        output.status
    );
    // Belt and braces: the files on disk as the script left them.
    let saved = std::fs::read_to_string(work.path().join("lib.rs")).unwrap();
    assert_eq!(saved, lib.replace("fn f3() {}\n", "fn f3() { three() }\n"));
    let todo = std::fs::read_to_string(work.path().join("todo.rs")).unwrap();
    assert_eq!(
        todo,
        "fn keep() {}\nfn greet() -> &'static str {\n    \"HI\"\n}\n"
    );
    assert!(mock.exhausted_requests().is_empty());
}

//! `redline lsp` with `vscode-languageserver-protocol` (npm) as a client
//! that advertises `changeAnnotationSupport`, as VS Code does: the proposal
//! arrives as one annotated `workspace/applyEdit`; declining it leaves the
//! proposal pending and the files untouched. The assertions live in
//! `tests/lsp/node/annotations.test.mjs`; this runs it (after `npm ci` when
//! `node_modules` is missing).

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use redline_test_support::{MockModelServer, Script};
use serde_json::json;

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lsp/node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_annotation_client_gets_one_annotated_edit_and_may_decline_it() {
    let node_dir = node_dir();
    if !node_dir
        .join("node_modules/vscode-languageserver-protocol")
        .exists()
    {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&node_dir)
            .status()
            .expect(
                "cannot run npm: install Debian's `nodejs` and `npm` packages (scripts/test does)",
            );
        assert!(status.success(), "npm ci failed in {}", node_dir.display());
    }
    let a_rs: String = (1..=20).map(|i| format!("fn f{i}() {{}}\n")).collect();
    let script = Script::from_value(json!([{ "turns": [
        { "content": [
            { "tool_use": { "name": "edit", "input": { "path": "a.rs", "old_string": "fn f2() {}\n", "new_string": "fn f2() { two() }\n" } } },
            { "tool_use": { "name": "edit", "input": { "path": "a.rs", "old_string": "fn f18() {}\n", "new_string": "fn f18() { eighteen() }\n" } } },
            { "tool_use": { "name": "create_file", "input": { "path": "new.txt", "content": "fresh\n" } } },
            { "tool_use": { "name": "delete", "input": { "path": "old.txt" } } }
        ] },
        { "content": [{ "text": "done" }] }
    ] }]))
    .unwrap();
    let mock = MockModelServer::start(script).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.rs"), &a_rs).unwrap();
    std::fs::write(work.path().join("old.txt"), "obsolete\n").unwrap();
    let child = tokio::process::Command::new("node")
        .arg(node_dir.join("annotations.test.mjs"))
        .current_dir(&node_dir)
        .env("REDLINE_BIN", env!("CARGO_BIN_EXE_redline"))
        .env("REDLINE_NODE_WORKDIR", work.path())
        .env("HOME", data.path())
        .env("REDLINE_DATA_DIR", data.path())
        .env("REDLINE_CONFIG_DIR", config.path())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the node client did not finish within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert_eq!(stdout.trim(), "ok");
    assert_eq!(
        std::fs::read_to_string(work.path().join("a.rs")).unwrap(),
        a_rs
    );
    assert!(!work.path().join("new.txt").exists());
}

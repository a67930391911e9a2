//! `run_command` end to end: the scripted model edits a file (staged), then
//! runs a shell command in the real namespaces sandbox over the staged view;
//! what the command changed lands in the proposal, never on disk.

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redline_agent::config::{CommandPolicy, Config};
use redline_agent::engine::{Engine, EngineOptions};
use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_agent::task::TaskSpec;
use redline_core::proposal::{ChangeKind, FileContent};
use redline_core::store::Store;
use redline_protocol::{ApprovalDecision, TaskEventKind, TaskState};
use redline_test_support::{Item, MockModelServer, Script, ToolUse, Turn};
use serde_json::{Value, json};

fn tool(name: &str, input: Value) -> Turn {
    Turn {
        content: vec![Item::ToolUse(ToolUse {
            name: name.into(),
            input,
            id: None,
        })],
        ..Turn::default()
    }
}

fn engine(mock: &MockModelServer, data: &Path, policy: CommandPolicy) -> Engine {
    let config = Config {
        anthropic_base_url: mock.base_url(),
        command_policy: policy,
        command_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let model = AnthropicClient::new(AnthropicConfig {
        base_url: mock.base_url(),
        api_key: "test".into(),
        ..AnthropicConfig::default()
    })
    .unwrap();
    let sandbox = redline_vm::open(&redline_vm::SandboxConfig::default())
        .expect("a sandbox backend works here");
    Engine::new(EngineOptions {
        config,
        store: Store::open(&data.join("redline.db")).unwrap(),
        journal_dir: data.join("journal"),
        model: Arc::new(model),
        sandbox: Some(Arc::from(sandbox)),
        global_instructions: None,
    })
    .unwrap()
}

fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("A"), "original a\n").unwrap();
    std::fs::write(dir.path().join("C"), "to be removed\n").unwrap();
    dir
}

fn script() -> Script {
    Script::single(vec![
        tool(
            "edit",
            json!({ "path": "A", "old_string": "original", "new_string": "staged" }),
        ),
        tool(
            "run_command",
            json!({ "command": "cat A > B; rm C; mkdir d; echo x > d/e; echo done" }),
        ),
        Turn {
            content: vec![Item::Text("ran it".into())],
            ..Turn::default()
        },
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn command_changes_over_the_staged_view_become_proposal_hunks() {
    let mock = MockModelServer::start(script()).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&mock, data.path(), CommandPolicy::Allow);
    let dir = folder();
    let id = engine
        .start_task(TaskSpec::new("copy A", vec![dir.path().into()]))
        .unwrap();
    assert_eq!(
        engine.wait(&id).await.unwrap(),
        TaskState::Proposed,
        "{:?}",
        engine.summary(&id).unwrap().error
    );

    let proposal = engine.proposal(&id).unwrap().unwrap();
    let changes: Vec<(String, ChangeKind)> = proposal
        .changes
        .iter()
        .map(|c| (c.path.to_string(), c.kind.clone()))
        .collect();
    assert_eq!(
        changes,
        [
            ("A".to_owned(), ChangeKind::Modify),
            ("B".to_owned(), ChangeKind::Create),
            ("C".to_owned(), ChangeKind::Delete),
            ("d/e".to_owned(), ChangeKind::Create),
        ]
    );
    let b = proposal
        .changes
        .iter()
        .find(|c| c.path.as_str() == "B")
        .unwrap();
    assert_eq!(
        b.new,
        Some(FileContent::Text("staged a\n".into())),
        "the command saw the staged edit"
    );
    // The model saw the command's output and the staged changes.
    let result = mock.requests()[2].body["messages"].to_string();
    assert!(
        result.contains("exit code 0") && result.contains("done"),
        "{result}"
    );
    // The real folder is untouched.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("A")).unwrap(),
        "original a\n"
    );
    assert!(dir.path().join("C").exists());
    assert!(!dir.path().join("B").exists() && !dir.path().join("d").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_policy_requests_approval_and_a_denial_runs_nothing() {
    let mock = MockModelServer::start(script()).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&mock, data.path(), CommandPolicy::Ask);
    let dir = folder();
    let id = engine
        .start_task(TaskSpec::new("copy A", vec![dir.path().into()]))
        .unwrap();
    let mut subscription = engine.subscribe(&id).unwrap();
    let mut asked = Vec::new();
    while let Some(event) = subscription.events.recv().await {
        if let TaskEventKind::ApprovalRequested { request } = event.kind {
            assert_eq!(
                engine.summary(&id).unwrap().state,
                TaskState::AwaitingApproval
            );
            asked.push(request.summary.clone());
            engine
                .answer_approval(&id, &request.id, ApprovalDecision::Deny)
                .unwrap();
        }
    }
    assert_eq!(
        asked,
        ["run `cat A > B; rm C; mkdir d; echo x > d/e; echo done` in the sandbox"]
    );
    let proposal = engine.proposal(&id).unwrap().unwrap();
    assert_eq!(
        proposal.changes.len(),
        1,
        "only the staged edit; the command never ran"
    );
    let result = mock.requests()[2].body["messages"].to_string();
    assert!(result.contains("the user denied running"), "{result}");
}

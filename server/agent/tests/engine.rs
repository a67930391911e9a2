//! The engine end to end against the scripted mock model server over
//! loopback: real HTTP client, SSE parser, retries, tools, store and apply.

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redline_agent::config::Config;
use redline_agent::engine::{Engine, EngineOptions};
use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_agent::model::retry::RetryPolicy;
use redline_agent::task::{FocusSpec, TaskSpec};
use redline_core::proposal::{HunkStatus, Proposal};
use redline_core::store::Store;
use redline_protocol::{PlanDecision, TaskEventKind, TaskId, TaskMode, TaskState};
use redline_test_support::fixtures::snapshot_dir;
use redline_test_support::{Conversation, Fault, Item, MockModelServer, Script, ToolUse, Turn};
use serde_json::{Value, json};

struct Harness {
    engine: Engine,
    _data: tempfile::TempDir,
    data_path: PathBuf,
    mock: MockModelServer,
}

fn retry_fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    }
}

fn config_for(mock: &MockModelServer) -> Config {
    Config {
        anthropic_base_url: mock.base_url(),
        retry: retry_fast(),
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_millis(500),
        concurrency: 8,
        ..Config::default()
    }
}

fn open_engine(config: Config, data: &Path) -> Engine {
    let model = AnthropicClient::new(AnthropicConfig {
        base_url: config.anthropic_base_url.clone(),
        api_key: "test-key".into(),
        retry: config.retry.clone(),
        request_timeout: config.request_timeout,
        idle_timeout: config.idle_timeout,
        ..AnthropicConfig::default()
    })
    .unwrap();
    Engine::new(EngineOptions {
        config,
        store: Store::open(&data.join("redline.db")).unwrap(),
        journal_dir: data.join("journal"),
        model: Arc::new(model),
        sandbox: None,
        global_instructions: None,
    })
    .unwrap()
}

async fn harness(script: Script) -> Harness {
    let mock = MockModelServer::start(script).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_path = data.path().to_path_buf();
    let engine = open_engine(config_for(&mock), &data_path);
    Harness {
        engine,
        _data: data,
        data_path,
        mock,
    }
}

fn tool(name: &str, input: Value) -> Item {
    Item::ToolUse(ToolUse {
        name: name.into(),
        input,
        id: None,
    })
}

fn turn(items: Vec<Item>) -> Turn {
    Turn {
        content: items,
        ..Turn::default()
    }
}

fn text(t: &str) -> Turn {
    turn(vec![Item::Text(t.into())])
}

/// A folder with four files, returned with a snapshot of its bytes.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\nbeta\ngamma\n").unwrap();
    std::fs::write(
        dir.path().join("lib.rs"),
        "fn one() -> u32 {\n    1\n}\n\nfn two() -> u32 {\n    2\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("old.txt"), "delete me\n").unwrap();
    std::fs::write(
        dir.path().join("AGENTS.md"),
        "Always write British English.\n",
    )
    .unwrap();
    dir
}

fn edit_script() -> Vec<Turn> {
    vec![
        turn(vec![
            Item::Text("Looking first.".into()),
            tool("read_file", json!({ "path": "a.txt" })),
        ]),
        turn(vec![
            tool(
                "edit",
                json!({ "path": "a.txt", "old_string": "beta", "new_string": "BETA" }),
            ),
            tool(
                "edit",
                json!({ "path": "lib.rs", "old_string": "    2\n", "new_string": "    22\n" }),
            ),
        ]),
        turn(vec![
            tool(
                "create_file",
                json!({ "path": "new.txt", "content": "fresh\n" }),
            ),
            tool("delete", json!({ "path": "old.txt" })),
        ]),
        text("Done: edited a.txt and lib.rs, created new.txt, deleted old.txt."),
    ]
}

#[tokio::test]
async fn scripted_task_proposes_and_touches_nothing_until_applied() {
    let h = harness(Script::single(edit_script())).await;
    let dir = project();
    let before = snapshot_dir(dir.path());
    let id = h
        .engine
        .start_task(TaskSpec::new("tidy the project", vec![dir.path().into()]))
        .unwrap();
    assert_eq!(h.engine.wait(&id).await.unwrap(), TaskState::Proposed);
    assert_eq!(
        snapshot_dir(dir.path()),
        before,
        "no byte changes before review"
    );

    let proposal = h.engine.proposal(&id).unwrap().unwrap();
    let paths: Vec<_> = proposal
        .changes
        .iter()
        .map(|c| c.path.to_string())
        .collect();
    let events = h.engine.subscribe(&id).unwrap().history;
    assert_eq!(
        paths,
        ["a.txt", "lib.rs", "new.txt", "old.txt"],
        "{events:#?}"
    );

    // Accept a.txt and new.txt only.
    let accept: Vec<_> = proposal
        .changes
        .iter()
        .filter(|c| c.path.as_str() == "a.txt" || c.path.as_str() == "new.txt")
        .flat_map(|c| c.hunks.iter().map(|h| h.id.clone()))
        .collect();
    h.engine
        .resolve_hunks(&id, &accept, HunkStatus::Accepted)
        .unwrap();
    h.engine.resolve_all(&id, HunkStatus::Rejected).unwrap();
    let report = h.engine.apply(&id).unwrap();
    assert_eq!(report.files.len(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "alpha\nBETA\ngamma\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "fresh\n"
    );
    assert!(
        dir.path().join("old.txt").exists(),
        "rejected deletion not applied"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("lib.rs"))
            .unwrap()
            .contains("    2\n")
    );
    assert_eq!(
        h.engine.summary(&id).unwrap().state,
        TaskState::PartiallyApplied
    );

    h.engine.undo(None).unwrap();
    assert_eq!(snapshot_dir(dir.path()), before, "undo restores every byte");
    assert!(h.mock.exhausted_requests().is_empty());
}

#[tokio::test]
async fn requests_carry_instructions_tools_cache_control_and_paired_results() {
    let h = harness(Script::single(edit_script())).await;
    let dir = project();
    let id = h
        .engine
        .start_task(TaskSpec::new("tidy", vec![dir.path().into()]))
        .unwrap();
    h.engine.wait(&id).await.unwrap();
    let requests = h.mock.requests();
    assert_eq!(requests.len(), 4);
    let first = &requests[0].body;
    let system = first["system"].as_array().unwrap();
    let system_text: String = system.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert!(
        system_text.contains("Always write British English."),
        "instruction file text in the prompt"
    );
    assert!(
        system
            .iter()
            .any(|b| b["cache_control"]["type"] == "ephemeral"),
        "cache_control on the system prefix"
    );
    let tools = first["tools"].as_array().unwrap();
    let names: Vec<_> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in [
        "read_file",
        "edit",
        "create_file",
        "delete",
        "search",
        "list_dir",
        "update_plan",
    ] {
        assert!(
            names.contains(&expected),
            "tool {expected} offered: {names:?}"
        );
    }
    assert_eq!(tools.last().unwrap()["cache_control"]["type"], "ephemeral");
    assert!(tools.iter().all(|t| t["input_schema"]["type"] == "object"));
    // Every tool_use is answered first thing in the next user message.
    let last = &requests[3].body["messages"];
    let messages = last.as_array().unwrap();
    for pair in messages.windows(2) {
        let uses: Vec<_> = pair[0]["content"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|b| b["type"] == "tool_use")
                    .map(|b| b["id"].clone())
                    .collect()
            })
            .unwrap_or_default();
        if uses.is_empty() {
            continue;
        }
        let results: Vec<_> = pair[1]["content"].as_array().unwrap()[..uses.len()]
            .iter()
            .map(|b| {
                assert_eq!(b["type"], "tool_result");
                b["tool_use_id"].clone()
            })
            .collect();
        assert_eq!(uses, results);
    }
    let summary = h.engine.summary(&id).unwrap();
    assert_eq!(summary.state, TaskState::Proposed);
}

#[tokio::test]
async fn syntax_errors_introduced_by_an_edit_are_reported_to_the_model() {
    let turns = vec![
        turn(vec![tool(
            "edit",
            json!({ "path": "lib.rs", "old_string": "    1\n}", "new_string": "    1\n" }),
        )]),
        text("ok"),
    ];
    let h = harness(Script::single(turns)).await;
    let dir = project();
    let id = h
        .engine
        .start_task(TaskSpec::new("break it", vec![dir.path().into()]))
        .unwrap();
    h.engine.wait(&id).await.unwrap();
    let requests = h.mock.requests();
    let result = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"][0]["content"]
        .clone();
    let result = result
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| result.to_string());
    assert!(result.contains("syntax check: lib.rs now has"), "{result}");
}

#[tokio::test]
async fn cancel_mid_stream_ends_the_task_within_100ms() {
    let slow = Turn {
        content: vec![Item::Text("word ".repeat(400))],
        chunk_size: Some(5),
        delay_ms: Some(20),
        ..Turn::default()
    };
    let h = harness(Script::single(vec![slow])).await;
    let dir = project();
    let before = snapshot_dir(dir.path());
    let id = h
        .engine
        .start_task(TaskSpec::new("talk slowly", vec![dir.path().into()]))
        .unwrap();
    let mut subscription = h.engine.subscribe(&id).unwrap();
    loop {
        let event = subscription.events.recv().await.unwrap();
        if matches!(event.kind, TaskEventKind::MessageDelta { .. }) {
            break;
        }
    }
    let started = Instant::now();
    h.engine.cancel(&id).unwrap();
    let state = h.engine.wait(&id).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(state, TaskState::Cancelled);
    assert!(
        elapsed < Duration::from_millis(100),
        "cancelled after {elapsed:?}"
    );
    assert_eq!(snapshot_dir(dir.path()), before);
    assert!(h.engine.proposal(&id).unwrap().is_none());
}

fn faulty(fault: Fault) -> Script {
    Script::single(vec![Turn {
        content: vec![Item::Text("recovered".into())],
        chunk_size: Some(3),
        faults: vec![fault],
        ..Turn::default()
    }])
}

#[tokio::test]
async fn each_injected_fault_is_survived() {
    let faults = [
        Fault {
            status: Some(429),
            retry_after_ms: Some(20),
            ..Fault::default()
        },
        Fault {
            status: Some(529),
            ..Fault::default()
        },
        Fault {
            status: Some(500),
            ..Fault::default()
        },
        Fault {
            disconnect_after_events: Some(2),
            ..Fault::default()
        },
        Fault {
            malformed: Some(true),
            ..Fault::default()
        },
        Fault {
            error_event: Some("overloaded_error".into()),
            ..Fault::default()
        },
        Fault {
            hang: Some(true),
            ..Fault::default()
        },
    ];
    for fault in faults {
        let described = format!("{fault:?}");
        let h = harness(faulty(fault)).await;
        let dir = project();
        let id = h
            .engine
            .start_task(TaskSpec::new("say hi", vec![dir.path().into()]))
            .unwrap();
        let state = h.engine.wait(&id).await.unwrap();
        let summary = h.engine.summary(&id).unwrap();
        assert_eq!(
            state,
            TaskState::Completed,
            "{described}: {:?}",
            summary.error
        );
        let events = h.engine.subscribe(&id).unwrap().history;
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, TaskEventKind::Retrying { .. })),
            "{described}: a retry was reported"
        );
    }
}

#[tokio::test]
async fn exhausted_retries_fail_the_task_with_a_clear_message() {
    let fault = Fault {
        status: Some(500),
        ..Fault::default()
    };
    let script = Script::single(vec![Turn {
        content: vec![Item::Text("never".into())],
        faults: vec![
            fault.clone(),
            fault.clone(),
            fault.clone(),
            fault.clone(),
            fault,
        ],
        ..Turn::default()
    }]);
    let h = harness(script).await;
    let dir = project();
    let id = h
        .engine
        .start_task(TaskSpec::new("say hi", vec![dir.path().into()]))
        .unwrap();
    assert_eq!(h.engine.wait(&id).await.unwrap(), TaskState::Failed);
    let error = h.engine.summary(&id).unwrap().error.unwrap();
    assert!(
        error.starts_with("model API still failing after 4 attempts"),
        "{error}"
    );
    assert!(!error.contains('\n'));
}

#[tokio::test]
async fn twenty_parallel_tasks_get_independent_proposals() {
    let conversations = (0..20)
        .map(|n| Conversation {
            match_text: Some(format!("job-{n:02}")),
            turns: vec![
                turn(vec![
                    tool("create_file", json!({ "path": format!("out-{n:02}.txt"), "content": format!("{n}\n") })),
                    tool("edit", json!({ "path": "a.txt", "old_string": "beta", "new_string": format!("beta {n}") })),
                ]),
                text("done"),
            ],
        })
        .collect();
    let h = harness(Script {
        conversations,
        api_key: None,
    })
    .await;
    let dir = project();
    let before = snapshot_dir(dir.path());
    let ids: Vec<TaskId> = (0..20)
        .map(|n| {
            h.engine
                .start_task(TaskSpec::new(
                    format!("job-{n:02}"),
                    vec![dir.path().into()],
                ))
                .unwrap()
        })
        .collect();
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            h.engine.wait(id).await.unwrap(),
            TaskState::Proposed,
            "task {n}"
        );
        let proposal: Proposal = h.engine.proposal(id).unwrap().unwrap();
        let diff = proposal.unified_diff();
        assert!(diff.contains(&format!("+beta {n}\n")), "task {n}: {diff}");
        assert!(diff.contains(&format!("out-{n:02}.txt")), "task {n}");
        assert_eq!(proposal.changes.len(), 2, "task {n}: only its own changes");
    }
    assert_eq!(snapshot_dir(dir.path()), before);
}

#[tokio::test]
async fn plan_first_waits_for_approval_and_can_be_steered() {
    let plan = |title: &str| {
        tool(
            "update_plan",
            json!({ "steps": [{ "title": title, "status": "pending" }] }),
        )
    };
    let turns = vec![
        turn(vec![plan("rename beta")]),
        turn(vec![plan("rename beta to BETA")]),
        turn(vec![tool(
            "edit",
            json!({ "path": "a.txt", "old_string": "beta", "new_string": "BETA" }),
        )]),
        text("done"),
    ];
    let h = harness(Script::single(turns)).await;
    let dir = project();
    let mut spec = TaskSpec::new("rename", vec![dir.path().into()]);
    spec.mode = TaskMode::PlanFirst;
    spec.focus = Some(FocusSpec {
        file: "a.txt".into(),
        lines: Some((2, 2)),
    });
    let id = h.engine.start_task(spec).unwrap();
    let mut subscription = h.engine.subscribe(&id).unwrap();
    let mut decisions = vec![
        PlanDecision::Steer {
            instruction: "use capitals".into(),
        },
        PlanDecision::Approve,
    ];
    let mut states = Vec::new();
    while let Some(event) = subscription.events.recv().await {
        if let TaskEventKind::StateChanged { state, .. } = event.kind {
            states.push(state);
            if state == TaskState::AwaitingPlanApproval {
                h.engine.decide_plan(&id, decisions.remove(0)).unwrap();
            }
        }
    }
    use TaskState::*;
    assert_eq!(
        states,
        [
            Planning,
            AwaitingPlanApproval,
            Planning,
            AwaitingPlanApproval,
            Running,
            Proposed
        ]
    );
    let second = &h.mock.requests()[1].body["messages"];
    assert!(second.to_string().contains("use capitals"));
}

#[tokio::test]
async fn tasks_and_proposals_survive_a_restart() {
    let h = harness(Script::single(edit_script())).await;
    let dir = project();
    let id = h
        .engine
        .start_task(TaskSpec::new("tidy", vec![dir.path().into()]))
        .unwrap();
    h.engine.wait(&id).await.unwrap();
    let proposal = h.engine.proposal(&id).unwrap().unwrap();
    let first_hunk = proposal.changes[0].hunks[0].id.clone();
    h.engine
        .resolve_hunks(&id, std::slice::from_ref(&first_hunk), HunkStatus::Accepted)
        .unwrap();
    let config = config_for(&h.mock);
    drop(h.engine);
    let engine = open_engine(config, &h.data_path);
    let tasks = engine.tasks(10).unwrap();
    assert_eq!(tasks[0].id, id);
    assert_eq!(tasks[0].state, TaskState::Proposed);
    let reloaded = engine.proposal(&id).unwrap().unwrap();
    assert_eq!(
        reloaded.hunk(&first_hunk).unwrap().1.status,
        HunkStatus::Accepted
    );
    let events = engine.subscribe(&id).unwrap().history;
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, TaskEventKind::ProposalUpdated { .. }))
    );
    assert!(engine.verify_audit().unwrap().entries > 5);
}

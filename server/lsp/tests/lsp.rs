//! The LSP server end to end over in-memory pipes, with a real JSON-RPC
//! client and the engine against the scripted mock model.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod support;

use std::time::Duration;

use redline_test_support::{MockModelServer, Script};
use serde_json::{Value, json};
use support::{Answers, TestClient, uri};

const APPLY: Answers = Answers { apply_edit: true };

fn numbered(lines: usize) -> String {
    (1..=lines).map(|i| format!("fn f{i}() {{}}\n")).collect()
}

async fn mock(script: Value) -> MockModelServer {
    MockModelServer::start(Script::from_value(script).unwrap())
        .await
        .unwrap()
}

async fn open(client: &TestClient, path: &std::path::Path, text: &str) -> String {
    let uri = uri(path);
    client
        .notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "rust", "version": 1, "text": text } }))
        .await;
    uri
}

fn titles(actions: &Value) -> Vec<String> {
    actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect()
}

fn action<'a>(actions: &'a Value, title: &str) -> &'a Value {
    actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == title)
        .unwrap_or_else(|| panic!("no action {title} in {actions}"))
}

async fn run(client: &TestClient, action: &Value) -> Result<Value, Value> {
    let command = &action["command"];
    client
        .request(
            "workspace/executeCommand",
            json!({ "command": command["command"], "arguments": command["arguments"] }),
        )
        .await
        .unwrap()
}

/// A position in UTF-16 units of `text` at char index `at`.
fn position(text: &str, at: usize) -> Value {
    let mut line = 0;
    let mut character = 0;
    for c in text.chars().take(at) {
        if c == '\n' {
            line += 1;
            character = 0;
        } else {
            character += c.len_utf16();
        }
    }
    json!({ "line": line, "character": character })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_rapid_changes_interleaved_with_requests_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let client = TestClient::start(support::engine("http://127.0.0.1:9", data.path()), APPLY);
    client.initialize(json!({}), dir.path()).await;
    let mut text = "fn main() {\n    let s = \"héllo 😀\";\n}\n".to_owned();
    let uri = open(&client, &dir.path().join("main.rs"), &text).await;
    let inserts = ["a", "é", "😀", "\n", "xy", "", "}"];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound.max(1) as u64) as usize
    };
    let mut pending = Vec::new();
    for version in 2..=1001 {
        let chars = text.chars().count();
        let start = next(chars + 1);
        let end = (start + next(4)).min(chars);
        let insert = inserts[next(inserts.len())];
        let range = json!({ "start": position(&text, start), "end": position(&text, end) });
        let byte_start = text
            .char_indices()
            .nth(start)
            .map(|(b, _)| b)
            .unwrap_or(text.len());
        let byte_end = text
            .char_indices()
            .nth(end)
            .map(|(b, _)| b)
            .unwrap_or(text.len());
        text.replace_range(byte_start..byte_end, insert);
        client
            .notify(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "range": range, "text": insert }] }),
            )
            .await;
        if version % 10 == 0 {
            let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } });
            let params = json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [] } });
            pending.push(
                client
                    .request_start("textDocument/codeAction", params)
                    .await,
            );
        }
    }
    for receiver in pending {
        let response = tokio::time::timeout(Duration::from_secs(20), receiver)
            .await
            .unwrap()
            .unwrap();
        assert!(response.get("error").is_none(), "{response}");
    }
    let served = client
        .request("redline/documentText", json!({ "uri": uri }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served["version"], 1001);
    assert_eq!(served["text"].as_str().unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let client = TestClient::start(support::engine("http://127.0.0.1:9", data.path()), APPLY);
    client.initialize(json!({}), dir.path()).await;
    let uri = open(&client, &dir.path().join("a.rs"), "fn a() {}\n").await;
    let error_of = |result: Result<Value, Value>| {
        result.expect_err("expected an error")["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Valid JSON-RPC with the wrong params: an error for that request only.
    let message = error_of(
        client
            .request("textDocument/codeAction", json!({ "bogus": 1 }))
            .await
            .unwrap(),
    );
    assert!(message.contains("missing field"), "{message}");
    client
        .notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri } }),
        )
        .await;
    let warning = client
        .wait_notification(|m| m["method"] == "window/showMessage")
        .await
        .unwrap();
    assert!(
        warning["params"]["message"]
            .as_str()
            .unwrap()
            .contains("ignored a malformed textDocument/didChange"),
        "{warning}"
    );
    client.clear_notifications();

    let code_action = |uri: &str, line: u32| json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": line, "character": 0 }, "end": { "line": line, "character": 3 } }, "context": { "diagnostics": [] } });
    let unknown = format!("{uri}-missing");
    let message = error_of(
        client
            .request("textDocument/codeAction", code_action(&unknown, 0))
            .await
            .unwrap(),
    );
    assert!(message.contains("is not open in the editor"), "{message}");
    let message = error_of(
        client
            .request("textDocument/codeAction", code_action(&uri, 7))
            .await
            .unwrap(),
    );
    assert!(
        message.contains("line 7 is beyond the end of the document"),
        "{message}"
    );
    let message = error_of(
        client
            .request("textDocument/codeAction", code_action("untitled:1", 0))
            .await
            .unwrap(),
    );
    assert!(message.contains("is not a file"), "{message}");
    let message = error_of(
        client
            .request(
                "workspace/executeCommand",
                json!({ "command": "redline.nope", "arguments": [] }),
            )
            .await
            .unwrap(),
    );
    assert_eq!(message, "unknown command `redline.nope`");
    let message = error_of(client.request("workspace/executeCommand", json!({ "command": "redline.ask", "arguments": [{ "uri": uri, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } } }] })).await.unwrap());
    assert!(
        message.starts_with("Redline: Ask needs an instruction"),
        "{message}"
    );
    let message = error_of(
        client
            .request(
                "workspace/executeCommand",
                json!({ "command": "redline.acceptHunk", "arguments": [{ "taskId": "t-1" }] }),
            )
            .await
            .unwrap(),
    );
    assert!(
        message.starts_with("bad arguments for redline.acceptHunk: missing field `hunkId`"),
        "{message}"
    );
    let message = error_of(
        client
            .request("redline/documentText", json!({ "uri": unknown }))
            .await
            .unwrap(),
    );
    assert!(message.contains("is not open"), "{message}");

    // A change beyond the end: refused, reported, and the document is
    // flagged rather than silently corrupted.
    client
        .notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "range": { "start": { "line": 9, "character": 0 }, "end": { "line": 9, "character": 1 } }, "text": "x" }] }),
        )
        .await;
    let warning = client
        .wait_notification(|m| m["method"] == "window/showMessage")
        .await
        .unwrap();
    assert!(
        warning["params"]["message"]
            .as_str()
            .unwrap()
            .contains("line 9 is beyond the end"),
        "{warning}"
    );
    let message = error_of(
        client
            .request("textDocument/codeAction", code_action(&uri, 0))
            .await
            .unwrap(),
    );
    assert!(message.contains("is out of sync"), "{message}");
    // A full-text change resynchronises.
    client
        .notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": 3 }, "contentChanges": [{ "text": "fn b() {}\n" }] }))
        .await;
    let actions = client
        .request("textDocument/codeAction", code_action(&uri, 0))
        .await
        .unwrap()
        .unwrap();
    assert!(titles(&actions).contains(&"Redline: Ask…".to_owned()));
    let state = client
        .request("redline/documentState", json!({ "uri": uri }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state["outOfSync"], Value::Null);
}

fn two_hunk_script(prompt_match: &str) -> Value {
    json!([{ "match": prompt_match, "turns": [
        { "content": [
            { "tool_use": { "name": "edit", "input": { "path": "lib.rs", "old_string": "fn f3() {}\n", "new_string": "fn f3() { three() }\n" } } },
            { "tool_use": { "name": "edit", "input": { "path": "lib.rs", "old_string": "fn f20() {}\n", "new_string": "fn f20() { twenty() }\n" } } }
        ] },
        { "content": [{ "text": "done" }] }
    ] }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_proposes_hunks_as_diagnostics_that_quick_fixes_accept_and_reject() {
    let mock = mock(two_hunk_script("bodies")).await;
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.rs");
    let original = numbered(30);
    std::fs::write(&path, &original).unwrap();
    let client = TestClient::start(support::engine(&mock.base_url(), data.path()), APPLY);
    client
        .initialize(json!({ "workspace": { "workspaceEdit": { "documentChanges": true } }, "window": { "workDoneProgress": true } }), dir.path())
        .await;
    let uri = open(&client, &path, &original).await;
    let range =
        json!({ "start": { "line": 2, "character": 0 }, "end": { "line": 2, "character": 4 } });
    let actions = client
        .request("textDocument/codeAction", json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [] } }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        titles(&actions),
        [
            "Redline: Ask…",
            "Redline: explain",
            "Redline: document `f3`",
            "Redline: add tests for `f3`",
            "Redline: simplify"
        ]
    );
    let mut ask = action(&actions, "Redline: Ask…").clone();
    ask["command"]["arguments"][0]["instruction"] = json!("give f3 and f20 bodies");
    let started = run(&client, &ask).await.unwrap();
    let task = started["taskId"].as_str().unwrap().to_owned();

    let published = client
        .wait_notification(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["diagnostics"]
                    .as_array()
                    .is_some_and(|d| d.len() == 2)
        })
        .await
        .unwrap();
    let diagnostics = published["params"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics[0]["source"], "redline");
    assert_eq!(diagnostics[0]["severity"], 4);
    assert_eq!(diagnostics[0]["range"]["start"]["line"], 2);
    assert_eq!(diagnostics[1]["range"]["start"]["line"], 19);
    // Progress began and ended, and the event stream was forwarded.
    client
        .wait_notification(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end")
        .await
        .unwrap();
    client
        .wait_notification(|m| {
            m["method"] == "redline/taskEvent" && m["params"]["type"] == "proposalUpdated"
        })
        .await
        .unwrap();

    let at = |line: u32| json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": line, "character": 0 }, "end": { "line": line, "character": 0 } }, "context": { "diagnostics": [] } });
    let actions = client
        .request("textDocument/codeAction", at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &titles(&actions)[..4],
        [
            "Accept change",
            "Reject change",
            "Accept all in file",
            "Reject all"
        ]
    );
    let accepted = run(&client, action(&actions, "Accept change"))
        .await
        .unwrap();
    assert_eq!(accepted["accepted"].as_array().unwrap().len(), 1);
    let edit = client
        .wait_server_request(|m| m["method"] == "workspace/applyEdit")
        .await
        .unwrap();
    let text_edit = &edit["params"]["edit"]["documentChanges"][0]["edits"][0];
    assert_eq!(text_edit["newText"], "fn f3() { three() }\n");
    assert_eq!(
        text_edit["range"],
        json!({ "start": { "line": 2, "character": 0 }, "end": { "line": 3, "character": 0 } })
    );

    let actions = client
        .request("textDocument/codeAction", at(19))
        .await
        .unwrap()
        .unwrap();
    run(&client, action(&actions, "Reject change"))
        .await
        .unwrap();
    client
        .wait_notification(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["diagnostics"] == json!([])
        })
        .await
        .unwrap();
    let proposal = client
        .request("redline/proposal", json!({ "taskId": task }))
        .await
        .unwrap()
        .unwrap();
    let statuses: Vec<&str> = proposal["changes"][0]["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "rejected"]);
    // The editor applies accepted edits; the server never writes the file.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_gets_a_parse_error_and_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let client = TestClient::start(support::engine("http://127.0.0.1:9", data.path()), APPLY);
    client.initialize(json!({}), dir.path()).await;
    client.send_raw(&support::frame("{ this is not json")).await;
    let parse_error = client
        .wait_notification(|m| m["error"]["code"] == -32700)
        .await
        .unwrap();
    assert_eq!(parse_error["id"], Value::Null);
    // tower-lsp-server's framing cannot resynchronise after a body it
    // cannot parse, so the session ends: cleanly, without a panic.
    let server = client.server.lock().unwrap().take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_task_stops_the_server_and_changes_nothing() {
    let mock = mock(json!([{ "turns": [{ "content": [{ "text": "thinking" }], "faults": [{ "hang": true }] }] }])).await;
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.rs");
    std::fs::write(&path, numbered(5)).unwrap();
    let client = TestClient::start(support::engine(&mock.base_url(), data.path()), APPLY);
    client.initialize(json!({}), dir.path()).await;
    let uri = open(&client, &path, &numbered(5)).await;
    let args = json!({ "uri": uri, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } }, "instruction": "rewrite everything" });
    client
        .request(
            "workspace/executeCommand",
            json!({ "command": "redline.ask", "arguments": [args] }),
        )
        .await
        .unwrap()
        .unwrap();
    // Wait until the model request is in flight, then vanish.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mock.requests().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = client.server.lock().unwrap().take().unwrap();
    client.disconnect().await;
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .expect("no panic");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), numbered(5));
}

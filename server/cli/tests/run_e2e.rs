//! `redline` end to end: the built binary against the mock model server,
//! as a user would run it.

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use redline_test_support::fixtures::snapshot_dir;
use redline_test_support::{Item, MockModelServer, Script, ToolUse, Turn};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

struct Env {
    data: tempfile::TempDir,
    config: tempfile::TempDir,
    base_url: String,
}

impl Env {
    fn new(mock: &MockModelServer) -> Env {
        Env {
            data: tempfile::tempdir().unwrap(),
            config: tempfile::tempdir().unwrap(),
            base_url: mock.base_url(),
        }
    }

    async fn redline(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redline"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.data.path())
            .env("REDLINE_DATA_DIR", self.data.path())
            .env("REDLINE_CONFIG_DIR", self.config.path())
            .env("ANTHROPIC_BASE_URL", &self.base_url)
            .env("ANTHROPIC_API_KEY", "sk-ant-test-secret")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let output = child.wait_with_output().await.unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
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

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\nbeta\ngamma\n").unwrap();
    std::fs::write(dir.path().join("lib.rs"), "fn one() -> u32 {\n    1\n}\n").unwrap();
    std::fs::write(dir.path().join("old.txt"), "delete me\n").unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

fn edit_script() -> Script {
    Script::single(vec![
        turn(vec![
            tool("read_file", json!({ "path": "a.txt" })),
            tool("list_dir", json!({})),
        ]),
        turn(vec![
            tool(
                "edit",
                json!({ "path": "a.txt", "old_string": "beta", "new_string": "BETA" }),
            ),
            tool(
                "edit",
                json!({ "path": "lib.rs", "old_string": "    1\n", "new_string": "    11\n" }),
            ),
        ]),
        turn(vec![
            tool(
                "create_file",
                json!({ "path": "docs/new.txt", "content": "fresh\n" }),
            ),
            tool("delete", json!({ "path": "old.txt" })),
        ]),
        turn(vec![Item::Text(
            "Edited two files, created one, deleted one.".into(),
        )]),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn run_review_subset_apply_and_undo_with_the_real_binary() {
    let mock = MockModelServer::start(edit_script()).await.unwrap();
    let env = Env::new(&mock);
    let dir = project();
    let folder = dir.path().to_str().unwrap();
    let before = snapshot_dir(dir.path());

    let (code, stdout, stderr) = env
        .redline(&["run", "--folder", folder, "--json", "tidy up"], "")
        .await;
    assert_eq!(code, 0, "{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    let id = result["task"]["id"].as_str().unwrap().to_owned();
    assert_eq!(result["task"]["state"], "proposed");
    let diff = result["diff"].as_str().unwrap();
    assert!(
        diff.contains("+BETA")
            && diff.contains("new file mode")
            && diff.contains("deleted file mode"),
        "{diff}"
    );
    assert_eq!(
        snapshot_dir(dir.path()),
        before,
        "the folder is byte-identical until review"
    );
    assert!(!stderr.contains("sk-ant-test-secret") && !stdout.contains("sk-ant-test-secret"));

    // Review (hunks come in path order): accept a.txt and the new file,
    // reject the lib.rs edit and the deletion.
    let (code, stdout, stderr) = env.redline(&["review", &id], "y\ny\nn\nn\n").await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("Accept this change"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "alpha\nBETA\ngamma\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("docs/new.txt")).unwrap(),
        "fresh\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lib.rs")).unwrap(),
        "fn one() -> u32 {\n    1\n}\n"
    );
    assert!(dir.path().join("old.txt").exists());

    let (code, stdout, _) = env.redline(&["tasks"], "").await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&id) && stdout.contains("partially-applied"),
        "{stdout}"
    );
    let (code, stdout, _) = env.redline(&["show", &id], "").await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("tidy up") && stdout.contains("read_file a.txt"),
        "{stdout}"
    );

    let (code, _, stderr) = env.redline(&["undo"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        snapshot_dir(dir.path()),
        before,
        "undo restores every byte and mode"
    );
    assert!(
        !dir.path().join("docs").exists()
            || std::fs::read_dir(dir.path().join("docs"))
                .unwrap()
                .next()
                .is_none()
    );

    let (code, stdout, stderr) = env.redline(&["audit", "--verify"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("audit log intact"), "{stdout}");
    let (_, audit, _) = env.redline(&["audit", "--limit", "500"], "").await;
    for action in ["task.start", "tool.call", "proposal.apply", "proposal.undo"] {
        assert!(audit.contains(action), "audit has {action}: {audit}");
    }
    assert!(!audit.contains("sk-ant-test-secret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_flag_accepts_everything() {
    let mock = MockModelServer::start(edit_script()).await.unwrap();
    let env = Env::new(&mock);
    let dir = project();
    let (code, _, stderr) = env
        .redline(
            &[
                "run",
                "--folder",
                dir.path().to_str().unwrap(),
                "--apply",
                "tidy",
            ],
            "",
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!dir.path().join("old.txt").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lib.rs")).unwrap(),
        "fn one() -> u32 {\n    11\n}\n"
    );
    assert!(stderr.contains("Applied 4 file(s)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_one_line_error_and_exit_code_2() {
    let mock = MockModelServer::start(edit_script()).await.unwrap();
    let env = Env::new(&mock);
    let dir = project();
    let folder = dir.path().to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--folder", folder, "--model", "gpt-9", "x"],
            "unknown model `gpt-9`",
        ),
        (
            vec!["run", "--folder", "/nonexistent/folder", "x"],
            "cannot use folder /nonexistent/folder",
        ),
        (
            vec!["run", "--folder", folder, "   "],
            "the instruction is empty",
        ),
        (
            vec![
                "run", "--folder", folder, "--file", "a.txt", "--range", "3-1", "x",
            ],
            "invalid range 3-1 for a.txt",
        ),
        (
            vec![
                "run", "--folder", folder, "--file", "a.txt", "--range", "1-99", "x",
            ],
            "the file has 3 lines",
        ),
        (
            vec![
                "run", "--folder", folder, "--file", "a.txt", "--range", "x-y", "x",
            ],
            "invalid range `x-y`",
        ),
    ];
    for (args, expect) in cases {
        let (code, stdout, stderr) = env.redline(&args, "").await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {stderr}"
        );
        assert!(stdout.is_empty());
    }
    std::fs::write(env.config.path().join("redline.toml"), "[model\nfast = ").unwrap();
    let (code, _, stderr) = env.redline(&["run", "--folder", folder, "x"], "").await;
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("redline: invalid config ") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    std::fs::remove_file(env.config.path().join("redline.toml")).unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["run", "--folder", folder, "x"])
        .env_clear()
        .env("REDLINE_DATA_DIR", env.data.path())
        .env("REDLINE_CONFIG_DIR", env.config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.starts_with(
            "redline: no API key: set ANTHROPIC_API_KEY or `api_key` under [anthropic] in "
        ),
        "{stderr}"
    );
    assert!(
        mock.requests().is_empty(),
        "bad input never reaches the model"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "alpha\nbeta\ngamma\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_task_exits_1_and_leaves_files_untouched() {
    let fault = redline_test_support::Fault {
        status: Some(400),
        ..Default::default()
    };
    let script = Script::single(vec![Turn {
        faults: vec![fault],
        ..turn(vec![Item::Text("x".into())])
    }]);
    let mock = MockModelServer::start(script).await.unwrap();
    let env = Env::new(&mock);
    let dir = project();
    let before = snapshot_dir(dir.path());
    let (code, _, stderr) = env
        .redline(&["run", "--folder", dir.path().to_str().unwrap(), "x"], "")
        .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("failed: model API rejected the request (400)"),
        "{stderr}"
    );
    assert_eq!(snapshot_dir(dir.path()), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_key_presence_without_printing_it() {
    let mock = MockModelServer::start(edit_script()).await.unwrap();
    let env = Env::new(&mock);
    let (code, stdout, stderr) = env.redline(&["doctor"], "").await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ok   API key: present (from $ANTHROPIC_API_KEY)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "ok   model reachable: {}/v1/models answered",
            mock.base_url()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("ok   store: "), "{stdout}");
    assert!(!stdout.contains("sk-ant-test-secret") && !stderr.contains("sk-ant-test-secret"));

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redline"))
        .arg("doctor")
        .env_clear()
        .env("REDLINE_DATA_DIR", env.data.path())
        .env("REDLINE_CONFIG_DIR", env.config.path())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("FAIL API key: missing: set ANTHROPIC_API_KEY"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL model reachable: not checked: no API key"),
        "{stdout}"
    );
}

//! Crash safety: a child process applies (or undoes) a multi-file proposal
//! and is killed with SIGKILL at every durable step in turn. After
//! `recover`, every file must be entirely old or entirely new (bytes and
//! mode), no temp file may remain, and undo must bring back the old bytes
//! and modes.
//!
//! The child is this very test binary, re-run with `--exact <test>` and
//! environment variables telling it what to do and where to die.

// Tests may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use redline_core::apply::{Applier, ApplierOptions, ApplyId, ApplyState};
use redline_core::path::RelPath;
use redline_core::proposal::{HunkStatus, Proposal, ProposalId, StagedFile};

const CHILD_DIR: &str = "REDLINE_CRASH_CHILD_DIR";
const CRASH_AT: &str = "REDLINE_TEST_CRASH_AT";
const CHILD_OP: &str = "REDLINE_CRASH_CHILD_OP";

/// What a path holds: bytes and mode, or nothing.
type State = Option<(Vec<u8>, u32)>;

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

/// The files before and after the proposal, by path.
fn scenario() -> (BTreeMap<&'static str, State>, BTreeMap<&'static str, State>) {
    let text = |s: &str, mode: u32| Some((s.as_bytes().to_vec(), mode));
    let old_a = numbered(50);
    let new_a = old_a
        .replace("line 5\n", "five\n")
        .replace("line 45\n", "forty-five\n");
    let old_e = numbered(12);
    let new_e = old_e.replace("line 6\n", "six\n");
    let old_bin: Vec<u8> = (0..=255u8).collect();
    let mut new_bin = old_bin.clone();
    new_bin.reverse();
    let before = BTreeMap::from([
        ("a.txt", text(&old_a, 0o644)),
        ("tool.sh", text("#!/bin/sh\necho hi\n", 0o644)),
        ("new/dir/c.txt", None),
        ("d.txt", text("delete me\n", 0o600)),
        ("e.txt", text(&old_e, 0o640)),
        ("f.txt", None),
        ("g.bin", Some((old_bin, 0o644))),
    ]);
    let after = BTreeMap::from([
        ("a.txt", text(&new_a, 0o644)),
        ("tool.sh", text("#!/bin/sh\necho hello\n", 0o755)),
        ("new/dir/c.txt", text("created\n", 0o644)),
        ("d.txt", None),
        ("e.txt", None),
        ("f.txt", text(&new_e, 0o640)),
        ("g.bin", Some((new_bin, 0o644))),
    ]);
    (before, after)
}

fn read_state(root: &Path, path: &str) -> State {
    let host = root.join(path);
    let bytes = std::fs::read(&host).ok()?;
    let mode = std::fs::metadata(&host).unwrap().permissions().mode() & 0o7777;
    Some((bytes, mode))
}

struct Setup {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    journal: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("work");
    std::fs::create_dir(&root).unwrap();
    let (before, after) = scenario();
    for (path, state) in &before {
        if let Some((bytes, mode)) = state {
            let host = root.join(path);
            std::fs::write(&host, bytes).unwrap();
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
    let staged = |path: &str, from: Option<&str>| {
        let old = before[from.unwrap_or(path)].clone();
        let new = after[path].clone();
        StagedFile {
            root: 0,
            path: RelPath::new(path).unwrap(),
            renamed_from: from.map(|f| RelPath::new(f).unwrap()),
            before_mode: old.as_ref().map(|s| s.1),
            after_mode: new.as_ref().map(|s| s.1),
            before: old.map(|s| s.0),
            after: new.map(|s| s.0),
        }
    };
    let files = vec![
        staged("a.txt", None),
        staged("tool.sh", None),
        staged("new/dir/c.txt", None),
        staged("d.txt", None),
        staged("f.txt", Some("e.txt")),
        staged("g.bin", None),
    ];
    let mut proposal = Proposal::build(ProposalId::generate(), vec![root.clone()], files, None);
    proposal.set_all(HunkStatus::Accepted);
    std::fs::write(
        base.join("proposal.json"),
        serde_json::to_vec(&proposal).unwrap(),
    )
    .unwrap();
    let journal = base.join("journal");
    Setup {
        _dir: dir,
        base,
        root,
        journal,
    }
}

fn load_proposal(base: &Path) -> Proposal {
    serde_json::from_slice(&std::fs::read(base.join("proposal.json")).unwrap()).unwrap()
}

/// Runs in the child: apply or undo with the crash hook armed.
fn child(dir: &str) {
    let base = PathBuf::from(dir);
    let step: u32 = std::env::var(CRASH_AT).unwrap().parse().unwrap();
    let options = ApplierOptions {
        crash_after_step: Some(step),
    };
    let applier = Applier::with_options(&base.join("journal"), options).unwrap();
    match std::env::var(CHILD_OP).unwrap().as_str() {
        "apply" => {
            let mut proposal = load_proposal(&base);
            applier.apply(&mut proposal).unwrap();
        }
        "undo" => {
            let id = std::fs::read_to_string(base.join("apply-id")).unwrap();
            applier.undo(&ApplyId(id)).unwrap();
        }
        other => panic!("unknown child op {other}"),
    }
}

/// Runs the child for `op`, to die after `step`; true when it was killed,
/// false when it finished (the step lies beyond the last one).
fn run_child(test: &str, setup: &Setup, op: &str, step: u32) -> bool {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, &setup.base)
        .env(CRASH_AT, step.to_string())
        .env(CHILD_OP, op)
        .status()
        .unwrap();
    if status.success() {
        return false;
    }
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{op} child at step {step} failed: {status:?}"
    );
    true
}

/// Every path holds entirely its old or entirely its new state; returns
/// how many are new.
fn assert_old_or_new(setup: &Setup, context: &str) -> usize {
    let (before, after) = scenario();
    let mut new_count = 0;
    for path in before.keys() {
        let now = read_state(&setup.root, path);
        if now == after[path] && now != before[path] {
            new_count += 1;
        } else {
            assert!(
                now == before[path],
                "{context}: {path} is neither old nor new: {now:?}"
            );
        }
    }
    let leftovers: Vec<String> = walk(&setup.root)
        .into_iter()
        .filter(|p| p.contains(".redline-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{context}: temp files left: {leftovers:?}"
    );
    new_count
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

fn assert_all(setup: &Setup, which: &str, context: &str) {
    let (before, after) = scenario();
    let want = if which == "old" { &before } else { &after };
    for (path, state) in want {
        assert!(
            read_state(&setup.root, path) == *state,
            "{context}: {path} is not {which}"
        );
    }
    if which == "old" {
        assert!(
            !setup.root.join("new").exists(),
            "{context}: created directory left behind"
        );
    }
}

const TEST: &str = "sigkill_at_every_step_of_apply_and_undo_leaves_files_old_or_new";

#[test]
fn sigkill_at_every_step_of_apply_and_undo_leaves_files_old_or_new() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir);
        return;
    }

    // Apply, killed at each step.
    let mut crashes = 0;
    for step in 1.. {
        let setup = setup();
        let killed = run_child(TEST, &setup, "apply", step);
        let applier = Applier::new(&setup.journal).unwrap();
        let context = format!("apply killed after step {step}");
        if !killed {
            assert_all(&setup, "new", "apply without crash");
            break;
        }
        crashes += 1;
        applier.recover().unwrap();
        assert_old_or_new(&setup, &context);
        let list = applier.list().unwrap();
        match list.first().map(|s| s.state) {
            // Killed after the final step: a complete apply, undo it.
            Some(ApplyState::Committed) => {
                assert_all(&setup, "new", &context);
                applier.undo(&list[0].apply_id).unwrap();
            }
            Some(ApplyState::RolledBack) | None => {}
            other => panic!("{context}: unexpected state {other:?}"),
        }
        assert_all(&setup, "old", &context);
        // A fresh apply after recovery works and undoes exactly.
        let mut proposal = load_proposal(&setup.base);
        let report = applier.apply(&mut proposal).unwrap();
        assert!(
            report.stale.is_empty(),
            "{context}: {:?}",
            report.stale_reasons
        );
        assert_all(&setup, "new", &context);
        applier.undo(&report.apply_id).unwrap();
        assert_all(&setup, "old", &context);
    }
    // 1 journal + 5 temp files + committing + 7 renames/unlinks + committed.
    assert!(crashes >= 10, "only {crashes} crash points were exercised");

    // Undo, killed at each step.
    let mut undo_crashes = 0;
    for step in 1.. {
        let setup = setup();
        let applier = Applier::new(&setup.journal).unwrap();
        let report = applier.apply(&mut load_proposal(&setup.base)).unwrap();
        std::fs::write(setup.base.join("apply-id"), report.apply_id.as_str()).unwrap();
        let killed = run_child(TEST, &setup, "undo", step);
        let context = format!("undo killed after step {step}");
        if !killed {
            assert_all(&setup, "old", "undo without crash");
            break;
        }
        undo_crashes += 1;
        applier.recover().unwrap();
        assert_old_or_new(&setup, &context);
        let original = applier
            .list()
            .unwrap()
            .into_iter()
            .find(|s| s.apply_id == report.apply_id)
            .unwrap();
        if original.state == ApplyState::Committed {
            applier.undo(&report.apply_id).unwrap();
        }
        assert_all(&setup, "old", &context);
    }
    assert!(
        undo_crashes >= 10,
        "only {undo_crashes} undo crash points were exercised"
    );
}

//! Apply on real directories: only accepted hunks are written, files
//! changed since the proposal are never overwritten blindly, modes are
//! kept, and undo restores exact bytes and modes.

// Tests may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use redline_core::apply::{Applier, ApplyError, ApplyId, FileAction, UndoOptions};
use redline_core::diff::split_lines;
use redline_core::path::RelPath;
use redline_core::proposal::{HunkId, HunkStatus, Proposal, ProposalId, StagedFile};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    applier: Applier,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("work");
        std::fs::create_dir(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let applier = Applier::new(&dir.path().join("journal")).unwrap();
        Fixture {
            _dir: dir,
            root,
            applier,
        }
    }

    fn write(&self, path: &str, bytes: &str, mode: u32) {
        let host = self.root.join(path);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, bytes).unwrap();
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path)).ok()
    }

    fn mode(&self, path: &str) -> u32 {
        std::fs::metadata(self.root.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// Stages a change against what is on disk now.
    fn stage(&self, path: &str, after: Option<&str>) -> StagedFile {
        let host = self.root.join(path);
        let before = std::fs::read(&host).ok();
        let before_mode = before.as_ref().map(|_| self.mode(path));
        StagedFile {
            root: 0,
            path: RelPath::new(path).unwrap(),
            renamed_from: None,
            before,
            after: after.map(|s| s.as_bytes().to_vec()),
            before_mode,
            after_mode: after.map(|_| before_mode.unwrap_or(0o644)),
        }
    }

    fn proposal(&self, files: Vec<StagedFile>) -> Proposal {
        Proposal::build(ProposalId::generate(), vec![self.root.clone()], files, None)
    }
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

fn ids(proposal: &Proposal) -> Vec<HunkId> {
    proposal.hunks().map(|(_, h)| h.id.clone()).collect()
}

#[test]
fn only_accepted_hunks_are_written_and_modes_kept() {
    let fx = Fixture::new();
    let old = numbered(40);
    fx.write("tool.sh", &old, 0o750);
    fx.write("other.txt", "keep\n", 0o600);
    let new = old
        .replace("line 2\n", "two\n")
        .replace("line 30\n", "thirty\n");
    let mut proposal = fx.proposal(vec![
        fx.stage("tool.sh", Some(&new)),
        fx.stage("other.txt", Some("changed\n")),
    ]);
    assert_eq!(ids(&proposal).len(), 3);
    // Changes are sorted by path: other.txt, then tool.sh's two hunks.
    let tool: Vec<HunkId> = proposal.changes[1]
        .hunks
        .iter()
        .map(|h| h.id.clone())
        .collect();
    proposal
        .set_status(&tool[1..2], HunkStatus::Accepted)
        .unwrap();
    proposal
        .set_status(&tool[0..1], HunkStatus::Rejected)
        .unwrap();

    let report = fx.applier.apply(&mut proposal).unwrap();
    assert_eq!(
        fx.read("tool.sh").unwrap(),
        old.replace("line 30\n", "thirty\n")
    );
    assert_eq!(fx.mode("tool.sh"), 0o750);
    assert_eq!(fx.read("other.txt").unwrap(), "keep\n");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].action, FileAction::Modified);
    assert!(report.stale.is_empty() && report.reanchored.is_empty());

    fx.applier.undo(&report.apply_id).unwrap();
    assert_eq!(fx.read("tool.sh").unwrap(), old);
    assert_eq!(fx.mode("tool.sh"), 0o750);
}

#[test]
fn nothing_accepted_writes_and_journals_nothing() {
    let fx = Fixture::new();
    fx.write("a.txt", "a\n", 0o644);
    let mut proposal = fx.proposal(vec![
        fx.stage("a.txt", Some("b\n")),
        fx.stage("new.txt", Some("n\n")),
    ]);
    let report = fx.applier.apply(&mut proposal).unwrap();
    assert!(report.files.is_empty());
    assert_eq!(fx.read("a.txt").unwrap(), "a\n");
    assert_eq!(fx.read("new.txt"), None);
    assert!(fx.applier.list().unwrap().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(&fx.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn create_delete_rename_apply_and_undo_exactly() {
    let fx = Fixture::new();
    fx.write("gone.txt", "bye\n", 0o640);
    fx.write("src/old.rs", &numbered(20), 0o755);
    let mut rename = fx.stage(
        "src/old.rs",
        Some(&numbered(20).replace("line 9\n", "nine\n")),
    );
    rename.renamed_from = Some(rename.path.clone());
    rename.path = RelPath::new("lib/new.rs").unwrap();
    let mut proposal = fx.proposal(vec![
        fx.stage("deep/dir/new.txt", Some("hello\n")),
        fx.stage("gone.txt", None),
        rename,
    ]);
    proposal.set_all(HunkStatus::Accepted);
    let report = fx.applier.apply(&mut proposal).unwrap();
    let mut actions: Vec<String> = report
        .files
        .iter()
        .map(|f| format!("{} {:?}", f.path, f.action))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        vec![
            "deep/dir/new.txt Created",
            "gone.txt Deleted",
            "lib/new.rs Renamed { from: \"src/old.rs\" }"
        ]
    );
    assert_eq!(fx.read("deep/dir/new.txt").unwrap(), "hello\n");
    assert_eq!(fx.mode("deep/dir/new.txt"), 0o644);
    assert_eq!(fx.read("gone.txt"), None);
    assert_eq!(fx.read("src/old.rs"), None);
    assert_eq!(
        fx.read("lib/new.rs").unwrap(),
        numbered(20).replace("line 9\n", "nine\n")
    );
    assert_eq!(fx.mode("lib/new.rs"), 0o755);

    let undo = fx.applier.undo(&report.apply_id).unwrap();
    assert_eq!(undo.apply_id, report.apply_id);
    assert_eq!(fx.read("deep/dir/new.txt"), None);
    assert!(
        !fx.root.join("deep").exists(),
        "created directories are removed on undo"
    );
    assert_eq!(fx.read("gone.txt").unwrap(), "bye\n");
    assert_eq!(fx.mode("gone.txt"), 0o640);
    assert_eq!(fx.read("src/old.rs").unwrap(), numbered(20));
    assert_eq!(fx.mode("src/old.rs"), 0o755);
    assert_eq!(fx.read("lib/new.rs"), None);

    // Journal: newest first, the undo names what it reverted.
    let list = fx.applier.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].undo_of.as_ref(), Some(&report.apply_id));
    assert_eq!(list[1].undone_by.as_ref(), Some(&undo.undo_id));
    let again = fx.applier.undo(&report.apply_id).unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "cannot undo apply {}: it is already undone",
            report.apply_id
        )
    );
}

#[test]
fn new_mode_is_applied_only_when_the_mode_hunk_is_accepted() {
    let fx = Fixture::new();
    fx.write("run.sh", "echo\n", 0o644);
    let mut staged = fx.stage("run.sh", Some("echo hi\n"));
    staged.after_mode = Some(0o755);
    let mut proposal = fx.proposal(vec![staged.clone()]);
    let text = proposal.changes[0]
        .hunks
        .iter()
        .find(|h| h.kind == redline_core::proposal::HunkKind::Text)
        .unwrap()
        .id
        .clone();
    proposal.set_status(&[text], HunkStatus::Accepted).unwrap();
    fx.applier.apply(&mut proposal).unwrap();
    assert_eq!(
        (fx.read("run.sh").unwrap().as_str(), fx.mode("run.sh")),
        ("echo hi\n", 0o644)
    );

    let fx = Fixture::new();
    fx.write("run.sh", "echo\n", 0o644);
    let mut proposal = fx.proposal(vec![staged]);
    proposal.set_all(HunkStatus::Accepted);
    fx.applier.apply(&mut proposal).unwrap();
    assert_eq!(
        (fx.read("run.sh").unwrap().as_str(), fx.mode("run.sh")),
        ("echo hi\n", 0o755)
    );
}

/// A file edited after the proposal was made: `edit` is what the user did,
/// `expect_file` the content after applying all hunks, `expect_stale` how
/// many hunks went stale.
fn check_conflict(
    edit: impl Fn(&str) -> String,
    expect_file: impl Fn(&str) -> String,
    expect_stale: usize,
) {
    let fx = Fixture::new();
    let old = numbered(60);
    fx.write("a.txt", &old, 0o644);
    let new = old
        .replace("line 10\n", "ten\n")
        .replace("line 40\n", "forty\n");
    let mut proposal = fx.proposal(vec![fx.stage("a.txt", Some(&new))]);
    proposal.set_all(HunkStatus::Accepted);
    let user = edit(&old);
    fx.write("a.txt", &user, 0o644);

    let report = fx.applier.apply(&mut proposal).unwrap();
    assert_eq!(fx.read("a.txt").unwrap(), expect_file(&user));
    assert_eq!(report.stale.len(), expect_stale, "{report:?}");
    assert_eq!(report.reanchored.len(), 2 - expect_stale);
    assert_eq!(proposal.counts().stale, expect_stale);
    for reason in &report.stale_reasons {
        assert_eq!(
            reason.to_string(),
            format!(
                "cannot apply hunk {} of a.txt: file changed since the proposal was made",
                reason.id
            )
        );
    }
}

#[test]
fn edited_file_hunks_are_reanchored_when_context_matches_uniquely() {
    // Lines inserted at the top shift both hunks; both still match.
    check_conflict(
        |old| format!("new header\nmore\n{old}"),
        |user| {
            user.replace("line 10\n", "ten\n")
                .replace("line 40\n", "forty\n")
        },
        0,
    );
}

#[test]
fn edited_file_hunks_touching_the_edit_go_stale() {
    // The user edited a context line of the first hunk: that hunk is stale,
    // the second is written where it moved to.
    check_conflict(
        |old| {
            old.replace("line 11\n", "user's line 11\n")
                .replace("line 1\n", "L1\nL1b\n")
        },
        |user| user.replace("line 40\n", "forty\n"),
        1,
    );
    // The user changed the very line the hunk replaces.
    check_conflict(
        |old| old.replace("line 40\n", "user 40\n"),
        |user| user.replace("line 10\n", "ten\n"),
        1,
    );
}

#[test]
fn ambiguous_context_goes_stale() {
    let fx = Fixture::new();
    let block = "a\nb\nc\nX\nd\ne\nf\n";
    let old = format!("top\n{block}bottom\n");
    fx.write("a.txt", &old, 0o644);
    let mut proposal = fx.proposal(vec![fx.stage("a.txt", Some(&old.replace("X\n", "Y\n")))]);
    proposal.set_all(HunkStatus::Accepted);
    // The user duplicated the block: the hunk now matches twice.
    let user = format!("top\n{block}{block}bottom\n");
    fx.write("a.txt", &user, 0o644);
    let report = fx.applier.apply(&mut proposal).unwrap();
    assert_eq!(report.stale.len(), 1);
    assert!(report.files.is_empty());
    assert_eq!(fx.read("a.txt").unwrap(), user);
}

#[test]
fn changed_files_are_never_deleted_or_clobbered_by_creation() {
    let fx = Fixture::new();
    fx.write("del.txt", "original\n", 0o644);
    let mut proposal = fx.proposal(vec![
        fx.stage("del.txt", None),
        fx.stage("new.txt", Some("mine\n")),
    ]);
    proposal.set_all(HunkStatus::Accepted);
    fx.write("del.txt", "user edit\n", 0o644);
    fx.write("new.txt", "user created\n", 0o644);
    let report = fx.applier.apply(&mut proposal).unwrap();
    assert_eq!(report.stale.len(), 2);
    assert_eq!(fx.read("del.txt").unwrap(), "user edit\n");
    assert_eq!(fx.read("new.txt").unwrap(), "user created\n");
}

#[test]
fn undo_refuses_files_changed_since_unless_forced() {
    let fx = Fixture::new();
    fx.write("a.txt", "one\n", 0o644);
    let mut proposal = fx.proposal(vec![fx.stage("a.txt", Some("two\n"))]);
    proposal.set_all(HunkStatus::Accepted);
    let report = fx.applier.apply(&mut proposal).unwrap();
    fx.write("a.txt", "three\n", 0o644);
    let err = fx.applier.undo(&report.apply_id).unwrap_err();
    assert!(matches!(err, ApplyError::ChangedSinceApply { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot undo apply {}: a.txt changed since it was applied (undo with force to overwrite it; the current content is journaled)",
            report.apply_id
        )
    );
    assert_eq!(fx.read("a.txt").unwrap(), "three\n");
    let undo = fx
        .applier
        .undo_with(&report.apply_id, UndoOptions { force: true })
        .unwrap();
    assert_eq!(fx.read("a.txt").unwrap(), "one\n");
    // The forced undo journaled "three", so undoing it brings it back.
    fx.applier.undo(&undo.undo_id).unwrap();
    assert_eq!(fx.read("a.txt").unwrap(), "three\n");
}

#[test]
fn errors_name_the_problem() {
    let fx = Fixture::new();
    let err = fx.applier.undo(&ApplyId("../../etc".into())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`../../etc` is not an apply id (expected `a-` followed by digits and hex)"
    );
    let err = fx
        .applier
        .undo(&ApplyId("a-0000000000001-00000000".into()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no apply `a-0000000000001-00000000` in the journal"
    );

    // Root gone.
    fx.write("a.txt", "x\n", 0o644);
    let mut proposal = fx.proposal(vec![fx.stage("a.txt", Some("y\n"))]);
    proposal.set_all(HunkStatus::Accepted);
    proposal.roots = vec![fx.root.join("missing")];
    let err = fx.applier.apply(&mut proposal).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "granted folder `{}` of proposal {} is not available",
            fx.root.join("missing").display(),
            proposal.id
        )),
        "{err}"
    );
}

#[test]
fn symlink_escapes_are_refused() {
    let fx = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), fx.root.join("out")).unwrap();
    let staged = StagedFile {
        root: 0,
        path: RelPath::new("out/secret").unwrap(),
        renamed_from: None,
        before: Some(b"s\n".to_vec()),
        after: Some(b"pwned\n".to_vec()),
        before_mode: Some(0o644),
        after_mode: Some(0o644),
    };
    let mut proposal = fx.proposal(vec![staged]);
    proposal.set_all(HunkStatus::Accepted);
    let err = fx.applier.apply(&mut proposal).unwrap_err();
    assert_eq!(
        err.to_string(),
        "path `out/secret` escapes the granted folder through the symlink `out`"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s\n"
    );
}

fn lines_strategy() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("{"),
        Just("}"),
        Just(""),
        Just("ü")
    ];
    (prop::collection::vec(line, 0..30), any::<bool>()).prop_map(|(lines, newline)| {
        let mut text = lines.join("\n");
        if newline && !lines.is_empty() {
            text.push('\n');
        }
        text
    })
}

fn expected(old: &str, proposal: &Proposal) -> String {
    // Independent of apply: the accepted hunks spliced into old's lines.
    let lines = split_lines(old);
    let mut out = String::new();
    let mut at = 0usize;
    for (_, hunk) in proposal.hunks() {
        if hunk.status != HunkStatus::Accepted {
            continue;
        }
        out.push_str(&lines[at..hunk.old_start as usize].concat());
        out.push_str(&hunk.new_text);
        at = (hunk.old_start + hunk.old_lines) as usize;
    }
    out.push_str(&lines[at..].concat());
    out
}

fn root_of(path: &Path) -> PathBuf {
    path.to_path_buf()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn real_apply_of_any_subset_then_undo_restores_old(
        old in lines_strategy(),
        new in lines_strategy(),
        picks in prop::collection::vec(any::<bool>(), 32),
    ) {
        let fx = Fixture::new();
        fx.write("f.txt", &old, 0o644);
        let mut proposal = Proposal::build(
            ProposalId::generate(),
            vec![root_of(&fx.root)],
            vec![fx.stage("f.txt", Some(&new))],
            None,
        );
        let all = ids(&proposal);
        let chosen: Vec<HunkId> = all.iter().zip(picks.iter().cycle()).filter(|(_, p)| **p).map(|(id, _)| id.clone()).collect();
        proposal.set_status(&chosen, HunkStatus::Accepted).unwrap();
        let want = expected(&old, &proposal);
        let report = fx.applier.apply(&mut proposal).unwrap();
        prop_assert_eq!(fx.read("f.txt").unwrap(), want.clone());
        if chosen.len() == all.len() {
            prop_assert_eq!(want.clone(), new.clone());
        }
        if report.files.is_empty() {
            prop_assert_eq!(want, old.clone());
        } else {
            fx.applier.undo(&report.apply_id).unwrap();
        }
        prop_assert_eq!(fx.read("f.txt").unwrap(), old);
        prop_assert_eq!(fx.mode("f.txt"), 0o644);
    }
}

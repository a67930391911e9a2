//! Proposals: building from staged files, hunk ids and statuses, resolved
//! content, rendering, and the in-memory property that applying any subset
//! of hunks gives exactly old-with-those-hunks.

// Tests may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use expect_test::{Expect, expect};
use proptest::prelude::*;
use redline_core::diff::{apply_hunks, split_lines};
use redline_core::path::RelPath;
use redline_core::proposal::{
    ChangeKind, FileContent, Hunk, HunkId, HunkKind, HunkStatus, Proposal, ProposalId, StagedFile,
};

fn rel(path: &str) -> RelPath {
    RelPath::new(path).unwrap()
}

fn modify(path: &str, before: &str, after: &str) -> StagedFile {
    StagedFile {
        root: 0,
        path: rel(path),
        renamed_from: None,
        before: Some(before.as_bytes().to_vec()),
        after: Some(after.as_bytes().to_vec()),
        before_mode: Some(0o644),
        after_mode: Some(0o644),
    }
}

fn build(files: Vec<StagedFile>) -> Proposal {
    Proposal::build(
        ProposalId("p-test".into()),
        vec![PathBuf::from("/tmp/root")],
        files,
        None,
    )
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

fn check_diff(files: Vec<StagedFile>, expect: Expect) {
    expect.assert_eq(&build(files).unified_diff());
}

#[test]
fn proposal_id_has_prefix_and_16_hex_digits() {
    let id = ProposalId::generate();
    assert_eq!(id.0.len(), 18, "{id}");
    assert!(id.0.starts_with("p-"));
    assert!(id.0[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(id, ProposalId::generate());
}

#[test]
fn unchanged_file_yields_no_change() {
    let proposal = build(vec![modify("a.txt", "same\n", "same\n")]);
    assert!(proposal.is_empty());
}

#[test]
fn mode_only_change_yields_a_mode_hunk() {
    let mut file = modify("run.sh", "echo\n", "echo\n");
    file.after_mode = Some(0o755);
    let proposal = build(vec![file]);
    let kinds: Vec<HunkKind> = proposal.changes[0].hunks.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, vec![HunkKind::Mode]);
    expect![[r#"
        diff --git a/run.sh b/run.sh
        old mode 100644
        new mode 100755
    "#]]
    .assert_eq(&proposal.unified_diff());
}

#[test]
fn modify_groups_changes_with_three_lines_of_context() {
    let old = numbered(30);
    let new = old
        .replace("line 2\n", "line two\n")
        .replace("line 6\n", "line six\n")
        .replace("line 25\n", "line 25\nextra\n");
    check_diff(
        vec![modify("src/lib.rs", &old, &new)],
        expect![[r#"
            diff --git a/src/lib.rs b/src/lib.rs
            index ac9837cd58bc91b0837922be433d758edb362434..e39497088a3c771421a31ae1637ba30d38ce9cbd 100644
            --- a/src/lib.rs
            +++ b/src/lib.rs
            @@ -1,9 +1,9 @@
             line 1
            -line 2
            +line two
             line 3
             line 4
             line 5
            -line 6
            +line six
             line 7
             line 8
             line 9
            @@ -23,6 +23,7 @@
             line 23
             line 24
             line 25
            +extra
             line 26
             line 27
             line 28
        "#]],
    );
    let proposal = build(vec![modify("src/lib.rs", &old, &new)]);
    let hunks = &proposal.changes[0].hunks;
    assert_eq!(hunks.len(), 2);
    assert_eq!((hunks[0].old_start, hunks[0].old_lines), (1, 5));
    assert_eq!(
        hunks[0].old_text,
        "line 2\nline 3\nline 4\nline 5\nline 6\n"
    );
    assert_eq!(
        (
            hunks[1].old_start,
            hunks[1].old_lines,
            hunks[1].new_start,
            hunks[1].new_lines
        ),
        (25, 0, 25, 1)
    );
}

#[test]
fn no_newline_at_end_of_file_is_marked() {
    check_diff(
        vec![modify("a.txt", "one\ntwo", "one\ntwo\nthree")],
        expect![[r#"
            diff --git a/a.txt b/a.txt
            index 9ed40b44250875c2c4532588b014ab45a1799a0f..54d55bf0bb50b503792f391b6f0158bd6145073e 100644
            --- a/a.txt
            +++ b/a.txt
            @@ -1,2 +1,3 @@
             one
            -two
            \ No newline at end of file
            +two
            +three
            \ No newline at end of file
        "#]],
    );
}

#[test]
fn create_delete_and_rename_render_git_headers() {
    let create = StagedFile {
        root: 0,
        path: rel("new.txt"),
        renamed_from: None,
        before: None,
        after: Some(b"hello\n".to_vec()),
        before_mode: None,
        after_mode: Some(0o755),
    };
    let delete = StagedFile {
        root: 0,
        path: rel("old.txt"),
        renamed_from: None,
        before: Some(b"bye\n".to_vec()),
        after: None,
        before_mode: Some(0o644),
        after_mode: None,
    };
    let rename = StagedFile {
        root: 0,
        path: rel("to.txt"),
        renamed_from: Some(rel("from.txt")),
        before: Some(b"same\n".to_vec()),
        after: Some(b"same\n".to_vec()),
        before_mode: Some(0o644),
        after_mode: Some(0o644),
    };
    check_diff(
        vec![create, delete, rename],
        expect![[r#"
            diff --git a/new.txt b/new.txt
            new file mode 100755
            index 0000000000000000000000000000000000000000..ce013625030ba8dba906f756967f9e9ca394464a
            --- /dev/null
            +++ b/new.txt
            @@ -0,0 +1 @@
            +hello
            diff --git a/old.txt b/old.txt
            deleted file mode 100644
            index b023018cabc396e7692c70bbf5784a93d3f738ab..0000000000000000000000000000000000000000
            --- a/old.txt
            +++ /dev/null
            @@ -1 +0,0 @@
            -bye
            diff --git a/from.txt b/to.txt
            similarity index 100%
            rename from from.txt
            rename to to.txt
        "#]],
    );
}

#[test]
fn multiple_roots_prefix_paths_with_the_root_folder_name() {
    let mut second = modify("b.txt", "x\n", "y\n");
    second.root = 1;
    let proposal = Proposal::build(
        ProposalId("p-test".into()),
        vec![PathBuf::from("/home/u/app"), PathBuf::from("/home/u/docs")],
        vec![modify("a.txt", "x\n", "y\n"), second],
        None,
    );
    let diff = proposal.unified_diff();
    assert!(
        diff.contains("diff --git a/app/a.txt b/app/a.txt\n"),
        "{diff}"
    );
    assert!(
        diff.contains("diff --git a/docs/b.txt b/docs/b.txt\n"),
        "{diff}"
    );
    assert!(
        diff.contains("--- a/docs/b.txt\n+++ b/docs/b.txt\n"),
        "{diff}"
    );
}

#[test]
fn hunk_ids_are_stable_and_statuses_carry_over() {
    let old = numbered(40);
    let first = old.replace("line 3\n", "line three\n");
    let mut proposal = build(vec![modify("a.txt", &old, &first)]);
    let first_id = proposal.changes[0].hunks[0].id.clone();
    assert!(
        first_id.0.starts_with('h') && first_id.0.len() == 13,
        "{first_id}"
    );
    proposal
        .set_status(std::slice::from_ref(&first_id), HunkStatus::Accepted)
        .unwrap();

    // The task edits further down: the first hunk keeps its id and status.
    let second = first.replace("line 30\n", "line thirty\n");
    let rebuilt = Proposal::build(
        proposal.id.clone(),
        proposal.roots.clone(),
        vec![modify("a.txt", &old, &second)],
        Some(&proposal),
    );
    let hunks = &rebuilt.changes[0].hunks;
    assert_eq!(hunks.len(), 2);
    assert_eq!(hunks[0].id, first_id);
    assert_eq!(hunks[0].status, HunkStatus::Accepted);
    assert_eq!(hunks[1].status, HunkStatus::Pending);
    assert_ne!(hunks[1].id, first_id);
}

#[test]
fn identical_hunks_in_one_file_get_distinct_ids() {
    let old = "a\n".repeat(3) + "x\n" + &"b\n".repeat(10) + "x\n" + &"a\n".repeat(3);
    let new = old.replace("x\n", "y\n");
    let proposal = build(vec![modify("a.txt", &old, &new)]);
    let hunks = &proposal.changes[0].hunks;
    assert_eq!(hunks.len(), 2);
    assert_ne!(hunks[0].id, hunks[1].id);
}

#[test]
fn set_status_refuses_unknown_ids_and_counts_follow() {
    let mut proposal = build(vec![
        modify("a.txt", "a\n", "b\n"),
        modify("b.txt", "a\n", "b\n"),
    ]);
    let err = proposal
        .set_status(&[HunkId("hdeadbeef0000".into())], HunkStatus::Accepted)
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown hunk hdeadbeef0000");
    assert_eq!(proposal.counts().pending, 2);
    let id = proposal.changes[0].hunks[0].id.clone();
    proposal
        .set_status(std::slice::from_ref(&id), HunkStatus::Rejected)
        .unwrap();
    assert_eq!(proposal.hunk(&id).unwrap().0.path.as_str(), "a.txt");
    let counts = proposal.counts();
    assert_eq!(
        (
            counts.pending,
            counts.accepted,
            counts.rejected,
            counts.stale
        ),
        (1, 0, 1, 0)
    );
    proposal.set_all(HunkStatus::Accepted);
    assert_eq!(proposal.counts().accepted, 2);
}

#[test]
fn binary_files_become_one_binary_hunk() {
    let mut file = modify("img.png", "", "");
    file.before = Some(vec![0x89, b'P', 0, 1]);
    file.after = Some(vec![0x89, b'P', 0, 2]);
    let mut proposal = build(vec![file]);
    let change = &proposal.changes[0];
    assert_eq!(change.hunks.len(), 1);
    assert_eq!(change.hunks[0].kind, HunkKind::Binary);
    assert_eq!(change.resolved_content(), change.old.clone());
    proposal.set_all(HunkStatus::Accepted);
    assert_eq!(
        proposal.changes[0].resolved_content(),
        Some(FileContent::Binary(vec![0x89, b'P', 0, 2]))
    );
    assert!(
        proposal
            .unified_diff()
            .contains("GIT binary patch\nliteral 4\n")
    );
}

#[test]
fn rename_with_edits_has_rename_and_text_hunks() {
    let old = numbered(10);
    let new = old.replace("line 5\n", "line five\n");
    let file = StagedFile {
        renamed_from: Some(rel("old/name.rs")),
        ..modify("new/name.rs", &old, &new)
    };
    let proposal = build(vec![file]);
    let change = &proposal.changes[0];
    assert_eq!(
        change.kind,
        ChangeKind::Rename {
            from: rel("old/name.rs")
        }
    );
    let kinds: Vec<HunkKind> = change.hunks.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, vec![HunkKind::Rename, HunkKind::Text]);
}

#[test]
fn resolved_content_follows_accepted_hunks() {
    let old = numbered(30);
    let new = old
        .replace("line 2\n", "two\n")
        .replace("line 20\n", "twenty\n");
    let mut proposal = build(vec![modify("a.txt", &old, &new)]);
    let second = proposal.changes[0].hunks[1].id.clone();
    proposal
        .set_status(&[second], HunkStatus::Accepted)
        .unwrap();
    let Some(FileContent::Text(text)) = proposal.changes[0].resolved_content() else {
        panic!("expected text");
    };
    assert_eq!(text, old.replace("line 20\n", "twenty\n"));
}

/// The expected result of applying `chosen` hunks, computed independently
/// of `apply_hunks`: walk old and new in step, taking each hunk's region
/// from new when chosen and from old otherwise, and check that the
/// regions between hunks agree (which validates the new-side ranges too).
fn oracle(old: &str, new: &str, hunks: &[Hunk], chosen: &[bool]) -> String {
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    let mut out = String::new();
    let (mut o, mut n) = (0usize, 0usize);
    for (hunk, &take) in hunks.iter().zip(chosen) {
        let (os, ns) = (hunk.old_start as usize, hunk.new_start as usize);
        assert_eq!(
            old_lines[o..os],
            new_lines[n..ns],
            "unchanged region differs"
        );
        out.push_str(&old_lines[o..os].concat());
        let (oe, ne) = (os + hunk.old_lines as usize, ns + hunk.new_lines as usize);
        let region = if take {
            &new_lines[ns..ne]
        } else {
            &old_lines[os..oe]
        };
        out.push_str(&region.concat());
        o = oe;
        n = ne;
    }
    assert_eq!(old_lines[o..], new_lines[n..], "tail differs");
    out.push_str(&old_lines[o..].concat());
    out
}

/// Texts made of a few distinct lines, so diffs have repeats, moves and
/// edits close together; sometimes without a final newline, sometimes CRLF.
pub fn text_strategy() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned()),
        Just("fn main() {".to_owned()),
        Just("}".to_owned()),
        Just("".to_owned()),
        Just("é ü 漢字".to_owned()),
        "[a-e]{1,3}",
    ];
    (
        prop::collection::vec(line, 0..40),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline, crlf)| {
            let sep = if crlf { "\r\n" } else { "\n" };
            let mut text = lines.join(sep);
            if final_newline && !lines.is_empty() {
                text.push_str(sep);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_subset_of_hunks_applies_exactly(
        old in text_strategy(),
        new in text_strategy(),
        picks in prop::collection::vec(any::<bool>(), 64),
    ) {
        let proposal = build(vec![modify("f.txt", &old, &new)]);
        let hunks: Vec<Hunk> = proposal
            .changes
            .first()
            .map(|c| c.hunks.clone())
            .unwrap_or_default();
        prop_assert!(hunks.iter().all(|h| h.kind == HunkKind::Text));
        let chosen: Vec<bool> = picks.iter().copied().cycle().take(hunks.len()).collect();
        let subset: Vec<&Hunk> = hunks.iter().zip(&chosen).filter(|(_, c)| **c).map(|(h, _)| h).collect();
        let all: Vec<&Hunk> = hunks.iter().collect();
        prop_assert_eq!(apply_hunks(&old, &[]), old.clone());
        prop_assert_eq!(apply_hunks(&old, &all), new.clone());
        prop_assert_eq!(apply_hunks(&old, &subset), oracle(&old, &new, &hunks, &chosen));
        // Same through the proposal's statuses.
        let mut proposal = proposal;
        if let Some(change) = proposal.changes.first_mut() {
            for (hunk, take) in change.hunks.iter_mut().zip(&chosen) {
                hunk.status = if *take { HunkStatus::Accepted } else { HunkStatus::Rejected };
            }
            prop_assert_eq!(
                change.resolved_content(),
                Some(FileContent::Text(oracle(&old, &new, &hunks, &chosen)))
            );
        }
    }
}

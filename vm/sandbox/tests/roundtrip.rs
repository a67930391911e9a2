//! A staged edit is visible to commands, and what they change comes back as
//! changes while the real folder stays byte-identical.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::Path;

use redline_core::path::RelPath;
use redline_vm::{
    CancelFlag, ChangeKind, CommandSpec, NamespacesSandbox, SandboxChange, SandboxSession,
    SessionRequest, StagedEntry,
};

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let rel = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(entry.path());
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(entry.path())
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out
}

fn summary(changes: &[SandboxChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let body = match (&c.content, &c.symlink_target) {
                (Some(bytes), _) => format!(" {:?}", String::from_utf8_lossy(bytes)),
                (None, Some(target)) => format!(" -> {target}"),
                (None, None) => String::new(),
            };
            format!("{}:{} {:?}{body}", c.root, c.path, c.kind)
        })
        .collect()
}

fn run(session: &mut dyn SandboxSession, script: &str) -> redline_vm::CommandOutcome {
    let outcome = session
        .run(
            &CommandSpec::new(["sh", "-c", script]),
            &mut |_, _| {},
            &CancelFlag::new(),
        )
        .unwrap();
    assert!(
        outcome.success(),
        "{outcome:?} {}",
        String::from_utf8_lossy(&outcome.stderr)
    );
    outcome
}

#[test]
fn staged_edit_and_command_changes_round_trip() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("A"), "a original\n").unwrap();
    std::fs::write(folder.path().join("C"), "c\n").unwrap();
    let before = snapshot(folder.path());

    let staged = vec![StagedEntry {
        root: 0,
        path: RelPath::new("A").unwrap(),
        content: Some(b"a staged\n".to_vec()),
        mode: None,
    }];
    let mut session = NamespacesSandbox::default()
        .prepare_session(&SessionRequest {
            roots: vec![folder.path().to_path_buf()],
            staged,
        })
        .unwrap();
    run(&mut session, "cat A > B; rm C; mkdir d; echo x > d/e");

    let changes = session.changes().unwrap();
    assert_eq!(
        summary(&changes),
        [
            r#"0:A Modified "a staged\n""#,
            r#"0:B Created "a staged\n""#,
            "0:C Deleted",
            r#"0:d/e Created "x\n""#,
        ]
    );
    assert_eq!(changes[1].mode, Some(0o644));
    assert_eq!(snapshot(folder.path()), before);
    assert!(
        changes
            .iter()
            .all(|c| c.kind != ChangeKind::Deleted || c.content.is_none())
    );
    Box::new(session).dispose_checked();
}

trait DisposeChecked {
    fn dispose_checked(self);
}

impl DisposeChecked for Box<redline_vm::namespaces::NamespacesSession> {
    fn dispose_checked(self) {
        SandboxSession::dispose(self).unwrap();
    }
}

#[test]
fn overlay_edge_cases_come_back_as_the_right_changes() {
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("dir/keep"), "keep\n").unwrap();
    std::fs::write(root.join("dir/sub/gone"), "gone\n").unwrap();
    std::fs::write(root.join("touched"), "same\n").unwrap();
    std::fs::write(root.join("bin.dat"), [0u8, 1, 2]).unwrap();
    std::fs::write(root.join("staged-delete"), "x\n").unwrap();
    std::os::unix::fs::symlink("touched", root.join("link")).unwrap();
    let before = snapshot(root);

    let staged = vec![StagedEntry {
        root: 0,
        path: RelPath::new("staged-delete").unwrap(),
        content: None,
        mode: None,
    }];
    let mut session = NamespacesSandbox::default()
        .prepare_session(&SessionRequest {
            roots: vec![root.to_path_buf()],
            staged,
        })
        .unwrap();
    // The staged deletion is visible; then: a no-op copy-up (same bytes
    // rewritten), a directory deleted and recreated with one file, a
    // retargeted symlink, a binary edit and a mode change.
    run(
        &mut session,
        "test ! -e staged-delete && cat touched > t && cat t > touched && rm t && \
         rm -r dir && mkdir dir && echo new > dir/fresh && \
         ln -sfn bin.dat link && printf '\\000\\377' > bin.dat && echo run > script && chmod 755 script",
    );
    // A second command in the same session sees the first one's work.
    run(
        &mut session,
        "test -x script && test -L link && test -f dir/fresh && test ! -e dir/keep",
    );

    let changes = session.changes().unwrap();
    assert_eq!(
        summary(&changes),
        [
            r#"0:bin.dat Modified "\0�""#,
            r#"0:dir/fresh Created "new\n""#,
            "0:dir/keep Deleted",
            "0:dir/sub/gone Deleted",
            "0:link Modified -> bin.dat",
            r#"0:script Created "run\n""#,
            "0:staged-delete Deleted",
        ]
    );
    assert!(changes[0].is_binary());
    assert!(!changes[1].is_binary());
    assert_eq!(changes[5].mode, Some(0o755));
    assert_eq!(snapshot(root), before);
}

//! Every unified diff core renders must be accepted by real `git apply`:
//! for each case the old files are written into a fresh git repository,
//! `git apply --check` must pass, and `git apply` must produce exactly the
//! new bytes (and executable bits).

// Tests may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use redline_core::path::RelPath;
use redline_core::proposal::{Proposal, ProposalId, StagedFile};

struct Case {
    name: &'static str,
    files: Vec<StagedFile>,
}

fn rel(path: &str) -> RelPath {
    RelPath::new(path).unwrap()
}

fn file(path: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> StagedFile {
    StagedFile {
        root: 0,
        path: rel(path),
        renamed_from: None,
        before: before.map(<[u8]>::to_vec),
        after: after.map(<[u8]>::to_vec),
        before_mode: before.map(|_| 0o644),
        after_mode: after.map(|_| 0o644),
    }
}

fn text(s: &str) -> Option<&[u8]> {
    Some(s.as_bytes())
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

fn corpus() -> Vec<Case> {
    let long = numbered(200);
    let many = (0..200).step_by(9).fold(long.clone(), |acc, i| {
        acc.replacen(&format!("line {i}\n"), &format!("LINE {i}\n"), 1)
    });
    let renamed_edit = numbered(20).replace("line 10\n", "line ten\n");
    let binary_old: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut binary_new = binary_old.clone();
    binary_new[100] = 0;
    binary_new.extend_from_slice(b"\0tail");
    vec![
        Case {
            name: "modify",
            files: vec![file(
                "a.txt",
                text("one\ntwo\nthree\n"),
                text("one\n2\nthree\n"),
            )],
        },
        Case {
            name: "create",
            files: vec![file("dir/new.txt", None, text("hello\nworld\n"))],
        },
        Case {
            name: "delete",
            files: vec![file("gone.txt", text("bye\nnow\n"), None)],
        },
        Case {
            name: "rename",
            files: vec![StagedFile {
                renamed_from: Some(rel("old name.txt")),
                ..file("sub/new name.txt", text("same\n"), text("same\n"))
            }],
        },
        Case {
            name: "rename+modify",
            files: vec![StagedFile {
                renamed_from: Some(rel("src/old.rs")),
                ..file("src/new.rs", text(&numbered(20)), text(&renamed_edit))
            }],
        },
        Case {
            name: "no newline old",
            files: vec![file("n.txt", text("a\nb"), text("a\nb\n"))],
        },
        Case {
            name: "no newline new",
            files: vec![file("n.txt", text("a\nb\n"), text("a\nc"))],
        },
        Case {
            name: "no newline both",
            files: vec![file("n.txt", text("x\na\nb"), text("y\na\nc"))],
        },
        Case {
            name: "no newline context",
            files: vec![file("n.txt", text("a\nb\nc\nd"), text("A\nb\nc\nd"))],
        },
        Case {
            name: "empty to content",
            files: vec![file("e.txt", text(""), text("now\n"))],
        },
        Case {
            name: "content to empty",
            files: vec![file("e.txt", text("was\n"), text(""))],
        },
        Case {
            name: "create empty",
            files: vec![file("empty.txt", None, text(""))],
        },
        Case {
            name: "delete empty",
            files: vec![file("empty.txt", text(""), None)],
        },
        Case {
            name: "crlf",
            files: vec![file(
                "w.txt",
                text("a\r\nb\r\nc\r\n"),
                text("a\r\nB\r\nc\r\n"),
            )],
        },
        Case {
            name: "crlf to lf",
            files: vec![file("w.txt", text("a\r\nb\r\n"), text("a\nb\n"))],
        },
        Case {
            name: "unicode",
            files: vec![file(
                "ünï/cödé 漢字.txt",
                text("héllo\nwörld\n"),
                text("héllo\n世界\n"),
            )],
        },
        Case {
            name: "many hunks",
            files: vec![file("big.txt", text(&long), text(&many))],
        },
        Case {
            name: "binary modify",
            files: vec![file("blob.bin", Some(&binary_old), Some(&binary_new))],
        },
        Case {
            name: "binary create",
            files: vec![file("new.bin", None, Some(b"\0\x01\x02"))],
        },
        Case {
            name: "binary delete",
            files: vec![file("old.bin", Some(b"\0\xff"), None)],
        },
        Case {
            name: "text to binary",
            files: vec![file("t.dat", text("text\n"), Some(b"\0bin"))],
        },
        Case {
            name: "mode change",
            files: vec![StagedFile {
                after_mode: Some(0o755),
                ..file("run.sh", text("echo\n"), text("echo hi\n"))
            }],
        },
        Case {
            name: "executable create",
            files: vec![StagedFile {
                after_mode: Some(0o755),
                ..file("bin/tool", None, text("#!/bin/sh\n"))
            }],
        },
        Case {
            name: "several files",
            files: vec![
                file("a.txt", text("1\n"), text("2\n")),
                file("b.txt", None, text("b\n")),
                file("c.txt", text("c\n"), None),
            ],
        },
    ]
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap()
}

fn write(root: &Path, path: &RelPath, bytes: &[u8], mode: Option<u32>) {
    let host = root.join(path.as_str());
    std::fs::create_dir_all(host.parent().unwrap()).unwrap();
    std::fs::write(&host, bytes).unwrap();
    std::fs::set_permissions(
        &host,
        std::fs::Permissions::from_mode(mode.unwrap_or(0o644)),
    )
    .unwrap();
}

fn check_case(case: &Case) {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    assert!(git(root, &["init", "-q"]).status.success());
    for staged in &case.files {
        if let Some(before) = &staged.before {
            let old_path = staged.renamed_from.as_ref().unwrap_or(&staged.path);
            write(root, old_path, before, staged.before_mode);
        }
    }
    let proposal = Proposal::build(
        ProposalId("p-git".into()),
        vec![PathBuf::from(root)],
        case.files.clone(),
        None,
    );
    let patch = proposal.unified_diff();
    let patch_path = root.join(".git/redline.patch");
    std::fs::write(&patch_path, &patch).unwrap();
    let patch_arg = patch_path.to_str().unwrap();
    let check = git(root, &["apply", "--check", patch_arg]);
    assert!(
        check.status.success(),
        "case `{}`: git apply --check refused:\n{}\n--- patch ---\n{patch}",
        case.name,
        String::from_utf8_lossy(&check.stderr)
    );
    let applied = git(root, &["apply", patch_arg]);
    assert!(
        applied.status.success(),
        "case `{}`: {}",
        case.name,
        String::from_utf8_lossy(&applied.stderr)
    );
    for staged in &case.files {
        let new_host = root.join(staged.path.as_str());
        match &staged.after {
            Some(after) => {
                let got = std::fs::read(&new_host).unwrap();
                assert!(
                    got == *after,
                    "case `{}`: {} differs after git apply\n{patch}",
                    case.name,
                    staged.path
                );
                let mode = std::fs::metadata(&new_host).unwrap().permissions().mode();
                let want_exec = staged.after_mode.unwrap_or(0o644) & 0o111 != 0;
                assert_eq!(
                    mode & 0o100 != 0,
                    want_exec,
                    "case `{}`: executable bit of {}",
                    case.name,
                    staged.path
                );
            }
            None => assert!(
                !new_host.exists(),
                "case `{}`: {} should be deleted",
                case.name,
                staged.path
            ),
        }
        if let Some(from) = &staged.renamed_from {
            assert!(
                !root.join(from.as_str()).exists(),
                "case `{}`: {from} should be gone",
                case.name
            );
        }
    }
}

#[test]
fn git_apply_accepts_every_rendered_diff() {
    for case in corpus() {
        check_case(&case);
    }
}

#[test]
fn multi_root_diff_applies_from_the_common_parent() {
    let parent = tempfile::tempdir().unwrap();
    let app = parent.path().join("app");
    let docs = parent.path().join("docs");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(app.join("a.txt"), "old\n").unwrap();
    std::fs::write(docs.join("d.md"), "# doc\n").unwrap();
    assert!(git(parent.path(), &["init", "-q"]).status.success());
    let mut doc = file("d.md", text("# doc\n"), text("# doc\n\nmore\n"));
    doc.root = 1;
    let proposal = Proposal::build(
        ProposalId("p-git".into()),
        vec![app.clone(), docs.clone()],
        vec![file("a.txt", text("old\n"), text("new\n")), doc],
        None,
    );
    let patch_path = parent.path().join(".git/p.patch");
    std::fs::write(&patch_path, proposal.unified_diff()).unwrap();
    let out = git(parent.path(), &["apply", patch_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(app.join("a.txt")).unwrap(), "new\n");
    assert_eq!(
        std::fs::read_to_string(docs.join("d.md")).unwrap(),
        "# doc\n\nmore\n"
    );
}

//! Instruction discovery against real folders: nesting order, imports,
//! cycles, escapes and the cap.

// `allow-unwrap-in-tests` covers `#[test]` bodies only; the helpers here are
// test code too, and a failed unwrap is the clearest test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use expect_test::{Expect, expect};
use redline_core::instructions::{DEFAULT_CAP_BYTES, InstructionQuery, Instructions, discover};
use redline_core::path::RelPath;

/// A temporary tree: `root/` is the granted folder, `config/` the user's
/// config dir, `outside/` a folder that must never be read.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["root", "config", "outside"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let tree = Tree { dir };
        for (path, text) in files {
            tree.write(path, text);
        }
        tree
    }

    fn base(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.base().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn symlink(&self, target: &str, link: &str) {
        std::os::unix::fs::symlink(self.base().join(target), self.base().join(link)).unwrap();
    }

    fn discover(&self, focus: Option<&str>, cap: usize) -> Instructions {
        let global = self.base().join("config/instructions.md");
        let roots = vec![self.base().join("root")];
        discover(&InstructionQuery {
            global_file: Some(&global),
            roots: &roots,
            focus: focus.map(|f| (0, RelPath::new(f).unwrap())),
            cap_bytes: cap,
        })
    }

    /// Text, files and warnings with the temp dir shown as `$T`.
    fn render(&self, got: &Instructions) -> String {
        let base = self.base().display().to_string();
        let mut out = got.text.clone();
        out.push_str("--- files\n");
        for file in &got.files {
            out.push_str(&format!("{} ({} bytes)", file.path.display(), file.bytes));
            if let Some(by) = &file.imported_by {
                out.push_str(&format!(" imported by {}", by.display()));
            }
            out.push('\n');
        }
        if !got.warnings.is_empty() {
            out.push_str("--- warnings\n");
            for warning in &got.warnings {
                out.push_str(warning);
                out.push('\n');
            }
        }
        if got.truncated {
            out.push_str("--- truncated\n");
        }
        out.replace(&base, "$T")
    }
}

fn check(files: &[(&str, &str)], focus: Option<&str>, expect: Expect) {
    let tree = Tree::new(files);
    let got = tree.discover(focus, DEFAULT_CAP_BYTES);
    expect.assert_eq(&tree.render(&got));
}

#[test]
fn nests_root_first_so_the_nearest_file_speaks_last() {
    let files = [
        ("config/instructions.md", "global rule\n"),
        ("root/AGENTS.md", "root agents\n"),
        ("root/CLAUDE.md", "root claude\n"),
        ("root/.redline/instructions.md", "root redline\n"),
        ("root/a/AGENTS.md", "a agents\n"),
        ("root/a/b/CLAUDE.md", "b claude\n"),
        ("root/a/b/c/AGENTS.md", "below the focus: never read\n"),
        ("root/other/AGENTS.md", "sibling: never read\n"),
        ("root/a/b/main.rs", "fn main() {}\n"),
    ];
    check(
        &files,
        Some("a/b/main.rs"),
        expect![[r#"
            [redline: instructions from $T/config/instructions.md]
            global rule

            [redline: instructions from $T/root/AGENTS.md]
            root agents

            [redline: instructions from $T/root/CLAUDE.md]
            root claude

            [redline: instructions from $T/root/.redline/instructions.md]
            root redline

            [redline: instructions from $T/root/a/AGENTS.md]
            a agents

            [redline: instructions from $T/root/a/b/CLAUDE.md]
            b claude
            --- files
            $T/config/instructions.md (12 bytes)
            $T/root/AGENTS.md (12 bytes)
            $T/root/CLAUDE.md (12 bytes)
            $T/root/.redline/instructions.md (13 bytes)
            $T/root/a/AGENTS.md (9 bytes)
            $T/root/a/b/CLAUDE.md (9 bytes)
        "#]],
    );
    // A focused folder includes its own files.
    let tree = Tree::new(&files);
    let got = tree.discover(Some("a/b/c"), DEFAULT_CAP_BYTES);
    assert!(
        got.text.ends_with("below the focus: never read\n"),
        "{}",
        got.text
    );
    // Without focus, only the top of the root.
    let got = tree.discover(None, DEFAULT_CAP_BYTES);
    let names: Vec<String> = got
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(!got.text.contains("a agents"));
}

#[test]
fn no_files_give_empty_text() {
    check(
        &[],
        Some("src/lib.rs"),
        expect![[r#"
        --- files
    "#]],
    );
}

#[test]
fn standalone_import_lines_are_replaced_in_place() {
    check(
        &[
            ("root/AGENTS.md", "before\n@docs/style.md\nafter\n"),
            ("root/docs/style.md", "use tabs\n@../shared/common.md\n"),
            ("root/shared/common.md", "be kind\n"),
        ],
        None,
        expect![[r#"
            [redline: instructions from $T/root/AGENTS.md]
            before
            [redline: begin $T/root/docs/style.md, imported by $T/root/AGENTS.md]
            use tabs
            [redline: begin $T/root/shared/common.md, imported by $T/root/docs/style.md]
            be kind
            [redline: end $T/root/shared/common.md]
            [redline: end $T/root/docs/style.md]
            after
            --- files
            $T/root/AGENTS.md (28 bytes)
            $T/root/docs/style.md (30 bytes) imported by $T/root/AGENTS.md
            $T/root/shared/common.md (8 bytes) imported by $T/root/docs/style.md
        "#]],
    );
}

#[test]
fn inline_imports_follow_the_importing_file_and_prose_at_signs_are_left_alone() {
    check(
        &[
            (
                "root/CLAUDE.md",
                "See @README.md for an overview, mail me@example.com, use `@cache` and @param.\n```\n@notes.md\n```\n",
            ),
            ("root/README.md", "the readme\n"),
            ("root/notes.md", "inside a fence: not imported\n"),
        ],
        None,
        expect![[r#"
            [redline: instructions from $T/root/CLAUDE.md]
            See @README.md for an overview, mail me@example.com, use `@cache` and @param.
            ```
            @notes.md
            ```

            [redline: instructions from $T/root/README.md, imported by $T/root/CLAUDE.md]
            the readme
            --- files
            $T/root/CLAUDE.md (96 bytes)
            $T/root/README.md (11 bytes) imported by $T/root/CLAUDE.md
        "#]],
    );
}

#[test]
fn a_file_is_included_once_even_when_imported_again_or_symlinked() {
    let tree = Tree::new(&[
        ("root/AGENTS.md", "the rules\n"),
        ("root/.redline/instructions.md", "@../AGENTS.md\n"),
    ]);
    tree.symlink("root/AGENTS.md", "root/CLAUDE.md");
    let got = tree.discover(None, DEFAULT_CAP_BYTES);
    expect![[r#"
        [redline: instructions from $T/root/AGENTS.md]
        the rules

        [redline: instructions from $T/root/.redline/instructions.md]
        [redline: @../AGENTS.md is already included above]
        --- files
        $T/root/AGENTS.md (10 bytes)
        $T/root/.redline/instructions.md (14 bytes)
    "#]]
    .assert_eq(&tree.render(&got));
}

#[test]
fn import_cycles_are_reported_with_their_chain() {
    check(
        &[
            ("root/AGENTS.md", "A\n@a.md\n"),
            ("root/a.md", "a\n@b.md\n"),
            ("root/b.md", "b\n@a.md\n"),
        ],
        None,
        expect![[r#"
            [redline: instructions from $T/root/AGENTS.md]
            A
            [redline: begin $T/root/a.md, imported by $T/root/AGENTS.md]
            a
            [redline: begin $T/root/b.md, imported by $T/root/a.md]
            b
            @a.md
            [redline: end $T/root/b.md]
            [redline: end $T/root/a.md]
            --- files
            $T/root/AGENTS.md (8 bytes)
            $T/root/a.md (8 bytes) imported by $T/root/AGENTS.md
            $T/root/b.md (8 bytes) imported by $T/root/a.md
            --- warnings
            skipped import `@a.md` in `$T/root/b.md`: import cycle $T/root/a.md -> $T/root/b.md -> $T/root/a.md
        "#]],
    );
    // A file importing itself.
    check(
        &[("root/AGENTS.md", "@AGENTS.md\n")],
        None,
        expect![[r#"
            [redline: instructions from $T/root/AGENTS.md]
            @AGENTS.md
            --- files
            $T/root/AGENTS.md (11 bytes)
            --- warnings
            skipped import `@AGENTS.md` in `$T/root/AGENTS.md`: import cycle $T/root/AGENTS.md -> $T/root/AGENTS.md
        "#]],
    );
}

#[test]
fn imports_nest_at_most_four_levels() {
    check(
        &[
            ("root/AGENTS.md", "0\n@1.md\n"),
            ("root/1.md", "1\n@2.md\n"),
            ("root/2.md", "2\n@3.md\n"),
            ("root/3.md", "3\n@4.md\n"),
            ("root/4.md", "4\n@5.md\n"),
            ("root/5.md", "5: too deep\n"),
        ],
        None,
        expect![[r#"
            [redline: instructions from $T/root/AGENTS.md]
            0
            [redline: begin $T/root/1.md, imported by $T/root/AGENTS.md]
            1
            [redline: begin $T/root/2.md, imported by $T/root/1.md]
            2
            [redline: begin $T/root/3.md, imported by $T/root/2.md]
            3
            [redline: begin $T/root/4.md, imported by $T/root/3.md]
            4
            @5.md
            [redline: end $T/root/4.md]
            [redline: end $T/root/3.md]
            [redline: end $T/root/2.md]
            [redline: end $T/root/1.md]
            --- files
            $T/root/AGENTS.md (8 bytes)
            $T/root/1.md (8 bytes) imported by $T/root/AGENTS.md
            $T/root/2.md (8 bytes) imported by $T/root/1.md
            $T/root/3.md (8 bytes) imported by $T/root/2.md
            $T/root/4.md (8 bytes) imported by $T/root/3.md
            --- warnings
            skipped import `@5.md` in `$T/root/4.md`: imports nest deeper than 4 levels
        "#]],
    );
}

#[test]
fn imports_never_leave_the_root() {
    let tree = Tree::new(&[
        (
            "root/sub/AGENTS.md",
            "@../../outside/secret.md\n@../../../../etc/passwd\n@/etc/passwd\n@~/.ssh/id_rsa\n@link/secret.md\n@../../config/instructions.md\ninline @../../outside/secret.md too\n@missing.md\n",
        ),
        ("outside/secret.md", "SECRET\n"),
        ("config/instructions.md", "global\n@../root/sub/AGENTS.md\n"),
    ]);
    tree.symlink("outside", "root/sub/link");
    let got = tree.discover(Some("sub"), DEFAULT_CAP_BYTES);
    assert!(!got.text.contains("SECRET"), "{}", got.text);
    assert!(!got.text.contains("root:"), "{}", got.text);
    expect![[r#"
        [redline: instructions from $T/config/instructions.md]
        global
        @../root/sub/AGENTS.md

        [redline: instructions from $T/root/sub/AGENTS.md]
        @../../outside/secret.md
        @../../../../etc/passwd
        @/etc/passwd
        @~/.ssh/id_rsa
        @link/secret.md
        @../../config/instructions.md
        inline @../../outside/secret.md too
        @missing.md
        --- files
        $T/config/instructions.md (30 bytes)
        $T/root/sub/AGENTS.md (171 bytes)
        --- warnings
        refused import `@../root/sub/AGENTS.md` in `$T/config/instructions.md`: it leaves `$T/config`
        refused import `@../../outside/secret.md` in `$T/root/sub/AGENTS.md`: it leaves `$T/root`
        refused import `@../../../../etc/passwd` in `$T/root/sub/AGENTS.md`: it leaves `$T/root`
        refused import `@/etc/passwd` in `$T/root/sub/AGENTS.md`: imports must be relative to the importing file
        refused import `@~/.ssh/id_rsa` in `$T/root/sub/AGENTS.md`: imports must be relative to the importing file
        refused import `@link/secret.md` in `$T/root/sub/AGENTS.md`: path `sub/link/secret.md` escapes the granted folder through the symlink `sub/link`
        refused import `@../../config/instructions.md` in `$T/root/sub/AGENTS.md`: it leaves `$T/root`
        refused import `@../../outside/secret.md` in `$T/root/sub/AGENTS.md`: it leaves `$T/root`
        skipped import `@missing.md` in `$T/root/sub/AGENTS.md`: `$T/root/sub/missing.md` does not exist
    "#]]
    .assert_eq(&tree.render(&got));
}

#[test]
fn instruction_file_symlinked_outside_the_root_is_refused() {
    let tree = Tree::new(&[("outside/secret.md", "SECRET\n")]);
    tree.symlink("outside/secret.md", "root/AGENTS.md");
    let got = tree.discover(None, DEFAULT_CAP_BYTES);
    expect![[r#"
        --- files
        --- warnings
        skipped instructions `$T/root/AGENTS.md`: path `AGENTS.md` escapes the granted folder through the symlink `AGENTS.md`
    "#]]
    .assert_eq(&tree.render(&got));
}

#[test]
fn unreadable_and_non_utf8_files_are_warnings() {
    let tree = Tree::new(&[("root/CLAUDE.md", "still read\n")]);
    std::fs::write(tree.base().join("root/AGENTS.md"), b"bad \xff byte\n").unwrap();
    std::fs::create_dir_all(tree.base().join("root/.redline/instructions.md")).unwrap();
    let got = tree.discover(None, DEFAULT_CAP_BYTES);
    expect![[r#"
        [redline: instructions from $T/root/CLAUDE.md]
        still read
        --- files
        $T/root/CLAUDE.md (11 bytes)
        --- warnings
        skipped instructions `$T/root/AGENTS.md`: not valid UTF-8 (byte 4)
    "#]]
    .assert_eq(&tree.render(&got));
}

#[test]
fn cap_cuts_on_a_char_boundary_with_a_visible_note() {
    // `é` is two bytes; the cap lands in the middle of one.
    let tree = Tree::new(&[
        ("root/AGENTS.md", "ab\n"),
        ("root/CLAUDE.md", &"é".repeat(100)),
    ]);
    let header = format!(
        "[redline: instructions from {}/root/AGENTS.md]\nab\n\n",
        tree.base().display()
    );
    let claude_header = format!(
        "[redline: instructions from {}/root/CLAUDE.md]\n",
        tree.base().display()
    );
    let cap = header.len() + claude_header.len() + 11;
    let got = tree.discover(None, cap);
    assert!(got.truncated);
    let (kept, note) = got
        .text
        .rsplit_once("\n[redline: instructions truncated")
        .unwrap();
    assert!(kept.len() <= cap);
    assert_eq!(kept, format!("{header}{claude_header}{}", "é".repeat(5)));
    expect![[r#"
        [redline: instructions from $T/root/AGENTS.md]
        ab

        [redline: instructions from $T/root/CLAUDE.md]
        ééééé
        [redline: instructions truncated at 136 bytes; 191 bytes from $T/root/CLAUDE.md omitted]
        --- files
        $T/root/AGENTS.md (3 bytes)
        $T/root/CLAUDE.md (200 bytes)
        --- warnings
        instructions exceed 136 bytes; 191 bytes were left out
        --- truncated
    "#]]
    .assert_eq(&tree.render(&got).replace(&cap.to_string(), "136"));
    assert!(note.contains("omitted]"));
}

#[test]
fn cap_drops_files_it_leaves_out_entirely_and_names_them() {
    let big = "x".repeat(40 * 1024);
    let tree = Tree::new(&[
        ("root/AGENTS.md", &big),
        ("root/CLAUDE.md", "nearest rule\n"),
    ]);
    let got = tree.discover(None, DEFAULT_CAP_BYTES);
    assert!(got.truncated);
    assert!(
        got.text.len() <= DEFAULT_CAP_BYTES + 200,
        "{}",
        got.text.len()
    );
    // Headers name the temp dir, so the byte counts depend on its length.
    let base = tree.base().display().to_string();
    // AGENTS.md lacks a final newline, which the text adds; the blank line
    // before CLAUDE.md's header is CLAUDE.md's.
    let agents =
        format!("[redline: instructions from {base}/root/AGENTS.md]\n").len() + big.len() + 1
            - DEFAULT_CAP_BYTES;
    let claude = 1
        + format!("[redline: instructions from {base}/root/CLAUDE.md]\n").len()
        + "nearest rule\n".len();
    let note = got.text.lines().last().unwrap().replace(&base, "$T");
    let group = |n: usize| format!("{},{:03}", n / 1000, n % 1000);
    assert_eq!(
        note,
        format!(
            "[redline: instructions truncated at 32 KiB; {} bytes from $T/root/AGENTS.md, {claude} bytes from $T/root/CLAUDE.md omitted]",
            group(agents)
        )
    );
    let names: Vec<&Path> = got.files.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(names, [tree.base().join("root/AGENTS.md")]);
}

#[test]
fn focus_outside_the_roots_falls_back_to_top_level() {
    let tree = Tree::new(&[
        ("root/AGENTS.md", "top\n"),
        ("outside/AGENTS.md", "SECRET\n"),
    ]);
    tree.symlink("outside", "root/link");
    let got = tree.discover(Some("link/file.rs"), DEFAULT_CAP_BYTES);
    assert!(!got.text.contains("SECRET"));
    assert_eq!(got.files.len(), 1);
    assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);

    let roots = vec![tree.base().join("root"), tree.base().join("missing")];
    let got = discover(&InstructionQuery {
        global_file: None,
        roots: &roots,
        focus: Some((7, RelPath::new("x").unwrap())),
        cap_bytes: DEFAULT_CAP_BYTES,
    });
    assert_eq!(got.files.len(), 1);
    let warnings = got
        .warnings
        .join("\n")
        .replace(&tree.base().display().to_string(), "$T");
    expect![[r#"
        focus names root 7, but only 2 roots are granted; reading top-level instructions only
        skipped instructions of `$T/missing`: cannot resolve `$T/missing`: No such file or directory (os error 2)"#]]
    .assert_eq(&warnings);
}

//! The file tools over the staged workspace: every tool's happy path and
//! error messages, the staged view, path escapes, gitignore, apply_patch
//! atomicity, and that the disk never changes.

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use expect_test::{Expect, expect};
use redline_agent::tools::{ToolOutput, call_file_tool, file_tool_specs};
use redline_agent::workspace::Workspace;
use redline_core::path::{RelPath, Root};
use serde_json::{Value, json};

struct Fixture {
    dir: tempfile::TempDir,
    ws: Workspace,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let host = dir.path().join(path);
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::fs::write(host, content).unwrap();
        }
        let ws = Workspace::new(vec![Root::new(dir.path()).unwrap()]);
        Fixture { dir, ws }
    }

    fn root(&self) -> String {
        self.ws.roots()[0].path().display().to_string()
    }

    /// Calls a tool and renders its output with the temp dir redacted.
    fn call(&mut self, name: &str, input: Value) -> String {
        let out = call_file_tool(&mut self.ws, name, &input).expect("a file tool");
        render(&self.ws, &out).replace(&self.root(), "$ROOT")
    }

    fn check(&mut self, name: &str, input: Value, expect: Expect) {
        expect.assert_eq(&self.call(name, input));
    }

    fn read(&self, path: &str) -> Option<String> {
        let path = RelPath::new(path).unwrap();
        self.ws
            .read(0, &path)
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }
}

fn render(ws: &Workspace, out: &ToolOutput) -> String {
    let mut text = String::new();
    if out.is_error {
        text.push_str("ERROR: ");
    }
    text.push_str(&out.content);
    if !out.edited.is_empty() {
        let edited: Vec<String> = out.edited.iter().map(|(r, p)| ws.display(*r, p)).collect();
        text.push_str(&format!("\n[edited: {}]", edited.join(", ")));
    }
    text
}

/// Every file under `dir` with its bytes, to prove the disk is untouched.
fn disk(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                out.insert(rel, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out
}

const LIB: &str = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\npub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n";

fn project() -> Fixture {
    Fixture::new(&[
        (".gitignore", "target/\n*.log\n"),
        ("Cargo.toml", "[package]\nname = \"demo\"\n"),
        ("src/lib.rs", LIB),
        ("src/main.rs", "fn main() {\n    println!(\"hello\");\n}\n"),
        ("src/util/mod.rs", "// TODO: helpers\n"),
        ("target/debug/out.rs", "fn add() {}\n"),
        ("build.log", "add add add\n"),
        ("docs/guide.md", "# Guide\nUse add to add.\n"),
    ])
}

#[test]
fn specs_are_strict_json_schemas() {
    let specs = file_tool_specs();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "list_dir",
            "read_file",
            "search",
            "outline",
            "edit",
            "apply_patch",
            "write_file",
            "create_file",
            "delete",
            "rename"
        ]
    );
    for spec in &specs {
        let schema = &spec.input_schema;
        assert_eq!(schema["type"], "object", "{}", spec.name);
        assert_eq!(schema["additionalProperties"], false, "{}", spec.name);
        let properties = schema["properties"].as_object().unwrap();
        for required in schema["required"].as_array().unwrap() {
            assert!(
                properties.contains_key(required.as_str().unwrap()),
                "{}",
                spec.name
            );
        }
        for (name, property) in properties {
            assert!(property["description"].is_string(), "{}.{name}", spec.name);
        }
        assert!(spec.description.len() > 40, "{}", spec.name);
    }
    let mut fx = project();
    assert!(call_file_tool(&mut fx.ws, "run_command", &json!({})).is_none());
}

#[test]
fn argument_errors_say_what_to_fix() {
    let mut fx = project();
    let cases: &[(&str, Value, Expect)] = &[
        (
            "read_file",
            json!({}),
            expect!["ERROR: missing required argument `path` (a string) for read_file"],
        ),
        (
            "read_file",
            json!({"path": 3}),
            expect!["ERROR: argument `path` of read_file must be a string, got 3"],
        ),
        (
            "read_file",
            json!({"path": "src/lib.rs", "start_line": 0}),
            expect!["ERROR: argument `start_line` of read_file must be a positive integer, got 0"],
        ),
        (
            "read_file",
            json!({"path": "src/lib.rs", "line": 3}),
            expect![
                "ERROR: unknown argument `line` for read_file; its arguments are: end_line, path, start_line"
            ],
        ),
        (
            "edit",
            json!({"path": "src/lib.rs", "old_string": "a", "new_string": "b", "replace_all": "yes"}),
            expect![[r#"ERROR: argument `replace_all` of edit must be true or false, got "yes""#]],
        ),
        (
            "list_dir",
            json!("src"),
            expect![[r#"ERROR: list_dir: arguments must be a JSON object, got "src""#]],
        ),
    ];
    for (tool, input, expect) in cases {
        expect.assert_eq(&fx.call(tool, input.clone()));
    }
    // Numbers sent as strings and explicit nulls are accepted.
    fx.check(
        "read_file",
        json!({"path": "src/lib.rs", "start_line": "2", "end_line": 2, "unused": null}),
        expect![[r#"
                2|     a + b
            [lines 2-2 of 7]"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "src/lib.rs", "start_line": "2", "end_line": 2}),
        expect![[r#"
                2|     a + b
            [lines 2-2 of 7]"#]],
    );
}

#[test]
fn list_dir_is_gitignore_aware_and_shows_the_staged_view() {
    let mut fx = project();
    std::fs::create_dir(fx.dir.path().join(".git")).unwrap();
    std::fs::write(fx.dir.path().join(".git/HEAD"), "ref").unwrap();
    fx.check(
        "list_dir",
        json!({}),
        expect![[r#"
            .gitignore
            Cargo.toml
            docs/
            docs/guide.md
            src/
            src/lib.rs
            src/main.rs
            src/util/"#]],
    );
    fx.check(
        "list_dir",
        json!({"path": "src", "depth": 1}),
        expect![[r#"
            src/lib.rs
            src/main.rs
            src/util/"#]],
    );
    // An ignored folder named explicitly is listed.
    fx.check(
        "list_dir",
        json!({"path": "target"}),
        expect![[r#"
        target/debug/
        target/debug/out.rs"#]],
    );
    fx.call(
        "create_file",
        json!({"path": "src/new/deep/x.rs", "content": "x\n"}),
    );
    fx.call("delete", json!({"path": "src/main.rs"}));
    fx.check(
        "list_dir",
        json!({"path": "./src"}),
        expect![[r#"
            src/lib.rs
            src/new/
            src/new/deep/
            src/util/
            src/util/mod.rs"#]],
    );
    fx.check(
        "list_dir",
        json!({"path": "src/lib.rs"}),
        expect!["ERROR: `src/lib.rs` is a file, not a directory"],
    );
    fx.check(
        "list_dir",
        json!({"path": "scr"}),
        expect!["ERROR: no such file `scr`"],
    );
    fx.check(
        "list_dir",
        json!({"path": "docs/guide.md/x"}),
        expect!["ERROR: no such file `docs/guide.md/x`; did you mean `docs/guide.md`?"],
    );
}

#[test]
fn list_dir_caps_entries() {
    let files: Vec<(String, String)> = (0..450)
        .map(|i| (format!("f{i:03}.txt"), String::new()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut fx = Fixture::new(&refs);
    let out = fx.call("list_dir", json!({}));
    let last = out.lines().last().unwrap();
    assert_eq!(
        last,
        "… 50 more entries; list a subfolder or use a smaller depth"
    );
    assert_eq!(out.lines().count(), 401);
}

#[test]
fn read_file_numbers_lines_and_refuses_what_it_cannot_show() {
    let mut fx = project();
    std::fs::write(
        fx.dir.path().join("logo.png"),
        [0x89, b'P', b'N', b'G', 0, 1, 2],
    )
    .unwrap();
    // Spelled out: expect-test would strip the common indentation.
    assert_eq!(
        fx.call("read_file", json!({"path": "src/main.rs"})),
        "    1| fn main() {\n    2|     println!(\"hello\");\n    3| }"
    );
    fx.check(
        "read_file",
        json!({"path": "src/lib.rs", "start_line": 4}),
        expect![[r#"
                4|
                5| pub fn sub(a: i32, b: i32) -> i32 {
                6|     a - b
                7| }
            [lines 4-7 of 7]"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "src/lib.rs", "start_line": 9}),
        expect!["ERROR: read_file: start_line 9 is past the end of `src/lib.rs` (7 lines)"],
    );
    fx.check(
        "read_file",
        json!({"path": "src/lib.rs", "start_line": 3, "end_line": 2}),
        expect!["ERROR: read_file: end_line 2 is before start_line 3"],
    );
    fx.check(
        "read_file",
        json!({"path": "logo.png"}),
        expect!["ERROR: `logo.png` is a binary file (7 bytes); only text files can be read or edited with this tool"],
    );
    fx.check(
        "read_file",
        json!({"path": "src"}),
        expect!["ERROR: `src` is a directory, not a file (list_dir shows what it contains)"],
    );
    fx.check(
        "read_file",
        json!({"path": "src/lbi.rs"}),
        expect!["ERROR: no such file `src/lbi.rs`; did you mean `src/lib.rs`?"],
    );
    fx.check(
        "read_file",
        json!({"path": "main.rs"}),
        expect!["ERROR: no such file `main.rs`; did you mean `src/main.rs`?"],
    );
}

#[test]
fn read_file_cuts_long_output_and_large_files() {
    let long: String = (1..=2500).map(|i| format!("line {i}\n")).collect();
    let mut fx = Fixture::new(&[("long.txt", &long)]);
    let out = fx.call("read_file", json!({"path": "long.txt"}));
    assert_eq!(
        out.lines().last().unwrap(),
        "[output cut at line 2000 of 2500; call read_file with start_line=2001 to continue]"
    );
    let big = vec![b'a'; 3 * 1024 * 1024];
    std::fs::write(fx.dir.path().join("big.txt"), big).unwrap();
    fx.check(
        "read_file",
        json!({"path": "big.txt"}),
        expect!["ERROR: `big.txt` is too large to read (3.0 MiB; the limit is 2.0 MiB)"],
    );
}

#[test]
fn search_walks_the_staged_view() {
    let mut fx = project();
    fx.check(
        "search",
        json!({"pattern": "fn add"}),
        expect!["src/lib.rs:1: pub fn add(a: i32, b: i32) -> i32 {"],
    );
    fx.check(
        "search",
        json!({"pattern": "ADD", "case_insensitive": true, "glob": "*.md"}),
        expect!["docs/guide.md:2: Use add to add."],
    );
    fx.check(
        "search",
        json!({"pattern": "a [+-] b", "path": "src/lib.rs", "max_results": 1}),
        expect![[r#"
            src/lib.rs:2:     a + b
            [showing 1 of 2 matching lines in 1 files; narrow with path or glob, or raise max_results]"#]],
    );
    fx.call(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "pub fn add", "new_string": "pub fn plus"}),
    );
    fx.call("delete", json!({"path": "docs/guide.md"}));
    fx.call(
        "create_file",
        json!({"path": "src/extra.rs", "content": "fn add_more() {}\n"}),
    );
    fx.check(
        "search",
        json!({"pattern": "add|plus", "glob": "src/**/*.rs"}),
        expect![[r#"
            src/extra.rs:1: fn add_more() {}
            src/lib.rs:1: pub fn plus(a: i32, b: i32) -> i32 {"#]],
    );
    fx.check(
        "search",
        json!({"pattern": "nothing here", "path": "src"}),
        expect!["no matches for `nothing here` in `src`"],
    );
    fx.check(
        "search",
        json!({"pattern": "fn (add"}),
        expect![[r#"ERROR: search: invalid regular expression `fn (add`: error: unclosed group; escape special characters like `(` as `\(` to search for them literally"#]],
    );
    fx.check(
        "search",
        json!({"pattern": "x", "glob": "[a"}),
        expect!["ERROR: search: invalid glob `[a`: unclosed character class; missing ']'"],
    );
}

#[test]
fn edit_replaces_exact_strings_and_explains_misses() {
    let mut fx = project();
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "    a - b", "new_string": "    a.saturating_sub(b)"}),
        expect![[r#"
            staged edit to src/lib.rs (1 replacement at line 6)
            [edited: src/lib.rs]"#]],
    );
    assert!(
        fx.read("src/lib.rs")
            .unwrap()
            .contains("a.saturating_sub(b)")
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "i32", "new_string": "i64"}),
        expect!["ERROR: old_string matches 6 times in `src/lib.rs` (at lines 1, 1, 1, 5, 5, 5); add surrounding lines to make it unique, or set replace_all to true to replace every match"],
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "i32", "new_string": "i64", "replace_all": true}),
        expect![[r#"
            staged edit to src/lib.rs (6 replacements at lines 1, 1, 1, 5, 5, 5)
            [edited: src/lib.rs]"#]],
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "pub fn add(a: i64, b: i64) -> i64 {\n  a + b", "new_string": "x"}),
        expect![[r#"
            ERROR: old_string was not found in `src/lib.rs`; lines 1-2 match it except for whitespace (indentation or line ends). The exact text is:
                1| pub fn add(a: i64, b: i64) -> i64 {
                2|     a + b"#]],
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "pub fn ad(a: i64, b: i64) -> i64 {\n    a * b\n}", "new_string": "x"}),
        expect![[r#"
            ERROR: old_string was not found in `src/lib.rs`; the closest text is at lines 1-3:
                1| pub fn add(a: i64, b: i64) -> i64 {
                2|     a + b
                3| }"#]],
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "completely unrelated", "new_string": "x"}),
        expect!["ERROR: old_string was not found in `src/lib.rs`; read_file the file to see its current content"],
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "", "new_string": "x"}),
        expect!["ERROR: old_string is empty; include the text to replace (to add text, include a neighbouring line in both old_string and new_string; to make a new file, use create_file)"],
    );
    fx.check(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "a + b", "new_string": "a + b"}),
        expect!["ERROR: old_string and new_string are identical; nothing to change"],
    );
    fx.check(
        "edit",
        json!({"path": "src/nope.rs", "old_string": "a", "new_string": "b"}),
        expect!["ERROR: no such file `src/nope.rs`"],
    );
}

#[test]
fn edit_keeps_crlf_files_crlf() {
    let mut fx = Fixture::new(&[("win.txt", "one\r\ntwo\r\nthree\r\n")]);
    fx.call(
        "edit",
        json!({"path": "win.txt", "old_string": "one\ntwo", "new_string": "1\n2"}),
    );
    assert_eq!(fx.read("win.txt").unwrap(), "1\r\n2\r\nthree\r\n");
}

#[test]
fn write_create_delete_rename_stage_and_report() {
    let mut fx = project();
    let before = disk(fx.dir.path());
    fx.check(
        "write_file",
        json!({"path": "src/main.rs", "content": "fn main() {}\n"}),
        expect![[r#"
            staged rewrite of src/main.rs (1 line)
            [edited: src/main.rs]"#]],
    );
    fx.check(
        "write_file",
        json!({"path": "notes/todo.md", "content": "- a\n- b\n"}),
        expect![[r#"
            staged new file notes/todo.md (2 lines)
            [edited: notes/todo.md]"#]],
    );
    fx.check(
        "create_file",
        json!({"path": "src/lib.rs", "content": "x"}),
        expect!["ERROR: `src/lib.rs` already exists; use edit or write_file to change it, or pick another name"],
    );
    fx.check(
        "create_file",
        json!({"path": "Cargo.toml/x", "content": "x"}),
        expect!["ERROR: cannot create `Cargo.toml/x`: `Cargo.toml` is a file"],
    );
    fx.check(
        "create_file",
        json!({"path": "src", "content": "x"}),
        expect![
            "ERROR: `src` already exists; use edit or write_file to change it, or pick another name"
        ],
    );
    fx.check(
        "write_file",
        json!({"path": "src", "content": "x"}),
        expect!["ERROR: `src` is a directory, not a file (list_dir shows what it contains)"],
    );
    fx.check(
        "create_file",
        json!({"path": "src/new.rs", "content": "pub struct New;\n"}),
        expect![[r#"
            staged new file src/new.rs (1 line)
            [edited: src/new.rs]"#]],
    );
    fx.check(
        "delete",
        json!({"path": "docs/guide.md"}),
        expect![[r#"
            staged deletion of docs/guide.md
            [edited: docs/guide.md]"#]],
    );
    fx.check(
        "delete",
        json!({"path": "docs/guide.md"}),
        expect!["ERROR: no such file `docs/guide.md`"],
    );
    fx.check(
        "rename",
        json!({"from": "src/new.rs", "to": "src/newer.rs"}),
        expect![[r#"
            staged rename of src/new.rs to src/newer.rs
            [edited: src/newer.rs, src/new.rs]"#]],
    );
    fx.check(
        "rename",
        json!({"from": "src/lib.rs", "to": "src/main.rs"}),
        expect!["ERROR: `src/main.rs` already exists; use edit or write_file to change it, or pick another name"],
    );
    fx.check(
        "rename",
        json!({"from": "src/lib.rs", "to": "src/lib.rs"}),
        expect!["ERROR: `src/lib.rs` is both the source and the target"],
    );
    fx.check(
        "rename",
        json!({"from": "src/gone.rs", "to": "src/x.rs"}),
        expect!["ERROR: no such file `src/gone.rs`"],
    );
    fx.check(
        "rename",
        json!({"from": "src/lib.rs", "to": "src/core/lib.rs"}),
        expect![[r#"
            staged rename of src/lib.rs to src/core/lib.rs
            [edited: src/core/lib.rs, src/lib.rs]"#]],
    );
    assert_eq!(fx.read("src/lib.rs"), None);
    assert_eq!(fx.read("src/core/lib.rs").unwrap(), LIB);
    assert_eq!(fx.read("src/newer.rs").unwrap(), "pub struct New;\n");
    assert_eq!(fx.read("docs/guide.md"), None);
    assert_eq!(fx.read("src/main.rs").unwrap(), "fn main() {}\n");
    let staged: Vec<String> = fx
        .ws
        .staged_files()
        .iter()
        .map(|f| {
            let kind = match (&f.before, &f.after, &f.renamed_from) {
                (_, Some(_), Some(from)) => format!("rename from {from}"),
                (None, Some(_), None) => "create".to_owned(),
                (Some(_), None, _) => "delete".to_owned(),
                (Some(_), Some(_), None) => "modify".to_owned(),
                (None, None, _) => "nothing".to_owned(),
            };
            format!("{}: {kind}", f.path)
        })
        .collect();
    expect![[r#"
        docs/guide.md: delete
        notes/todo.md: create
        src/core/lib.rs: rename from src/lib.rs
        src/main.rs: modify
        src/newer.rs: create"#]]
    .assert_eq(&staged.join("\n"));
    // The staged rename's `before` is the source's bytes on disk.
    let moved = fx
        .ws
        .staged_files()
        .into_iter()
        .find(|f| f.renamed_from.is_some())
        .unwrap();
    assert_eq!(moved.before.as_deref(), Some(LIB.as_bytes()));
    assert_eq!(disk(fx.dir.path()), before, "the disk must not change");
}

#[test]
fn writing_the_original_back_unstages() {
    let mut fx = project();
    fx.call(
        "edit",
        json!({"path": "src/main.rs", "old_string": "hello", "new_string": "bye"}),
    );
    assert_eq!(fx.ws.staged_files().len(), 1);
    fx.check(
        "edit",
        json!({"path": "src/main.rs", "old_string": "bye", "new_string": "hello"}),
        expect![[r#"
            staged edit to src/main.rs (1 replacement at line 2); the file now matches the disk again, so no change is staged for it
            [edited: src/main.rs]"#]],
    );
    assert!(fx.ws.is_clean());
    // Created then deleted: nothing left.
    fx.call("create_file", json!({"path": "tmp.txt", "content": "x"}));
    fx.call("delete", json!({"path": "tmp.txt"}));
    assert!(fx.ws.is_clean());
    // Deleted then recreated with the same bytes: nothing left.
    fx.call("delete", json!({"path": "Cargo.toml"}));
    fx.call(
        "create_file",
        json!({"path": "Cargo.toml", "content": "[package]\nname = \"demo\"\n"}),
    );
    assert!(fx.ws.is_clean());
    // Renamed and renamed back: nothing left.
    fx.call("rename", json!({"from": "src/lib.rs", "to": "lib.rs"}));
    fx.call("rename", json!({"from": "lib.rs", "to": "src/lib.rs"}));
    assert!(fx.ws.is_clean(), "{:?}", fx.ws.staged_files());
}

#[test]
fn rename_chains_stay_one_change() {
    let mut fx = project();
    fx.call("rename", json!({"from": "src/lib.rs", "to": "a.rs"}));
    fx.call(
        "edit",
        json!({"path": "a.rs", "old_string": "a + b", "new_string": "b + a"}),
    );
    fx.call("rename", json!({"from": "a.rs", "to": "b.rs"}));
    let files = fx.ws.staged_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path.as_str(), "b.rs");
    assert_eq!(
        files[0].renamed_from.as_ref().unwrap().as_str(),
        "src/lib.rs"
    );
    assert_eq!(files[0].before.as_deref(), Some(LIB.as_bytes()));
    assert!(
        String::from_utf8(files[0].after.clone().unwrap())
            .unwrap()
            .contains("b + a")
    );

    // Writing a new file where the source was turns the rename into a copy.
    fx.call(
        "create_file",
        json!({"path": "src/lib.rs", "content": "// new\n"}),
    );
    let summary: Vec<String> = fx
        .ws
        .staged_files()
        .iter()
        .map(|f| {
            format!(
                "{} from={:?} before={} after={}",
                f.path,
                f.renamed_from,
                f.before.is_some(),
                f.after.is_some()
            )
        })
        .collect();
    expect![[r#"
        b.rs from=None before=false after=true
        src/lib.rs from=None before=true after=true"#]]
    .assert_eq(&summary.join("\n"));

    // Deleting a renamed file leaves a plain deletion of its source.
    let mut fx = project();
    fx.call("rename", json!({"from": "src/main.rs", "to": "main.rs"}));
    fx.call("delete", json!({"path": "main.rs"}));
    let files = fx.ws.staged_files();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].path.as_str(), files[0].after.is_none()),
        ("src/main.rs", true)
    );
}

#[test]
fn paths_cannot_escape_the_granted_folder() {
    let mut fx = project();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), fx.dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        fx.dir.path().join("secret.txt"),
    )
    .unwrap();
    fx.check(
        "read_file",
        json!({"path": "../x"}),
        expect!["ERROR: path `../x` climbs out of the granted folder with `..`; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    fx.check(
        "read_file",
        json!({"path": "/etc/passwd"}),
        expect!["ERROR: path `/etc/passwd` is outside the granted folders; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    fx.check(
        "read_file",
        json!({"path": "link/secret.txt"}),
        expect!["ERROR: path `link/secret.txt` escapes the granted folder through the symlink `link`; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    fx.check(
        "write_file",
        json!({"path": "secret.txt", "content": "pwned"}),
        expect!["ERROR: path `secret.txt` escapes the granted folder through the symlink `secret.txt`; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    fx.check(
        "list_dir",
        json!({"path": "link"}),
        expect!["ERROR: path `link` escapes the granted folder through the symlink `link`; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    let root = fx.root();
    fx.check(
        "read_file",
        json!({"path": format!("{root}/src/../../x")}),
        expect!["ERROR: path `$ROOT/src/../../x` climbs out of the granted folder with `..`; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    fx.check(
        "read_file",
        json!({"path": format!("{root}/src/main.rs"), "end_line": 1}),
        expect![[r#"
                1| fn main() {
            [lines 1-1 of 3]"#]],
    );
    fx.check(
        "read_file",
        json!({"path": root}),
        expect!["ERROR: `$ROOT` names the granted folder itself, not a file; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"],
    );
    // Searching never follows the links out.
    fx.check(
        "search",
        json!({"pattern": "secret"}),
        expect!["no matches for `secret` in the granted folders"],
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "secret"
    );
}

#[test]
fn several_roots_are_addressed_by_name() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir(a.path().join("app")).unwrap();
    std::fs::create_dir(b.path().join("lib")).unwrap();
    std::fs::write(a.path().join("app/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(b.path().join("lib/lib.rs"), "pub fn x() {}\n").unwrap();
    let mut ws = Workspace::new(vec![
        Root::new(&a.path().join("app")).unwrap(),
        Root::new(&b.path().join("lib")).unwrap(),
    ]);
    let out = call_file_tool(&mut ws, "list_dir", &json!({})).unwrap();
    expect![[r#"
        app/main.rs
        lib/lib.rs"#]]
    .assert_eq(&out.content);
    let out = call_file_tool(&mut ws, "search", &json!({"pattern": "fn"})).unwrap();
    expect![[r#"
        app/main.rs:1: fn main() {}
        lib/lib.rs:1: pub fn x() {}"#]]
    .assert_eq(&out.content);
    let out = call_file_tool(
        &mut ws,
        "edit",
        &json!({"path": "lib/lib.rs", "old_string": "x", "new_string": "y"}),
    )
    .unwrap();
    assert_eq!(
        render(&ws, &out),
        "staged edit to lib/lib.rs (1 replacement at line 1)\n[edited: lib/lib.rs]"
    );
    assert_eq!(out.edited[0].0, 1);
    let abs = format!("{}/lib/lib.rs", b.path().canonicalize().unwrap().display());
    assert_eq!(
        ws.resolve(&abs).unwrap(),
        (1, RelPath::new("lib.rs").unwrap())
    );
}

#[test]
fn apply_patch_multi_file() {
    let mut fx = project();
    let before = disk(fx.dir.path());
    let patch = "*** Begin Patch
*** Update File: src/lib.rs
@@ pub fn add
 pub fn add(a: i32, b: i32) -> i32 {
-    a + b
+    a.wrapping_add(b)
 }
@@
 pub fn sub(a: i32, b: i32) -> i32 {
-    a - b
+    a.wrapping_sub(b)
 }
*** Add File: src/mul.rs
+pub fn mul(a: i32, b: i32) -> i32 {
+    a * b
+}
*** Delete File: docs/guide.md
*** Update File: src/main.rs
*** Move to: src/bin/demo.rs
@@
 fn main() {
-    println!(\"hello\");
+    println!(\"hello, demo\");
 }
*** End Patch";
    fx.check(
        "apply_patch",
        json!({ "patch": patch }),
        expect![[r#"
            staged patch:
              modified src/lib.rs (2 chunks)
              added src/mul.rs (3 lines)
              deleted docs/guide.md
              moved src/main.rs to src/bin/demo.rs (1 chunk)
            [edited: src/lib.rs, src/mul.rs, docs/guide.md, src/main.rs, src/bin/demo.rs]"#]],
    );
    expect![[r#"
        pub fn add(a: i32, b: i32) -> i32 {
            a.wrapping_add(b)
        }

        pub fn sub(a: i32, b: i32) -> i32 {
            a.wrapping_sub(b)
        }
    "#]]
    .assert_eq(&fx.read("src/lib.rs").unwrap());
    assert_eq!(
        fx.read("src/bin/demo.rs").unwrap(),
        "fn main() {\n    println!(\"hello, demo\");\n}\n"
    );
    assert_eq!(fx.read("src/main.rs"), None);
    assert_eq!(fx.read("docs/guide.md"), None);
    let moved = fx
        .ws
        .staged_files()
        .into_iter()
        .find(|f| f.path.as_str() == "src/bin/demo.rs")
        .unwrap();
    assert_eq!(moved.renamed_from.unwrap().as_str(), "src/main.rs");
    assert_eq!(disk(fx.dir.path()), before, "the disk must not change");
}

#[test]
fn apply_patch_is_all_or_nothing() {
    let mut fx = project();
    fx.call(
        "edit",
        json!({"path": "Cargo.toml", "old_string": "demo", "new_string": "demo2"}),
    );
    let staged_before = fx.ws.staged_files();
    let patch = "*** Begin Patch
*** Add File: src/new.rs
+fn new() {}
*** Delete File: src/main.rs
*** Update File: src/lib.rs
@@
 pub fn add(a: i32, b: i32) -> i32 {
-    a + b
+    b + a
 }
@@
 pub fn sub(a: i32, b: i32) -> i32 {
-    a - c
+    c - a
 }
*** End Patch";
    fx.check(
        "apply_patch",
        json!({ "patch": patch }),
        expect![[r#"
            ERROR: cannot apply chunk 2 of src/lib.rs (patch line 11): these lines were not found after line 3:
              pub fn sub(a: i32, b: i32) -> i32 {
                  a - c
              }
            the closest text is at lines 5-7:
                5| pub fn sub(a: i32, b: i32) -> i32 {
                6|     a - b
                7| }"#]],
    );
    assert_eq!(
        fx.ws.staged_files(),
        staged_before,
        "a failed patch must stage nothing"
    );
    assert_eq!(fx.read("src/new.rs"), None);
    assert!(fx.read("src/main.rs").is_some());
}

#[test]
fn apply_patch_errors_name_the_line_and_file() {
    let mut fx = project();
    let cases: &[(&str, Expect)] = &[
        (
            "",
            expect![
                "ERROR: invalid patch at line 1: the patch is empty; it must start with `*** Begin Patch`"
            ],
        ),
        (
            "--- a/src/lib.rs\n+++ b/src/lib.rs",
            expect![
                "ERROR: invalid patch at line 1: expected `*** Begin Patch`, got `--- a/src/lib.rs`"
            ],
        ),
        (
            "*** Begin Patch\n*** Delete File: src/main.rs",
            expect![
                "ERROR: invalid patch at line 2: expected `*** End Patch` as the last line, got `*** Delete File: src/main.rs`"
            ],
        ),
        (
            "*** Begin Patch\n*** Update File: src/lib.rs\n@@\npub fn add\n*** End Patch",
            expect![
                "ERROR: invalid patch at line 4: in `*** Update File: src/lib.rs`, each line must start with ` ` (context), `-` (remove), `+` (add) or `@@`; got `pub fn add` (did you forget the leading space of a context line?)"
            ],
        ),
        (
            "*** Begin Patch\n*** Add File: x.rs\nfn x() {}\n*** End Patch",
            expect![
                "ERROR: invalid patch at line 3: every line of `*** Add File: x.rs` must start with `+`, got `fn x() {}`"
            ],
        ),
        (
            "*** Begin Patch\n*** Frobnicate File: x\n*** End Patch",
            expect![
                "ERROR: invalid patch at line 2: expected `*** Add File: …`, `*** Delete File: …`, `*** Update File: …` or `*** End Patch`, got `*** Frobnicate File: x`"
            ],
        ),
        (
            "*** Begin Patch\n*** Update File: src/lib.rs\n@@\n a + b\n*** End Patch",
            expect![
                "ERROR: invalid patch at line 3: a chunk of `*** Update File: src/lib.rs` has no `-` or `+` lines"
            ],
        ),
        (
            "*** Begin Patch\n*** Add File: src/lib.rs\n+x\n*** End Patch",
            expect![
                "ERROR: cannot add src/lib.rs: `src/lib.rs` already exists; use edit or write_file to change it, or pick another name"
            ],
        ),
        (
            "*** Begin Patch\n*** Delete File: src/lib.r\n*** End Patch",
            expect![
                "ERROR: cannot delete src/lib.r: no such file `src/lib.r`; did you mean `src/lib.rs`?"
            ],
        ),
        (
            "*** Begin Patch\n*** Update File: ../etc/hosts\n@@\n-a\n+b\n*** End Patch",
            expect![
                "ERROR: cannot update ../etc/hosts: path `../etc/hosts` climbs out of the granted folder with `..`; use a path relative to the granted folder $ROOT (like `src/main.rs`), or an absolute path inside it"
            ],
        ),
        (
            "*** Begin Patch\n*** Update File: src/lib.rs\n@@ fn mul\n-a\n+b\n*** End Patch",
            expect![
                "ERROR: cannot apply chunk 1 of src/lib.rs (patch line 3): the line `fn mul` after `@@` was not found"
            ],
        ),
        (
            "*** Begin Patch\n*** Update File: src/lib.rs\n*** Move to: src/main.rs\n*** End Patch",
            expect![
                "ERROR: cannot move src/lib.rs: `src/main.rs` already exists; use edit or write_file to change it, or pick another name"
            ],
        ),
        (
            "*** Begin Patch\n*** Update File: src/lib.rs\n@@\n-    a - b\n+    b - a\n@@\n-    a + b\n+    b + a\n*** End Patch",
            expect![[r#"
                ERROR: cannot apply chunk 2 of src/lib.rs (patch line 6): these lines were not found after line 6:
                      a + b
                they are at line 2, before the previous chunk; chunks must be in file order"#]],
        ),
    ];
    for (patch, expect) in cases {
        expect.assert_eq(&fx.call("apply_patch", json!({ "patch": patch })));
    }
    assert!(fx.ws.is_clean());
}

#[test]
fn apply_patch_tolerates_trailing_whitespace_and_anchors_end_of_file() {
    let mut fx = Fixture::new(&[("a.txt", "x  \ny\nx\n"), ("b.txt", "keep\nlast")]);
    let patch = "<<'EOF'
*** Begin Patch
*** Update File: a.txt
-x
+X
@@
-x
+Z
*** End of File
*** Update File: b.txt
@@
 keep
-last
+final
*** End Patch
EOF
";
    fx.check(
        "apply_patch",
        json!({ "patch": patch }),
        expect![[r#"
            staged patch:
              modified a.txt (2 chunks)
              modified b.txt (1 chunk)
            [edited: a.txt, b.txt]"#]],
    );
    assert_eq!(fx.read("a.txt").unwrap(), "X\ny\nZ\n");
    assert_eq!(fx.read("b.txt").unwrap(), "keep\nfinal");
}

#[test]
fn staged_files_round_trip_through_restore() {
    let mut fx = project();
    std::fs::write(fx.dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        fx.dir.path().join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fx.call(
        "edit",
        json!({"path": "run.sh", "old_string": "sh", "new_string": "bash"}),
    );
    fx.call("rename", json!({"from": "src/lib.rs", "to": "src/core.rs"}));
    fx.call("delete", json!({"path": "docs/guide.md"}));
    fx.call("create_file", json!({"path": "NEW.md", "content": "new\n"}));
    let files = fx.ws.staged_files();
    let script = files.iter().find(|f| f.path.as_str() == "run.sh").unwrap();
    assert_eq!(
        (script.before_mode, script.after_mode),
        (Some(0o755), Some(0o755))
    );

    let mut restored = Workspace::new(fx.ws.roots().to_vec());
    restored.restore_from(&files).unwrap();
    assert_eq!(restored.staged_files(), files);
    assert_eq!(restored.staged_paths(), fx.ws.staged_paths());
    for path in [
        "run.sh",
        "src/core.rs",
        "src/lib.rs",
        "docs/guide.md",
        "NEW.md",
    ] {
        let path = RelPath::new(path).unwrap();
        assert_eq!(
            restored.read(0, &path).unwrap(),
            fx.ws.read(0, &path).unwrap(),
            "{path}"
        );
    }
    // The restored view keeps working: renaming back un-stages the rename.
    let out = call_file_tool(
        &mut restored,
        "rename",
        &json!({"from": "src/core.rs", "to": "src/lib.rs"}),
    )
    .unwrap();
    assert!(!out.is_error, "{}", out.content);
    assert_eq!(restored.staged_files().len(), 3);
}

#[test]
fn sandbox_changes_enter_through_set_staged_entry() {
    let mut fx = project();
    let path = RelPath::new("out/report.txt").unwrap();
    fx.ws
        .set_staged_entry(0, &path, Some(b"done\n".to_vec()), Some(0o600))
        .unwrap();
    let main = RelPath::new("src/main.rs").unwrap();
    fx.ws.set_staged_entry(0, &main, None, None).unwrap();
    // Deleting what does not exist is not an error for the sandbox.
    fx.ws
        .set_staged_entry(0, &RelPath::new("nope").unwrap(), None, None)
        .unwrap();
    let files = fx.ws.staged_files();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].after_mode, Some(0o600));
    assert_eq!(fx.read("out/report.txt").unwrap(), "done\n");
    assert_eq!(fx.read("src/main.rs"), None);
}

#[test]
fn outline_lists_symbols_by_depth() {
    let mut fx = Fixture::new(&[
        (
            "src/shape.rs",
            "pub struct Square {\n    side: f64,\n}\n\nimpl Square {\n    pub fn area(&self) -> f64 {\n        self.side * self.side\n    }\n}\n\nfn main() {}\n",
        ),
        ("notes.txt", "plain\n"),
    ]);
    fx.check(
        "outline",
        json!({"path": "src/shape.rs"}),
        expect![[r#"
        src/shape.rs (rust, 5 symbols)
        struct Square (lines 1-3)
          field side (line 2)
        impl Square (lines 5-9)
          method area (lines 6-8)
        function main (line 11)"#]],
    );
    fx.check("outline", json!({"path": "notes.txt"}), expect!["ERROR: no outline for `notes.txt`: its language is not recognized (outline reads .rs, .py, .ts, .tsx, .js, .go, .json and .md files); use read_file or search instead"]);
    fx.check(
        "outline",
        json!({"path": "missing.rs"}),
        expect!["ERROR: no such file `missing.rs`"],
    );
    // The staged version is outlined.
    fx.call(
        "edit",
        json!({"path": "src/shape.rs", "old_string": "fn main() {}", "new_string": "fn main() {}\n\nfn helper() {}"}),
    );
    let out = fx.call("outline", json!({"path": "src/shape.rs"}));
    assert!(out.contains("function helper (line 13)"), "{out}");
}

#[test]
fn gitignore_of_the_root_applies_when_listing_a_subfolder() {
    let mut fx = project();
    std::fs::write(fx.dir.path().join("src/debug.log"), "x").unwrap();
    std::fs::write(fx.dir.path().join("src/util/.gitignore"), "gen.rs\n").unwrap();
    std::fs::write(fx.dir.path().join("src/util/gen.rs"), "// TODO generated").unwrap();
    fx.check(
        "list_dir",
        json!({"path": "src", "depth": 3}),
        expect![[r#"
            src/lib.rs
            src/main.rs
            src/util/
            src/util/.gitignore
            src/util/mod.rs"#]],
    );
    fx.check(
        "search",
        json!({"pattern": "TODO"}),
        expect!["src/util/mod.rs:1: // TODO: helpers"],
    );
}

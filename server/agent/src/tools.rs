//! The agent's file tools: list, read, search and outline files; edit,
//! write, create, delete, rename and apply_patch — all over the staged
//! [`Workspace`].
//!
//! No tool writes to the user's files: writing tools stage into the
//! workspace (the task's proposal) and say what they staged. Arguments and
//! paths are validated, and every failure becomes a message the model can
//! act on (`is_error: true`), never a panic or an engine error. The engine
//! owns the other tools (run_command, fetch, MCP…); [`call_file_tool`]
//! answers `None` for them.

mod apply_patch;
mod edit;
mod list_dir;
mod outline;
mod read_file;
mod search;

use redline_core::path::RelPath;
use serde_json::{Map, Value, json};

use crate::model::ToolSpec;
use crate::workspace::Workspace;

pub use apply_patch::PatchError;

/// What a tool call returns to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
    /// Every path whose staged state this call changed — created, edited,
    /// deleted, and both ends of a move — so the engine can re-check syntax
    /// (of those that still exist) and refresh the proposal.
    pub edited: Vec<(usize, RelPath)>,
}

impl ToolOutput {
    fn ok(content: String) -> ToolOutput {
        ToolOutput {
            content,
            is_error: false,
            edited: Vec::new(),
        }
    }

    fn staged(content: String, edited: Vec<(usize, RelPath)>) -> ToolOutput {
        ToolOutput {
            content,
            is_error: false,
            edited,
        }
    }

    fn error(error: &ToolError) -> ToolOutput {
        ToolOutput {
            content: error.to_string(),
            is_error: true,
            edited: Vec::new(),
        }
    }
}

/// Why a file tool call failed; the message is written for the model.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{reason}; {allowed}")]
    Path {
        raw: String,
        reason: String,
        allowed: String,
    },
    #[error("no granted folder number {root}")]
    UnknownRoot { root: usize },
    #[error("no such file `{path}`{}", did_you_mean(.suggestions))]
    NotFound {
        path: String,
        suggestions: Vec<String>,
    },
    #[error("`{path}` is a directory, not a file (list_dir shows what it contains)")]
    IsDirectory { path: String },
    #[error("`{path}` is a file, not a directory")]
    NotADirectory { path: String },
    #[error("cannot create `{path}`: `{parent}` is a file")]
    ParentIsFile { path: String, parent: String },
    #[error("`{path}` already exists; use edit or write_file to change it, or pick another name")]
    AlreadyExists { path: String },
    #[error("`{path}` is both the source and the target")]
    SamePath { path: String },
    #[error("`{path}` is too large to read ({}; the limit is {})", human_size(*.size), human_size(*.limit))]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("`{path}` is a binary file ({}); only text files can be read or edited with this tool", human_size(*.size))]
    Binary { path: String, size: u64 },
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("missing required argument `{name}` ({expected}) for {tool}")]
    MissingArgument {
        tool: String,
        name: String,
        expected: String,
    },
    #[error("argument `{name}` of {tool} must be {expected}, got {got}")]
    WrongType {
        tool: String,
        name: String,
        expected: String,
        got: String,
    },
    #[error("unknown argument `{name}` for {tool}; its arguments are: {allowed}")]
    UnknownArgument {
        tool: String,
        name: String,
        allowed: String,
    },
    #[error("{tool}: {message}")]
    InvalidArgument { tool: String, message: String },
    #[error(
        "old_string is empty; include the text to replace (to add text, include a neighbouring line in both old_string and new_string; to make a new file, use create_file)"
    )]
    EmptyOldString,
    #[error("old_string and new_string are identical; nothing to change")]
    NoChange,
    #[error("old_string was not found in `{path}`{hint}")]
    EditNoMatch { path: String, hint: String },
    #[error(
        "old_string matches {count} times in `{path}` (at lines {lines}); add surrounding lines to make it unique, or set replace_all to true to replace every match"
    )]
    EditAmbiguous {
        path: String,
        count: usize,
        lines: String,
    },
    #[error("no outline for `{path}`: {reason}")]
    NoOutline { path: String, reason: String },
    #[error(transparent)]
    Patch(#[from] PatchError),
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("`{s}`")).collect();
            format!("; did you mean one of {}?", quoted.join(", "))
        }
    }
}

/// `1234` → `1.2 KiB`, for messages.
pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

/// Specs of every file tool, in the order the model should consider them.
pub fn file_tool_specs() -> Vec<ToolSpec> {
    let path_prop = |what: &str| json!({ "type": "string", "description": format!("{what} Relative to the granted folder (like `src/main.rs`); with several folders, start with the folder's name.") });
    let spec = |name: &str, description: &str, properties: Value, required: &[&str]| ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }),
    };
    vec![
        spec(
            "list_dir",
            "List files and folders (folders end with `/`). Skips what .gitignore ignores. Shows your staged changes: files you created appear, files you deleted do not.",
            json!({
                "path": path_prop("Folder to list; omit for the granted folder(s)."),
                "depth": { "type": "integer", "minimum": 1, "maximum": list_dir::MAX_DEPTH, "description": "How many levels to descend (default 2)." },
            }),
            &[],
        ),
        spec(
            "read_file",
            "Read a text file with line numbers (`   12| text`). Reads your staged version when you changed it. Large files are cut; use start_line/end_line to read a part.",
            json!({
                "path": path_prop("File to read."),
                "start_line": { "type": "integer", "minimum": 1, "description": "First line to show (1-based, default 1)." },
                "end_line": { "type": "integer", "minimum": 1, "description": "Last line to show, inclusive (default: end of file)." },
            }),
            &["path"],
        ),
        spec(
            "search",
            "Search file contents with a regular expression (Rust regex syntax, one line at a time). Skips what .gitignore ignores and binary files; searches your staged versions. Results are `path:line: text`.",
            json!({
                "pattern": { "type": "string", "description": "Regular expression, e.g. `fn\\s+parse` or `TODO`. Escape special characters to search literally." },
                "path": path_prop("File or folder to search; omit for everything."),
                "glob": { "type": "string", "description": "Only files matching this glob, e.g. `*.rs` (matched against the file name) or `src/**/*.ts` (matched against the path)." },
                "case_insensitive": { "type": "boolean", "description": "Ignore case (default false)." },
                "max_results": { "type": "integer", "minimum": 1, "maximum": search::MAX_RESULTS_LIMIT, "description": "Most matching lines to return (default 50)." },
            }),
            &["pattern"],
        ),
        spec(
            "outline",
            "List the symbols of a source file (functions, types, methods…) with their line ranges, nested by depth. Cheaper than reading the whole file to find your way.",
            json!({ "path": path_prop("Source file to outline.") }),
            &["path"],
        ),
        spec(
            "edit",
            "Replace an exact string in a file. old_string must match the file exactly (whitespace included; copy it from read_file output without the line-number prefix) and be unique unless replace_all is true. The change is staged for the user's review, not written.",
            json!({
                "path": path_prop("File to edit."),
                "old_string": { "type": "string", "description": "Exact text to replace; include enough surrounding lines to be unique." },
                "new_string": { "type": "string", "description": "Text to put in its place." },
                "replace_all": { "type": "boolean", "description": "Replace every match instead of requiring exactly one (default false)." },
            }),
            &["path", "old_string", "new_string"],
        ),
        spec(
            "apply_patch",
            "Apply a multi-file patch, all or nothing. Format:\n*** Begin Patch\n*** Update File: src/lib.rs\n@@ fn parse\n context line\n-removed line\n+added line\n*** Add File: src/new.rs\n+new file line\n*** Delete File: src/old.rs\n*** Update File: src/a.rs\n*** Move to: src/b.rs\n*** End Patch\nEach line of a chunk starts with a space (context), `-` or `+`. `@@ text` jumps to the next line containing `text`. Give 3 lines of context around each change. Changes are staged for review, not written.",
            json!({ "patch": { "type": "string", "description": "The patch, from `*** Begin Patch` to `*** End Patch`." } }),
            &["patch"],
        ),
        spec(
            "write_file",
            "Write a whole file, creating it or replacing its content. Prefer edit or apply_patch for changes to existing files. Staged for review, not written.",
            json!({
                "path": path_prop("File to write."),
                "content": { "type": "string", "description": "The complete new content." },
            }),
            &["path", "content"],
        ),
        spec(
            "create_file",
            "Create a new file; fails if it already exists. Parent folders are created as needed. Staged for review, not written.",
            json!({
                "path": path_prop("File to create."),
                "content": { "type": "string", "description": "The file's content." },
            }),
            &["path", "content"],
        ),
        spec(
            "delete",
            "Delete a file. Staged for review, not written.",
            json!({ "path": path_prop("File to delete.") }),
            &["path"],
        ),
        spec(
            "rename",
            "Move or rename a file; fails if the target exists. Staged for review, not written.",
            json!({
                "from": path_prop("File to move."),
                "to": path_prop("New path."),
            }),
            &["from", "to"],
        ),
    ]
}

/// Runs the file tool `name`; `None` when `name` is not a file tool.
pub fn call_file_tool(workspace: &mut Workspace, name: &str, input: &Value) -> Option<ToolOutput> {
    let specs = file_tool_specs();
    let spec = specs.iter().find(|s| s.name == name)?;
    let result = Args::new(spec, input).and_then(|args| match name {
        "list_dir" => list_dir::run(workspace, &args),
        "read_file" => read_file::run(workspace, &args),
        "search" => search::run(workspace, &args),
        "outline" => outline::run(workspace, &args),
        "edit" => edit::edit(workspace, &args),
        "write_file" => edit::write_file(workspace, &args),
        "create_file" => edit::create_file(workspace, &args),
        "delete" => edit::delete(workspace, &args),
        "rename" => edit::rename(workspace, &args),
        "apply_patch" => apply_patch::run(workspace, &args),
        _ => Err(ToolError::InvalidArgument {
            tool: name.to_owned(),
            message: "this tool has no implementation".to_owned(),
        }),
    });
    Some(result.unwrap_or_else(|error| ToolOutput::error(&error)))
}

/// A tool's arguments, checked against its schema's property names.
pub(crate) struct Args<'a> {
    tool: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn new(spec: &'a ToolSpec, input: &'a Value) -> Result<Args<'a>, ToolError> {
        let empty = Map::new();
        let allowed: Vec<&str> = spec.input_schema["properties"]
            .as_object()
            .unwrap_or(&empty)
            .keys()
            .map(String::as_str)
            .collect();
        let Some(map) = input.as_object() else {
            return Err(ToolError::InvalidArgument {
                tool: spec.name.clone(),
                message: format!("arguments must be a JSON object, got {}", describe(input)),
            });
        };
        for (key, value) in map {
            // Models sometimes spell out optional arguments as `null`.
            if !allowed.contains(&key.as_str()) && !value.is_null() {
                return Err(ToolError::UnknownArgument {
                    tool: spec.name.clone(),
                    name: key.clone(),
                    allowed: allowed.join(", "),
                });
            }
        }
        Ok(Args {
            tool: &spec.name,
            map,
        })
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, name: &str, expected: &str, got: &Value) -> ToolError {
        ToolError::WrongType {
            tool: self.tool.to_owned(),
            name: name.to_owned(),
            expected: expected.to_owned(),
            got: describe(got),
        }
    }

    pub(crate) fn string(&self, name: &str) -> Result<&'a str, ToolError> {
        self.opt_string(name)?
            .ok_or_else(|| ToolError::MissingArgument {
                tool: self.tool.to_owned(),
                name: name.to_owned(),
                expected: "a string".to_owned(),
            })
    }

    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<&'a str>, ToolError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(name, "a string", other)),
        }
    }

    /// A positive integer (models sometimes send `"12"`; accepted).
    pub(crate) fn opt_positive(&self, name: &str) -> Result<Option<usize>, ToolError> {
        let value = match self.get(name) {
            None => return Ok(None),
            Some(value) => value,
        };
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n >= 1 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            _ => Err(self.wrong_type(name, "a positive integer", value)),
        }
    }

    pub(crate) fn opt_bool(&self, name: &str) -> Result<Option<bool>, ToolError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(self.wrong_type(name, "true or false", other)),
        }
    }
}

/// A JSON value, briefly, for "got …" in messages.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let head: String = text.chars().take(40).collect();
        format!("{head}…")
    } else {
        text
    }
}

/// `   12| text`: the line-number prefix read_file and error snippets use.
pub(crate) fn numbered(line: usize, text: &str) -> String {
    if text.is_empty() {
        format!("{line:>5}|")
    } else {
        format!("{line:>5}| {text}")
    }
}

/// Decodes file bytes as text, refusing binary content (NUL bytes or
/// invalid UTF-8, as proposals classify files).
pub(crate) fn as_text(
    workspace: &Workspace,
    root: usize,
    path: &RelPath,
    bytes: Vec<u8>,
) -> Result<String, ToolError> {
    let size = bytes.len() as u64;
    if bytes.contains(&0) {
        return Err(ToolError::Binary {
            path: workspace.display(root, path),
            size,
        });
    }
    String::from_utf8(bytes).map_err(|_| ToolError::Binary {
        path: workspace.display(root, path),
        size,
    })
}

/// Reads a text file that must exist.
pub(crate) fn read_text(
    workspace: &Workspace,
    root: usize,
    path: &RelPath,
) -> Result<String, ToolError> {
    match workspace.read(root, path)? {
        Some(bytes) => as_text(workspace, root, path, bytes),
        None => Err(workspace.not_found(root, path)),
    }
}

/// `3 lines`, `1 line`.
pub(crate) fn count_lines(text: &str) -> String {
    let n = text.lines().count();
    if n == 1 {
        "1 line".to_owned()
    } else {
        format!("{n} lines")
    }
}

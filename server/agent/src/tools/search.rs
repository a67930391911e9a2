//! `search`: a regex search over the staged view, gitignore-aware.
//!
//! Staged files are searched with their staged content and deleted ones are
//! skipped, so the model finds what its own edits left, not the disk.

use globset::{GlobBuilder, GlobMatcher};
use redline_core::path::RelPath;

use super::{Args, ToolError, ToolOutput, as_text};
use crate::workspace::{EntryKind, Workspace};

pub(crate) const MAX_RESULTS_LIMIT: usize = 500;
const DEFAULT_RESULTS: usize = 50;
/// Characters shown of a matching line.
const MAX_LINE_CHARS: usize = 300;

pub(crate) fn run(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let pattern = args.string("pattern")?;
    let case_insensitive = args.opt_bool("case_insensitive")?.unwrap_or(false);
    let max_results = args
        .opt_positive("max_results")?
        .unwrap_or(DEFAULT_RESULTS)
        .min(MAX_RESULTS_LIMIT);
    let regex = regex::RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| ToolError::InvalidArgument {
            tool: "search".to_owned(),
            message: format!(
                "invalid regular expression `{pattern}`: {}; escape special characters like `(` as `\\(` to search for them literally",
                e.to_string().lines().last().unwrap_or("syntax error").trim()
            ),
        })?;
    let glob = match args.opt_string("glob")? {
        Some(raw) => Some(FileGlob::new(raw)?),
        None => None,
    };

    let mut files: Vec<(usize, RelPath)> = Vec::new();
    let scope = match args.opt_string("path")? {
        Some(raw) => {
            let (root, path) = workspace.resolve_scope(raw)?;
            match &path {
                Some(p) if workspace.kind(root, p)? == Some(EntryKind::File) => {
                    files.push((root, p.clone()));
                }
                _ => {
                    for file in workspace.files(root, path.as_ref())? {
                        files.push((root, file));
                    }
                }
            }
            match &path {
                Some(p) => format!("`{}`", workspace.display(root, p)),
                None => workspace.display_dir(root, None),
            }
        }
        None => {
            for root in 0..workspace.roots().len() {
                for file in workspace.files(root, None)? {
                    files.push((root, file));
                }
            }
            "the granted folders".to_owned()
        }
    };

    let mut results = Vec::new();
    let mut total = 0usize;
    let mut files_with_matches = 0usize;
    for (root, path) in &files {
        if let Some(glob) = &glob
            && !glob.matches(path)
        {
            continue;
        }
        // Unreadable, oversized and binary files are skipped, as grep does.
        let Ok(Some(bytes)) = workspace.read(*root, path) else {
            continue;
        };
        let Ok(text) = as_text(workspace, *root, path, bytes) else {
            continue;
        };
        let mut matched = false;
        for (index, line) in text.lines().enumerate() {
            if !regex.is_match(line) {
                continue;
            }
            matched = true;
            total += 1;
            if results.len() < max_results {
                let line = line.trim_end();
                let shown: String = if line.chars().count() > MAX_LINE_CHARS {
                    let head: String = line.chars().take(MAX_LINE_CHARS).collect();
                    format!("{head} …")
                } else {
                    line.to_owned()
                };
                results.push(format!(
                    "{}:{}: {shown}",
                    workspace.display(*root, path),
                    index + 1
                ));
            }
        }
        files_with_matches += usize::from(matched);
    }
    if total == 0 {
        let glob_note = args
            .opt_string("glob")?
            .map(|g| format!(" matching `{g}`"))
            .unwrap_or_default();
        return Ok(ToolOutput::ok(format!(
            "no matches for `{pattern}` in {scope}{glob_note}"
        )));
    }
    let mut out = results.join("\n");
    if total > results.len() {
        out.push_str(&format!(
            "\n[showing {} of {total} matching lines in {files_with_matches} files; narrow with path or glob, or raise max_results]",
            results.len()
        ));
    }
    Ok(ToolOutput::ok(out))
}

/// A glob matched against the file name when it has no `/`, else against
/// the path relative to its root (as ripgrep's `-g` does).
struct FileGlob {
    matcher: GlobMatcher,
    on_name: bool,
}

impl FileGlob {
    fn new(raw: &str) -> Result<FileGlob, ToolError> {
        let glob = GlobBuilder::new(raw)
            .literal_separator(true)
            .build()
            .map_err(|e| ToolError::InvalidArgument {
                tool: "search".to_owned(),
                message: format!("invalid glob `{raw}`: {}", e.kind()),
            })?;
        Ok(FileGlob {
            matcher: glob.compile_matcher(),
            on_name: !raw.contains('/'),
        })
    }

    fn matches(&self, path: &RelPath) -> bool {
        if self.on_name {
            self.matcher.is_match(path.file_name())
        } else {
            self.matcher.is_match(path.as_str())
        }
    }
}

//! What a task is asked to do, validated before it is queued.

use std::path::{Path, PathBuf};

use redline_core::path::{RelPath, Root};
use redline_protocol::TaskMode;

use crate::router::ModelRequestSpec;

/// A request to start a task, as front ends build it.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub prompt: String,
    /// Granted folders; the first is the default for relative paths.
    pub folders: Vec<PathBuf>,
    pub focus: Option<FocusSpec>,
    pub model: ModelRequestSpec,
    pub mode: TaskMode,
    /// Extra context lines from the front end (diagnostics, selection notes).
    pub context_notes: Vec<String>,
}

impl TaskSpec {
    pub fn new(prompt: impl Into<String>, folders: Vec<PathBuf>) -> TaskSpec {
        TaskSpec {
            prompt: prompt.into(),
            folders,
            focus: None,
            model: ModelRequestSpec::parse("auto"),
            mode: TaskMode::Direct,
            context_notes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FocusSpec {
    /// Absolute, or relative to the first folder.
    pub file: PathBuf,
    /// 1-based inclusive line range.
    pub lines: Option<(u32, u32)>,
}

/// A focus that has been checked against the granted roots.
#[derive(Clone, Debug)]
pub struct Focus {
    pub root: usize,
    pub path: RelPath,
    pub lines: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskSpecError {
    #[error("the instruction is empty: say what Redline should do")]
    EmptyPrompt,
    #[error("no folder granted: pass at least one --folder")]
    NoFolder,
    #[error("cannot use folder {path}: {message}")]
    Folder { path: String, message: String },
    #[error("focus file {path} is not inside any granted folder")]
    FocusOutside { path: String },
    #[error("cannot read focus file {path}: {message}")]
    FocusUnreadable { path: String, message: String },
    #[error("invalid range {start}-{end} for {path}: {message}")]
    Range {
        path: String,
        start: u32,
        end: u32,
        message: String,
    },
}

/// Checks folders and focus; returns the canonical roots and focus.
pub fn validate(spec: &TaskSpec) -> Result<(Vec<Root>, Option<Focus>), TaskSpecError> {
    if spec.prompt.trim().is_empty() {
        return Err(TaskSpecError::EmptyPrompt);
    }
    if spec.folders.is_empty() {
        return Err(TaskSpecError::NoFolder);
    }
    let mut roots = Vec::new();
    for folder in &spec.folders {
        let root = Root::new(folder).map_err(|e| TaskSpecError::Folder {
            path: folder.display().to_string(),
            message: match e {
                redline_core::path::PathError::Io { message, .. } => message,
                other => other.to_string(),
            },
        })?;
        std::fs::read_dir(root.path()).map_err(|e| TaskSpecError::Folder {
            path: folder.display().to_string(),
            message: e.to_string(),
        })?;
        roots.push(root);
    }
    let focus = match &spec.focus {
        None => None,
        Some(focus) => Some(validate_focus(&roots, focus)?),
    };
    Ok((roots, focus))
}

fn validate_focus(roots: &[Root], focus: &FocusSpec) -> Result<Focus, TaskSpecError> {
    let shown = focus.file.display().to_string();
    let absolute = if focus.file.is_absolute() {
        focus.file.clone()
    } else {
        roots[0].path().join(&focus.file)
    };
    let canonical = absolute
        .canonicalize()
        .map_err(|e| TaskSpecError::FocusUnreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let (root, path) = roots
        .iter()
        .enumerate()
        .find_map(|(i, root)| {
            RelPath::from_host(root.path(), &canonical)
                .ok()
                .map(|rel| (i, rel))
        })
        .ok_or_else(|| TaskSpecError::FocusOutside {
            path: shown.clone(),
        })?;
    if let Some((start, end)) = focus.lines {
        let text = std::fs::read(&canonical).map_err(|e| TaskSpecError::FocusUnreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let line_count = count_lines(&text);
        let bad = |message: String| TaskSpecError::Range {
            path: shown.clone(),
            start,
            end,
            message,
        };
        if start == 0 {
            return Err(bad("lines are numbered from 1".into()));
        }
        if start > end {
            return Err(bad("start is after end".into()));
        }
        if end as usize > line_count {
            return Err(bad(format!("the file has {line_count} lines")));
        }
    }
    Ok(Focus {
        root,
        path,
        lines: focus.lines,
    })
}

fn count_lines(bytes: &[u8]) -> usize {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    if bytes.last().is_some_and(|&b| b != b'\n') {
        newlines + 1
    } else {
        newlines
    }
}

/// Parses `START-END` (or a single line `N`) as a 1-based inclusive range.
pub fn parse_line_range(text: &str) -> Result<(u32, u32), String> {
    let parse = |part: &str| {
        part.trim()
            .parse::<u32>()
            .map_err(|_| format!("invalid range `{text}`: expected START-END with line numbers"))
    };
    match text.split_once('-') {
        Some((start, end)) => Ok((parse(start)?, parse(end)?)),
        None => {
            let line = parse(text)?;
            Ok((line, line))
        }
    }
}

/// The folder names shown to the user and model for each root.
pub fn root_label(root: &Path) -> String {
    root.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_gets_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "1\n2\n3\n").unwrap();
        let folder = dir.path().to_path_buf();
        let check = |spec: TaskSpec, expect: &str| {
            let got = validate(&spec)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(got.starts_with(expect), "{got}");
            assert!(!got.contains('\n'));
        };
        check(
            TaskSpec::new("  ", vec![folder.clone()]),
            "the instruction is empty",
        );
        check(TaskSpec::new("x", vec![]), "no folder granted");
        check(
            TaskSpec::new("x", vec![folder.join("missing")]),
            "cannot use folder",
        );
        let mut spec = TaskSpec::new("x", vec![folder.clone()]);
        spec.focus = Some(FocusSpec {
            file: "a.txt".into(),
            lines: Some((2, 9)),
        });
        check(
            spec.clone(),
            "invalid range 2-9 for a.txt: the file has 3 lines",
        );
        spec.focus = Some(FocusSpec {
            file: "a.txt".into(),
            lines: Some((3, 2)),
        });
        check(
            spec.clone(),
            "invalid range 3-2 for a.txt: start is after end",
        );
        spec.focus = Some(FocusSpec {
            file: "/etc/hostname".into(),
            lines: None,
        });
        check(
            spec.clone(),
            "focus file /etc/hostname is not inside any granted folder",
        );
        spec.focus = Some(FocusSpec {
            file: "a.txt".into(),
            lines: Some((1, 3)),
        });
        assert!(validate(&spec).is_ok());
        assert_eq!(parse_line_range("3-5"), Ok((3, 5)));
        assert_eq!(parse_line_range("7"), Ok((7, 7)));
        assert!(parse_line_range("a-b").is_err());
    }
}

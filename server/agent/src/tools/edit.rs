//! The single-file writing tools: `edit`, `write_file`, `create_file`,
//! `delete` and `rename`. Each stages into the workspace and says what it
//! staged.

use redline_core::path::RelPath;

use super::{Args, ToolError, ToolOutput, count_lines, numbered, read_text};
use crate::workspace::Workspace;

pub(crate) fn edit(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let (root, path) = workspace.resolve(args.string("path")?)?;
    let old_string = args.string("old_string")?;
    let new_string = args.string("new_string")?;
    let replace_all = args.opt_bool("replace_all")?.unwrap_or(false);
    let text = read_text(workspace, root, &path)?;
    let shown = workspace.display(root, &path);
    if old_string.is_empty() {
        return Err(ToolError::EmptyOldString);
    }
    if old_string == new_string {
        return Err(ToolError::NoChange);
    }
    // Models write `\n`; keep a CRLF file CRLF.
    let (old, new) = if text.contains("\r\n") && !old_string.contains('\r') {
        (
            old_string.replace('\n', "\r\n"),
            new_string.replace('\n', "\r\n"),
        )
    } else {
        (old_string.to_owned(), new_string.to_owned())
    };
    let starts: Vec<usize> = text.match_indices(old.as_str()).map(|(i, _)| i).collect();
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let lines: Vec<String> = starts.iter().map(|&s| line_of(s).to_string()).collect();
    let updated = match starts.len() {
        0 => {
            return Err(ToolError::EditNoMatch {
                path: shown,
                hint: closest_hint(&text, &old),
            });
        }
        1 => text.replacen(old.as_str(), &new, 1),
        count if !replace_all => {
            return Err(ToolError::EditAmbiguous {
                path: shown,
                count,
                lines: lines.join(", "),
            });
        }
        _ => text.replace(old.as_str(), &new),
    };
    workspace.write(root, &path, updated.into_bytes())?;
    let summary = if lines.len() == 1 {
        format!("1 replacement at line {}", lines[0])
    } else {
        format!("{} replacements at lines {}", lines.len(), lines.join(", "))
    };
    Ok(ToolOutput::staged(
        format!(
            "staged edit to {shown} ({summary}){}",
            unstaged_note(workspace, root, &path)
        ),
        vec![(root, path)],
    ))
}

pub(crate) fn write_file(
    workspace: &mut Workspace,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let (root, path) = workspace.resolve(args.string("path")?)?;
    let content = args.string("content")?;
    let existed = workspace.exists(root, &path)?;
    workspace.write(root, &path, content.as_bytes().to_vec())?;
    let shown = workspace.display(root, &path);
    let what = if existed { "rewrite of" } else { "new file" };
    Ok(ToolOutput::staged(
        format!(
            "staged {what} {shown} ({}){}",
            count_lines(content),
            unstaged_note(workspace, root, &path)
        ),
        vec![(root, path)],
    ))
}

pub(crate) fn create_file(
    workspace: &mut Workspace,
    args: &Args<'_>,
) -> Result<ToolOutput, ToolError> {
    let (root, path) = workspace.resolve(args.string("path")?)?;
    let content = args.string("content")?;
    if workspace.kind(root, &path)?.is_some() {
        return Err(ToolError::AlreadyExists {
            path: workspace.display(root, &path),
        });
    }
    workspace.write(root, &path, content.as_bytes().to_vec())?;
    let shown = workspace.display(root, &path);
    Ok(ToolOutput::staged(
        format!("staged new file {shown} ({})", count_lines(content)),
        vec![(root, path)],
    ))
}

pub(crate) fn delete(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let (root, path) = workspace.resolve(args.string("path")?)?;
    workspace.delete(root, &path)?;
    Ok(ToolOutput::staged(
        format!("staged deletion of {}", workspace.display(root, &path)),
        vec![(root, path)],
    ))
}

pub(crate) fn rename(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let (from_root, from) = workspace.resolve(args.string("from")?)?;
    let (to_root, to) = workspace.resolve(args.string("to")?)?;
    if from_root == to_root {
        workspace.rename(from_root, &from, &to)?;
    } else {
        // Across folders a move is a creation plus a deletion.
        if workspace.kind(to_root, &to)?.is_some() {
            return Err(ToolError::AlreadyExists {
                path: workspace.display(to_root, &to),
            });
        }
        let Some(bytes) = workspace.read(from_root, &from)? else {
            return Err(workspace.not_found(from_root, &from));
        };
        let mut scratch = workspace.clone();
        scratch.write(to_root, &to, bytes)?;
        scratch.delete(from_root, &from)?;
        *workspace = scratch;
    }
    Ok(ToolOutput::staged(
        format!(
            "staged rename of {} to {}",
            workspace.display(from_root, &from),
            workspace.display(to_root, &to)
        ),
        vec![(to_root, to), (from_root, from)],
    ))
}

/// Tells the model when its write made the file identical to the disk, so
/// it knows no change is left for that file.
fn unstaged_note(workspace: &Workspace, root: usize, path: &RelPath) -> &'static str {
    if workspace.staged(root, path).is_none() {
        "; the file now matches the disk again, so no change is staged for it"
    } else {
        ""
    }
}

/// Why an `old_string` did not match, with the closest lines of the file.
pub(crate) fn closest_hint(text: &str, old: &str) -> String {
    let file_lines: Vec<&str> = text.lines().collect();
    let old_lines: Vec<&str> = old.lines().collect();
    if old_lines.is_empty() || file_lines.is_empty() {
        return "; read_file the file to see its current content".to_owned();
    }
    // Same lines, different whitespace: the most common slip.
    let trimmed_old: Vec<&str> = old_lines.iter().map(|l| l.trim()).collect();
    if let Some(start) = file_lines.windows(old_lines.len()).position(|window| {
        window
            .iter()
            .map(|l| l.trim())
            .eq(trimmed_old.iter().copied())
    }) {
        return format!(
            "; lines {}-{} match it except for whitespace (indentation or line ends). The exact text is:\n{}",
            start + 1,
            start + old_lines.len(),
            snippet(&file_lines, start, start + old_lines.len())
        );
    }
    // Anchor on the most distinctive (longest) line of old_string.
    let (anchor_index, anchor) = old_lines
        .iter()
        .enumerate()
        .max_by_key(|(_, l)| l.trim().len())
        .map(|(i, l)| (i, l.trim()))
        .unwrap_or((0, ""));
    let best = file_lines
        .iter()
        .enumerate()
        .map(|(i, l)| (similarity(anchor, l.trim()), i))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    match best {
        Some((score, line)) if score >= 0.5 => {
            let start = line.saturating_sub(anchor_index);
            let end = (start + old_lines.len()).min(file_lines.len());
            format!(
                "; the closest text is at lines {}-{}:\n{}",
                start + 1,
                end,
                snippet(&file_lines, start, end)
            )
        }
        _ => "; read_file the file to see its current content".to_owned(),
    }
}

fn snippet(lines: &[&str], start: usize, end: usize) -> String {
    const MAX: usize = 20;
    let mut out: Vec<String> = lines[start..end.min(start + MAX)]
        .iter()
        .enumerate()
        .map(|(i, l)| numbered(start + i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .collect();
    if end > start + MAX {
        out.push(format!("      … {} more lines", end - start - MAX));
    }
    out.join("\n")
}

/// Dice coefficient over character bigrams, 0.0 ..= 1.0.
fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let bigrams = |s: &str| -> Vec<(char, char)> {
        let chars: Vec<char> = s.chars().collect();
        chars.windows(2).map(|w| (w[0], w[1])).collect()
    };
    let (a, mut b) = (bigrams(a), bigrams(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let total = a.len() + b.len();
    let mut common = 0;
    for pair in &a {
        if let Some(pos) = b.iter().position(|p| p == pair) {
            b.swap_remove(pos);
            common += 1;
        }
    }
    2.0 * common as f64 / total as f64
}

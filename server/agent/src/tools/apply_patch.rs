//! `apply_patch`: multi-file edits in the patch format documented in
//! `docs/patch-format.md` (codex-style `*** Begin Patch` envelopes with
//! context-anchored chunks rather than line numbers, which models get wrong).
//!
//! A patch is parsed whole, then applied to a copy of the workspace; only
//! when every file and chunk applies does the copy replace the workspace, so
//! a patch is all or nothing.

use redline_core::path::RelPath;

use super::edit::closest_hint;
use super::{Args, ToolError, ToolOutput, count_lines, read_text};
use crate::workspace::Workspace;

/// Why a patch was refused; messages name the patch line, file and chunk.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("invalid patch at line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error(
        "cannot apply chunk {chunk} of {path} (patch line {line}): the line `{header}` after `@@` was not found{after}"
    )]
    HeaderNotFound {
        path: String,
        chunk: usize,
        line: usize,
        header: String,
        after: String,
    },
    #[error(
        "cannot apply chunk {chunk} of {path} (patch line {line}): these lines were not found{after}:\n{expected}{hint}"
    )]
    ChunkNotFound {
        path: String,
        chunk: usize,
        line: usize,
        after: String,
        expected: String,
        hint: String,
    },
    #[error("cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: String,
        source: Box<ToolError>,
    },
}

/// One file operation of a patch.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileOp {
    Add {
        path: String,
        content: String,
    },
    Delete {
        path: String,
    },
    Update {
        path: String,
        move_to: Option<String>,
        chunks: Vec<Chunk>,
    },
}

/// A run of context, removed and added lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Chunk {
    /// The text after `@@`, which the chunk must come after.
    header: Option<String>,
    /// Context and removed lines, in order: what the file must contain.
    old: Vec<String>,
    /// Context and added lines, in order: what replaces `old`.
    new: Vec<String>,
    /// `*** End of File`: the chunk must match at the end of the file.
    end_of_file: bool,
    /// 1-based line of the patch where the chunk starts, for errors.
    line: usize,
}

pub(crate) fn run(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let ops = parse(args.string("patch")?)?;
    let mut scratch = workspace.clone();
    let mut report = Vec::new();
    let mut edited: Vec<(usize, RelPath)> = Vec::new();
    for op in &ops {
        match op {
            FileOp::Add { path, content } => {
                let fail = |e: ToolError| file_error("add", path, e);
                let (root, rel) = scratch.resolve(path).map_err(fail)?;
                if scratch.kind(root, &rel).map_err(fail)?.is_some() {
                    let shown = scratch.display(root, &rel);
                    return Err(fail(ToolError::AlreadyExists { path: shown }));
                }
                scratch
                    .write(root, &rel, content.clone().into_bytes())
                    .map_err(fail)?;
                report.push(format!(
                    "  added {} ({})",
                    scratch.display(root, &rel),
                    count_lines(content)
                ));
                edited.push((root, rel));
            }
            FileOp::Delete { path } => {
                let fail = |e: ToolError| file_error("delete", path, e);
                let (root, rel) = scratch.resolve(path).map_err(fail)?;
                scratch.delete(root, &rel).map_err(fail)?;
                report.push(format!("  deleted {}", scratch.display(root, &rel)));
                if !edited.contains(&(root, rel.clone())) {
                    edited.push((root, rel));
                }
            }
            FileOp::Update {
                path,
                move_to,
                chunks,
            } => {
                let fail = |e: ToolError| file_error("update", path, e);
                let (root, rel) = scratch.resolve(path).map_err(fail)?;
                let text = read_text(&scratch, root, &rel).map_err(fail)?;
                let shown = scratch.display(root, &rel);
                let updated = apply_chunks(&text, chunks, &shown)?;
                let chunk_count = match chunks.len() {
                    0 => String::new(),
                    1 => " (1 chunk)".to_owned(),
                    n => format!(" ({n} chunks)"),
                };
                let target = match move_to {
                    Some(dest) => {
                        let fail = |e: ToolError| file_error("move", path, e);
                        let (dest_root, dest_rel) = scratch.resolve(dest).map_err(fail)?;
                        if (dest_root, &dest_rel) != (root, &rel) {
                            if dest_root == root {
                                scratch.rename(root, &rel, &dest_rel).map_err(fail)?;
                            } else {
                                if scratch.kind(dest_root, &dest_rel).map_err(fail)?.is_some() {
                                    let shown = scratch.display(dest_root, &dest_rel);
                                    return Err(fail(ToolError::AlreadyExists { path: shown }));
                                }
                                scratch.delete(root, &rel).map_err(fail)?;
                            }
                            if !edited.contains(&(root, rel.clone())) {
                                edited.push((root, rel.clone()));
                            }
                        }
                        report.push(format!(
                            "  moved {shown} to {}{chunk_count}",
                            scratch.display(dest_root, &dest_rel)
                        ));
                        (dest_root, dest_rel)
                    }
                    None => {
                        report.push(format!("  modified {shown}{chunk_count}"));
                        (root, rel)
                    }
                };
                scratch
                    .write(target.0, &target.1, updated.into_bytes())
                    .map_err(|e| file_error("update", path, e))?;
                if !edited.contains(&target) {
                    edited.push(target);
                }
            }
        }
    }
    *workspace = scratch;
    Ok(ToolOutput::staged(
        format!("staged patch:\n{}", report.join("\n")),
        edited,
    ))
}

fn file_error(action: &'static str, path: &str, error: ToolError) -> ToolError {
    ToolError::Patch(PatchError::File {
        action,
        path: path.to_owned(),
        source: Box::new(error),
    })
}

fn parse_error(line: usize, message: impl Into<String>) -> ToolError {
    ToolError::Patch(PatchError::Parse {
        line,
        message: message.into(),
    })
}

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File: ";
const DELETE: &str = "*** Delete File: ";
const UPDATE: &str = "*** Update File: ";
const MOVE: &str = "*** Move to: ";
const END_OF_FILE: &str = "*** End of File";

/// Parses a whole patch; see `docs/patch-format.md`.
fn parse(patch: &str) -> Result<Vec<FileOp>, ToolError> {
    let lines: Vec<(usize, &str)> = patch
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .collect();
    // Leading and trailing blank lines (and a heredoc wrapper models copy
    // from shell examples) are not part of the patch.
    let mut start = 0;
    let mut end = lines.len();
    while start < end
        && (lines[start].1.trim().is_empty() || lines[start].1.trim_start().starts_with("<<"))
    {
        start += 1;
    }
    while end > start && (lines[end - 1].1.trim().is_empty() || lines[end - 1].1.trim() == "EOF") {
        end -= 1;
    }
    let lines = &lines[start..end];
    let Some(&(first_line, first)) = lines.first() else {
        return Err(parse_error(
            1,
            format!("the patch is empty; it must start with `{BEGIN}`"),
        ));
    };
    if first.trim() != BEGIN {
        return Err(parse_error(
            first_line,
            format!("expected `{BEGIN}`, got `{first}`"),
        ));
    }
    let Some(&(last_line, last)) = lines.last().filter(|_| lines.len() > 1) else {
        return Err(parse_error(
            first_line,
            format!("the patch has no `{END}` line"),
        ));
    };
    if last.trim() != END {
        return Err(parse_error(
            last_line,
            format!("expected `{END}` as the last line, got `{last}`"),
        ));
    }
    let body = &lines[1..lines.len() - 1];

    let mut ops = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let (number, line) = body[i];
        i += 1;
        if let Some(path) = line.strip_prefix(ADD) {
            let path = file_path(number, path)?;
            let mut content = String::new();
            while i < body.len() && !body[i].1.starts_with("*** ") {
                let (n, l) = body[i];
                let Some(added) = l.strip_prefix('+') else {
                    return Err(parse_error(
                        n,
                        format!("every line of `{ADD}{path}` must start with `+`, got `{l}`"),
                    ));
                };
                content.push_str(added);
                content.push('\n');
                i += 1;
            }
            ops.push(FileOp::Add { path, content });
        } else if let Some(path) = line.strip_prefix(DELETE) {
            let path = file_path(number, path)?;
            if i < body.len() && !body[i].1.starts_with("*** ") {
                return Err(parse_error(
                    body[i].0,
                    format!("`{DELETE}{path}` takes no lines; got `{}`", body[i].1),
                ));
            }
            ops.push(FileOp::Delete { path });
        } else if let Some(path) = line.strip_prefix(UPDATE) {
            let path = file_path(number, path)?;
            let mut move_to = None;
            if let Some(dest) = body.get(i).and_then(|(_, l)| l.strip_prefix(MOVE)) {
                move_to = Some(file_path(body[i].0, dest)?);
                i += 1;
            }
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut current: Option<Chunk> = None;
            while i < body.len() {
                let (n, l) = body[i];
                if l.starts_with("*** ") && l.trim_end() != END_OF_FILE {
                    break;
                }
                i += 1;
                if l.trim_end() == END_OF_FILE {
                    match current.as_mut() {
                        Some(chunk) => chunk.end_of_file = true,
                        None => {
                            return Err(parse_error(
                                n,
                                format!("`{END_OF_FILE}` must follow a chunk"),
                            ));
                        }
                    }
                    continue;
                }
                if let Some(rest) = l.strip_prefix("@@") {
                    chunks.extend(finish_chunk(current.take(), &path)?);
                    let header = rest.trim();
                    let header = header.strip_suffix("@@").map(str::trim).unwrap_or(header);
                    current = Some(Chunk {
                        header: (!header.is_empty()).then(|| header.to_owned()),
                        line: n,
                        ..Chunk::default()
                    });
                    continue;
                }
                let chunk = current.get_or_insert_with(|| Chunk {
                    line: n,
                    ..Chunk::default()
                });
                if chunk.end_of_file {
                    return Err(parse_error(
                        n,
                        format!(
                            "`{END_OF_FILE}` must be the last line of its chunk; start a new chunk with `@@`"
                        ),
                    ));
                }
                match l.chars().next() {
                    None => {
                        // A blank line is blank context whose leading space
                        // an editor trimmed.
                        chunk.old.push(String::new());
                        chunk.new.push(String::new());
                    }
                    Some(' ') => {
                        chunk.old.push(l[1..].to_owned());
                        chunk.new.push(l[1..].to_owned());
                    }
                    Some('-') => chunk.old.push(l[1..].to_owned()),
                    Some('+') => chunk.new.push(l[1..].to_owned()),
                    Some(_) => {
                        return Err(parse_error(
                            n,
                            format!(
                                "in `{UPDATE}{path}`, each line must start with ` ` (context), `-` (remove), `+` (add) or `@@`; got `{l}` (did you forget the leading space of a context line?)"
                            ),
                        ));
                    }
                }
            }
            chunks.extend(finish_chunk(current.take(), &path)?);
            if chunks.is_empty() && move_to.is_none() {
                return Err(parse_error(
                    number,
                    format!("`{UPDATE}{path}` has no changes"),
                ));
            }
            ops.push(FileOp::Update {
                path,
                move_to,
                chunks,
            });
        } else if line.trim().is_empty() {
            continue;
        } else if line.trim() == END {
            return Err(parse_error(
                number,
                format!("`{END}` must be the last line"),
            ));
        } else if line.starts_with(MOVE.trim_end()) {
            return Err(parse_error(
                number,
                format!("`*** Move to:` must directly follow an `{UPDATE}…` line"),
            ));
        } else {
            return Err(parse_error(
                number,
                format!("expected `{ADD}…`, `{DELETE}…`, `{UPDATE}…` or `{END}`, got `{line}`"),
            ));
        }
    }
    if ops.is_empty() {
        return Err(parse_error(first_line, "the patch changes no files"));
    }
    Ok(ops)
}

fn file_path(line: usize, raw: &str) -> Result<String, ToolError> {
    let path = raw.trim();
    if path.is_empty() {
        return Err(parse_error(line, "missing file path"));
    }
    Ok(path.to_owned())
}

/// Drops chunks with nothing to do and trims a trailing blank context line
/// an editor added after the last change.
fn finish_chunk(chunk: Option<Chunk>, path: &str) -> Result<Option<Chunk>, ToolError> {
    let Some(mut chunk) = chunk else {
        return Ok(None);
    };
    while chunk.old.last().is_some_and(String::is_empty)
        && chunk.new.last().is_some_and(String::is_empty)
        && chunk.old.len() > 1
        && chunk.new.len() > 1
    {
        chunk.old.pop();
        chunk.new.pop();
    }
    if chunk.old == chunk.new {
        if chunk.old.iter().all(String::is_empty) && chunk.header.is_none() {
            return Ok(None);
        }
        return Err(parse_error(
            chunk.line,
            format!("a chunk of `{UPDATE}{path}` has no `-` or `+` lines"),
        ));
    }
    Ok(Some(chunk))
}

/// Applies the chunks of one file in order, each after the previous one.
fn apply_chunks(text: &str, chunks: &[Chunk], path: &str) -> Result<String, ToolError> {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let ends_with_newline = text.is_empty() || text.ends_with('\n');
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut replacements: Vec<(usize, usize, &[String])> = Vec::new();
    let mut cursor = 0;
    for (index, chunk) in chunks.iter().enumerate() {
        let number = index + 1;
        let after = if cursor > 0 {
            format!(" after line {cursor}")
        } else {
            String::new()
        };
        if let Some(header) = &chunk.header {
            let found = find_header(&lines, cursor, header).ok_or_else(|| {
                ToolError::Patch(PatchError::HeaderNotFound {
                    path: path.to_owned(),
                    chunk: number,
                    line: chunk.line,
                    header: header.clone(),
                    after: after.clone(),
                })
            })?;
            // The chunk may repeat the `@@` line as its first context line,
            // so it is searched from the `@@` line itself.
            cursor = found;
        }
        if chunk.old.is_empty() {
            // Pure addition: after the `@@` line, else at the end.
            let at = if chunk.header.is_some() && !chunk.end_of_file {
                (cursor + 1).min(lines.len())
            } else {
                lines.len()
            };
            replacements.push((at, 0, &chunk.new));
            cursor = at;
            continue;
        }
        let Some(found) = find_lines(&lines, cursor, &chunk.old, chunk.end_of_file) else {
            let expected: Vec<String> = chunk.old.iter().map(|l| format!("  {l}")).collect();
            let old_text = chunk.old.join("\n");
            let hint = match find_lines(&lines, 0, &chunk.old, false) {
                Some(earlier) if earlier < cursor => format!(
                    "\nthey are at line {}, before the previous chunk; chunks must be in file order",
                    earlier + 1
                ),
                _ => format!(
                    "\n{}",
                    closest_hint(&lines.join("\n"), &old_text).trim_start_matches("; ")
                ),
            };
            return Err(ToolError::Patch(PatchError::ChunkNotFound {
                path: path.to_owned(),
                chunk: number,
                line: chunk.line,
                after,
                expected: expected.join("\n"),
                hint,
            }));
        };
        replacements.push((found, chunk.old.len(), &chunk.new));
        cursor = found + chunk.old.len();
    }
    for (start, len, new) in replacements.into_iter().rev() {
        lines.splice(start..start + len, new.iter().cloned());
    }
    let mut out = lines.join(eol);
    if ends_with_newline && !lines.is_empty() {
        out.push_str(eol);
    }
    Ok(out)
}

/// The first line at or after `from` that is `header` (ignoring surrounding
/// whitespace), else the first that contains it.
fn find_header(lines: &[String], from: usize, header: &str) -> Option<usize> {
    let header = header.trim();
    let rest = lines.get(from..)?;
    rest.iter()
        .position(|l| l.trim() == header)
        .or_else(|| rest.iter().position(|l| l.contains(header)))
        .map(|i| i + from)
}

/// Where `old` occurs at or after `from`, comparing lines without their
/// trailing whitespace (exact matches are a special case, so the earliest
/// place wins). `at_end` prefers a match ending at the last line.
fn find_lines(lines: &[String], from: usize, old: &[String], at_end: bool) -> Option<usize> {
    if old.len() > lines.len() {
        return None;
    }
    let matches_at = |start: usize| {
        lines[start..start + old.len()]
            .iter()
            .zip(old)
            .all(|(a, b)| a.trim_end() == b.trim_end())
    };
    let last_start = lines.len() - old.len();
    if at_end && last_start >= from && matches_at(last_start) {
        return Some(last_start);
    }
    (from..=last_start).find(|&start| matches_at(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(old: &[&str], new: &[&str]) -> Chunk {
        Chunk {
            old: old.iter().map(|s| s.to_string()).collect(),
            new: new.iter().map(|s| s.to_string()).collect(),
            ..Chunk::default()
        }
    }

    #[test]
    fn chunks_apply_in_order_and_keep_line_ends() {
        let text = "a\r\nb\r\nc\r\nb\r\n";
        let out = apply_chunks(text, &[chunk(&["b"], &["B"]), chunk(&["b"], &["X"])], "f").unwrap();
        assert_eq!(out, "a\r\nB\r\nc\r\nX\r\n");
        let out = apply_chunks("x\ny", &[chunk(&["y"], &["z"])], "f").unwrap();
        assert_eq!(out, "x\nz");
    }

    #[test]
    fn trailing_whitespace_is_tolerated() {
        let out = apply_chunks(
            "fn a() {  \n}\n",
            &[chunk(&["fn a() {", "}"], &["fn b() {", "}"])],
            "f",
        )
        .unwrap();
        assert_eq!(out, "fn b() {\n}\n");
    }
}

//! `read_file`: a text file of the staged view with line numbers.

use super::{Args, ToolError, ToolOutput, numbered, read_text};
use crate::workspace::Workspace;

/// Lines shown per call before the continuation note.
const MAX_LINES: usize = 2000;
/// Output bytes per call before the continuation note.
const MAX_OUTPUT_BYTES: usize = 100 * 1024;
/// Characters shown of one line (minified files).
const MAX_LINE_CHARS: usize = 2000;

pub(crate) fn run(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let (root, path) = workspace.resolve(args.string("path")?)?;
    let start = args.opt_positive("start_line")?.unwrap_or(1);
    let end = args.opt_positive("end_line")?;
    let text = read_text(workspace, root, &path)?;
    let shown = workspace.display(root, &path);
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.len();
    if total == 0 {
        return Ok(ToolOutput::ok(format!("{shown} is empty")));
    }
    if let Some(end) = end
        && end < start
    {
        return Err(ToolError::InvalidArgument {
            tool: "read_file".to_owned(),
            message: format!("end_line {end} is before start_line {start}"),
        });
    }
    if start > total {
        return Err(ToolError::InvalidArgument {
            tool: "read_file".to_owned(),
            message: format!("start_line {start} is past the end of `{shown}` ({total} lines)"),
        });
    }
    let wanted_end = end.unwrap_or(total).min(total);
    let mut out = String::new();
    let mut last = start - 1;
    for (index, line) in lines.iter().enumerate().take(wanted_end).skip(start - 1) {
        if index + 1 - start >= MAX_LINES || out.len() >= MAX_OUTPUT_BYTES {
            break;
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let char_count = line.chars().count();
        if char_count > MAX_LINE_CHARS {
            let head: String = line.chars().take(MAX_LINE_CHARS).collect();
            out.push_str(&numbered(index + 1, &head));
            out.push_str(&format!(" … [line cut: {char_count} characters]"));
        } else {
            out.push_str(&numbered(index + 1, line));
        }
        out.push('\n');
        last = index + 1;
    }
    if last < wanted_end {
        out.push_str(&format!(
            "[output cut at line {last} of {total}; call read_file with start_line={} to continue]",
            last + 1
        ));
    } else if start > 1 || last < total {
        out.push_str(&format!("[lines {start}-{last} of {total}]"));
    } else {
        out.pop();
    }
    Ok(ToolOutput::ok(out))
}

//! `outline`: the symbols of a source file of the staged view, from
//! tree-sitter (`redline_core::syntax`), nested by depth.

use redline_core::syntax::{Language, outline};

use super::{Args, ToolError, ToolOutput, read_text};
use crate::workspace::Workspace;

/// Symbols shown before the "… N more" marker.
const MAX_SYMBOLS: usize = 500;

pub(crate) fn run(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let (root, path) = workspace.resolve(args.string("path")?)?;
    let shown = workspace.display(root, &path);
    let language = Language::from_path(path.as_str());
    if language == Language::PlainText {
        // Check the file exists first: "no such file" is the better message.
        read_text(workspace, root, &path)?;
        return Err(ToolError::NoOutline {
            path: shown,
            reason: "its language is not recognized (outline reads .rs, .py, .ts, .tsx, .js, .go, .json and .md files); use read_file or search instead".to_owned(),
        });
    }
    let text = read_text(workspace, root, &path)?;
    let symbols = outline(language, &text);
    if symbols.is_empty() {
        return Ok(ToolOutput::ok(format!(
            "no symbols found in {shown} ({language})"
        )));
    }
    let mut lines = vec![format!("{shown} ({language}, {} symbols)", symbols.len())];
    for symbol in symbols.iter().take(MAX_SYMBOLS) {
        let indent = "  ".repeat(usize::try_from(symbol.depth).unwrap_or(0));
        let (start, end) = (symbol.start.line + 1, symbol.end.line + 1);
        let range = if start == end {
            format!("line {start}")
        } else {
            format!("lines {start}-{end}")
        };
        lines.push(format!("{indent}{} {} ({range})", symbol.kind, symbol.name));
    }
    if symbols.len() > MAX_SYMBOLS {
        lines.push(format!(
            "… {} more symbols; read_file a range to see them",
            symbols.len() - MAX_SYMBOLS
        ));
    }
    Ok(ToolOutput::ok(lines.join("\n")))
}

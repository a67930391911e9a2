//! `list_dir`: a gitignore-aware listing of the staged view.

use super::{Args, ToolError, ToolOutput};
use crate::workspace::Workspace;

pub(crate) const MAX_DEPTH: usize = 10;
const DEFAULT_DEPTH: usize = 2;
/// Entries shown before the "… N more" marker.
const MAX_ENTRIES: usize = 400;

pub(crate) fn run(workspace: &mut Workspace, args: &Args<'_>) -> Result<ToolOutput, ToolError> {
    let depth = args
        .opt_positive("depth")?
        .unwrap_or(DEFAULT_DEPTH)
        .min(MAX_DEPTH);
    let scopes = match args.opt_string("path")? {
        Some(raw) => vec![workspace.resolve_scope(raw)?],
        None => (0..workspace.roots().len())
            .map(|root| (root, None))
            .collect(),
    };
    let mut lines = Vec::new();
    for (root, dir) in &scopes {
        for entry in workspace.list_dir(*root, dir.as_ref(), depth)? {
            let shown = workspace.display(*root, &entry.path);
            lines.push(if entry.is_dir {
                format!("{shown}/")
            } else {
                shown
            });
        }
    }
    if lines.is_empty() {
        let shown = match scopes.as_slice() {
            [(root, dir)] => workspace.display_dir(*root, dir.as_ref()),
            _ => "the granted folders".to_owned(),
        };
        return Ok(ToolOutput::ok(format!(
            "{shown} is empty (or everything in it is gitignored)"
        )));
    }
    let total = lines.len();
    if total > MAX_ENTRIES {
        lines.truncate(MAX_ENTRIES);
        lines.push(format!(
            "… {} more entries; list a subfolder or use a smaller depth",
            total - MAX_ENTRIES
        ));
    }
    Ok(ToolOutput::ok(lines.join("\n")))
}

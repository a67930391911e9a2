//! The system prompt: Redline's rules, the workspace's instruction files, and
//! a budgeted view of the task's context (focus, enclosing symbol, a compact
//! workspace overview built from tree-sitter outlines rather than whole files).

use std::fmt::Write as _;

use redline_core::path::Root;
use redline_core::syntax::{self, Language, Symbol};

use crate::model::SystemBlock;
use crate::task::{Focus, root_label};

/// Bytes of workspace overview the prompt may carry.
const OVERVIEW_BUDGET: usize = 6 * 1024;
/// Bytes of focused text quoted into the prompt.
const FOCUS_BUDGET: usize = 12 * 1024;

const RULES: &str = "\
You are Redline, an agent that works on the user's files. Everything you change becomes a \
proposal the user reviews hunk by hunk; nothing reaches their files until they accept it, so \
make every edit deliberate and reviewable.

Rules:
- Use the tools to look before you change: list_dir, search, outline and read_file.
- Change files only with the editing tools (edit, apply_patch, write_file, create_file, delete, \
rename). Your later reads see your staged changes.
- Paths are relative to a granted folder. You cannot reach anything outside the granted folders.
- Keep changes minimal and focused on the request; keep the existing style.
- When a tool reports a syntax error after your edit, fix it.
- Use update_plan to share a short plan (3-7 steps) for multi-step work and to mark progress.
- When you are done, reply with a short summary of what you changed and why.";

const PLAN_FIRST: &str = "\
This task runs in plan-first mode: before changing anything, investigate as needed, then call \
update_plan with your plan. The user will approve it, change it, or cancel. Do not edit files \
until the plan is approved.";

pub struct PromptInput<'a> {
    pub roots: &'a [Root],
    pub instructions: &'a str,
    pub focus: Option<&'a Focus>,
    pub focus_text: Option<&'a str>,
    pub context_notes: &'a [String],
    pub plan_first: bool,
}

/// The system blocks, stable prefix first. The instructions block and the
/// task-context block each end a cacheable prefix.
pub fn system_blocks(input: &PromptInput<'_>) -> Vec<SystemBlock> {
    let mut rules = RULES.to_owned();
    if input.plan_first {
        rules.push_str("\n\n");
        rules.push_str(PLAN_FIRST);
    }
    let mut blocks = vec![SystemBlock {
        text: rules,
        cache: input.instructions.is_empty(),
    }];
    if !input.instructions.is_empty() {
        blocks.push(SystemBlock {
            text: format!(
                "Instructions from the workspace (follow them):\n\n{}",
                input.instructions
            ),
            cache: true,
        });
    }
    blocks.push(SystemBlock {
        text: task_context(input),
        cache: true,
    });
    blocks
}

fn task_context(input: &PromptInput<'_>) -> String {
    let mut out = String::from("Granted folders:\n");
    for (index, root) in input.roots.iter().enumerate() {
        let _ = writeln!(
            out,
            "- {} ({})",
            root_label(root.path()),
            if index == 0 {
                "default"
            } else {
                "use its name as a path prefix"
            }
        );
    }
    if let Some(focus) = input.focus {
        let _ = write!(out, "\nThe user is looking at {}", focus.path);
        if let Some((start, end)) = focus.lines {
            let _ = write!(out, ", lines {start}-{end}");
        }
        out.push('\n');
        if let Some(text) = input.focus_text {
            let language = Language::from_path(focus.path.as_str());
            if let Some(symbol) = enclosing(language, text, focus.lines) {
                let _ = writeln!(
                    out,
                    "Enclosing symbol: {:?} {} (lines {}-{})",
                    symbol.kind,
                    symbol.name,
                    symbol.start.line + 1,
                    symbol.end.line + 1
                );
            }
            if let Some((start, end)) = focus.lines {
                let selected: String = text
                    .lines()
                    .enumerate()
                    .skip(start as usize - 1)
                    .take((end - start + 1) as usize)
                    .map(|(i, line)| format!("{:>5}| {line}\n", i + 1))
                    .collect();
                let _ = write!(
                    out,
                    "Selected lines:\n{}",
                    truncate(&selected, FOCUS_BUDGET)
                );
            }
        }
    }
    if !input.context_notes.is_empty() {
        out.push_str("\nContext from the editor:\n");
        for note in input.context_notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out.push_str("\nWorkspace overview:\n");
    out.push_str(&overview(input.roots, OVERVIEW_BUDGET));
    out
}

/// The innermost symbol around the focused lines.
fn enclosing(language: Language, text: &str, lines: Option<(u32, u32)>) -> Option<Symbol> {
    let (start, end) = lines?;
    syntax::outline(language, text)
        .into_iter()
        .filter(|s| s.start.line < start as usize && s.end.line + 1 >= end as usize)
        .max_by_key(|s| s.depth)
}

/// A gitignore-aware file tree of each root, cut at `budget` bytes.
pub fn overview(roots: &[Root], budget: usize) -> String {
    let mut out = String::new();
    let mut omitted = 0usize;
    for root in roots {
        if roots.len() > 1 {
            let _ = writeln!(out, "{}/", root_label(root.path()));
        }
        let walker = ignore::WalkBuilder::new(root.path())
            .max_depth(Some(4))
            .hidden(true)
            .sort_by_file_name(|a, b| a.cmp(b))
            .build();
        for entry in walker.flatten() {
            let depth = entry.depth();
            if depth == 0 {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let line = format!(
                "{}{}{}\n",
                "  ".repeat(depth - 1 + usize::from(roots.len() > 1)),
                name,
                if is_dir { "/" } else { "" }
            );
            if out.len() + line.len() > budget {
                omitted += 1;
                continue;
            }
            out.push_str(&line);
        }
    }
    if omitted > 0 {
        let _ = writeln!(out, "… {omitted} more entries (use list_dir)");
    }
    out
}

fn truncate(text: &str, budget: usize) -> String {
    if text.len() <= budget {
        return text.to_owned();
    }
    let mut cut = budget;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n… selection truncated ({} more bytes; use read_file)\n",
        &text[..cut],
        text.len() - cut
    )
}

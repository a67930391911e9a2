//! Terminal rendering: coloured diffs and hunks, task tables.

use std::fmt::Write as _;

use redline_core::proposal::{
    ChangeKind, FileChange, FileContent, Hunk, HunkKind, HunkStatus, Proposal,
};
use redline_protocol::TaskSummary;

/// ANSI styling, off when the output is not a terminal or NO_COLOR is set.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn for_stream(is_terminal: bool) -> Style {
        Style {
            color: is_terminal && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn cyan(&self, text: &str) -> String {
        self.paint("36", text)
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// A unified diff, coloured line by line.
pub fn colored_diff(diff: &str, style: Style) -> String {
    let mut out = String::with_capacity(diff.len() + diff.len() / 8);
    for line in diff.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let painted =
            if body.starts_with("diff --git") || body.starts_with("+++") || body.starts_with("---")
            {
                style.bold(body)
            } else if body.starts_with("@@") {
                style.cyan(body)
            } else if body.starts_with('+') {
                style.green(body)
            } else if body.starts_with('-') {
                style.red(body)
            } else {
                body.to_owned()
            };
        out.push_str(&painted);
        out.push_str(newline);
    }
    out
}

/// One hunk with up to three lines of context, for interactive review.
pub fn hunk_view(change: &FileChange, hunk: &Hunk, style: Style) -> String {
    let mut out = String::new();
    let status = match hunk.status {
        HunkStatus::Pending => String::new(),
        other => format!(" [{}]", format!("{other:?}").to_lowercase()),
    };
    let _ = writeln!(
        out,
        "{}{}",
        style.bold(&format!("{} ({})", change.path, kind_label(&change.kind))),
        style.dim(&status)
    );
    match hunk.kind {
        HunkKind::Rename => {
            if let ChangeKind::Rename { from } = &change.kind {
                let _ = writeln!(
                    out,
                    "{}",
                    style.yellow(&format!("rename {from} → {}", change.path))
                );
            }
            return out;
        }
        HunkKind::Binary => {
            let size = |c: &Option<FileContent>| c.as_ref().map(|c| c.as_bytes().len());
            let _ = writeln!(
                out,
                "{}",
                style.yellow(&format!(
                    "binary file: {} → {}",
                    size(&change.old).map_or("absent".into(), |n| format!("{n} bytes")),
                    size(&change.new).map_or("deleted".into(), |n| format!("{n} bytes"))
                ))
            );
            return out;
        }
        HunkKind::Mode => {
            let mode = |m: Option<u32>| m.map_or("none".into(), |m| format!("{m:o}"));
            let _ = writeln!(
                out,
                "{}",
                style.yellow(&format!(
                    "mode {} → {}",
                    mode(change.old_mode),
                    mode(change.new_mode)
                ))
            );
            return out;
        }
        HunkKind::Text => {}
    }
    let _ = writeln!(
        out,
        "{}",
        style.cyan(&format!(
            "@@ -{},{} +{},{} @@",
            hunk.old_start + 1,
            hunk.old_lines,
            hunk.new_start + 1,
            hunk.new_lines
        ))
    );
    let old_lines: Vec<&str> = match &change.old {
        Some(FileContent::Text(text)) => text.split_inclusive('\n').collect(),
        _ => Vec::new(),
    };
    let start = hunk.old_start as usize;
    let before = start.saturating_sub(3);
    for line in old_lines.iter().take(start).skip(before) {
        push_line(&mut out, " ", line, |s| s.to_owned());
    }
    // A hunk spans its changed lines and the unchanged ones between them;
    // diff inside it so only changed lines are marked.
    let old_hunk: Vec<&str> = hunk.old_text.split_inclusive('\n').collect();
    let new_hunk: Vec<&str> = hunk.new_text.split_inclusive('\n').collect();
    let mut old_at = 0usize;
    for range in redline_core::diff::line_hunks(&hunk.old_text, &hunk.new_text, 0) {
        let (old_start, new_start) = (range.old_start as usize, range.new_start as usize);
        for line in &old_hunk[old_at.min(old_start)..old_start] {
            push_line(&mut out, " ", line, |s| s.to_owned());
        }
        for line in &old_hunk[old_start..range.old_end() as usize] {
            push_line(&mut out, "-", line, |s| style.red(s));
        }
        for line in &new_hunk[new_start..range.new_end() as usize] {
            push_line(&mut out, "+", line, |s| style.green(s));
        }
        old_at = range.old_end() as usize;
    }
    for line in old_hunk.iter().skip(old_at) {
        push_line(&mut out, " ", line, |s| s.to_owned());
    }
    let end = start + hunk.old_lines as usize;
    for line in old_lines.iter().skip(end).take(3) {
        push_line(&mut out, " ", line, |s| s.to_owned());
    }
    out
}

fn kind_label(kind: &ChangeKind) -> String {
    match kind {
        ChangeKind::Create => "Create".into(),
        ChangeKind::Modify => "Modify".into(),
        ChangeKind::Delete => "Delete".into(),
        ChangeKind::Rename { from } => format!("rename from {from:?}"),
    }
}

fn push_line(out: &mut String, marker: &str, line: &str, paint: impl Fn(&str) -> String) {
    let body = line.strip_suffix('\n').unwrap_or(line);
    out.push_str(&paint(&format!("{marker}{body}")));
    out.push('\n');
    if !line.ends_with('\n') {
        out.push_str("\\ No newline at end of file\n");
    }
}

pub fn proposal_summary(proposal: &Proposal) -> String {
    let counts = proposal.counts();
    format!(
        "{} file(s), {} hunk(s): {} pending, {} accepted, {} rejected{}",
        proposal.changes.len(),
        counts.pending + counts.accepted + counts.rejected + counts.stale,
        counts.pending,
        counts.accepted,
        counts.rejected,
        if counts.stale > 0 {
            format!(", {} stale", counts.stale)
        } else {
            String::new()
        }
    )
}

pub fn task_table(tasks: &[TaskSummary], now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<22} {:>6}  {:<18} PROMPT",
        "ID", "STATE", "AGE", "MODEL"
    );
    for task in tasks {
        let prompt: String = task
            .prompt
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        let _ = writeln!(
            out,
            "{:<18} {:<22} {:>6}  {:<18} {}",
            task.id.0,
            task.state.as_str(),
            age(now_ms - task.created_at_ms),
            task.model,
            prompt
        );
    }
    out
}

fn age(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

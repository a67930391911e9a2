//! Proposals under review in this session: which hunks are pending, where
//! each sits in the *current* text of its file, and whether an annotated
//! edit the editor applied took a hunk or not.
//!
//! Hunks are placed by core's `reanchor`: the hunk's old lines with their
//! context must occur exactly once in the current text. A hunk that cannot
//! be placed (the user edited that region since) is hidden, and accepting
//! it marks it stale: it is never applied somewhere it does not fit.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use redline_core::apply::reanchor;
use redline_core::diff::split_lines;
use redline_core::document::{Document, DocumentError, PositionEncoding};
use redline_core::proposal::{
    ChangeKind, FileChange, FileContent, Hunk, HunkId, HunkKind, HunkStatus, Proposal,
};
use redline_core::syntax::Language;
use redline_protocol::TaskId;

/// The current state of a file a change touches: the editor's copy when
/// open, else the disk; `None` when the file does not exist.
#[derive(Clone, Debug)]
pub struct Current {
    pub version: Option<i32>,
    pub document: Option<Document>,
}

impl Current {
    /// Reads `path` from disk (used for files the editor has not opened).
    pub fn from_disk(path: &Path) -> Current {
        let document = std::fs::read(path)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| Document::new(&text, Language::PlainText, 0));
        Current {
            version: None,
            document,
        }
    }
}

/// Where a hunk applies in the current text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The bytes the hunk replaces (empty for an insertion, and for file
    /// operations, which sit at the top of the file).
    pub bytes: Range<usize>,
    pub start: redline_core::document::Position,
    pub end: redline_core::document::Position,
    /// `end` without the last line break, for highlighting.
    pub display_end: redline_core::document::Position,
}

/// The host path of a change's file after the change.
pub fn new_path(proposal: &Proposal, change: &FileChange) -> PathBuf {
    root_of(proposal, change).join(change.path.as_str())
}

/// The host path the change is reviewed at: the file as it is now (the old
/// name of a rename).
pub fn review_path(proposal: &Proposal, change: &FileChange) -> PathBuf {
    root_of(proposal, change).join(change.old_path().as_str())
}

fn root_of(proposal: &Proposal, change: &FileChange) -> PathBuf {
    proposal.roots.get(change.root).cloned().unwrap_or_default()
}

/// Places the given hunks of `change` in `current`; hunks missing from the
/// result cannot be placed.
pub fn place(
    change: &FileChange,
    hunks: &[&Hunk],
    current: &Current,
    encoding: PositionEncoding,
) -> HashMap<HunkId, Placement> {
    let mut placed = HashMap::new();
    let Some(document) = &current.document else {
        // Only a creation can be placed in a file that does not exist.
        if change.kind == ChangeKind::Create {
            for hunk in hunks {
                placed.insert(hunk.id.clone(), top_of_file());
            }
        }
        return placed;
    };
    if change.kind == ChangeKind::Create {
        // The path exists now: creating it would overwrite someone's file.
        return placed;
    }
    let text_hunks: Vec<&Hunk> = hunks
        .iter()
        .copied()
        .filter(|h| h.kind == HunkKind::Text && change.kind != ChangeKind::Delete)
        .collect();
    for hunk in hunks
        .iter()
        .filter(|h| !text_hunks.iter().any(|t| t.id == h.id))
    {
        placed.insert(hunk.id.clone(), top_of_file());
    }
    if text_hunks.is_empty() {
        return placed;
    }
    let Some(FileContent::Text(old)) = &change.old else {
        return placed;
    };
    let text = document.text();
    let (moved, _stale) = reanchor(old, &text, &text_hunks);
    let mut line_starts = Vec::with_capacity(text.len() / 40 + 2);
    let mut offset = 0;
    line_starts.push(0);
    for line in split_lines(&text) {
        offset += line.len();
        line_starts.push(offset);
    }
    for hunk in moved {
        let Some(&start) = line_starts.get(hunk.old_start as usize) else {
            continue;
        };
        let end = start + hunk.old_text.len();
        if let Ok(placement) = placement(document, start..end, encoding) {
            placed.insert(hunk.id.clone(), placement);
        }
    }
    placed
}

fn top_of_file() -> Placement {
    let zero = redline_core::document::Position::new(0, 0);
    Placement {
        bytes: 0..0,
        start: zero,
        end: zero,
        display_end: zero,
    }
}

fn placement(
    document: &Document,
    bytes: Range<usize>,
    encoding: PositionEncoding,
) -> Result<Placement, DocumentError> {
    let start = document.byte_to_position(bytes.start, encoding)?;
    let end = document.byte_to_position(bytes.end, encoding)?;
    let mut trimmed = bytes.end;
    let rope = document.rope();
    if trimmed > bytes.start && rope.byte(trimmed - 1) == b'\n' {
        trimmed -= 1;
        if trimmed > bytes.start && rope.byte(trimmed - 1) == b'\r' {
            trimmed -= 1;
        }
    }
    let display_end = document.byte_to_position(trimmed, encoding)?;
    Ok(Placement {
        bytes,
        start,
        end,
        display_end,
    })
}

/// After the editor applied an annotated edit of the whole proposal (the
/// user may have unticked hunks in the preview), decides from the file's
/// contents whether `hunk` landed.
pub fn reconcile(
    change: &FileChange,
    hunk: &Hunk,
    current: &Current,
    renamed: &Current,
) -> HunkStatus {
    let exists = |c: &Current| c.document.is_some();
    match (&change.kind, hunk.kind) {
        (ChangeKind::Create, _) => status(exists(renamed)),
        (ChangeKind::Delete, _) => status(!exists(current)),
        (ChangeKind::Rename { .. }, HunkKind::Rename) => {
            status(exists(renamed) && !exists(current))
        }
        (_, HunkKind::Text) => {
            // Text hunks of a rename are edits on the new name once it moved.
            let target = if exists(renamed) && matches!(change.kind, ChangeKind::Rename { .. }) {
                renamed
            } else {
                current
            };
            let Some(document) = &target.document else {
                return HunkStatus::Stale;
            };
            let text = document.text();
            let new_side = Hunk {
                old_start: hunk.new_start,
                old_lines: hunk.new_lines,
                old_text: hunk.new_text.clone(),
                ..hunk.clone()
            };
            if let Some(FileContent::Text(new)) = &change.new
                && !reanchor(new, &text, &[&new_side]).0.is_empty()
            {
                return HunkStatus::Accepted;
            }
            if let Some(FileContent::Text(old)) = &change.old
                && !reanchor(old, &text, &[hunk]).0.is_empty()
            {
                return HunkStatus::Rejected;
            }
            HunkStatus::Stale
        }
        _ => HunkStatus::Pending,
    }
}

fn status(accepted: bool) -> HunkStatus {
    if accepted {
        HunkStatus::Accepted
    } else {
        HunkStatus::Rejected
    }
}

/// A proposal this session is reviewing.
#[derive(Clone, Debug)]
pub struct ReviewTask {
    pub proposal: Proposal,
    pub prompt: String,
}

/// A pending hunk placed in an open or on-disk file, for diagnostics,
/// quick fixes and code lenses.
#[derive(Clone, Debug)]
pub struct PlacedHunk {
    pub task: TaskId,
    pub hunk: Hunk,
    pub kind: ChangeKind,
    pub path: String,
    pub placement: Placement,
}

/// Everything under review, and where its hunks were last placed.
#[derive(Default)]
pub struct Review {
    pub tasks: BTreeMap<TaskId, ReviewTask>,
    /// Placed pending hunks per file (host path), recomputed on changes.
    pub placed: HashMap<PathBuf, Vec<PlacedHunk>>,
}

impl Review {
    /// The files with pending hunks, each with its changes (for refresh).
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<(TaskId, FileChange)>> {
        let mut files: BTreeMap<PathBuf, Vec<(TaskId, FileChange)>> = BTreeMap::new();
        for (id, task) in &self.tasks {
            for change in &task.proposal.changes {
                if change.hunks.iter().any(|h| h.status == HunkStatus::Pending) {
                    files
                        .entry(review_path(&task.proposal, change))
                        .or_default()
                        .push((id.clone(), change.clone()));
                }
            }
        }
        files
    }

    /// Replaces a task's proposal copy; drops the task when nothing is
    /// pending any more.
    pub fn update(&mut self, task: &TaskId, proposal: Proposal) {
        if proposal.counts().pending == 0 {
            self.tasks.remove(task);
        } else if let Some(entry) = self.tasks.get_mut(task) {
            entry.proposal = proposal;
        }
    }

    pub fn hunks_at(&self, path: &Path, lines: Range<u32>) -> Vec<&PlacedHunk> {
        self.placed
            .get(path)
            .into_iter()
            .flatten()
            .filter(|p| {
                let start = p.placement.start.line;
                let end = p.placement.display_end.line.max(start);
                start <= lines.end && lines.start <= end
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_core::path::RelPath;
    use redline_core::proposal::{ProposalId, StagedFile};

    fn proposal(old: &str, new: &str) -> Proposal {
        Proposal::build(
            ProposalId("p-1".into()),
            vec![PathBuf::from("/w")],
            vec![StagedFile {
                root: 0,
                path: RelPath::new("a.rs").unwrap(),
                renamed_from: None,
                before: Some(old.as_bytes().to_vec()),
                after: Some(new.as_bytes().to_vec()),
                before_mode: None,
                after_mode: None,
            }],
            None,
        )
    }

    fn current(text: &str) -> Current {
        Current {
            version: Some(1),
            document: Some(Document::new(text, Language::PlainText, 1)),
        }
    }

    /// Places every hunk of a one-file proposal in `now`; `lines` per hunk.
    fn check(old: &str, new: &str, now: &str, expect: &[Option<(u32, u32)>]) {
        let proposal = proposal(old, new);
        let change = &proposal.changes[0];
        let hunks: Vec<&Hunk> = change.hunks.iter().collect();
        let placed = place(change, &hunks, &current(now), PositionEncoding::Utf16);
        let got: Vec<Option<(u32, u32)>> = change
            .hunks
            .iter()
            .map(|h| placed.get(&h.id).map(|p| (p.start.line, p.end.line)))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn hunks_follow_the_text_or_are_withdrawn() {
        let old: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 3\n", "LINE 3\n")
            .replace("line 15\n", "LINE 15\n");
        // Unchanged text: in place.
        check(&old, &new, &old, &[Some((3, 4)), Some((15, 16))]);
        // Two lines inserted above: both move down.
        check(
            &old,
            &new,
            &format!("x\ny\n{old}"),
            &[Some((5, 6)), Some((17, 18))],
        );
        // The first hunk's line edited: it is withdrawn, the other stays.
        check(
            &old,
            &new,
            &old.replace("line 3\n", "line three\n"),
            &[None, Some((15, 16))],
        );
        // A file without a final newline.
        check("a\nb\nc", "a\nb\nC", "a\nb\nc", &[Some((2, 2))]);
    }

    #[test]
    fn reconcile_tells_accepted_from_rejected() {
        let old: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 3\n", "LINE 3\n")
            .replace("line 15\n", "LINE 15\n");
        let proposal = proposal(&old, &new);
        let change = &proposal.changes[0];
        let now = current(&old.replace("line 3\n", "LINE 3\n"));
        let got: Vec<HunkStatus> = change
            .hunks
            .iter()
            .map(|h| reconcile(change, h, &now, &now))
            .collect();
        assert_eq!(got, [HunkStatus::Accepted, HunkStatus::Rejected]);
    }
}

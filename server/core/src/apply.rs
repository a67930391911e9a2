//! Apply: the only place core writes to a user's files.
//!
//! [`Applier::apply`] writes the accepted hunks of a proposal and nothing
//! else. Before writing it compares each file with the content hash the
//! proposal was built from; when the user changed the file since, each
//! accepted hunk is re-anchored where its old text and 3 lines of context
//! still match exactly once, and marked [`HunkStatus::Stale`] (not written)
//! otherwise. Files are replaced atomically (temp file in the same
//! directory, fsync, rename, fsync of the directory) with their permission
//! bits kept, and every apply is recorded in an undo journal before its
//! first rename (see [`journal`]), so [`Applier::undo`] restores exact bytes
//! and modes and [`Applier::recover`] rolls back an apply a crash
//! interrupted: after a crash every file is entirely old or entirely new.

mod fsio;
mod journal;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::fsio::FileState;
use self::journal::{Journal, Manifest, Op, Steps};
use crate::diff::{self, CONTEXT_LINES};
use crate::path::{PathError, RelPath, Root};
use crate::proposal::{
    ChangeKind, FileChange, FileContent, Hunk, HunkId, HunkKind, HunkStatus, Proposal, ProposalId,
};

/// Why an apply, undo or recovery failed. Files are left as they were
/// unless the message says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("granted folder `{root}` of proposal {proposal} is not available: {message}")]
    RootMissing {
        proposal: ProposalId,
        root: PathBuf,
        message: String,
    },
    #[error("proposal {proposal} names root #{index}, but it has only {count} roots")]
    UnknownRoot {
        proposal: ProposalId,
        index: usize,
        count: usize,
    },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} changed while the apply was running; every file was put back as it was")]
    ChangedDuringApply { path: String },
    #[error("no apply `{0}` in the journal")]
    UnknownApply(ApplyId),
    #[error("`{0}` is not an apply id (expected `a-` followed by digits and hex)")]
    InvalidApplyId(String),
    #[error("cannot undo apply {apply_id}: it is {state}")]
    NotUndoable { apply_id: ApplyId, state: String },
    #[error(
        "cannot undo apply {apply_id}: {path} changed since it was applied \
         (undo with force to overwrite it; the current content is journaled)"
    )]
    ChangedSinceApply { apply_id: ApplyId, path: String },
    #[error("undo journal `{path}` is unusable: {message}")]
    Journal { path: PathBuf, message: String },
    #[error("apply {apply_id} failed ({cause}) and rolling it back failed too: {message}")]
    RollbackFailed {
        apply_id: ApplyId,
        cause: String,
        message: String,
    },
}

pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

/// Identifies one apply (or undo) in the journal: `a-` + 13-digit Unix
/// milliseconds + `-` + 8 hex digits, so ids sort by time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApplyId(pub String);

impl ApplyId {
    pub fn generate() -> ApplyId {
        let random = crate::proposal::random_bytes::<4>();
        ApplyId(format!(
            "a-{:013}-{}",
            journal::unix_ms(),
            hex::encode(random)
        ))
    }

    /// Validates an id given by a user (it names a directory, so nothing
    /// but `a-`, digits, lowercase hex and `-` is allowed).
    pub fn parse(raw: &str) -> Result<ApplyId> {
        let ok = raw.starts_with("a-")
            && raw.len() <= 64
            && raw[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
        if ok {
            Ok(ApplyId(raw.to_owned()))
        } else {
            Err(ApplyError::InvalidApplyId(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApplyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an apply is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyState {
    /// Backups and temp files being written; no user file touched yet.
    Preparing,
    /// Renames under way; a crash here is rolled back by `recover`.
    Committing,
    Committed,
    RolledBack,
    /// Committed, then reverted by an undo.
    Undone,
}

impl fmt::Display for ApplyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplyState::Preparing => "still being prepared",
            ApplyState::Committing => "interrupted (run recovery first)",
            ApplyState::Committed => "committed",
            ApplyState::RolledBack => "rolled back",
            ApplyState::Undone => "already undone",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FileAction {
    Created,
    Modified,
    Deleted,
    Renamed { from: RelPath },
}

/// One file an apply (or undo) changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedFile {
    /// The granted folder (canonical host path).
    pub root: PathBuf,
    pub path: RelPath,
    pub action: FileAction,
}

/// An accepted hunk that was not written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleHunk {
    pub id: HunkId,
    pub path: RelPath,
    pub reason: String,
}

impl fmt::Display for StaleHunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot apply hunk {} of {}: {}",
            self.id, self.path, self.reason
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// The journal entry to pass to [`Applier::undo`]. When `files` is
    /// empty nothing was written and nothing journaled: the id names no
    /// entry.
    pub apply_id: ApplyId,
    pub files: Vec<AppliedFile>,
    /// Accepted hunks not written because their file changed (now `Stale`).
    pub stale: Vec<HunkId>,
    /// Accepted hunks written at a new place in a file that changed.
    pub reanchored: Vec<HunkId>,
    /// Why each stale hunk was not written.
    pub stale_reasons: Vec<StaleHunk>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UndoReport {
    /// The apply that was reverted.
    pub apply_id: ApplyId,
    /// The journal entry of the undo itself.
    pub undo_id: ApplyId,
    /// Files as the undo left them (creations of the apply show as deleted).
    pub files: Vec<AppliedFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplySummary {
    pub apply_id: ApplyId,
    pub proposal_id: Option<ProposalId>,
    /// Set when this entry is an undo.
    pub undo_of: Option<ApplyId>,
    pub undone_by: Option<ApplyId>,
    pub created_unix_ms: u64,
    pub state: ApplyState,
    pub files: Vec<AppliedFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    pub apply_id: ApplyId,
    /// Root-relative paths put back to their old content.
    pub restored: Vec<String>,
    /// Paths holding neither the old nor the new content (someone wrote
    /// them after the crash); left untouched.
    pub conflicts: Vec<String>,
}

/// How [`Applier::undo_with`] treats files changed since the apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UndoOptions {
    /// Restore even files changed since the apply. Their current content
    /// is journaled by the undo, so undoing the undo brings it back.
    pub force: bool,
}

/// Knobs for [`Applier`]. The default is what production uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplierOptions {
    /// Test hook for crash tests: the process kills itself with SIGKILL
    /// right after this many durable journal steps of an apply or undo
    /// (1 = the journal written, then one per temp file, the switch to
    /// committing, one per rename/unlink, the switch to committed). Never
    /// set outside tests.
    pub crash_after_step: Option<u32>,
}

/// Applies proposals to the user's files and keeps the undo journal.
#[derive(Debug)]
pub struct Applier {
    journal_dir: PathBuf,
    options: ApplierOptions,
}

impl Applier {
    /// An applier journaling under `journal_dir` (created if missing).
    pub fn new(journal_dir: &Path) -> Result<Applier> {
        Applier::with_options(journal_dir, ApplierOptions::default())
    }

    pub fn with_options(journal_dir: &Path, options: ApplierOptions) -> Result<Applier> {
        std::fs::create_dir_all(journal_dir)
            .map_err(|e| fsio::io_error("create journal directory", journal_dir, e))?;
        Ok(Applier {
            journal_dir: journal_dir.to_path_buf(),
            options,
        })
    }

    pub fn journal_dir(&self) -> &Path {
        &self.journal_dir
    }

    fn journal(&self) -> Journal<'_> {
        Journal {
            dir: &self.journal_dir,
        }
    }

    fn steps(&self) -> Steps {
        Steps {
            crash_after: self.options.crash_after_step,
            done: 0,
        }
    }

    /// Writes the accepted hunks of `proposal`. Hunks whose file changed
    /// since the proposal was made are re-anchored or marked `Stale` in
    /// `proposal` (and not written). When nothing is left to write, nothing
    /// is written or journaled.
    pub fn apply(&self, proposal: &mut Proposal) -> Result<ApplyReport> {
        let _lock = fsio::JournalLock::acquire(&self.journal_dir)?;
        let apply_id = ApplyId::generate();
        let mut plan = Plan::default();
        let mut report = ApplyReport {
            apply_id: apply_id.clone(),
            files: Vec::new(),
            stale: Vec::new(),
            reanchored: Vec::new(),
            stale_reasons: Vec::new(),
        };
        // Changes that vacate a path go first so a creation at a path a
        // rename or deletion frees sees it free.
        let mut order: Vec<usize> = (0..proposal.changes.len())
            .filter(|&i| proposal.changes[i].has_accepted())
            .collect();
        order.sort_by_key(|&i| {
            !matches!(
                proposal.changes[i].kind,
                ChangeKind::Delete | ChangeKind::Rename { .. }
            )
        });
        let mut roots: HashMap<usize, Root> = HashMap::new();
        for index in order {
            let change = &proposal.changes[index];
            let root = match roots.get(&change.root) {
                Some(root) => root.clone(),
                None => {
                    let root = open_root(proposal, change.root)?;
                    roots.insert(change.root, root.clone());
                    root
                }
            };
            plan_change(&root, change, &mut plan, &mut report)?;
        }
        for stale in &report.stale {
            if let Some(hunk) = proposal.hunk_mut(stale) {
                hunk.status = HunkStatus::Stale;
            }
        }
        if plan.ops.is_empty() {
            return Ok(report);
        }
        let manifest = Manifest {
            version: 0,
            apply_id,
            proposal_id: Some(proposal.id.clone()),
            undo_of: None,
            undone_by: None,
            created_unix_ms: journal::unix_ms(),
            state: ApplyState::Preparing,
            files: report.files.clone(),
            entries: Vec::new(),
            created_dirs: Vec::new(),
        };
        self.journal().run(manifest, plan.ops, &mut self.steps())?;
        Ok(report)
    }

    /// Reverts apply `apply_id` exactly (bytes and modes), refusing when a
    /// file it wrote changed since. See [`Applier::undo_with`].
    pub fn undo(&self, apply_id: &ApplyId) -> Result<UndoReport> {
        self.undo_with(apply_id, UndoOptions::default())
    }

    /// Reverts apply `apply_id`. The undo is itself journaled (and listed),
    /// so a crash during it is recovered like any apply.
    pub fn undo_with(&self, apply_id: &ApplyId, options: UndoOptions) -> Result<UndoReport> {
        let apply_id = ApplyId::parse(apply_id.as_str())?;
        let _lock = fsio::JournalLock::acquire(&self.journal_dir)?;
        let journal = self.journal();
        let mut original = journal.read_manifest(&apply_id)?;
        if original.state != ApplyState::Committed || original.undone_by.is_some() {
            let state = if original.undone_by.is_some() {
                ApplyState::Undone
            } else {
                original.state
            };
            return Err(ApplyError::NotUndoable {
                apply_id,
                state: state.to_string(),
            });
        }
        let dir = journal.apply_dir(&apply_id);
        let mut ops = Vec::new();
        for entry in &original.entries {
            let current = fsio::read_state(&entry.path)?;
            if entry.is_before(current.as_ref()) {
                continue;
            }
            if !entry.is_after(current.as_ref()) && !options.force {
                return Err(ApplyError::ChangedSinceApply {
                    apply_id,
                    path: entry.display.clone(),
                });
            }
            let restored = match &entry.before {
                Some(snapshot) => Some(FileState {
                    bytes: journal::read_backup(&dir, entry, snapshot)?,
                    mode: snapshot.mode,
                }),
                None => None,
            };
            ops.push(Op {
                path: entry.path.clone(),
                display: entry.display.clone(),
                before: current,
                after: restored,
            });
        }
        let files: Vec<AppliedFile> = original.files.iter().map(invert_file).collect();
        let undo_id = ApplyId::generate();
        if !ops.is_empty() {
            let manifest = Manifest {
                version: 0,
                apply_id: undo_id.clone(),
                proposal_id: original.proposal_id.clone(),
                undo_of: Some(apply_id.clone()),
                undone_by: None,
                created_unix_ms: journal::unix_ms(),
                state: ApplyState::Preparing,
                files: files.clone(),
                entries: Vec::new(),
                created_dirs: Vec::new(),
            };
            journal.run(manifest, ops, &mut self.steps())?;
        }
        finish_undo(&journal, &mut original, &undo_id)?;
        Ok(UndoReport {
            apply_id,
            undo_id,
            files,
        })
    }

    /// Finds applies a crash interrupted and rolls them back, so every file
    /// holds its old content; also finishes the bookkeeping of an undo that
    /// was interrupted after its files were restored. Call on start.
    pub fn recover(&self) -> Result<Vec<Recovered>> {
        let _lock = fsio::JournalLock::acquire(&self.journal_dir)?;
        let journal = self.journal();
        let mut recovered = Vec::new();
        for id in journal.ids()? {
            let mut manifest = match journal.read_manifest(&id) {
                Ok(manifest) => manifest,
                // Crashed before its first manifest: no user file was touched
                // yet (temp files are written after it), only backups exist.
                Err(ApplyError::UnknownApply(_)) => {
                    let dir = journal.apply_dir(&id);
                    std::fs::remove_dir_all(&dir).map_err(|e| fsio::io_error("remove", &dir, e))?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match manifest.state {
                ApplyState::Preparing | ApplyState::Committing => {
                    let outcome = journal.roll_back(&mut manifest)?;
                    recovered.push(Recovered {
                        apply_id: id,
                        restored: outcome.restored,
                        conflicts: outcome.conflicts,
                    });
                }
                ApplyState::Committed => {
                    if let Some(target) = &manifest.undo_of {
                        let mut original = journal.read_manifest(target)?;
                        if original.undone_by.is_none() {
                            finish_undo(&journal, &mut original, &id)?;
                        }
                    }
                }
                ApplyState::RolledBack | ApplyState::Undone => {}
            }
        }
        Ok(recovered)
    }

    /// Every journaled apply and undo, newest first.
    pub fn list(&self) -> Result<Vec<ApplySummary>> {
        let journal = self.journal();
        let mut summaries = Vec::new();
        for id in journal.ids()? {
            let manifest = match journal.read_manifest(&id) {
                Ok(manifest) => manifest,
                Err(ApplyError::UnknownApply(_)) => continue,
                Err(e) => return Err(e),
            };
            summaries.push(ApplySummary {
                apply_id: manifest.apply_id,
                proposal_id: manifest.proposal_id,
                undo_of: manifest.undo_of,
                undone_by: manifest.undone_by,
                created_unix_ms: manifest.created_unix_ms,
                state: manifest.state,
                files: manifest.files,
            });
        }
        summaries.sort_by(|a, b| {
            (b.created_unix_ms, &b.apply_id).cmp(&(a.created_unix_ms, &a.apply_id))
        });
        Ok(summaries)
    }
}

/// The bookkeeping after an undo's files are restored: directories the
/// apply created go (when nothing else is in them), and the apply is
/// marked undone. Also run by `recover` when a crash came in between.
fn finish_undo(journal: &Journal<'_>, original: &mut Manifest, undo_id: &ApplyId) -> Result<()> {
    for created in original.created_dirs.iter().rev() {
        let _ = std::fs::remove_dir(created);
    }
    original.state = ApplyState::Undone;
    original.undone_by = Some(undo_id.clone());
    journal.write_manifest(original)
}

fn invert_file(file: &AppliedFile) -> AppliedFile {
    let (path, action) = match &file.action {
        FileAction::Created => (file.path.clone(), FileAction::Deleted),
        FileAction::Deleted => (file.path.clone(), FileAction::Created),
        FileAction::Modified => (file.path.clone(), FileAction::Modified),
        FileAction::Renamed { from } => (
            from.clone(),
            FileAction::Renamed {
                from: file.path.clone(),
            },
        ),
    };
    AppliedFile {
        root: file.root.clone(),
        path,
        action,
    }
}

fn open_root(proposal: &Proposal, index: usize) -> Result<Root> {
    let Some(dir) = proposal.roots.get(index) else {
        return Err(ApplyError::UnknownRoot {
            proposal: proposal.id.clone(),
            index,
            count: proposal.roots.len(),
        });
    };
    Root::new(dir).map_err(|e| ApplyError::RootMissing {
        proposal: proposal.id.clone(),
        root: dir.clone(),
        message: match e {
            PathError::Io { message, .. } => message,
            other => other.to_string(),
        },
    })
}

/// The file operations of one apply, merged per path, with a view of the
/// files as the earlier operations leave them.
#[derive(Default)]
struct Plan {
    ops: Vec<Op>,
    by_path: HashMap<PathBuf, usize>,
}

impl Plan {
    /// The file at `path` as the plan so far leaves it.
    fn read(&self, path: &Path) -> Result<Option<FileState>> {
        match self.by_path.get(path) {
            Some(&index) => Ok(self.ops[index].after.clone()),
            None => fsio::read_state(path),
        }
    }

    fn set(&mut self, path: PathBuf, display: String, after: Option<FileState>) -> Result<()> {
        if let Some(&index) = self.by_path.get(&path) {
            self.ops[index].after = after;
            return Ok(());
        }
        let before = fsio::read_state(&path)?;
        if before == after {
            return Ok(());
        }
        self.by_path.insert(path.clone(), self.ops.len());
        self.ops.push(Op {
            path,
            display,
            before,
            after,
        });
        Ok(())
    }
}

const REASON_CHANGED: &str = "file changed since the proposal was made";

fn mark_stale(report: &mut ApplyReport, change: &FileChange, hunk: &Hunk, reason: &str) {
    report.stale.push(hunk.id.clone());
    report.stale_reasons.push(StaleHunk {
        id: hunk.id.clone(),
        path: change.path.clone(),
        reason: reason.to_owned(),
    });
}

fn plan_change(
    root: &Root,
    change: &FileChange,
    plan: &mut Plan,
    report: &mut ApplyReport,
) -> Result<()> {
    let accepted: Vec<&Hunk> = change
        .hunks
        .iter()
        .filter(|h| h.status == HunkStatus::Accepted)
        .collect();
    let is_accepted = |kind: HunkKind| accepted.iter().any(|h| h.kind == kind);
    let source_rel = change.old_path();
    let source = root.resolve(source_rel)?;
    let current = plan.read(&source)?;
    let display = |rel: &RelPath| rel.to_string();
    let applied = |path: &RelPath, action: FileAction| AppliedFile {
        root: root.path().to_path_buf(),
        path: path.clone(),
        action,
    };

    match &change.kind {
        ChangeKind::Create => {
            let new = change
                .new
                .as_ref()
                .map(FileContent::as_bytes)
                .unwrap_or_default();
            match current {
                // Already there, byte for byte: nothing to do.
                Some(state) if state.bytes == new => {}
                Some(_) => {
                    for hunk in &accepted {
                        mark_stale(
                            report,
                            change,
                            hunk,
                            "a file was created at this path since the proposal was made",
                        );
                    }
                }
                None => {
                    let mode = change.new_mode.unwrap_or(0o644);
                    plan.set(
                        source,
                        display(&change.path),
                        Some(FileState {
                            bytes: new.to_vec(),
                            mode,
                        }),
                    )?;
                    report
                        .files
                        .push(applied(&change.path, FileAction::Created));
                }
            }
        }
        ChangeKind::Delete => match current {
            None => {}
            Some(state) if Some(state.hash()) == change.base => {
                plan.set(source, display(&change.path), None)?;
                report
                    .files
                    .push(applied(&change.path, FileAction::Deleted));
            }
            Some(_) => {
                for hunk in &accepted {
                    mark_stale(report, change, hunk, REASON_CHANGED);
                }
            }
        },
        ChangeKind::Modify | ChangeKind::Rename { .. } => {
            let Some(state) = current else {
                for hunk in &accepted {
                    mark_stale(report, change, hunk, "file no longer exists");
                }
                return Ok(());
            };
            let unchanged = Some(state.hash()) == change.base;
            let mut bytes = state.bytes.clone();
            if let Some(binary) = accepted.iter().find(|h| h.kind == HunkKind::Binary) {
                if unchanged {
                    bytes = change
                        .new
                        .as_ref()
                        .map(|c| c.as_bytes().to_vec())
                        .unwrap_or_default();
                } else {
                    mark_stale(report, change, binary, REASON_CHANGED);
                }
            }
            let text_hunks: Vec<&Hunk> = accepted
                .iter()
                .copied()
                .filter(|h| h.kind == HunkKind::Text)
                .collect();
            if !text_hunks.is_empty() {
                bytes =
                    apply_text(change, &state, unchanged, &text_hunks, report).into_bytes_or(bytes);
            }
            let mode = match (is_accepted(HunkKind::Mode), change.new_mode) {
                (true, Some(mode)) => mode,
                _ => state.mode,
            };
            let mut target = source.clone();
            let mut action = FileAction::Modified;
            if let (Some(rename), ChangeKind::Rename { from }) = (
                accepted.iter().find(|h| h.kind == HunkKind::Rename),
                &change.kind,
            ) {
                let destination = root.resolve(&change.path)?;
                if destination != source && plan.read(&destination)?.is_some() {
                    mark_stale(
                        report,
                        change,
                        rename,
                        "a file already exists at the new name",
                    );
                } else {
                    target = destination;
                    action = FileAction::Renamed { from: from.clone() };
                }
            }
            let after = FileState { bytes, mode };
            if target != source {
                plan.set(target, display(&change.path), Some(after))?;
                plan.set(source, display(source_rel), None)?;
                report.files.push(applied(&change.path, action));
            } else if after != state {
                plan.set(source, display(source_rel), Some(after))?;
                report.files.push(applied(source_rel, action));
            }
        }
    }
    Ok(())
}

/// The outcome of applying text hunks: new bytes, or "keep what you had".
enum TextOutcome {
    Bytes(Vec<u8>),
    Keep,
}

impl TextOutcome {
    fn into_bytes_or(self, fallback: Vec<u8>) -> Vec<u8> {
        match self {
            TextOutcome::Bytes(bytes) => bytes,
            TextOutcome::Keep => fallback,
        }
    }
}

/// Applies accepted text hunks to the current file: directly when it is
/// the proposal's base, else each hunk re-anchored by its context or
/// marked stale.
fn apply_text(
    change: &FileChange,
    state: &FileState,
    unchanged: bool,
    hunks: &[&Hunk],
    report: &mut ApplyReport,
) -> TextOutcome {
    let stale_all = |report: &mut ApplyReport, reason: &str| {
        for hunk in hunks {
            mark_stale(report, change, hunk, reason);
        }
        TextOutcome::Keep
    };
    let Some(FileContent::Text(old)) = &change.old else {
        return stale_all(report, "the proposal has no text base for this file");
    };
    let Ok(current) = std::str::from_utf8(&state.bytes) else {
        return stale_all(report, "file is no longer text");
    };
    if unchanged {
        return match diff::try_apply_hunks(current, hunks) {
            Ok(text) => TextOutcome::Bytes(text.into_bytes()),
            Err(e) => stale_all(report, &e.to_string()),
        };
    }
    let (placed, stale) = reanchor(old, current, hunks);
    for hunk in hunks {
        if stale.contains(&hunk.id) {
            mark_stale(report, change, hunk, REASON_CHANGED);
        } else {
            report.reanchored.push(hunk.id.clone());
        }
    }
    if placed.is_empty() {
        return TextOutcome::Keep;
    }
    let refs: Vec<&Hunk> = placed.iter().collect();
    match diff::try_apply_hunks(current, &refs) {
        Ok(text) => TextOutcome::Bytes(text.into_bytes()),
        Err(e) => {
            for hunk in &placed {
                report.reanchored.retain(|id| id != &hunk.id);
                mark_stale(report, change, hunk, &e.to_string());
            }
            TextOutcome::Keep
        }
    }
}

/// Finds where each hunk's old text, with its context lines from `old`,
/// appears in `current`. A hunk is placed when that block matches exactly
/// once (context cut short by the start or end of `old` must also sit at
/// the start or end of `current`); it is stale when the block is gone or
/// ambiguous, or when placed hunks would overlap. Returns copies of the
/// placed hunks with `old_start` moved, and the ids of the stale ones.
pub fn reanchor(old: &str, current: &str, hunks: &[&Hunk]) -> (Vec<Hunk>, Vec<HunkId>) {
    let old_lines = diff::split_lines(old);
    let current_lines = diff::split_lines(current);
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, line) in current_lines.iter().enumerate() {
        positions.entry(line).or_default().push(index);
    }
    let mut placed: Vec<Hunk> = Vec::new();
    let mut stale: Vec<HunkId> = Vec::new();
    for hunk in hunks {
        let start = hunk.old_start as usize;
        let end = start + hunk.old_lines as usize;
        if end > old_lines.len() || old_lines[start..end].concat() != hunk.old_text {
            stale.push(hunk.id.clone());
            continue;
        }
        let context = CONTEXT_LINES as usize;
        let pre_from = start.saturating_sub(context);
        let post_to = (end + context).min(old_lines.len());
        let block = &old_lines[pre_from..post_to];
        let at_start = start - pre_from < context;
        let at_end = post_to - end < context;
        let fits = |p: usize| {
            p + block.len() <= current_lines.len()
                && current_lines[p..p + block.len()] == *block
                && (!at_start || p == 0)
                && (!at_end || p + block.len() == current_lines.len())
        };
        let candidates: Vec<usize> = if at_start {
            vec![0]
        } else if at_end {
            current_lines
                .len()
                .checked_sub(block.len())
                .into_iter()
                .collect()
        } else {
            // Not at either edge, so the block starts with a context line.
            positions.get(block[0]).cloned().unwrap_or_default()
        };
        let matches: Vec<usize> = candidates.into_iter().filter(|&p| fits(p)).collect();
        if let [p] = matches[..] {
            let mut moved = (*hunk).clone();
            moved.old_start = (p + (start - pre_from)) as u32;
            placed.push(moved);
        } else {
            stale.push(hunk.id.clone());
        }
    }
    placed.sort_by_key(|h| (h.old_start, h.old_lines));
    let mut clashing: Vec<HunkId> = Vec::new();
    for pair in placed.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.old_start < a.old_start + a.old_lines || b.old_start == a.old_start {
            clashing.push(a.id.clone());
            clashing.push(b.id.clone());
        }
    }
    placed.retain(|h| !clashing.contains(&h.id));
    stale.extend(clashing);
    (placed, stale)
}

//! The undo journal: one directory per apply under the journal dir, holding
//! `journal.json` (what each file was and becomes) and `backup-N` (the exact
//! old bytes).
//!
//! Order of operations, which is what makes a crash harmless:
//! 1. backups written and fsynced, manifest written in state `preparing`;
//! 2. new contents written to temp files next to their targets, fsynced;
//! 3. manifest switched to `committing` — before the first rename;
//! 4. each target checked once more, then renamed into place / unlinked,
//!    directories fsynced;
//! 5. manifest switched to `committed`.
//!
//! Recovery rolls an apply found in `preparing` or `committing` back: each
//! file still holding its new bytes gets its backup back, temp files go.
//! Renames are atomic, so every file is always entirely old or entirely new.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsio::{self, FileState};
use super::{AppliedFile, ApplyError, ApplyId, ApplyState};
use crate::hash::ContentHash;
use crate::proposal::ProposalId;

pub(crate) const MANIFEST: &str = "journal.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Snapshot {
    pub hash: ContentHash,
    pub mode: u32,
    /// File name of the backup in the apply's journal directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

impl Snapshot {
    fn matches(&self, state: &FileState) -> bool {
        self.mode == state.mode && self.hash == state.hash()
    }
}

/// One path an apply touches.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    /// Resolved host path.
    pub path: PathBuf,
    /// Root-relative path for messages.
    pub display: String,
    /// `None`: the path did not exist.
    pub before: Option<Snapshot>,
    /// `None`: the apply removes the path.
    pub after: Option<Snapshot>,
    /// Where the new content is staged before the rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp: Option<PathBuf>,
}

fn matches(snapshot: Option<&Snapshot>, state: Option<&FileState>) -> bool {
    match (snapshot, state) {
        (None, None) => true,
        (Some(snapshot), Some(state)) => snapshot.matches(state),
        _ => false,
    }
}

impl Entry {
    pub fn is_before(&self, state: Option<&FileState>) -> bool {
        matches(self.before.as_ref(), state)
    }

    pub fn is_after(&self, state: Option<&FileState>) -> bool {
        matches(self.after.as_ref(), state)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub version: u32,
    pub apply_id: ApplyId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_id: Option<ProposalId>,
    /// Set on the journal of an undo: the apply it reverts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_of: Option<ApplyId>,
    /// Set on an apply once an undo reverted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_by: Option<ApplyId>,
    pub created_unix_ms: u64,
    pub state: ApplyState,
    pub files: Vec<AppliedFile>,
    pub entries: Vec<Entry>,
    /// Directories the apply created, outermost first.
    pub created_dirs: Vec<PathBuf>,
}

/// One file-level change to journal and perform.
pub(crate) struct Op {
    pub path: PathBuf,
    pub display: String,
    pub before: Option<FileState>,
    pub after: Option<FileState>,
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Fault injection for the crash tests: counts durable steps and kills the
/// process at the configured one.
pub(crate) struct Steps {
    pub crash_after: Option<u32>,
    pub done: u32,
}

impl Steps {
    pub fn step(&mut self) {
        self.done += 1;
        if self.crash_after == Some(self.done) {
            // SAFETY: raise has no memory-safety preconditions; SIGKILL ends
            // the process here, exactly like a crash or `kill -9`.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }
}

pub(crate) struct Journal<'a> {
    pub dir: &'a Path,
}

impl Journal<'_> {
    pub fn apply_dir(&self, id: &ApplyId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), ApplyError> {
        let dir = self.apply_dir(&manifest.apply_id);
        let path = dir.join(MANIFEST);
        let temp = dir.join(format!("{MANIFEST}.tmp"));
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| ApplyError::Journal {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fsio::replace_atomically(&path, &temp, &json, 0o600)
    }

    pub fn read_manifest(&self, id: &ApplyId) -> Result<Manifest, ApplyError> {
        let path = self.apply_dir(id).join(MANIFEST);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApplyError::UnknownApply(id.clone()));
            }
            Err(e) => return Err(fsio::io_error("read", &path, e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ApplyError::Journal {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if manifest.version != FORMAT_VERSION {
            return Err(ApplyError::Journal {
                path,
                message: format!("unsupported journal version {}", manifest.version),
            });
        }
        Ok(manifest)
    }

    /// Journals and performs `ops` as apply `id`; on a concurrent change it
    /// rolls back and fails, leaving every file as it was.
    pub fn run(
        &self,
        mut manifest: Manifest,
        ops: Vec<Op>,
        steps: &mut Steps,
    ) -> Result<Manifest, ApplyError> {
        let dir = self.apply_dir(&manifest.apply_id);
        fs::create_dir_all(&dir).map_err(|e| fsio::io_error("create journal", &dir, e))?;
        manifest.version = FORMAT_VERSION;
        manifest.state = ApplyState::Preparing;
        let mut after_bytes: Vec<Option<FileState>> = Vec::with_capacity(ops.len());
        for (index, op) in ops.into_iter().enumerate() {
            let before = match &op.before {
                Some(state) => {
                    let name = format!("backup-{index}");
                    fsio::write_new_synced(&dir.join(&name), &state.bytes, 0o600)?;
                    Some(Snapshot {
                        hash: state.hash(),
                        mode: state.mode,
                        backup: Some(name),
                    })
                }
                None => None,
            };
            let after = op.after.as_ref().map(|state| Snapshot {
                hash: state.hash(),
                mode: state.mode,
                backup: None,
            });
            let temp = op
                .after
                .as_ref()
                .map(|_| fsio::temp_path(&op.path, manifest.apply_id.as_str()));
            for missing in fsio::missing_dirs(&op.path) {
                if !manifest.created_dirs.contains(&missing) {
                    manifest.created_dirs.push(missing);
                }
            }
            manifest.entries.push(Entry {
                path: op.path,
                display: op.display,
                before,
                after,
                temp,
            });
            after_bytes.push(op.after);
        }
        self.write_manifest(&manifest)?;
        fsio::sync_dir(&dir)?;
        fsio::sync_dir(self.dir)?;
        steps.step();

        for created in manifest.created_dirs.clone() {
            match fs::create_dir(&created) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(self.fail(&mut manifest, fsio::io_error("create", &created, e)));
                }
            }
        }
        for (entry, after) in manifest.entries.iter().zip(&after_bytes) {
            if let (Some(temp), Some(after)) = (&entry.temp, after) {
                if let Err(e) = fsio::write_new_synced(temp, &after.bytes, after.mode) {
                    return Err(self.fail(&mut manifest, e));
                }
                steps.step();
            }
        }
        drop(after_bytes);

        // The journal is complete before the first rename.
        manifest.state = ApplyState::Committing;
        self.write_manifest(&manifest)?;
        steps.step();

        let mut dirs: Vec<PathBuf> = Vec::new();
        for index in 0..manifest.entries.len() {
            let entry = &manifest.entries[index];
            let current = fsio::read_state(&entry.path)?;
            if !entry.is_before(current.as_ref()) {
                let display = entry.display.clone();
                return Err(self.fail(
                    &mut manifest,
                    ApplyError::ChangedDuringApply { path: display },
                ));
            }
            let result = match &entry.temp {
                Some(temp) => fs::rename(temp, &entry.path)
                    .map_err(|e| fsio::io_error("rename into place", &entry.path, e)),
                None => fsio::remove_if_exists(&entry.path).map(|_| ()),
            };
            if let Err(e) = result {
                return Err(self.fail(&mut manifest, e));
            }
            let parent = fsio::parent_of(&entry.path);
            if !dirs.contains(&parent) {
                dirs.push(parent);
            }
            steps.step();
        }
        for dir in &dirs {
            fsio::sync_dir(dir)?;
        }
        manifest.state = ApplyState::Committed;
        self.write_manifest(&manifest)?;
        steps.step();
        Ok(manifest)
    }

    /// Rolls back after a failure mid-apply and returns the failure.
    fn fail(&self, manifest: &mut Manifest, error: ApplyError) -> ApplyError {
        match self.roll_back(manifest) {
            Ok(_) => error,
            Err(rollback) => ApplyError::RollbackFailed {
                apply_id: manifest.apply_id.clone(),
                cause: error.to_string(),
                message: rollback.to_string(),
            },
        }
    }

    /// Puts back every file that holds its new content, removes temp files
    /// and created directories, and marks the apply rolled back. Returns
    /// the paths restored and any file that holds neither version (left
    /// alone: someone else wrote it).
    pub fn roll_back(&self, manifest: &mut Manifest) -> Result<RollBack, ApplyError> {
        let dir = self.apply_dir(&manifest.apply_id);
        let mut outcome = RollBack::default();
        for entry in manifest.entries.iter().rev() {
            let current = fsio::read_state(&entry.path)?;
            if entry.is_before(current.as_ref()) {
                // Never renamed, or already restored.
            } else if entry.is_after(current.as_ref()) {
                restore(&dir, entry, manifest.apply_id.as_str())?;
                outcome.restored.push(entry.display.clone());
            } else {
                outcome.conflicts.push(entry.display.clone());
            }
            if let Some(temp) = &entry.temp {
                fsio::remove_if_exists(temp)?;
            }
        }
        for created in manifest.created_dirs.iter().rev() {
            // Only empty directories go; anything else in them stays.
            let _ = fs::remove_dir(created);
        }
        manifest.state = ApplyState::RolledBack;
        self.write_manifest(manifest)?;
        Ok(outcome)
    }

    pub fn ids(&self) -> Result<Vec<ApplyId>, ApplyError> {
        let mut ids = Vec::new();
        let entries = fs::read_dir(self.dir).map_err(|e| fsio::io_error("list", self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| fsio::io_error("list", self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(id) = ApplyId::parse(&name)
                && entry.path().is_dir()
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

#[derive(Debug, Default)]
pub(crate) struct RollBack {
    pub restored: Vec<String>,
    pub conflicts: Vec<String>,
}

/// Puts an entry's `before` back at its path (or removes the path when it
/// did not exist), verifying the backup against its recorded hash.
pub(crate) fn restore(dir: &Path, entry: &Entry, apply_id: &str) -> Result<(), ApplyError> {
    match &entry.before {
        None => {
            fsio::remove_if_exists(&entry.path)?;
            fsio::sync_dir(&fsio::parent_of(&entry.path))
        }
        Some(snapshot) => {
            let bytes = read_backup(dir, entry, snapshot)?;
            if let Some(parent) = entry.path.parent() {
                fs::create_dir_all(parent).map_err(|e| fsio::io_error("create", parent, e))?;
            }
            let temp = fsio::temp_path(&entry.path, &format!("{apply_id}-restore"));
            fsio::replace_atomically(&entry.path, &temp, &bytes, snapshot.mode)
        }
    }
}

pub(crate) fn read_backup(
    dir: &Path,
    entry: &Entry,
    snapshot: &Snapshot,
) -> Result<Vec<u8>, ApplyError> {
    let Some(name) = &snapshot.backup else {
        return Err(ApplyError::Journal {
            path: dir.join(MANIFEST),
            message: format!("no backup recorded for {}", entry.display),
        });
    };
    let path = dir.join(name);
    let bytes = fs::read(&path).map_err(|e| fsio::io_error("read backup", &path, e))?;
    if ContentHash::of(&bytes) != snapshot.hash {
        return Err(ApplyError::Journal {
            path,
            message: format!(
                "backup of {} does not match its recorded hash",
                entry.display
            ),
        });
    }
    Ok(bytes)
}

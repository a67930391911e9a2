//! Proposals: everything a task wants to change, held apart from the user's
//! files until each hunk is reviewed.
//!
//! A proposal is built from staged (before, after) pairs; hunks get ids
//! derived from their content so re-staging the same edit keeps its id and
//! its review status.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::hash::ContentHash;
use crate::path::RelPath;

/// Identifies a proposal (`p-` + 16 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProposalId(pub String);

/// Identifies a hunk within a proposal; derived from the file path and the
/// hunk's content, so it is stable across re-diffs of the same edit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HunkId(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HunkStatus {
    Pending,
    Accepted,
    Rejected,
    /// The file changed since staging and the hunk could not be re-anchored.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ChangeKind {
    Create,
    Modify,
    Delete,
    Rename { from: RelPath },
}

/// What a hunk stands for. Text hunks carry line ranges; a rename hunk is the
/// move itself; a binary hunk replaces (or creates/deletes) the whole file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HunkKind {
    Text,
    Rename,
    Binary,
    /// Only the permission bits change (e.g. `chmod +x`).
    Mode,
}

/// File bytes, kept as text when they are UTF-8 without NUL bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum FileContent {
    Text(String),
    Binary(#[serde(with = "crate::proposal::base64_bytes")] Vec<u8>),
}

impl FileContent {
    /// Classifies bytes: UTF-8 without NUL is text, anything else binary.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        if bytes.contains(&0) {
            return FileContent::Binary(bytes);
        }
        match String::from_utf8(bytes) {
            Ok(text) => FileContent::Text(text),
            Err(e) => FileContent::Binary(e.into_bytes()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            FileContent::Text(text) => text.as_bytes(),
            FileContent::Binary(bytes) => bytes,
        }
    }

    pub fn is_binary(&self) -> bool {
        matches!(self, FileContent::Binary(_))
    }
}

/// One reviewable change. Line numbers are 0-based; ranges are half-open
/// (`old_start .. old_start + old_lines`). `old_text`/`new_text` are the
/// exact lines removed/added, each ending in `\n` except possibly the last
/// line of a file without a trailing newline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hunk {
    pub id: HunkId,
    pub kind: HunkKind,
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    pub old_text: String,
    pub new_text: String,
    pub status: HunkStatus,
}

/// Everything a proposal changes in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    /// Index into [`Proposal::roots`].
    pub root: usize,
    /// The file's path after the change (the new path of a rename).
    pub path: RelPath,
    pub kind: ChangeKind,
    /// Hash of the file at staging time; `None` for a creation.
    pub base: Option<ContentHash>,
    /// Content at staging time; `None` for a creation.
    pub old: Option<FileContent>,
    /// Proposed content; `None` for a deletion.
    pub new: Option<FileContent>,
    /// Unix permission bits before/after (`None` when unknown or absent).
    pub old_mode: Option<u32>,
    pub new_mode: Option<u32>,
    pub hunks: Vec<Hunk>,
}

/// The input to [`Proposal::build`]: one file as the task left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedFile {
    pub root: usize,
    pub path: RelPath,
    pub renamed_from: Option<RelPath>,
    /// Bytes on disk when first staged; `None` when the task created it.
    pub before: Option<Vec<u8>>,
    /// Bytes the task wants; `None` when the task deleted it.
    pub after: Option<Vec<u8>>,
    pub before_mode: Option<u32>,
    pub after_mode: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: ProposalId,
    /// The granted folders, canonical host paths.
    pub roots: Vec<PathBuf>,
    pub changes: Vec<FileChange>,
}

/// Serde helper: binary bytes as standard base64 with padding.
pub(crate) mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in text.bytes() {
            if c == b'=' {
                break;
            }
            let v = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or_else(|| format!("invalid base64 byte `{}`", c as char))?;
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Ok(out)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode(&text).map_err(serde::de::Error::custom)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn base64_round_trips() {
            for len in 0..20 {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
                assert_eq!(super::decode(&super::encode(&bytes)).unwrap(), bytes);
            }
            assert_eq!(super::encode(b"foobar"), "Zm9vYmFy");
            assert_eq!(super::encode(b"fo"), "Zm8=");
        }
    }
}

// ---------------------------------------------------------------------------
// Behaviour

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::diff;

/// Why a proposal operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("unknown hunk {0}")]
    UnknownHunk(HunkId),
}

/// How many hunks are in each review state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub pending: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub stale: usize,
}

impl ProposalId {
    /// A fresh id: `p-` + 16 random hex digits.
    pub fn generate() -> ProposalId {
        ProposalId(format!("p-{}", hex::encode(random_bytes::<8>())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl HunkId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for HunkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HunkStatus::Pending => "pending",
            HunkStatus::Accepted => "accepted",
            HunkStatus::Rejected => "rejected",
            HunkStatus::Stale => "stale",
        })
    }
}

/// `N` unpredictable bytes without a `rand` dependency: the kernel's pool
/// when readable, else a hash of the clock, the process id and a counter
/// (unique, which is all ids need).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; N];
    if let Ok(mut file) = std::fs::File::open("/dev/urandom")
        && file.read_exact(&mut out).is_ok()
    {
        return out;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hasher = Sha256::new();
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hasher.finalize();
    for (slot, byte) in out.iter_mut().zip(digest.iter().cycle()) {
        *slot = *byte;
    }
    out
}

/// Content-derived hunk ids: `h` + 12 hex digits of a hash over where the
/// hunk lives and what it changes. Identical hunks in one file get an
/// ordinal so ids stay unique.
struct HunkIds {
    seen: HashMap<String, u32>,
}

impl HunkIds {
    fn new() -> Self {
        HunkIds {
            seen: HashMap::new(),
        }
    }

    fn next(&mut self, root: usize, path: &RelPath, kind: HunkKind, parts: &[&[u8]]) -> HunkId {
        let mut hasher = Sha256::new();
        hasher.update((root as u64).to_le_bytes());
        hasher.update(path.as_str().as_bytes());
        hasher.update([0, kind as u8]);
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let digest = hex::encode(hasher.finalize());
        let ordinal = self.seen.entry(digest.clone()).or_insert(0);
        *ordinal += 1;
        if *ordinal == 1 {
            HunkId(format!("h{}", &digest[..12]))
        } else {
            let mut again = Sha256::new();
            again.update(digest.as_bytes());
            again.update(ordinal.to_le_bytes());
            HunkId(format!("h{}", &hex::encode(again.finalize())[..12]))
        }
    }
}

fn line_count(text: &str) -> u32 {
    diff::split_lines(text).len() as u32
}

impl Proposal {
    /// Builds a proposal from staged files: one [`FileChange`] per file that
    /// actually changes, hunks grouped with 3 lines of context, ids derived
    /// from path and content, and review statuses carried over from
    /// `previous` for hunks whose id is unchanged.
    pub fn build(
        id: ProposalId,
        roots: Vec<PathBuf>,
        files: Vec<StagedFile>,
        previous: Option<&Proposal>,
    ) -> Proposal {
        let carried: HashMap<&HunkId, HunkStatus> = previous
            .map(|p| {
                p.changes
                    .iter()
                    .flat_map(|c| c.hunks.iter())
                    .map(|h| (&h.id, h.status))
                    .collect()
            })
            .unwrap_or_default();
        let mut ids = HunkIds::new();
        let mut changes: Vec<FileChange> = files
            .into_iter()
            .filter_map(|file| FileChange::from_staged(file, &mut ids))
            .collect();
        changes.sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
        for hunk in changes.iter_mut().flat_map(|c| c.hunks.iter_mut()) {
            if let Some(status) = carried.get(&hunk.id) {
                hunk.status = *status;
            }
        }
        Proposal { id, roots, changes }
    }

    /// Sets the status of each hunk in `ids`; nothing changes when any id is
    /// unknown.
    pub fn set_status(&mut self, ids: &[HunkId], status: HunkStatus) -> Result<(), ProposalError> {
        if let Some(unknown) = ids.iter().find(|id| self.hunk(id).is_none()) {
            return Err(ProposalError::UnknownHunk(unknown.clone()));
        }
        for hunk in self.changes.iter_mut().flat_map(|c| c.hunks.iter_mut()) {
            if ids.contains(&hunk.id) {
                hunk.status = status;
            }
        }
        Ok(())
    }

    /// Sets every hunk's status.
    pub fn set_all(&mut self, status: HunkStatus) {
        for hunk in self.changes.iter_mut().flat_map(|c| c.hunks.iter_mut()) {
            hunk.status = status;
        }
    }

    pub fn hunk(&self, id: &HunkId) -> Option<(&FileChange, &Hunk)> {
        self.changes
            .iter()
            .find_map(|c| c.hunks.iter().find(|h| &h.id == id).map(|h| (c, h)))
    }

    pub fn hunk_mut(&mut self, id: &HunkId) -> Option<&mut Hunk> {
        self.changes
            .iter_mut()
            .flat_map(|c| c.hunks.iter_mut())
            .find(|h| &h.id == id)
    }

    pub fn hunks(&self) -> impl Iterator<Item = (&FileChange, &Hunk)> {
        self.changes
            .iter()
            .flat_map(|c| c.hunks.iter().map(move |h| (c, h)))
    }

    pub fn counts(&self) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for (_, hunk) in self.hunks() {
            match hunk.status {
                HunkStatus::Pending => counts.pending += 1,
                HunkStatus::Accepted => counts.accepted += 1,
                HunkStatus::Rejected => counts.rejected += 1,
                HunkStatus::Stale => counts.stale += 1,
            }
        }
        counts
    }

    /// True when the proposal changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The whole proposal as a git-style unified diff (every hunk, whatever
    /// its status). With several roots each path is prefixed with its
    /// root's folder name.
    pub fn unified_diff(&self) -> String {
        let mut out = String::new();
        for change in &self.changes {
            let prefix = if self.roots.len() > 1 {
                self.roots
                    .get(change.root)
                    .and_then(|root| root.file_name())
                    .map(|name| format!("{}/", name.to_string_lossy()))
                    .unwrap_or_else(|| format!("root{}/", change.root))
            } else {
                String::new()
            };
            diff::render_file_change(change, &prefix, &mut out);
        }
        out
    }
}

impl FileChange {
    fn from_staged(file: StagedFile, ids: &mut HunkIds) -> Option<FileChange> {
        let StagedFile {
            root,
            path,
            renamed_from,
            before,
            after,
            before_mode,
            after_mode,
        } = file;
        let renamed_from = renamed_from.filter(|from| from != &path);
        let kind = match (&before, &after, &renamed_from) {
            (None, None, _) => return None,
            (None, Some(_), _) => ChangeKind::Create,
            (Some(_), None, _) => ChangeKind::Delete,
            (Some(_), Some(_), Some(from)) => ChangeKind::Rename { from: from.clone() },
            (Some(_), Some(_), None) => ChangeKind::Modify,
        };
        let mode_changed = match kind {
            ChangeKind::Modify | ChangeKind::Rename { .. } => {
                after_mode.is_some() && before_mode.is_some() && after_mode != before_mode
            }
            _ => false,
        };
        if kind == ChangeKind::Modify && before == after && !mode_changed {
            return None;
        }
        let base = before.as_deref().map(ContentHash::of);
        let old = before.map(FileContent::from_bytes);
        let new = after.map(FileContent::from_bytes);
        // Ids hash the path the change is reviewed under (the new name of a
        // rename), so the same edit keeps its id across re-staging.
        let id_path = path.clone();
        let mut hunks = Vec::new();
        let pending = |id: HunkId, kind: HunkKind| Hunk {
            id,
            kind,
            old_start: 0,
            old_lines: 0,
            new_start: 0,
            new_lines: 0,
            old_text: String::new(),
            new_text: String::new(),
            status: HunkStatus::Pending,
        };
        if let ChangeKind::Rename { from } = &kind {
            let id = ids.next(
                root,
                &id_path,
                HunkKind::Rename,
                &[from.as_str().as_bytes()],
            );
            hunks.push(pending(id, HunkKind::Rename));
        }
        if mode_changed {
            let old_bits = before_mode.unwrap_or(0).to_le_bytes();
            let new_bits = after_mode.unwrap_or(0).to_le_bytes();
            let id = ids.next(root, &id_path, HunkKind::Mode, &[&old_bits, &new_bits]);
            hunks.push(pending(id, HunkKind::Mode));
        }
        let empty = FileContent::Text(String::new());
        let old_content = old.as_ref().unwrap_or(&empty);
        let new_content = new.as_ref().unwrap_or(&empty);
        let tag: &[u8] = match kind {
            ChangeKind::Create => b"create",
            ChangeKind::Delete => b"delete",
            _ => b"modify",
        };
        match (old_content, new_content) {
            (FileContent::Text(old_text), FileContent::Text(new_text)) => {
                if matches!(kind, ChangeKind::Create | ChangeKind::Delete) {
                    // Whole-file hunk, even for an empty file, so the
                    // creation or deletion itself is reviewable.
                    let id = ids.next(
                        root,
                        &id_path,
                        HunkKind::Text,
                        &[tag, old_text.as_bytes(), new_text.as_bytes()],
                    );
                    hunks.push(Hunk {
                        old_lines: line_count(old_text),
                        new_lines: line_count(new_text),
                        old_text: old_text.clone(),
                        new_text: new_text.clone(),
                        ..pending(id, HunkKind::Text)
                    });
                } else {
                    for change in diff::text_changes(old_text, new_text) {
                        let id = ids.next(
                            root,
                            &id_path,
                            HunkKind::Text,
                            &[tag, change.old_text.as_bytes(), change.new_text.as_bytes()],
                        );
                        hunks.push(Hunk {
                            old_start: change.range.old_start,
                            old_lines: change.range.old_lines,
                            new_start: change.range.new_start,
                            new_lines: change.range.new_lines,
                            old_text: change.old_text,
                            new_text: change.new_text,
                            ..pending(id, HunkKind::Text)
                        });
                    }
                }
            }
            (old_bin, new_bin) => {
                if old_bin.as_bytes() != new_bin.as_bytes()
                    || matches!(kind, ChangeKind::Create | ChangeKind::Delete)
                {
                    let old_hash = ContentHash::of(old_bin.as_bytes()).to_hex();
                    let new_hash = ContentHash::of(new_bin.as_bytes()).to_hex();
                    let id = ids.next(
                        root,
                        &id_path,
                        HunkKind::Binary,
                        &[tag, old_hash.as_bytes(), new_hash.as_bytes()],
                    );
                    hunks.push(pending(id, HunkKind::Binary));
                }
            }
        }
        if hunks.is_empty() {
            return None;
        }
        Some(FileChange {
            root,
            path,
            kind,
            base,
            old,
            new,
            old_mode: before_mode,
            new_mode: after_mode,
            hunks,
        })
    }

    /// The path the file has before the change (the old name of a rename).
    pub fn old_path(&self) -> &RelPath {
        match &self.kind {
            ChangeKind::Rename { from } => from,
            _ => &self.path,
        }
    }

    /// True when at least one hunk is accepted.
    pub fn has_accepted(&self) -> bool {
        self.hunks.iter().any(|h| h.status == HunkStatus::Accepted)
    }

    /// This file's change as a git-style unified diff section.
    pub fn unified_diff(&self) -> String {
        let mut out = String::new();
        diff::render_file_change(self, "", &mut out);
        out
    }

    /// The file's content with only the accepted hunks applied to `old`:
    /// `None` when the result is "no file" (an accepted deletion, or a
    /// creation not accepted).
    pub fn resolved_content(&self) -> Option<FileContent> {
        let accepted = |kind: HunkKind| {
            self.hunks
                .iter()
                .any(|h| h.kind == kind && h.status == HunkStatus::Accepted)
        };
        match self.kind {
            ChangeKind::Create => {
                if accepted(HunkKind::Text) || accepted(HunkKind::Binary) {
                    self.new.clone()
                } else {
                    None
                }
            }
            ChangeKind::Delete => {
                if accepted(HunkKind::Text) || accepted(HunkKind::Binary) {
                    None
                } else {
                    self.old.clone()
                }
            }
            ChangeKind::Modify | ChangeKind::Rename { .. } => {
                if accepted(HunkKind::Binary) {
                    return self.new.clone();
                }
                match &self.old {
                    Some(FileContent::Text(old)) => {
                        let hunks: Vec<&Hunk> = self
                            .hunks
                            .iter()
                            .filter(|h| {
                                h.kind == HunkKind::Text && h.status == HunkStatus::Accepted
                            })
                            .collect();
                        Some(FileContent::Text(diff::apply_hunks(old, &hunks)))
                    }
                    other => other.clone(),
                }
            }
        }
    }
}

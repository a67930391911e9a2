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

    const ALPHABET: &[u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
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

//! Content hashes: how a proposal remembers what a file looked like when it
//! was staged, so apply can tell whether the user changed it since.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of a file's bytes, hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}

impl From<ContentHash> for String {
    fn from(value: ContentHash) -> String {
        value.to_hex()
    }
}

impl TryFrom<String> for ContentHash {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let bytes =
            hex::decode(&value).map_err(|e| format!("invalid content hash `{value}`: {e}"))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("invalid content hash `{value}`: expected 32 bytes"))?;
        Ok(ContentHash(array))
    }
}

//! The audit log: an append-only, hash-chained record of every task, tool
//! call, approval decision and apply (invariant 8).
//!
//! Entry `n` stores `hash = sha256(prev_hash ‖ canonical(n, at_ms, actor,
//! action, subject, details))` where `prev_hash` is entry `n - 1`'s hash (64
//! zeros for the first) and `canonical` is a JSON array with object keys
//! sorted, so the same entry always hashes the same regardless of how
//! `serde_json` orders maps. Editing a field, deleting a row or reordering
//! rows breaks the chain at the first bad entry, which
//! [`Store::audit_verify`] names. The chain is keyless: it catches edits to
//! the file, and someone who rewrites every later hash too is caught by
//! comparing the head [`AuditVerify::head`] with a copy kept elsewhere.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Result, Store, StoreError, limit_param, now_ms, redact};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// Who acted: `user`, `agent`, `scheduler`, a front end...
    pub actor: String,
    /// What happened: `task.start`, `tool.call`, `approval.decide`, `apply`...
    pub action: String,
    /// What it happened to: a task id, a path, a domain.
    pub subject: String,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// A verified chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerify {
    pub entries: u64,
    /// The last entry's hash ([`GENESIS_HASH`] when empty).
    pub head: String,
}

impl Store {
    /// Appends an entry; `details` is redacted first.
    pub fn audit_append(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &Value,
    ) -> Result<AuditEntry> {
        let details = redact(details);
        let details_text = canonical_json(&details);
        let at_ms = now_ms();
        // The write lock from the start: two writers must not both extend
        // the same head.
        let tx = self.immediate()?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let (seq, prev_hash) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let hash = entry_hash(
            &prev_hash,
            seq,
            at_ms,
            actor,
            action,
            subject,
            &details_text,
        );
        tx.execute(
            "INSERT INTO audit_log (seq, at_ms, actor, action, subject, details, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                seq,
                at_ms,
                actor,
                action,
                subject,
                details_text,
                prev_hash,
                hash
            ],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(AuditEntry {
            seq: seq as u64,
            at_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            details,
            prev_hash,
            hash,
        })
    }

    /// The newest `limit` entries, oldest first (as a log reads).
    pub fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, at_ms, actor, action, subject, details, prev_hash, hash FROM
                   (SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([limit_param(limit)], RawEntry::from_row)
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|raw| {
                let details = serde_json::from_str(&raw.details)
                    .map_err(|e| self.corrupt(format!("details of audit entry {}", raw.seq), e))?;
                Ok(AuditEntry {
                    seq: raw.seq as u64,
                    at_ms: raw.at_ms,
                    actor: raw.actor,
                    action: raw.action,
                    subject: raw.subject,
                    details,
                    prev_hash: raw.prev_hash,
                    hash: raw.hash,
                })
            })
            .collect()
    }

    /// Walks the whole chain; the first entry that does not fit is reported
    /// as [`StoreError::AuditTampered`].
    pub fn audit_verify(&self) -> Result<AuditVerify> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at_ms, actor, action, subject, details, prev_hash, hash FROM audit_log ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql(e))?;
        let mut expected_seq: i64 = 1;
        let mut head = GENESIS_HASH.to_owned();
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let raw = RawEntry::from_row(row).map_err(|e| StoreError::AuditTampered {
                seq: expected_seq as u64,
                reason: format!("the row cannot be read: {e}"),
            })?;
            let tampered = |reason: String| StoreError::AuditTampered {
                seq: expected_seq as u64,
                reason,
            };
            if raw.seq != expected_seq {
                return Err(if raw.seq > expected_seq {
                    tampered(format!(
                        "the entry is missing (the next stored entry is {})",
                        raw.seq
                    ))
                } else {
                    tampered(format!("found entry {} out of order", raw.seq))
                });
            }
            if raw.prev_hash != head {
                return Err(tampered(format!(
                    "its previous-hash {} does not match the hash {} of the entry before it",
                    short(&raw.prev_hash),
                    short(&head)
                )));
            }
            if serde_json::from_str::<Value>(&raw.details).is_err() {
                return Err(tampered("its details are not valid JSON".to_owned()));
            }
            let hash = entry_hash(
                &raw.prev_hash,
                raw.seq,
                raw.at_ms,
                &raw.actor,
                &raw.action,
                &raw.subject,
                &raw.details,
            );
            if hash != raw.hash {
                return Err(tampered(format!(
                    "its contents hash to {} but it records {}; a field was edited",
                    short(&hash),
                    short(&raw.hash)
                )));
            }
            head = raw.hash;
            expected_seq += 1;
        }
        Ok(AuditVerify {
            entries: (expected_seq - 1) as u64,
            head,
        })
    }
}

struct RawEntry {
    seq: i64,
    at_ms: i64,
    actor: String,
    action: String,
    subject: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl RawEntry {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
        Ok(RawEntry {
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            subject: row.get(4)?,
            details: row.get(5)?,
            prev_hash: row.get(6)?,
            hash: row.get(7)?,
        })
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// `sha256(prev_hash ‖ [seq,at_ms,actor,action,subject,details])`, hex.
/// `details` is the stored canonical JSON text.
fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> String {
    let mut preimage = String::with_capacity(prev_hash.len() + details.len() + 64);
    preimage.push_str(prev_hash);
    preimage.push('[');
    preimage.push_str(&seq.to_string());
    preimage.push(',');
    preimage.push_str(&at_ms.to_string());
    for field in [actor, action, subject] {
        preimage.push(',');
        write_json_string(field, &mut preimage);
    }
    preimage.push(',');
    preimage.push_str(details);
    preimage.push(']');
    hex::encode(Sha256::digest(preimage.as_bytes()))
}

/// JSON with object keys sorted and no whitespace: one text per value.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // Scalars have one serde_json form already.
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_json_string(text: &str, out: &mut String) {
    out.push_str(&Value::String(text.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null, "x\"y"], "c": 2.5}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":2.5,"d":[true,null,"x\"y"]},"b":1}"#
        );
    }
}

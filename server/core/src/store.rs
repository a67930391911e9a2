//! The store: one SQLite database (rusqlite, bundled SQLite) that keeps what
//! must survive a restart — tasks and their event streams, proposals with
//! the review status of every hunk, the apply journal, schedules, and the
//! audit log.
//!
//! The store takes plain data (strings, JSON values, core's proposal types)
//! so core does not depend on the engine. The engine owns one [`Store`]
//! behind a mutex; other processes (the CLI's `redline audit`, a second
//! editor) may open the same file, which WAL mode and a busy timeout allow.
//!
//! The schema is a list of migrations ([`MIGRATIONS`]) tracked by
//! `PRAGMA user_version`; a database written by a newer Redline is refused
//! rather than misread.
//!
//! The audit log (invariant 8) is append-only: triggers refuse UPDATE and
//! DELETE, and each entry carries the hash of the previous one, so an edit
//! made behind SQLite's back (or after dropping the triggers) is found by
//! [`Store::audit_verify`]. Secrets never reach the database (invariant 7):
//! event payloads, task details and audit details pass through [`redact`].

mod audit;
mod redact;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::proposal::{HunkId, HunkStatus, Proposal, ProposalId};

pub use audit::{AuditEntry, AuditVerify, GENESIS_HASH};
pub use redact::{REDACTED, redact};

/// Environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "REDLINE_DATA_DIR";

/// How long a writer waits for another connection's lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per entry; entry `i` moves `user_version` from
/// `i` to `i + 1`. Append only: never edit a released migration.
pub const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE tasks (
        id            TEXT PRIMARY KEY NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        state         TEXT NOT NULL,
        prompt        TEXT NOT NULL,
        folders       TEXT NOT NULL, -- JSON array of strings
        model         TEXT NOT NULL,
        mode          TEXT NOT NULL,
        detail        TEXT NOT NULL  -- JSON
    );
    CREATE INDEX tasks_by_created ON tasks (created_at_ms DESC);

    CREATE TABLE task_events (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        payload TEXT NOT NULL, -- JSON
        at_ms   INTEGER NOT NULL,
        PRIMARY KEY (task_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE proposals (
        id            TEXT PRIMARY KEY NOT NULL,
        task_id       TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        body          TEXT NOT NULL, -- Proposal as JSON; hunk statuses live in `hunks`
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE INDEX proposals_by_task ON proposals (task_id, updated_at_ms);

    CREATE TABLE hunks (
        proposal_id TEXT NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
        file_index  INTEGER NOT NULL,
        hunk_id     TEXT NOT NULL,
        path        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'stale')),
        PRIMARY KEY (proposal_id, file_index, hunk_id)
    ) WITHOUT ROWID;
    CREATE INDEX hunks_by_status ON hunks (status, proposal_id);

    CREATE TABLE applies (
        id           TEXT PRIMARY KEY NOT NULL,
        proposal_id  TEXT NOT NULL,
        task_id      TEXT NOT NULL,
        at_ms        INTEGER NOT NULL,
        summary      TEXT NOT NULL, -- JSON
        undone_at_ms INTEGER
    );
    CREATE INDEX applies_by_time ON applies (at_ms DESC);

    CREATE TABLE schedules (
        id          TEXT PRIMARY KEY NOT NULL,
        cron        TEXT NOT NULL,
        prompt      TEXT NOT NULL,
        folders     TEXT NOT NULL, -- JSON array of strings
        enabled     INTEGER NOT NULL,
        last_run_ms INTEGER
    );

    CREATE TABLE audit_log (
        seq       INTEGER PRIMARY KEY NOT NULL,
        at_ms     INTEGER NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        subject   TEXT NOT NULL,
        details   TEXT NOT NULL, -- canonical JSON
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot find a data directory for the store; set {DATA_DIR_ENV} to a folder Redline may write"
    )]
    NoDataDir,
    #[error("cannot create the store's folder `{path}`: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store `{path}`: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the store `{path}` has schema version {found}, newer than this Redline understands ({supported}); upgrade Redline"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot migrate the store `{path}` to schema version {version}: {source}")]
    Migrate {
        path: PathBuf,
        version: i64,
        source: rusqlite::Error,
    },
    #[error("store `{path}`: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("task `{0}` is not in the store")]
    UnknownTask(String),
    #[error("proposal `{0}` is not in the store")]
    UnknownProposal(String),
    #[error("proposal `{proposal}` has no hunk `{hunk}`")]
    UnknownHunk { proposal: String, hunk: String },
    #[error("apply `{0}` is not in the store")]
    UnknownApply(String),
    #[error("apply `{0}` was already undone")]
    AlreadyUndone(String),
    #[error("schedule `{0}` is not in the store")]
    UnknownSchedule(String),
    #[error("event {seq} of task `{task}` is already stored")]
    DuplicateEvent { task: String, seq: u64 },
    #[error("store `{path}` holds unreadable {what}: {message}")]
    Corrupt {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error("the audit log was tampered with at entry {seq}: {reason}")]
    AuditTampered { seq: u64, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `$REDLINE_DATA_DIR/redline.db`, else `<user data dir>/redline/redline.db`
/// (`~/.local/share` on Linux).
pub fn default_store_path() -> Result<PathBuf> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir).join("redline.db")),
        _ => dirs::data_dir()
            .map(|dir| dir.join("redline").join("redline.db"))
            .ok_or(StoreError::NoDataDir),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub state: String,
    pub prompt: String,
    pub folders: Vec<String>,
    pub model: String,
    pub mode: String,
    /// Router reason, usage, error, instruction files...; redacted on save.
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub seq: u64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRecord {
    pub id: String,
    pub proposal_id: ProposalId,
    pub task_id: String,
    pub at_ms: i64,
    pub summary: serde_json::Value,
    pub undone_at_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRecord {
    pub id: String,
    pub cron: String,
    pub prompt: String,
    pub folders: Vec<String>,
    pub enabled: bool,
    pub last_run_ms: Option<i64>,
}

/// A handle on the database. `Send`, not `Sync`: share it behind a mutex,
/// or open another handle on the same file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::init(conn, path.to_path_buf(), true)
    }

    /// A private database that vanishes when dropped, for tests and
    /// `--no-store` runs.
    pub fn open_in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::init(conn, path, false)
    }

    fn init(conn: Connection, path: PathBuf, wal: bool) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        if wal {
            // Readers never block the writer, and a second process can read
            // while the engine writes. A file system without shared memory
            // keeps the rollback journal; the busy timeout still serializes
            // writers there, so that is slower, not wrong.
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(open_err)?;
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        let store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let supported = MIGRATIONS.len() as i64;
        // Up to date is the common case and needs no write lock, so a
        // read-only copy of the file can still be inspected.
        if self.check_version(supported)? == supported {
            return Ok(());
        }
        // Take the write lock before re-reading so two processes opening a
        // fresh file do not both run migration 1.
        let tx = self.immediate()?;
        let found = self.check_version(supported)?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            let version = index as i64 + 1;
            let migrate_err = |source| StoreError::Migrate {
                path: self.path.clone(),
                version,
                source,
            };
            tx.execute_batch(sql).map_err(migrate_err)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(migrate_err)?;
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// The schema version, refusing one newer than `supported`.
    fn check_version(&self, supported: i64) -> Result<i64> {
        let found = self.schema_version()?;
        if found > supported {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
                supported,
            });
        }
        Ok(found)
    }

    /// Where the database lives (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| self.sql(e))
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: impl Into<String>, message: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
            message: message.to_string(),
        }
    }

    /// A transaction that holds the write lock from the start, so a
    /// read-then-write (the audit chain's head, a status check) cannot race
    /// another connection. Rolls back when dropped uncommitted.
    fn immediate(&self) -> Result<Transaction<'_>> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))
    }

    fn encode_json(&self, what: &str, value: &impl Serialize) -> Result<String> {
        serde_json::to_string(value).map_err(|e| self.corrupt(what, e))
    }

    fn parse_json<T: serde::de::DeserializeOwned>(&self, what: &str, text: &str) -> Result<T> {
        serde_json::from_str(text).map_err(|e| self.corrupt(what, e))
    }

    // ---- tasks -----------------------------------------------------------

    /// Inserts or replaces a task. `detail` is redacted.
    pub fn upsert_task(&self, task: &TaskRecord) -> Result<()> {
        let folders = self.encode_json("task folders", &task.folders)?;
        let detail = self.encode_json("task detail", &redact(&task.detail))?;
        self.conn
            .execute(
                "INSERT INTO tasks (id, created_at_ms, updated_at_ms, state, prompt, folders, model, mode, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET
                   created_at_ms = excluded.created_at_ms, updated_at_ms = excluded.updated_at_ms,
                   state = excluded.state, prompt = excluded.prompt, folders = excluded.folders,
                   model = excluded.model, mode = excluded.mode, detail = excluded.detail",
                params![
                    task.id,
                    task.created_at_ms,
                    task.updated_at_ms,
                    task.state,
                    task.prompt,
                    folders,
                    task.model,
                    task.mode,
                    detail
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"),
                [id],
                RawTask::from_row,
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        row.map(|raw| raw.into_record(self)).transpose()
    }

    /// Ids of the tasks whose id starts with `prefix`, at most `limit`.
    pub fn task_ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id FROM tasks WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map(params![prefix, limit_param(limit)], |row| row.get(0))
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.sql(e))
    }

    /// The newest `limit` tasks, newest first.
    pub fn tasks(&self, limit: usize) -> Result<Vec<TaskRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks ORDER BY created_at_ms DESC, rowid DESC LIMIT ?1"
            ))
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([limit_param(limit)], RawTask::from_row)
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter().map(|raw| raw.into_record(self)).collect()
    }

    /// Moves a task to `state`, replacing its detail (redacted).
    pub fn set_task_state(&self, id: &str, state: &str, detail: &serde_json::Value) -> Result<()> {
        let detail = self.encode_json("task detail", &redact(detail))?;
        let changed = self
            .conn
            .execute(
                "UPDATE tasks SET state = ?2, detail = ?3, updated_at_ms = ?4 WHERE id = ?1",
                params![id, state, detail, now_ms()],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(StoreError::UnknownTask(id.to_owned()));
        }
        Ok(())
    }

    // ---- events ----------------------------------------------------------

    /// Appends event `seq` of a stored task. The payload is redacted.
    pub fn append_event(
        &self,
        task_id: &str,
        seq: u64,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<()> {
        let payload = self.encode_json("event payload", &redact(payload))?;
        let seq_param = i64::try_from(seq).map_err(|e| self.corrupt("event sequence number", e))?;
        let result = self.conn.execute(
            "INSERT INTO task_events (task_id, seq, kind, payload, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![task_id, seq_param, kind, payload, now_ms()],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                Err(StoreError::DuplicateEvent {
                    task: task_id.to_owned(),
                    seq,
                })
            }
            Err(e) if constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                Err(StoreError::UnknownTask(task_id.to_owned()))
            }
            Err(e) => Err(self.sql(e)),
        }
    }

    /// The highest event sequence number of a task, 0 when it has none.
    pub fn last_event_seq(&self, task_id: &str) -> Result<u64> {
        let seq: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM task_events WHERE task_id = ?1",
                [task_id],
                |row| row.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(seq as u64)
    }

    /// A task's events in order.
    pub fn events(&self, task_id: &str) -> Result<Vec<StoredEvent>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, kind, payload, at_ms FROM task_events WHERE task_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([task_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(seq, kind, payload, at_ms)| {
                Ok(StoredEvent {
                    seq: seq as u64,
                    kind,
                    payload: self.parse_json(
                        &format!("payload of event {seq} of task `{task_id}`"),
                        &payload,
                    )?,
                    at_ms,
                })
            })
            .collect()
    }

    // ---- proposals -------------------------------------------------------

    /// Saves a proposal of a stored task, with the statuses it carries.
    pub fn save_proposal(&self, task_id: &str, proposal: &Proposal) -> Result<()> {
        let body = self.encode_json("proposal", proposal)?;
        let now = now_ms();
        let tx = self.immediate()?;
        let result = tx.execute(
            "INSERT INTO proposals (id, task_id, body, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET task_id = excluded.task_id, body = excluded.body,
               updated_at_ms = excluded.updated_at_ms",
            params![proposal.id.0, task_id, body, now],
        );
        match result {
            Ok(_) => {}
            Err(e) if constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                return Err(StoreError::UnknownTask(task_id.to_owned()));
            }
            Err(e) => return Err(self.sql(e)),
        }
        tx.execute("DELETE FROM hunks WHERE proposal_id = ?1", [&proposal.id.0])
            .map_err(|e| self.sql(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO hunks (proposal_id, file_index, hunk_id, path, status)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| self.sql(e))?;
            for (file_index, change) in proposal.changes.iter().enumerate() {
                for hunk in &change.hunks {
                    insert
                        .execute(params![
                            proposal.id.0,
                            file_index as i64,
                            hunk.id.0,
                            change.path.as_str(),
                            status_name(hunk.status)
                        ])
                        .map_err(|e| self.sql(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// A proposal with the hunk statuses last set in the store.
    pub fn load_proposal(&self, id: &ProposalId) -> Result<Option<Proposal>> {
        let body: Option<String> = self
            .conn
            .query_row("SELECT body FROM proposals WHERE id = ?1", [&id.0], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some(body) = body else { return Ok(None) };
        let mut proposal: Proposal = self.parse_json(&format!("proposal `{}`", id.0), &body)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT file_index, hunk_id, status FROM hunks WHERE proposal_id = ?1")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([&id.0], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))?;
        for (file_index, hunk_id, status) in rows {
            let status = parse_status(&status).ok_or_else(|| {
                self.corrupt(
                    format!("status of hunk `{hunk_id}`"),
                    format!("unknown status `{status}`"),
                )
            })?;
            let Some(change) = usize::try_from(file_index)
                .ok()
                .and_then(|i| proposal.changes.get_mut(i))
            else {
                continue;
            };
            for hunk in change.hunks.iter_mut().filter(|h| h.id.0 == hunk_id) {
                hunk.status = status;
            }
        }
        Ok(Some(proposal))
    }

    /// The task's most recently saved proposal.
    pub fn proposal_for_task(&self, task_id: &str) -> Result<Option<Proposal>> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM proposals WHERE task_id = ?1 ORDER BY updated_at_ms DESC, rowid DESC LIMIT 1",
                [task_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match id {
            Some(id) => self.load_proposal(&ProposalId(id)),
            None => Ok(None),
        }
    }

    /// Records review decisions; all or nothing (an unknown hunk changes
    /// nothing).
    pub fn set_hunk_statuses(
        &self,
        id: &ProposalId,
        statuses: &[(HunkId, HunkStatus)],
    ) -> Result<()> {
        let tx = self.immediate()?;
        let touched = tx
            .execute(
                "UPDATE proposals SET updated_at_ms = ?2 WHERE id = ?1",
                params![id.0, now_ms()],
            )
            .map_err(|e| self.sql(e))?;
        if touched == 0 {
            return Err(StoreError::UnknownProposal(id.0.clone()));
        }
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE hunks SET status = ?3 WHERE proposal_id = ?1 AND hunk_id = ?2",
                )
                .map_err(|e| self.sql(e))?;
            for (hunk, status) in statuses {
                let changed = update
                    .execute(params![id.0, hunk.0, status_name(*status)])
                    .map_err(|e| self.sql(e))?;
                if changed == 0 {
                    return Err(StoreError::UnknownHunk {
                        proposal: id.0.clone(),
                        hunk: hunk.0.clone(),
                    });
                }
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Proposals with at least one hunk awaiting review, oldest first, as
    /// `(task id, proposal id)`.
    pub fn pending_proposals(&self) -> Result<Vec<(String, ProposalId)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.task_id, p.id FROM proposals p
                 WHERE EXISTS (SELECT 1 FROM hunks h WHERE h.proposal_id = p.id AND h.status = 'pending')
                 ORDER BY p.updated_at_ms, p.rowid",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, ProposalId(row.get(1)?)))
        })
        .map_err(|e| self.sql(e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| self.sql(e))
    }

    // ---- applies ---------------------------------------------------------

    /// Journals an apply (the undo data itself lives with `apply`).
    pub fn record_apply(
        &self,
        apply_id: &str,
        proposal_id: &ProposalId,
        task_id: &str,
        summary: &serde_json::Value,
    ) -> Result<()> {
        let summary = self.encode_json("apply summary", summary)?;
        self.conn
            .execute(
                "INSERT INTO applies (id, proposal_id, task_id, at_ms, summary) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![apply_id, proposal_id.0, task_id, now_ms(), summary],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The newest `limit` applies, newest first, undone ones included.
    pub fn applies(&self, limit: usize) -> Result<Vec<ApplyRecord>> {
        self.query_applies(
            &format!(
                "SELECT {APPLY_COLUMNS} FROM applies ORDER BY at_ms DESC, rowid DESC LIMIT ?1"
            ),
            [limit_param(limit)],
        )
    }

    /// One apply by id, undone or not.
    pub fn apply(&self, apply_id: &str) -> Result<Option<ApplyRecord>> {
        Ok(self
            .query_applies(
                &format!("SELECT {APPLY_COLUMNS} FROM applies WHERE id = ?1"),
                [apply_id],
            )?
            .pop())
    }

    /// The newest apply not yet undone: what `redline undo` reverts.
    pub fn last_apply(&self) -> Result<Option<ApplyRecord>> {
        Ok(self
            .query_applies(
                &format!(
                    "SELECT {APPLY_COLUMNS} FROM applies WHERE undone_at_ms IS NULL ORDER BY at_ms DESC, rowid DESC LIMIT 1"
                ),
                [],
            )?
            .pop())
    }

    pub fn mark_undone(&self, apply_id: &str) -> Result<()> {
        let tx = self.immediate()?;
        let undone: Option<Option<i64>> = tx
            .query_row(
                "SELECT undone_at_ms FROM applies WHERE id = ?1",
                [apply_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match undone {
            None => return Err(StoreError::UnknownApply(apply_id.to_owned())),
            Some(Some(_)) => return Err(StoreError::AlreadyUndone(apply_id.to_owned())),
            Some(None) => {}
        }
        tx.execute(
            "UPDATE applies SET undone_at_ms = ?2 WHERE id = ?1",
            params![apply_id, now_ms()],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    fn query_applies(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<ApplyRecord>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params, |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(id, proposal_id, task_id, at_ms, summary, undone_at_ms)| {
                Ok(ApplyRecord {
                    summary: self.parse_json(&format!("summary of apply `{id}`"), &summary)?,
                    id,
                    proposal_id: ProposalId(proposal_id),
                    task_id,
                    at_ms,
                    undone_at_ms,
                })
            })
            .collect()
    }

    // ---- schedules -------------------------------------------------------

    /// Inserts or replaces a schedule.
    pub fn upsert_schedule(&self, schedule: &ScheduleRecord) -> Result<()> {
        let folders = self.encode_json("schedule folders", &schedule.folders)?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO schedules (id, cron, prompt, folders, enabled, last_run_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    schedule.id,
                    schedule.cron,
                    schedule.prompt,
                    folders,
                    schedule.enabled,
                    schedule.last_run_ms
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Every schedule, by id.
    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, cron, prompt, folders, enabled, last_run_ms FROM schedules ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, bool>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(id, cron, prompt, folders, enabled, last_run_ms)| {
                Ok(ScheduleRecord {
                    folders: self.parse_json(&format!("folders of schedule `{id}`"), &folders)?,
                    id,
                    cron,
                    prompt,
                    enabled,
                    last_run_ms,
                })
            })
            .collect()
    }

    pub fn set_schedule_last_run(&self, id: &str, at_ms: i64) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE schedules SET last_run_ms = ?2 WHERE id = ?1",
                params![id, at_ms],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(StoreError::UnknownSchedule(id.to_owned()));
        }
        Ok(())
    }

    /// Removes a schedule; true when it existed.
    pub fn delete_schedule(&self, id: &str) -> Result<bool> {
        let changed = self
            .conn
            .execute("DELETE FROM schedules WHERE id = ?1", [id])
            .map_err(|e| self.sql(e))?;
        Ok(changed > 0)
    }
}

const TASK_COLUMNS: &str =
    "id, created_at_ms, updated_at_ms, state, prompt, folders, model, mode, detail";
const APPLY_COLUMNS: &str = "id, proposal_id, task_id, at_ms, summary, undone_at_ms";

/// A task row before its JSON columns are parsed.
struct RawTask {
    id: String,
    created_at_ms: i64,
    updated_at_ms: i64,
    state: String,
    prompt: String,
    folders: String,
    model: String,
    mode: String,
    detail: String,
}

impl RawTask {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawTask> {
        Ok(RawTask {
            id: row.get(0)?,
            created_at_ms: row.get(1)?,
            updated_at_ms: row.get(2)?,
            state: row.get(3)?,
            prompt: row.get(4)?,
            folders: row.get(5)?,
            model: row.get(6)?,
            mode: row.get(7)?,
            detail: row.get(8)?,
        })
    }

    fn into_record(self, store: &Store) -> Result<TaskRecord> {
        Ok(TaskRecord {
            folders: store.parse_json(&format!("folders of task `{}`", self.id), &self.folders)?,
            detail: store.parse_json(&format!("detail of task `{}`", self.id), &self.detail)?,
            id: self.id,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            state: self.state,
            prompt: self.prompt,
            model: self.model,
            mode: self.mode,
        })
    }
}

fn status_name(status: HunkStatus) -> &'static str {
    match status {
        HunkStatus::Pending => "pending",
        HunkStatus::Accepted => "accepted",
        HunkStatus::Rejected => "rejected",
        HunkStatus::Stale => "stale",
    }
}

fn parse_status(name: &str) -> Option<HunkStatus> {
    Some(match name {
        "pending" => HunkStatus::Pending,
        "accepted" => HunkStatus::Accepted,
        "rejected" => HunkStatus::Rejected,
        "stale" => HunkStatus::Stale,
        _ => return None,
    })
}

fn constraint(error: &rusqlite::Error, extended_code: i32) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.extended_code == extended_code)
}

/// SQLite's LIMIT takes an i64; `usize::MAX` means "all".
fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

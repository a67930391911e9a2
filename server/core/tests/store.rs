//! The store against real SQLite files: migrations, persistence across a
//! restart, concurrency, redaction and the audit chain.

// `allow-unwrap-in-tests` covers `#[test]` bodies only; the helpers here are
// test code too, and a failed unwrap is the clearest test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use redline_core::path::RelPath;
use redline_core::proposal::{
    ChangeKind, FileChange, FileContent, Hunk, HunkId, HunkKind, HunkStatus, Proposal, ProposalId,
};
use redline_core::store::{
    GENESIS_HASH, MIGRATIONS, REDACTED, ScheduleRecord, Store, StoreError, TaskRecord, redact,
};
use serde_json::{Value, json};

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested/data/redline.db")
}

fn task(id: &str, created_at_ms: i64) -> TaskRecord {
    TaskRecord {
        id: id.to_owned(),
        created_at_ms,
        updated_at_ms: created_at_ms,
        state: "queued".to_owned(),
        prompt: format!("prompt of {id}"),
        folders: vec!["/home/u/project".to_owned()],
        model: "fast".to_owned(),
        mode: "direct".to_owned(),
        detail: json!({"router": "short prompt"}),
    }
}

fn hunk(id: &str, status: HunkStatus) -> Hunk {
    Hunk {
        id: HunkId(id.to_owned()),
        kind: HunkKind::Text,
        old_start: 0,
        old_lines: 1,
        new_start: 0,
        new_lines: 1,
        old_text: "old\n".to_owned(),
        new_text: "new\n".to_owned(),
        status,
    }
}

fn proposal(id: &str) -> Proposal {
    Proposal {
        id: ProposalId(id.to_owned()),
        roots: vec![PathBuf::from("/home/u/project")],
        changes: vec![
            FileChange {
                root: 0,
                path: RelPath::new("src/lib.rs").unwrap(),
                kind: ChangeKind::Modify,
                base: None,
                old: Some(FileContent::Text("old\nold\n".to_owned())),
                new: Some(FileContent::Text("new\nnew\n".to_owned())),
                old_mode: None,
                new_mode: None,
                hunks: vec![
                    hunk("h-1", HunkStatus::Pending),
                    hunk("h-2", HunkStatus::Pending),
                ],
            },
            FileChange {
                root: 0,
                path: RelPath::new("README.md").unwrap(),
                kind: ChangeKind::Create,
                base: None,
                old: None,
                new: Some(FileContent::Binary(vec![0, 1, 2])),
                old_mode: None,
                new_mode: Some(0o644),
                hunks: vec![hunk("h-3", HunkStatus::Pending)],
            },
        ],
    }
}

fn statuses(proposal: &Proposal) -> Vec<(String, HunkStatus)> {
    proposal
        .changes
        .iter()
        .flat_map(|c| c.hunks.iter().map(|h| (h.id.0.clone(), h.status)))
        .collect()
}

/// Opens the file behind the store's back, as an attacker editing it would.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn migrating_from_zero_gives_the_latest_schema_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    store.upsert_task(&task("t-1", 1)).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert_eq!(store.tasks(10).unwrap().len(), 1);

    let conn = raw(&path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|t| !t.starts_with("sqlite_"));
    assert_eq!(
        tables,
        [
            "applies",
            "audit_log",
            "hunks",
            "proposals",
            "schedules",
            "task_events",
            "tasks"
        ]
    );
}

#[test]
fn a_database_from_a_newer_redline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    drop(Store::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("upgrade Redline"), "{message}");
}

#[test]
fn tasks_round_trip_newest_first_and_change_state() {
    let store = Store::open_in_memory().unwrap();
    for (id, at) in [("t-old", 10), ("t-new", 30), ("t-mid", 20)] {
        store.upsert_task(&task(id, at)).unwrap();
    }
    let ids: Vec<String> = store.tasks(10).unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["t-new", "t-mid", "t-old"]);
    assert_eq!(store.tasks(1).unwrap().len(), 1);
    assert_eq!(store.task("t-mid").unwrap(), Some(task("t-mid", 20)));
    assert_eq!(store.task("nope").unwrap(), None);

    store
        .set_task_state(
            "t-mid",
            "failed",
            &json!({"error": "model said no", "api_key": "sk-ant-abcdefghijklmnop"}),
        )
        .unwrap();
    let got = store.task("t-mid").unwrap().unwrap();
    assert_eq!(got.state, "failed");
    assert_eq!(
        got.detail,
        json!({"error": "model said no", "api_key": REDACTED})
    );
    assert!(got.updated_at_ms >= 20);
    let err = store
        .set_task_state("nope", "failed", &json!({}))
        .unwrap_err();
    assert_eq!(err.to_string(), "task `nope` is not in the store");
}

#[test]
fn events_are_ordered_unique_and_redacted() {
    let store = Store::open_in_memory().unwrap();
    store.upsert_task(&task("t-1", 1)).unwrap();
    store
        .append_event(
            "t-1",
            2,
            "tool.result",
            &json!({"text": "key is sk-ant-api03-abcdefghijKLMNOP_123 ok"}),
        )
        .unwrap();
    store
        .append_event(
            "t-1",
            1,
            "usage",
            &json!({"input_tokens": 12, "output_tokens": 3}),
        )
        .unwrap();
    let events = store.events("t-1").unwrap();
    let got: Vec<(u64, &str, &Value)> = events
        .iter()
        .map(|e| (e.seq, e.kind.as_str(), &e.payload))
        .collect();
    assert_eq!(
        got,
        [
            (1, "usage", &json!({"input_tokens": 12, "output_tokens": 3})),
            (2, "tool.result", &json!({"text": "key is [redacted] ok"})),
        ]
    );
    let err = store
        .append_event("t-1", 2, "again", &json!(null))
        .unwrap_err();
    assert_eq!(err.to_string(), "event 2 of task `t-1` is already stored");
    let err = store
        .append_event("ghost", 1, "x", &json!(null))
        .unwrap_err();
    assert_eq!(err.to_string(), "task `ghost` is not in the store");
}

#[test]
fn proposals_and_review_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let id = ProposalId("p-0123456789abcdef".to_owned());
    {
        let store = Store::open(&path).unwrap();
        store.upsert_task(&task("t-1", 1)).unwrap();
        store.save_proposal("t-1", &proposal(&id.0)).unwrap();
        store
            .set_hunk_statuses(
                &id,
                &[
                    (HunkId("h-1".into()), HunkStatus::Accepted),
                    (HunkId("h-3".into()), HunkStatus::Rejected),
                ],
            )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let loaded = store.load_proposal(&id).unwrap().unwrap();
    assert_eq!(
        statuses(&loaded),
        [
            ("h-1".to_owned(), HunkStatus::Accepted),
            ("h-2".to_owned(), HunkStatus::Pending),
            ("h-3".to_owned(), HunkStatus::Rejected),
        ]
    );
    // Everything but the statuses is exactly what was saved.
    let mut expected = proposal(&id.0);
    expected.changes[0].hunks[0].status = HunkStatus::Accepted;
    expected.changes[1].hunks[0].status = HunkStatus::Rejected;
    assert_eq!(loaded, expected);
    assert_eq!(store.proposal_for_task("t-1").unwrap(), Some(expected));
    assert_eq!(
        store.pending_proposals().unwrap(),
        [("t-1".to_owned(), id.clone())]
    );

    store
        .set_hunk_statuses(&id, &[(HunkId("h-2".into()), HunkStatus::Accepted)])
        .unwrap();
    assert_eq!(store.pending_proposals().unwrap(), []);
}

#[test]
fn saving_again_replaces_the_proposal_and_its_statuses() {
    let store = Store::open_in_memory().unwrap();
    store.upsert_task(&task("t-1", 1)).unwrap();
    let mut p = proposal("p-1");
    store.save_proposal("t-1", &p).unwrap();
    // Re-staged: one hunk gone, one already decided by the caller.
    p.changes[0].hunks.remove(1);
    p.changes[0].hunks[0].status = HunkStatus::Stale;
    store.save_proposal("t-1", &p).unwrap();
    let loaded = store.load_proposal(&p.id).unwrap().unwrap();
    assert_eq!(
        statuses(&loaded),
        [
            ("h-1".to_owned(), HunkStatus::Stale),
            ("h-3".to_owned(), HunkStatus::Pending)
        ]
    );
    let err = store
        .set_hunk_statuses(&p.id, &[(HunkId("h-2".into()), HunkStatus::Accepted)])
        .unwrap_err();
    assert_eq!(err.to_string(), "proposal `p-1` has no hunk `h-2`");
}

#[test]
fn proposal_errors_name_what_is_missing() {
    let store = Store::open_in_memory().unwrap();
    let err = store.save_proposal("ghost", &proposal("p-1")).unwrap_err();
    assert_eq!(err.to_string(), "task `ghost` is not in the store");
    let err = store
        .set_hunk_statuses(&ProposalId("p-9".into()), &[])
        .unwrap_err();
    assert_eq!(err.to_string(), "proposal `p-9` is not in the store");
    assert_eq!(
        store.load_proposal(&ProposalId("p-9".into())).unwrap(),
        None
    );
    assert_eq!(store.proposal_for_task("ghost").unwrap(), None);
}

#[test]
fn a_failed_status_update_changes_nothing() {
    let store = Store::open_in_memory().unwrap();
    store.upsert_task(&task("t-1", 1)).unwrap();
    let p = proposal("p-1");
    store.save_proposal("t-1", &p).unwrap();
    store
        .set_hunk_statuses(
            &p.id,
            &[
                (HunkId("h-1".into()), HunkStatus::Accepted),
                (HunkId("nope".into()), HunkStatus::Accepted),
            ],
        )
        .unwrap_err();
    let loaded = store.load_proposal(&p.id).unwrap().unwrap();
    assert!(
        statuses(&loaded)
            .iter()
            .all(|(_, s)| *s == HunkStatus::Pending)
    );
}

#[test]
fn applies_journal_and_undo() {
    let store = Store::open_in_memory().unwrap();
    let p1 = ProposalId("p-1".into());
    store
        .record_apply("a-1", &p1, "t-1", &json!({"files": 2}))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    store
        .record_apply("a-2", &p1, "t-1", &json!({"files": 1}))
        .unwrap();
    assert_eq!(store.last_apply().unwrap().unwrap().id, "a-2");
    store.mark_undone("a-2").unwrap();
    let last = store.last_apply().unwrap().unwrap();
    assert_eq!(
        (last.id.as_str(), &last.summary, last.undone_at_ms),
        ("a-1", &json!({"files": 2}), None)
    );
    let all = store.applies(10).unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a-2", "a-1"]
    );
    assert!(all[0].undone_at_ms.is_some());
    assert_eq!(
        store.mark_undone("a-2").unwrap_err().to_string(),
        "apply `a-2` was already undone"
    );
    assert_eq!(
        store.mark_undone("a-9").unwrap_err().to_string(),
        "apply `a-9` is not in the store"
    );
    store.mark_undone("a-1").unwrap();
    assert_eq!(store.last_apply().unwrap(), None);
}

#[test]
fn schedules_insert_and_list() {
    let store = Store::open_in_memory().unwrap();
    let weekly = ScheduleRecord {
        id: "s-weekly".into(),
        cron: "0 9 * * MON".into(),
        prompt: "weekly report".into(),
        folders: vec!["/home/u/reports".into()],
        enabled: true,
        last_run_ms: None,
    };
    store.upsert_schedule(&weekly).unwrap();
    store.set_schedule_last_run("s-weekly", 42).unwrap();
    assert_eq!(
        store.schedules().unwrap(),
        [ScheduleRecord {
            last_run_ms: Some(42),
            ..weekly
        }]
    );
    let err = store.set_schedule_last_run("s-none", 1).unwrap_err();
    assert_eq!(err.to_string(), "schedule `s-none` is not in the store");
    assert!(store.delete_schedule("s-weekly").unwrap());
    assert!(!store.delete_schedule("s-weekly").unwrap());
    assert_eq!(store.schedules().unwrap(), []);
}

#[test]
fn two_handles_on_one_file_from_two_threads_both_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    // Both threads open a fresh file: only one may run the migrations.
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Store::open(&path).unwrap();
                store.upsert_task(&task("t-1", 1)).unwrap();
                for i in 0..50u64 {
                    store
                        .append_event("t-1", writer * 1000 + i, "tick", &json!({"i": i}))
                        .unwrap();
                    store
                        .audit_append(&format!("writer-{writer}"), "tick", "t-1", &json!({"i": i}))
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.events("t-1").unwrap().len(), 100);
    // Concurrent appends still form one unbroken chain.
    assert_eq!(store.audit_verify().unwrap().entries, 100);
}

#[test]
fn store_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
}

#[test]
fn audit_chain_links_entries_and_redacts() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.audit_verify().unwrap().head, GENESIS_HASH);
    let first = store
        .audit_append("user", "task.start", "t-1", &json!({"prompt": "hi"}))
        .unwrap();
    let second = store
        .audit_append(
            "agent",
            "tool.call",
            "t-1",
            &json!({"headers": {"Authorization": "Bearer abcdefghijkl"}}),
        )
        .unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
    assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
    assert_eq!(
        second.details,
        json!({"headers": {"Authorization": REDACTED}})
    );
    assert_eq!(store.audit_entries(10).unwrap(), [first, second.clone()]);
    assert_eq!(
        store.audit_entries(1).unwrap(),
        std::slice::from_ref(&second)
    );
    let verified = store.audit_verify().unwrap();
    assert_eq!((verified.entries, verified.head), (2, second.hash));
}

/// A store file with five audit entries, and its path.
fn audited_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).unwrap();
    for i in 1..=5 {
        store
            .audit_append("agent", "tool.call", &format!("t-{i}"), &json!({"n": i}))
            .unwrap();
    }
    assert_eq!(store.audit_verify().unwrap().entries, 5);
    (dir, path)
}

/// Runs `attack` on a raw connection with the append-only triggers dropped,
/// then reports what verify says.
fn tamper(attack: &str) -> String {
    let (_dir, path) = audited_store();
    let conn = raw(&path);
    conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    conn.execute_batch(attack).unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    match store.audit_verify() {
        Ok(v) => format!("verified {} entries", v.entries),
        Err(e @ StoreError::AuditTampered { .. }) => {
            // Hashes differ per run (timestamps); keep the message's shape.
            let text = e.to_string();
            text.split(" hash to ")
                .next()
                .unwrap()
                .split(" previous-hash ")
                .next()
                .unwrap()
                .to_owned()
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn tampering_with_one_audit_row_is_detected_by_verify() {
    let check = |attack: &str, expect: &str| assert_eq!(tamper(attack), expect, "{attack}");
    check("SELECT 1", "verified 5 entries");
    check(
        "UPDATE audit_log SET subject = 't-x' WHERE seq = 3",
        "the audit log was tampered with at entry 3: its contents",
    );
    check(
        "UPDATE audit_log SET details = '{\"n\":30}' WHERE seq = 3",
        "the audit log was tampered with at entry 3: its contents",
    );
    check(
        "UPDATE audit_log SET at_ms = at_ms + 1 WHERE seq = 1",
        "the audit log was tampered with at entry 1: its contents",
    );
    check(
        "UPDATE audit_log SET actor = 'user' WHERE seq = 5",
        "the audit log was tampered with at entry 5: its contents",
    );
    check(
        "DELETE FROM audit_log WHERE seq = 2",
        "the audit log was tampered with at entry 2: the entry is missing (the next stored entry is 3)",
    );
    // Renumbering to close the gap breaks the hash link instead.
    check(
        "DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2",
        "the audit log was tampered with at entry 2: its",
    );
    // Swapping two rows' positions.
    check(
        "UPDATE audit_log SET seq = 100 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 100",
        "the audit log was tampered with at entry 2: its",
    );
    // Copying another row's hash onto an edited row.
    check(
        "UPDATE audit_log SET hash = (SELECT hash FROM audit_log WHERE seq = 4) WHERE seq = 3",
        "the audit log was tampered with at entry 3: its contents",
    );
    check(
        "UPDATE audit_log SET details = 'not json' WHERE seq = 4",
        "the audit log was tampered with at entry 4: its details are not valid JSON",
    );
}

#[test]
fn an_edit_that_rehashes_its_own_row_breaks_the_next_link() {
    use sha2::Digest;
    let (_dir, path) = audited_store();
    let conn = raw(&path);
    conn.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    let (at_ms, prev_hash): (i64, String) = conn
        .query_row(
            "SELECT at_ms, prev_hash FROM audit_log WHERE seq = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // The documented preimage: prev_hash ‖ [seq,at_ms,actor,action,subject,details].
    let preimage = format!(r#"{prev_hash}[3,{at_ms},"agent","tool.call","t-3",{{"n":300}}]"#);
    let hash = hex::encode(sha2::Sha256::digest(preimage.as_bytes()));
    conn.execute(
        "UPDATE audit_log SET details = '{\"n\":300}', hash = ?1 WHERE seq = 3",
        [&hash],
    )
    .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap().audit_verify().unwrap_err();
    assert!(
        matches!(err, StoreError::AuditTampered { seq: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("does not match the hash"), "{err}");
}

#[test]
fn audit_rows_cannot_be_updated_or_deleted_through_sqlite() {
    let (_dir, path) = audited_store();
    let conn = raw(&path);
    for attack in [
        "UPDATE audit_log SET subject = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 5",
    ] {
        let err = conn.execute(attack, []).unwrap_err();
        assert!(
            err.to_string().contains("the audit log is append-only"),
            "{attack}: {err}"
        );
    }
}

#[test]
fn redact_masks_secret_keys_and_key_shaped_strings() {
    let check = |input: Value, expect: Value| assert_eq!(redact(&input), expect, "{input}");
    check(
        json!({"api_key": "abc", "X-Api-Key": "abc", "token": 5, "accessToken": "t", "password": "p",
               "client_secret": {"nested": true}, "authorization": "Basic Zm9v", "empty_token": ""}),
        json!({"api_key": REDACTED, "X-Api-Key": REDACTED, "token": REDACTED, "accessToken": REDACTED,
               "password": REDACTED, "client_secret": REDACTED, "authorization": REDACTED, "empty_token": ""}),
    );
    check(
        json!({"usage": {"input_tokens": 10, "max_tokens": 20}, "path": "src/sk-short.rs"}),
        json!({"usage": {"input_tokens": 10, "max_tokens": 20}, "path": "src/sk-short.rs"}),
    );
    check(
        json!([
            "export ANTHROPIC_API_KEY=sk-ant-api03-AbCdEf0123456789_-xyz",
            "sk-proj-abcdefghijklmnopqrst done"
        ]),
        json!(["export ANTHROPIC_API_KEY=[redacted]", "[redacted] done"]),
    );
    check(
        json!("curl -H 'Authorization: Bearer eyJhbGciOi.J9abc' https://x"),
        json!("curl -H 'Authorization: Bearer [redacted]' https://x"),
    );
    check(
        json!("gh ghp_0123456789abcdefghijABCD and AKIAIOSFODNN7EXAMPLE and xoxb-1234567890-abc"),
        json!("gh [redacted] and [redacted] and [redacted]"),
    );
    check(
        json!("task-sk-1234567890123456789 is an id"),
        json!("task-sk-1234567890123456789 is an id"),
    );
    check(
        json!("naïve — sk-ant-abcdefghijklmno ✓"),
        json!("naïve — [redacted] ✓"),
    );
}

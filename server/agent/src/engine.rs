//! The `Engine`: the one API every front end calls.
//!
//! It starts tasks on a bounded queue, runs the agent loop for each (see
//! `agent_loop`), keeps each task's ordered event stream for subscribers,
//! persists tasks, events and proposals in the store, and applies or undoes
//! reviewed proposals through core's `Applier`. Front ends translate their
//! wire protocol to these calls and nothing more.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use redline_core::apply::{Applier, ApplyId, ApplyReport, UndoReport};
use redline_core::proposal::{HunkId, HunkStatus, Proposal, ProposalId};
use redline_core::store::{Store, TaskRecord};
use redline_protocol::{
    ApprovalDecision, PlanDecision, TaskEvent, TaskEventKind, TaskId, TaskState, TaskSummary,
};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::agent_loop::{self, TaskSetup};
use crate::config::Config;
use crate::model::ModelClient;
use crate::router::{self, RouteInput};
use crate::task::{self, TaskSpec, TaskSpecError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Spec(#[from] TaskSpecError),
    #[error(transparent)]
    UnknownModel(#[from] router::UnknownModel),
    #[error("no task `{0}`")]
    UnknownTask(String),
    #[error("task {id} is {state}, not {expected}")]
    WrongState {
        id: String,
        state: String,
        expected: String,
    },
    #[error("task {0} has no proposal")]
    NoProposal(String),
    #[error("task {task} has no approval request `{approval}`")]
    UnknownApproval { task: String, approval: String },
    #[error(transparent)]
    Proposal(#[from] redline_core::proposal::ProposalError),
    #[error(transparent)]
    Apply(#[from] redline_core::apply::ApplyError),
    #[error(transparent)]
    Store(#[from] redline_core::store::StoreError),
    #[error("nothing to undo: no apply has been recorded")]
    NothingToUndo,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What an engine is built from. The model (and later the sandbox) are trait
/// objects so tests and front ends choose real or scripted ones.
pub struct EngineOptions {
    pub config: Config,
    pub store: Store,
    pub journal_dir: PathBuf,
    pub model: Arc<dyn ModelClient>,
    pub sandbox: Option<Arc<dyn redline_vm::Sandbox>>,
    /// The user-level instruction file, if any.
    pub global_instructions: Option<PathBuf>,
}

/// A handle to the engine; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    store: Mutex<Store>,
    applier: Applier,
    pub(crate) model: Arc<dyn ModelClient>,
    pub(crate) sandbox: Option<Arc<dyn redline_vm::Sandbox>>,
    pub(crate) global_instructions: Option<PathBuf>,
    queue: Arc<Semaphore>,
    live: Mutex<HashMap<TaskId, Arc<LiveTask>>>,
}

/// A task that is running (or queued) in this process.
pub(crate) struct LiveTask {
    pub(crate) id: TaskId,
    pub(crate) cancel: CancellationToken,
    state: watch::Sender<TaskState>,
    /// The task record's `detail` (router reason, usage, error, …), kept
    /// here so updates write through without re-reading the record.
    detail: Mutex<serde_json::Value>,
    log: Mutex<EventLog>,
    pub(crate) plan_decision: Mutex<Option<oneshot::Sender<PlanDecision>>>,
    pub(crate) approvals: Mutex<HashMap<String, oneshot::Sender<ApprovalDecision>>>,
}

#[derive(Default)]
struct EventLog {
    next_seq: u64,
    history: Vec<TaskEvent>,
    subscribers: Vec<mpsc::UnboundedSender<TaskEvent>>,
}

/// Past events plus a live feed; the feed ends when the task finishes.
pub struct TaskSubscription {
    pub history: Vec<TaskEvent>,
    pub events: mpsc::UnboundedReceiver<TaskEvent>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere already failed that task; the
    // data (event log, store handle) is still consistent for everyone else.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    pub fn new(options: EngineOptions) -> Result<Engine> {
        let applier = Applier::new(&options.journal_dir)?;
        // Finish or roll back any apply a crash interrupted, before anything
        // else reads the user's files.
        applier.recover()?;
        let concurrency = options.config.concurrency.max(1);
        Ok(Engine {
            inner: Arc::new(Inner {
                config: options.config,
                store: Mutex::new(options.store),
                applier,
                model: options.model,
                sandbox: options.sandbox,
                global_instructions: options.global_instructions,
                queue: Arc::new(Semaphore::new(concurrency)),
                live: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Validates the request, queues the task and returns its id at once.
    pub fn start_task(&self, spec: TaskSpec) -> Result<TaskId> {
        let (roots, focus) = task::validate(&spec)?;
        let choice = router::route(
            &self.inner.config,
            &spec.model,
            &RouteInput {
                prompt: &spec.prompt,
                focus_lines: focus
                    .as_ref()
                    .and_then(|f| f.lines)
                    .map(|(start, end)| (end - start + 1) as usize),
                folders: roots.len(),
            },
        )?;
        let id = TaskId(format!("t-{:016x}", rand::random::<u64>()));
        let now = now_ms();
        let record = TaskRecord {
            id: id.0.clone(),
            created_at_ms: now,
            updated_at_ms: now,
            state: TaskState::Queued.as_str().to_owned(),
            prompt: spec.prompt.clone(),
            folders: roots
                .iter()
                .map(|r| r.path().display().to_string())
                .collect(),
            model: choice.model.clone(),
            mode: serde_json::to_value(spec.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            detail: json!({ "tier": choice.tier, "routerReason": choice.reason }),
        };
        self.store()?.upsert_task(&record)?;
        self.audit(
            "user",
            "task.start",
            &id.0,
            &json!({ "prompt": spec.prompt, "folders": record.folders, "model": choice.model }),
        );
        let (state, _) = watch::channel(TaskState::Queued);
        let live = Arc::new(LiveTask {
            id: id.clone(),
            cancel: CancellationToken::new(),
            state,
            detail: Mutex::new(record.detail.clone()),
            log: Mutex::new(EventLog {
                next_seq: 1,
                ..EventLog::default()
            }),
            plan_decision: Mutex::new(None),
            approvals: Mutex::new(HashMap::new()),
        });
        lock(&self.inner.live).insert(id.clone(), live.clone());
        let context = TaskContext {
            inner: self.inner.clone(),
            task: live,
        };
        context.emit(TaskEventKind::StateChanged {
            state: TaskState::Queued,
            detail: None,
        });
        context.emit(TaskEventKind::ModelChosen {
            model: choice.model.clone(),
            tier: choice.tier,
            reason: choice.reason.clone(),
        });
        let setup = TaskSetup {
            spec,
            roots,
            focus,
            model: choice.model,
        };
        tokio::spawn(run_task(context, setup));
        Ok(id)
    }

    /// Cancels a live task; a no-op for a finished one.
    pub fn cancel(&self, id: &TaskId) -> Result<()> {
        match self.live(id) {
            Some(task) => {
                task.cancel.cancel();
                Ok(())
            }
            None => self.summary(id).map(|_| ()),
        }
    }

    /// Answers a plan waiting for approval.
    pub fn decide_plan(&self, id: &TaskId, decision: PlanDecision) -> Result<()> {
        let task = self
            .live(id)
            .ok_or_else(|| self.not_live(id, "awaiting-plan-approval"))?;
        let sender = lock(&task.plan_decision).take();
        match sender {
            Some(sender) => {
                self.audit(
                    "user",
                    "plan.decide",
                    &id.0,
                    &json!({ "decision": decision }),
                );
                sender
                    .send(decision)
                    .map_err(|_| self.not_live(id, "awaiting-plan-approval"))
            }
            None => Err(self.not_live(id, "awaiting-plan-approval")),
        }
    }

    /// Answers an approval request.
    pub fn answer_approval(
        &self,
        id: &TaskId,
        approval: &str,
        decision: ApprovalDecision,
    ) -> Result<()> {
        let task = self
            .live(id)
            .ok_or_else(|| self.not_live(id, "awaiting-approval"))?;
        let sender = lock(&task.approvals).remove(approval);
        let sender = sender.ok_or_else(|| EngineError::UnknownApproval {
            task: id.0.clone(),
            approval: approval.to_owned(),
        })?;
        self.audit(
            "user",
            "approval.answer",
            &id.0,
            &json!({ "approval": approval, "decision": decision }),
        );
        sender
            .send(decision)
            .map_err(|_| self.not_live(id, "awaiting-approval"))
    }

    /// Past events and, for a live task, the feed of new ones.
    pub fn subscribe(&self, id: &TaskId) -> Result<TaskSubscription> {
        let (sender, events) = mpsc::unbounded_channel();
        if let Some(task) = self.live(id) {
            let mut log = lock(&task.log);
            let history = log.history.clone();
            log.subscribers.push(sender);
            return Ok(TaskSubscription { history, events });
        }
        self.summary(id)?;
        let history = self
            .store()?
            .events(&id.0)?
            .into_iter()
            .filter_map(|stored| {
                let kind: TaskEventKind = serde_json::from_value(stored.payload).ok()?;
                Some(TaskEvent {
                    task_id: id.clone(),
                    seq: stored.seq,
                    at_ms: stored.at_ms,
                    kind,
                })
            })
            .collect();
        drop(sender);
        Ok(TaskSubscription { history, events })
    }

    /// Waits until the task is no longer live and returns its state.
    pub async fn wait(&self, id: &TaskId) -> Result<TaskState> {
        if let Some(task) = self.live(id) {
            let mut state = task.state.subscribe();
            loop {
                let current = *state.borrow_and_update();
                if !current.is_live() {
                    return Ok(current);
                }
                if state.changed().await.is_err() {
                    break;
                }
            }
        }
        Ok(self.summary(id)?.state)
    }

    pub fn summary(&self, id: &TaskId) -> Result<TaskSummary> {
        let record = self
            .store()?
            .task(&id.0)?
            .ok_or_else(|| EngineError::UnknownTask(id.0.clone()))?;
        Ok(self.to_summary(record))
    }

    /// Past and present tasks, newest first.
    pub fn tasks(&self, limit: usize) -> Result<Vec<TaskSummary>> {
        let records = self.store()?.tasks(limit)?;
        Ok(records.into_iter().map(|r| self.to_summary(r)).collect())
    }

    /// Resolves a task id given in full or by a unique prefix.
    pub fn find_task(&self, prefix: &str) -> Result<TaskId> {
        let mut ids = self.store()?.task_ids_with_prefix(prefix, 2)?;
        match ids.len() {
            1 => Ok(TaskId(ids.remove(0))),
            0 => Err(EngineError::UnknownTask(prefix.to_owned())),
            _ => Err(EngineError::Internal(format!(
                "task id `{prefix}` is ambiguous: several tasks start with it"
            ))),
        }
    }

    fn to_summary(&self, record: TaskRecord) -> TaskSummary {
        let state = TaskState::parse(&record.state).unwrap_or(TaskState::Failed);
        TaskSummary {
            id: TaskId(record.id),
            state,
            prompt: record.prompt,
            folders: record.folders,
            model: record.model,
            created_at_ms: record.created_at_ms,
            updated_at_ms: record.updated_at_ms,
            proposal_id: record
                .detail
                .get("proposalId")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            error: record
                .detail
                .get("error")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        }
    }

    /// The task's current proposal.
    pub fn proposal(&self, id: &TaskId) -> Result<Option<Proposal>> {
        self.summary(id)?;
        Ok(self.store()?.proposal_for_task(&id.0)?)
    }

    /// Sets the review status of hunks; returns the updated proposal.
    pub fn resolve_hunks(
        &self,
        id: &TaskId,
        hunks: &[HunkId],
        status: HunkStatus,
    ) -> Result<Proposal> {
        let mut proposal = self
            .proposal(id)?
            .ok_or_else(|| EngineError::NoProposal(id.0.clone()))?;
        proposal.set_status(hunks, status)?;
        self.store()?.save_proposal(&id.0, &proposal)?;
        self.audit(
            "user",
            "proposal.resolve",
            &id.0,
            &json!({ "hunks": hunks, "status": status }),
        );
        Ok(proposal)
    }

    /// Sets every pending hunk of the task's proposal to `status`.
    pub fn resolve_all(&self, id: &TaskId, status: HunkStatus) -> Result<Proposal> {
        let proposal = self
            .proposal(id)?
            .ok_or_else(|| EngineError::NoProposal(id.0.clone()))?;
        let pending: Vec<HunkId> = proposal
            .changes
            .iter()
            .flat_map(|c| c.hunks.iter())
            .filter(|h| h.status == HunkStatus::Pending)
            .map(|h| h.id.clone())
            .collect();
        self.resolve_hunks(id, &pending, status)
    }

    /// Writes the accepted hunks of a finished task's proposal.
    pub fn apply(&self, id: &TaskId) -> Result<ApplyReport> {
        let summary = self.summary(id)?;
        if summary.state.is_live() {
            return Err(EngineError::WrongState {
                id: id.0.clone(),
                state: summary.state.as_str().into(),
                expected: "finished (proposed)".into(),
            });
        }
        let mut proposal = self
            .store()?
            .proposal_for_task(&id.0)?
            .ok_or_else(|| EngineError::NoProposal(id.0.clone()))?;
        let counts = proposal.counts();
        let report = self.inner.applier.apply(&mut proposal)?;
        {
            let store = self.store()?;
            store.save_proposal(&id.0, &proposal)?;
            if !report.files.is_empty() {
                store.record_apply(
                    &report.apply_id.0,
                    &proposal.id,
                    &id.0,
                    &json!({ "files": report.files.len(), "stale": report.stale.len() }),
                )?;
            }
        }
        let state = if counts.accepted == 0 {
            TaskState::Rejected
        } else if counts.pending == 0 && counts.rejected == 0 && report.stale.is_empty() {
            TaskState::Applied
        } else {
            TaskState::PartiallyApplied
        };
        self.audit(
            "user",
            "proposal.apply",
            &id.0,
            &json!({
                "applyId": report.apply_id.0,
                "files": report.files.iter().map(|f| f.path.to_string()).collect::<Vec<_>>(),
                "stale": report.stale,
            }),
        );
        self.record_offline(
            id,
            TaskEventKind::Applied {
                apply_id: report.apply_id.0.clone(),
                files: report.files.len(),
                stale_hunks: report.stale.len(),
            },
        )?;
        self.set_state_offline(id, state, None)?;
        Ok(report)
    }

    /// Restores the files of an apply (the latest when `None`).
    pub fn undo(&self, apply_id: Option<&ApplyId>) -> Result<UndoReport> {
        let (apply_id, task_id) = match apply_id {
            Some(apply_id) => {
                let record = self.store()?.apply(&apply_id.0)?;
                (apply_id.clone(), record.map(|r| r.task_id))
            }
            None => {
                let record = self
                    .store()?
                    .last_apply()?
                    .ok_or(EngineError::NothingToUndo)?;
                (ApplyId(record.id.clone()), Some(record.task_id))
            }
        };
        let report = self.inner.applier.undo(&apply_id)?;
        self.store()?.mark_undone(&apply_id.0)?;
        self.audit(
            "user",
            "proposal.undo",
            &apply_id.0,
            &json!({ "task": task_id }),
        );
        if let Some(task_id) = task_id {
            let id = TaskId(task_id);
            self.record_offline(
                &id,
                TaskEventKind::Undone {
                    apply_id: apply_id.0.clone(),
                    files: report.files.len(),
                },
            )?;
            self.set_state_offline(&id, TaskState::Proposed, Some("undone".into()))?;
        }
        Ok(report)
    }

    /// Applies recorded in this store, newest first.
    pub fn applies(&self, limit: usize) -> Result<Vec<redline_core::store::ApplyRecord>> {
        Ok(self.store()?.applies(limit)?)
    }

    /// Verifies the audit log's hash chain.
    pub fn verify_audit(&self) -> Result<redline_core::store::AuditVerify> {
        Ok(self.store()?.audit_verify()?)
    }

    pub fn audit_entries(&self, limit: usize) -> Result<Vec<redline_core::store::AuditEntry>> {
        Ok(self.store()?.audit_entries(limit)?)
    }

    fn live(&self, id: &TaskId) -> Option<Arc<LiveTask>> {
        lock(&self.inner.live).get(id).cloned()
    }

    fn not_live(&self, id: &TaskId, expected: &str) -> EngineError {
        match self.summary(id) {
            Ok(summary) => EngineError::WrongState {
                id: id.0.clone(),
                state: summary.state.as_str().into(),
                expected: expected.into(),
            },
            Err(e) => e,
        }
    }

    fn store(&self) -> Result<MutexGuard<'_, Store>> {
        Ok(lock(&self.inner.store))
    }

    fn audit(&self, actor: &str, action: &str, subject: &str, details: &serde_json::Value) {
        self.inner.audit(actor, action, subject, details);
    }

    /// Appends an event for a task that is not running in this process.
    fn record_offline(&self, id: &TaskId, kind: TaskEventKind) -> Result<()> {
        let store = self.store()?;
        let seq = store.last_event_seq(&id.0)? + 1;
        let payload =
            serde_json::to_value(&kind).map_err(|e| EngineError::Internal(e.to_string()))?;
        store.append_event(&id.0, seq, event_name(&payload), &payload)?;
        Ok(())
    }

    fn set_state_offline(
        &self,
        id: &TaskId,
        state: TaskState,
        detail: Option<String>,
    ) -> Result<()> {
        self.record_offline(id, TaskEventKind::StateChanged { state, detail })?;
        let store = self.store()?;
        let record = store
            .task(&id.0)?
            .ok_or_else(|| EngineError::UnknownTask(id.0.clone()))?;
        store.set_task_state(&id.0, state.as_str(), &record.detail)?;
        Ok(())
    }
}

fn event_name(payload: &serde_json::Value) -> &str {
    payload
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("event")
}

impl Inner {
    pub(crate) fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &serde_json::Value,
    ) {
        // The audit log must not be able to fail a task; a write error is
        // logged and `redline audit --verify` shows the gap.
        if let Err(e) = lock(&self.store).audit_append(actor, action, subject, details) {
            tracing::error!("cannot append to the audit log: {e}");
        }
    }

    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }
}

/// What the agent loop needs to report progress for one task.
#[derive(Clone)]
pub(crate) struct TaskContext {
    pub(crate) inner: Arc<Inner>,
    pub(crate) task: Arc<LiveTask>,
}

impl TaskContext {
    pub(crate) fn id(&self) -> &TaskId {
        &self.task.id
    }

    /// Emits an event to subscribers, in order, and persists it (except
    /// streaming deltas, which the final `message` event summarizes).
    pub(crate) fn emit(&self, kind: TaskEventKind) {
        let event = {
            let mut log = lock(&self.task.log);
            let event = TaskEvent {
                task_id: self.task.id.clone(),
                seq: log.next_seq,
                at_ms: now_ms(),
                kind,
            };
            log.next_seq += 1;
            log.subscribers.retain(|s| s.send(event.clone()).is_ok());
            log.history.push(event.clone());
            event
        };
        if matches!(event.kind, TaskEventKind::MessageDelta { .. }) {
            return;
        }
        if let Ok(payload) = serde_json::to_value(&event.kind) {
            let result = self.inner.with_store(|store| {
                store.append_event(&self.task.id.0, event.seq, event_name(&payload), &payload)
            });
            if let Err(e) = result {
                tracing::error!(
                    "cannot persist event {} of {}: {e}",
                    event.seq,
                    self.task.id
                );
            }
        }
    }

    pub(crate) fn set_state(&self, state: TaskState, detail: Option<String>) {
        self.task.state.send_replace(state);
        if let Some(error) = detail.as_ref().filter(|_| state == TaskState::Failed)
            && let Some(map) = lock(&self.task.detail).as_object_mut()
        {
            map.insert("error".into(), json!(error));
        }
        self.persist_record(state);
        self.emit(TaskEventKind::StateChanged { state, detail });
    }

    pub(crate) fn set_detail(&self, key: &str, value: serde_json::Value) {
        if let Some(map) = lock(&self.task.detail).as_object_mut() {
            map.insert(key.to_owned(), value);
        }
        self.persist_record(*self.task.state.borrow());
    }

    /// Writes the task's state and detail to the store.
    fn persist_record(&self, state: TaskState) {
        let detail = lock(&self.task.detail).clone();
        self.inner.with_store(|store| {
            if let Err(e) = store.set_task_state(&self.task.id.0, state.as_str(), &detail) {
                tracing::error!("cannot persist the state of {}: {e}", self.task.id);
            }
        });
    }

    pub(crate) fn save_proposal(&self, proposal: &Proposal) {
        self.inner.with_store(|store| {
            if let Err(e) = store.save_proposal(&self.task.id.0, proposal) {
                tracing::error!("cannot persist proposal of {}: {e}", self.task.id);
            }
        });
    }

    /// Registers an approval and returns the receiver of its answer.
    pub(crate) fn register_approval(&self, id: &str) -> oneshot::Receiver<ApprovalDecision> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.task.approvals).insert(id.to_owned(), sender);
        receiver
    }

    pub(crate) fn register_plan_decision(&self) -> oneshot::Receiver<PlanDecision> {
        let (sender, receiver) = oneshot::channel();
        *lock(&self.task.plan_decision) = Some(sender);
        receiver
    }

    pub(crate) fn proposal_id(&self) -> ProposalId {
        // One proposal per task, named after it so it is easy to find.
        ProposalId(format!("p-{}", self.task.id.0.trim_start_matches("t-")))
    }
}

async fn run_task(context: TaskContext, setup: TaskSetup) {
    let permit = tokio::select! {
        permit = context.inner.queue.clone().acquire_owned() => permit.ok(),
        () = context.task.cancel.cancelled() => None,
    };
    let outcome = match permit {
        Some(_permit) => agent_loop::run(&context, setup).await,
        None => Err(agent_loop::LoopError::Cancelled),
    };
    let (state, detail) = match outcome {
        Ok(state) => (state, None),
        Err(agent_loop::LoopError::Cancelled) => (TaskState::Cancelled, None),
        Err(e) => (TaskState::Failed, Some(e.to_string())),
    };
    context.inner.audit(
        "engine",
        "task.finish",
        &context.task.id.0,
        &json!({ "state": state, "error": detail }),
    );
    context.set_state(state, detail);
    // Subscribers' feeds end here: drop their senders with the live entry.
    lock(&context.task.log).subscribers.clear();
    lock(&context.inner.live).remove(&context.task.id);
}

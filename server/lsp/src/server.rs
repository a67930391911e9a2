//! The `LanguageServer` handlers, the `redline.*` commands and the
//! `redline/*` custom methods. Handlers translate and call the engine; the
//! logic of placing hunks lives in `review`, conversions in
//! `from_proto`/`to_proto`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redline_agent::engine::Engine;
use redline_core::proposal::{
    ChangeKind, FileContent, Hunk, HunkId, HunkKind, HunkStatus, Proposal,
};
use redline_protocol::{TaskEvent, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::{
    self as lsp, CodeActionKind, CodeActionOrCommand, CodeActionParams,
    CodeActionProviderCapability, CodeActionResponse, CodeLens, CodeLensOptions, CodeLensParams,
    DidChangeTextDocumentParams, DidChangeWatchedFilesParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, ExecuteCommandOptions, ExecuteCommandParams, InitializeParams,
    InitializeResult, InitializedParams, MessageType, Registration, ServerCapabilities, ServerInfo,
    TextDocumentSyncCapability, TextDocumentSyncKind, Uri, WorkDoneProgressCancelParams,
};
use tower_lsp_server::{Client, ClientSocket, LanguageServer, LspService};

use crate::documents::{Documents, OrderedSync};
use crate::from_proto::{self, ClientFeatures};
use crate::review::{self, Current, PlacedHunk, Review};
use crate::to_proto::{self, EditOp, EditPart};
use crate::{Error, Result, instruction, tasks};

/// Names of the `redline/*` methods and `redline.*` commands (see
/// `docs/lsp.md`).
pub mod methods {
    /// Request `{uri}` → `{uri, version, text}`: the server's copy.
    pub const DOCUMENT_TEXT: &str = "redline/documentText";
    /// Request `{uri}` → `{uri, version, lenBytes, lineCount, outOfSync}`.
    pub const DOCUMENT_STATE: &str = "redline/documentState";
    /// Request `{taskId}` → the task's proposal (or null).
    pub const PROPOSAL: &str = "redline/proposal";
    /// Request `{taskId, hunkIds, status: "accepted"|"rejected"}`.
    pub const RESOLVE: &str = "redline/resolve";
    /// Request `{taskId}`: cancels a running task.
    pub const CANCEL: &str = "redline/cancel";
    /// Notification, server → client: one `TaskEvent`.
    pub const TASK_EVENT: &str = "redline/taskEvent";
    /// Notification, server → client: `{taskId, prompt, proposal}`.
    pub const PROPOSAL_UPDATED: &str = "redline/proposalUpdated";

    pub const ASK: &str = "redline.ask";
    pub const DO_COMMENT: &str = "redline.doComment";
    pub const FIX_DIAGNOSTICS: &str = "redline.fixDiagnostics";
    pub const EXPLAIN: &str = "redline.explain";
    pub const DOCUMENT: &str = "redline.document";
    pub const ADD_TESTS: &str = "redline.addTests";
    pub const SIMPLIFY: &str = "redline.simplify";
    pub const ACCEPT_HUNK: &str = "redline.acceptHunk";
    pub const REJECT_HUNK: &str = "redline.rejectHunk";
    pub const ACCEPT_FILE: &str = "redline.acceptFile";
    pub const ACCEPT_ALL: &str = "redline.acceptAll";
    pub const REJECT_ALL: &str = "redline.rejectAll";
    pub const CANCEL_TASK: &str = "redline.cancelTask";

    pub const ALL_COMMANDS: [&str; 13] = [
        ASK,
        DO_COMMENT,
        FIX_DIAGNOSTICS,
        EXPLAIN,
        DOCUMENT,
        ADD_TESTS,
        SIMPLIFY,
        ACCEPT_HUNK,
        REJECT_HUNK,
        ACCEPT_FILE,
        ACCEPT_ALL,
        REJECT_ALL,
        CANCEL_TASK,
    ];
}

pub enum TaskEventNotification {}

impl Notification for TaskEventNotification {
    type Params = TaskEvent;
    const METHOD: &'static str = methods::TASK_EVENT;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalUpdatedParams {
    pub task_id: TaskId,
    pub prompt: String,
    pub proposal: Proposal,
}

pub enum ProposalUpdatedNotification {}

impl Notification for ProposalUpdatedNotification {
    type Params = ProposalUpdatedParams;
    const METHOD: &'static str = methods::PROPOSAL_UPDATED;
}

/// What this session knows about the client and the workspace.
#[derive(Default)]
pub struct Session {
    pub features: ClientFeatures,
    pub roots: Vec<PathBuf>,
}

/// State shared by the handlers and the task drivers.
pub struct State {
    pub client: Client,
    pub engine: Engine,
    pub documents: Arc<Documents>,
    session: Mutex<Session>,
    review: Mutex<Review>,
    /// Progress token → task, for `window/workDoneProgress/cancel`.
    pub progress_tokens: Mutex<HashMap<String, TaskId>>,
    /// Tasks this session started that are still running.
    pub live: Mutex<HashSet<TaskId>>,
    /// Serializes diagnostic refreshes so a slow one cannot publish after
    /// a newer one.
    refresh: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Backend {
    state: Arc<State>,
}

/// Builds the service: the LSP handlers wrapped so text sync is ordered.
/// The session's state, filled in when the service is built, so `serve`
/// can cancel the session's tasks once the client is gone.
pub type StateHandle = Arc<Mutex<Option<Arc<State>>>>;

pub fn build(engine: Engine) -> (OrderedSync<LspService<Backend>>, ClientSocket, StateHandle) {
    let documents = Arc::new(Documents::default());
    let shared_documents = documents.clone();
    let handle: StateHandle = Arc::new(Mutex::new(None));
    let handle_for_init = handle.clone();
    let (service, socket) = LspService::build(move |client| {
        let state = Arc::new(State {
            client,
            engine,
            documents: shared_documents,
            session: Mutex::new(Session::default()),
            review: Mutex::new(Review::default()),
            progress_tokens: Mutex::new(HashMap::new()),
            live: Mutex::new(HashSet::new()),
            refresh: tokio::sync::Mutex::new(()),
        });
        *lock(&handle_for_init) = Some(state.clone());
        Backend { state }
    })
    .custom_method(methods::DOCUMENT_TEXT, Backend::document_text)
    .custom_method(methods::DOCUMENT_STATE, Backend::document_state)
    .custom_method(methods::PROPOSAL, Backend::proposal)
    .custom_method(methods::RESOLVE, Backend::resolve)
    .custom_method(methods::CANCEL, Backend::cancel)
    .custom_method("window/workDoneProgress/cancel", Backend::progress_cancel)
    .finish();
    (OrderedSync::new(service, documents), socket, handle)
}

fn rpc<T>(result: Result<T>) -> jsonrpc::Result<T> {
    result.map_err(|e| to_proto::jsonrpc_error(&e))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentParams {
    pub uri: Uri,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskParams {
    pub task_id: TaskId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveParams {
    pub task_id: TaskId,
    pub hunk_ids: Vec<HunkId>,
    pub status: HunkStatus,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HunkArgs {
    task_id: TaskId,
    hunk_id: HunkId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileArgs {
    task_id: TaskId,
    uri: Uri,
}

impl Backend {
    async fn document_text(&self, params: DocumentParams) -> jsonrpc::Result<Value> {
        let (version, text) =
            rpc(self
                .state
                .documents
                .text(&params.uri)
                .ok_or_else(|| Error::UnknownDocument {
                    uri: params.uri.as_str().to_owned(),
                }))?;
        Ok(json!({ "uri": params.uri, "version": version, "text": text }))
    }

    async fn document_state(&self, params: DocumentParams) -> jsonrpc::Result<Value> {
        let documents = self.state.documents.lock();
        let open = rpc(documents
            .open
            .get(&params.uri)
            .ok_or_else(|| Error::UnknownDocument {
                uri: params.uri.as_str().to_owned(),
            }))?;
        Ok(json!({
            "uri": params.uri,
            "version": open.document.version(),
            "lenBytes": open.document.len_bytes(),
            "lineCount": open.document.line_count(),
            "outOfSync": open.out_of_sync,
        }))
    }

    async fn proposal(&self, params: TaskParams) -> jsonrpc::Result<Option<Proposal>> {
        rpc(self
            .state
            .engine
            .proposal(&params.task_id)
            .map_err(Error::from))
    }

    async fn resolve(&self, params: ResolveParams) -> jsonrpc::Result<Value> {
        rpc(match params.status {
            HunkStatus::Accepted => self.state.accept(&params.task_id, &params.hunk_ids).await,
            HunkStatus::Rejected => self.state.reject(&params.task_id, &params.hunk_ids).await,
            other => Err(Error::BadArguments {
                command: methods::RESOLVE.into(),
                message: format!("status must be accepted or rejected, not {other}"),
            }),
        })
    }

    async fn cancel(&self, params: TaskParams) -> jsonrpc::Result<Value> {
        rpc(self
            .state
            .engine
            .cancel(&params.task_id)
            .map_err(Error::from))?;
        Ok(Value::Null)
    }

    async fn progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        let token = match &params.token {
            lsp::NumberOrString::String(token) => token.clone(),
            lsp::NumberOrString::Number(number) => number.to_string(),
        };
        let task = lock(&self.state.progress_tokens).get(&token).cloned();
        if let Some(task) = task
            && let Err(e) = self.state.engine.cancel(&task)
        {
            tracing::warn!("cannot cancel {task}: {e}");
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let encoding = from_proto::position_encoding(&params.capabilities);
        self.state.documents.set_encoding(encoding);
        {
            let mut session = lock(&self.state.session);
            session.features = from_proto::client_features(&params);
            session.roots = from_proto::workspace_roots(&params);
        }
        let kinds = vec![
            CodeActionKind::QUICKFIX,
            CodeActionKind::REFACTOR,
            CodeActionKind::REFACTOR_REWRITE,
        ];
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(to_proto::encoding_kind(encoding)),
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::INCREMENTAL,
                )),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    lsp::CodeActionOptions {
                        code_action_kinds: Some(kinds),
                        ..Default::default()
                    },
                )),
                code_lens_provider: Some(CodeLensOptions {
                    resolve_provider: Some(false),
                }),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: methods::ALL_COMMANDS
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect(),
                    ..Default::default()
                }),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "redline".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let weak = Arc::downgrade(&self.state);
        let documents = self.state.documents.clone();
        tokio::spawn(async move {
            // Reports text-sync problems; ends with the session (`serve`
            // wakes it once the state is gone).
            loop {
                documents.problem_signal.notified().await;
                let Some(state) = weak.upgrade() else { break };
                for problem in state.documents.take_problems() {
                    state
                        .client
                        .log_message(MessageType::WARNING, &problem)
                        .await;
                    state
                        .client
                        .show_message(MessageType::WARNING, format!("Redline: {problem}"))
                        .await;
                }
            }
        });
        let features = lock(&self.state.session).features;
        if !features.watched_files_dynamic {
            return;
        }
        // The engine re-reads instruction files for every task; watching
        // them lets us say so when one changes.
        let watchers: Vec<Value> = [
            "**/AGENTS.md",
            "**/CLAUDE.md",
            "**/.redline/instructions.md",
            "**/.redline/*.toml",
        ]
        .iter()
        .map(|glob| json!({ "globPattern": glob }))
        .collect();
        let registration = Registration {
            id: "redline-instruction-files".into(),
            method: "workspace/didChangeWatchedFiles".into(),
            register_options: Some(json!({ "watchers": watchers })),
        };
        if let Err(e) = self
            .state
            .client
            .register_capability(vec![registration])
            .await
        {
            tracing::warn!("cannot watch instruction files: {e}");
        }
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        self.state.cancel_live();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        // The text was stored in order by `OrderedSync`; here we only react.
        self.state.after_sync(&params.text_document.uri).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.state.after_sync(&params.text_document.uri).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.state.after_sync(&params.text_document.uri).await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        for change in params.changes {
            let message = format!(
                "instruction file changed: {}; the next task reads the new version",
                change.uri.as_str()
            );
            tracing::info!("{message}");
            self.state
                .client
                .log_message(MessageType::INFO, message)
                .await;
        }
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        rpc(self.state.code_actions(params)).map(Some)
    }

    async fn code_lens(&self, params: CodeLensParams) -> jsonrpc::Result<Option<Vec<CodeLens>>> {
        let Ok(path) = from_proto::file_path(&params.text_document.uri) else {
            return Ok(None);
        };
        let review = lock(&self.state.review);
        let lenses = review
            .placed
            .get(&path)
            .into_iter()
            .flatten()
            .flat_map(|placed| {
                [
                    to_proto::code_lens(placed, "Accept", methods::ACCEPT_HUNK),
                    to_proto::code_lens(placed, "Reject", methods::REJECT_HUNK),
                ]
            })
            .collect();
        Ok(Some(lenses))
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> jsonrpc::Result<Option<Value>> {
        rpc(self.state.execute(params).await).map(Some)
    }
}

/// The argument of the task commands (`redline.ask`, `redline.explain`, ...).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskArgs {
    pub uri: Option<Uri>,
    pub range: Option<lsp::Range>,
    /// For `redline.ask`: what to do (the editor's input box supplies it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// For `redline.fixDiagnostics`: the client's diagnostics in range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<lsp::Diagnostic>,
    /// For `redline.doComment`: the 0-based line of the comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_text: Option<String>,
    /// For `redline.document` / `redline.addTests`: the symbol's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// `plan-first` or `direct` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<redline_protocol::TaskMode>,
    /// `fast`, `deep`, `auto` or a model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl State {
    pub fn features(&self) -> ClientFeatures {
        lock(&self.session).features
    }

    pub fn roots(&self) -> Vec<PathBuf> {
        lock(&self.session).roots.clone()
    }

    pub fn review(&self) -> MutexGuard<'_, Review> {
        lock(&self.review)
    }

    /// Cancels every task this session started (on shutdown or disconnect).
    pub fn cancel_live(&self) {
        let live: Vec<TaskId> = lock(&self.live).iter().cloned().collect();
        for task in live {
            if let Err(e) = self.engine.cancel(&task) {
                tracing::warn!("cannot cancel {task}: {e}");
            }
        }
    }

    async fn after_sync(&self, uri: &Uri) {
        let Ok(path) = from_proto::file_path(uri) else {
            return;
        };
        let touches_review = {
            let review = self.review();
            !review.tasks.is_empty() && review.files().contains_key(&path)
        };
        if touches_review {
            self.refresh_diagnostics().await;
        }
    }

    /// The current state of a file: the editor's copy when open, else disk.
    pub fn current(&self, path: &Path) -> Current {
        {
            let documents = self.documents.lock();
            if let Some(open) = documents
                .open
                .values()
                .find(|open| open.path.as_deref() == Some(path))
            {
                return Current {
                    version: Some(open.document.version()),
                    document: Some(open.document.clone()),
                };
            }
        }
        Current::from_disk(path)
    }

    /// Re-places every pending hunk in the current texts, publishes them as
    /// hint diagnostics (clearing files that have none left) and asks for
    /// fresh code lenses.
    pub async fn refresh_diagnostics(&self) {
        let _serial = self.refresh.lock().await;
        let encoding = self.documents.encoding();
        let files = self.review().files();
        let mut placed: HashMap<PathBuf, Vec<PlacedHunk>> = HashMap::new();
        let mut versions: HashMap<PathBuf, Option<i32>> = HashMap::new();
        for (path, changes) in files {
            let current = self.current(&path);
            versions.insert(path.clone(), current.version);
            for (task, change) in changes {
                let pending: Vec<&Hunk> = change
                    .hunks
                    .iter()
                    .filter(|h| h.status == HunkStatus::Pending)
                    .collect();
                let placements = review::place(&change, &pending, &current, encoding);
                for hunk in pending {
                    if let Some(placement) = placements.get(&hunk.id) {
                        placed.entry(path.clone()).or_default().push(PlacedHunk {
                            task: task.clone(),
                            hunk: hunk.clone(),
                            kind: change.kind.clone(),
                            path: change.path.as_str().to_owned(),
                            placement: placement.clone(),
                        });
                    }
                }
            }
        }
        let previous: Vec<PathBuf> = {
            let mut review = self.review();
            let previous = review.placed.keys().cloned().collect();
            review.placed = placed.clone();
            previous
        };
        let paths: BTreeSet<PathBuf> = previous.into_iter().chain(placed.keys().cloned()).collect();
        for path in paths {
            let Ok(uri) = to_proto::uri(&path) else {
                continue;
            };
            let diagnostics: Vec<lsp::Diagnostic> = placed
                .get(&path)
                .into_iter()
                .flatten()
                .map(to_proto::hunk_diagnostic)
                .collect();
            let version = versions.get(&path).copied().flatten();
            self.client
                .publish_diagnostics(uri, diagnostics, version)
                .await;
        }
        if self.features().code_lens_refresh
            && let Err(e) = self.client.code_lens_refresh().await
        {
            tracing::debug!("code lens refresh failed: {e}");
        }
    }

    fn code_actions(&self, params: CodeActionParams) -> Result<CodeActionResponse> {
        let uri = params.text_document.uri;
        let shown = || uri.as_str().to_owned();
        let path = from_proto::file_path(&uri)?;
        let range = from_proto::range(params.range);
        let encoding = self.documents.encoding();
        let (lines, comments, symbol) = {
            let documents = self.documents.lock();
            let open = documents
                .open
                .get(&uri)
                .ok_or_else(|| Error::UnknownDocument { uri: shown() })?;
            if let Some(reason) = &open.out_of_sync {
                return Err(Error::OutOfSync {
                    uri: shown(),
                    reason: reason.clone(),
                });
            }
            let document = &open.document;
            let position_error = |source| Error::Position {
                uri: shown(),
                source,
            };
            if range.start > range.end {
                return Err(Error::Position {
                    uri: shown(),
                    source: redline_core::document::DocumentError::InvertedPositionRange {
                        start: range.start,
                        end: range.end,
                        line_count: document.line_count(),
                        len_bytes: document.len_bytes(),
                    },
                });
            }
            let start = document
                .position_to_byte(range.start, encoding)
                .map_err(position_error)?;
            let end = document
                .position_to_byte(range.end, encoding)
                .map_err(position_error)?;
            let line_start = document
                .position_to_byte(
                    redline_core::document::Position::new(range.start.line, 0),
                    encoding,
                )
                .map_err(position_error)?;
            let line_end = document
                .position_to_byte(
                    redline_core::document::Position::new(range.end.line, u32::MAX),
                    encoding,
                )
                .map_err(position_error)?;
            let comments = instruction::find(document, line_start..line_end);
            let symbol = document.enclosing_symbol(start..end).map(|s| s.name);
            (range.start.line..range.end.line, comments, symbol)
        };
        let only = params.context.only.clone();
        let wanted = |kind: &CodeActionKind| {
            only.as_ref().is_none_or(|only| {
                only.iter().any(|o| {
                    kind.as_str() == o.as_str()
                        || kind.as_str().starts_with(&format!("{}.", o.as_str()))
                })
            })
        };
        let mut actions: Vec<CodeActionOrCommand> = Vec::new();
        let mut push =
            |title: &str, kind: CodeActionKind, command: &str, argument: Value, diagnostics| {
                if wanted(&kind) {
                    let command = to_proto::command(title, command, argument);
                    actions.push(CodeActionOrCommand::CodeAction(to_proto::code_action(
                        title,
                        kind,
                        command,
                        diagnostics,
                    )));
                }
            };
        // Review first: these are what a user with pending hunks came for.
        let hunks: Vec<PlacedHunk> = self
            .review()
            .hunks_at(&path, lines.clone())
            .into_iter()
            .cloned()
            .collect();
        let mut tasks_here: Vec<TaskId> = Vec::new();
        for placed in &hunks {
            let argument = json!({ "taskId": placed.task.0, "hunkId": placed.hunk.id.0 });
            let diagnostic = Some(vec![to_proto::hunk_diagnostic(placed)]);
            push(
                "Accept change",
                CodeActionKind::QUICKFIX,
                methods::ACCEPT_HUNK,
                argument.clone(),
                diagnostic.clone(),
            );
            push(
                "Reject change",
                CodeActionKind::QUICKFIX,
                methods::REJECT_HUNK,
                argument,
                diagnostic,
            );
            if !tasks_here.contains(&placed.task) {
                tasks_here.push(placed.task.clone());
            }
        }
        for task in tasks_here {
            push(
                "Accept all in file",
                CodeActionKind::QUICKFIX,
                methods::ACCEPT_FILE,
                json!({ "taskId": task.0, "uri": uri }),
                None,
            );
            push(
                "Reject all",
                CodeActionKind::QUICKFIX,
                methods::REJECT_ALL,
                json!({ "taskId": task.0 }),
                None,
            );
        }
        let base = TaskArgs {
            uri: Some(uri.clone()),
            range: Some(params.range),
            ..TaskArgs::default()
        };
        let argument = |args: TaskArgs| serde_json::to_value(args).unwrap_or(Value::Null);
        for comment in comments {
            let line_range = lsp::Range::new(
                lsp::Position::new(comment.line, 0),
                lsp::Position::new(comment.line, 0),
            );
            push(
                "Redline: do what this comment says",
                CodeActionKind::REFACTOR_REWRITE,
                methods::DO_COMMENT,
                argument(TaskArgs {
                    range: Some(line_range),
                    instruction: Some(comment.instruction),
                    comment_line: Some(comment.line),
                    comment_text: Some(comment.text),
                    ..base.clone()
                }),
                None,
            );
        }
        push(
            "Redline: Ask…",
            CodeActionKind::REFACTOR_REWRITE,
            methods::ASK,
            argument(base.clone()),
            None,
        );
        let client_diagnostics: Vec<lsp::Diagnostic> = params
            .context
            .diagnostics
            .iter()
            .filter(|d| d.source.as_deref() != Some(to_proto::SOURCE))
            .cloned()
            .collect();
        if !client_diagnostics.is_empty() {
            push(
                "Redline: fix the diagnostics in range",
                CodeActionKind::QUICKFIX,
                methods::FIX_DIAGNOSTICS,
                argument(TaskArgs {
                    diagnostics: client_diagnostics.clone(),
                    ..base.clone()
                }),
                Some(client_diagnostics),
            );
        }
        push(
            "Redline: explain",
            CodeActionKind::REFACTOR,
            methods::EXPLAIN,
            argument(base.clone()),
            None,
        );
        if let Some(symbol) = symbol {
            let with_symbol = TaskArgs {
                symbol: Some(symbol.clone()),
                ..base.clone()
            };
            push(
                &format!("Redline: document `{symbol}`"),
                CodeActionKind::REFACTOR_REWRITE,
                methods::DOCUMENT,
                argument(with_symbol.clone()),
                None,
            );
            push(
                &format!("Redline: add tests for `{symbol}`"),
                CodeActionKind::REFACTOR_REWRITE,
                methods::ADD_TESTS,
                argument(with_symbol),
                None,
            );
        }
        push(
            "Redline: simplify",
            CodeActionKind::REFACTOR_REWRITE,
            methods::SIMPLIFY,
            argument(base),
            None,
        );
        Ok(actions)
    }

    async fn execute(self: &Arc<Self>, params: ExecuteCommandParams) -> Result<Value> {
        let name = params.command.as_str();
        match name {
            methods::ASK
            | methods::DO_COMMENT
            | methods::FIX_DIAGNOSTICS
            | methods::EXPLAIN
            | methods::DOCUMENT
            | methods::ADD_TESTS
            | methods::SIMPLIFY => {
                let args: TaskArgs = from_proto::command_argument(name, params.arguments)?;
                tasks::start(self, name, args)
            }
            methods::ACCEPT_HUNK | methods::REJECT_HUNK => {
                let args: HunkArgs = from_proto::command_argument(name, params.arguments)?;
                if name == methods::ACCEPT_HUNK {
                    self.accept(&args.task_id, &[args.hunk_id]).await
                } else {
                    self.reject(&args.task_id, &[args.hunk_id]).await
                }
            }
            methods::ACCEPT_FILE => {
                let args: FileArgs = from_proto::command_argument(name, params.arguments)?;
                let path = from_proto::file_path(&args.uri)?;
                let hunks = self.pending_hunks(&args.task_id, Some(&path))?;
                self.accept(&args.task_id, &hunks).await
            }
            methods::ACCEPT_ALL | methods::REJECT_ALL => {
                let args: TaskParams = from_proto::command_argument(name, params.arguments)?;
                let hunks = self.pending_hunks(&args.task_id, None)?;
                if name == methods::ACCEPT_ALL {
                    self.accept(&args.task_id, &hunks).await
                } else {
                    self.reject(&args.task_id, &hunks).await
                }
            }
            methods::CANCEL_TASK => {
                let args: TaskParams = from_proto::command_argument(name, params.arguments)?;
                self.engine.cancel(&args.task_id)?;
                Ok(Value::Null)
            }
            other => Err(Error::UnknownCommand(other.to_owned())),
        }
    }

    fn pending_hunks(&self, task: &TaskId, path: Option<&Path>) -> Result<Vec<HunkId>> {
        let review = self.review();
        let entry = review.tasks.get(task).ok_or_else(|| Error::UnknownTask {
            task: task.0.clone(),
        })?;
        Ok(entry
            .proposal
            .changes
            .iter()
            .filter(|change| {
                path.is_none_or(|path| {
                    review::review_path(&entry.proposal, change) == path
                        || review::new_path(&entry.proposal, change) == path
                })
            })
            .flat_map(|change| change.hunks.iter())
            .filter(|hunk| hunk.status == HunkStatus::Pending)
            .map(|hunk| hunk.id.clone())
            .collect())
    }

    /// The edit that applies `ids` to the current texts, and the hunks that
    /// no longer fit anywhere.
    pub fn edit_parts(
        &self,
        task: &TaskId,
        ids: &[HunkId],
    ) -> Result<(Vec<EditPart>, Vec<HunkId>)> {
        let (proposal, prompt) = {
            let review = self.review();
            let entry = review.tasks.get(task).ok_or_else(|| Error::UnknownTask {
                task: task.0.clone(),
            })?;
            (entry.proposal.clone(), entry.prompt.clone())
        };
        if let Some(unknown) = ids.iter().find(|id| proposal.hunk(id).is_none()) {
            return Err(Error::UnknownHunk {
                task: task.0.clone(),
                hunk: unknown.0.clone(),
            });
        }
        let features = self.features();
        let encoding = self.documents.encoding();
        let mut parts = Vec::new();
        let mut stale = Vec::new();
        for change in &proposal.changes {
            let selected: Vec<&Hunk> = change
                .hunks
                .iter()
                .filter(|h| ids.contains(&h.id) && h.status == HunkStatus::Pending)
                .collect();
            if selected.is_empty() {
                continue;
            }
            let at = review::review_path(&proposal, change);
            let target = review::new_path(&proposal, change);
            let current = self.current(&at);
            let placements = review::place(change, &selected, &current, encoding);
            let at_uri = to_proto::uri(&at)?;
            let target_uri = to_proto::uri(&target)?;
            let mut file_ops = Vec::new();
            for hunk in selected {
                let Some(placement) = placements.get(&hunk.id) else {
                    stale.push(hunk.id.clone());
                    continue;
                };
                let cannot = |what: &str| Error::ClientCannot { what: what.into() };
                let part = |label: String, op: EditOp| EditPart {
                    hunk: hunk.id.clone(),
                    label,
                    description: prompt.clone(),
                    op,
                };
                match (&change.kind, hunk.kind) {
                    (_, HunkKind::Binary | HunkKind::Mode) => {
                        return Err(cannot("change binary files or file permissions"));
                    }
                    (ChangeKind::Create, _) => {
                        if !features.create_files {
                            return Err(cannot("create files"));
                        }
                        let Some(FileContent::Text(content)) = &change.new else {
                            return Err(cannot("create binary files"));
                        };
                        file_ops.push(part(
                            format!("Create {}", change.path.as_str()),
                            EditOp::Create {
                                uri: target_uri.clone(),
                            },
                        ));
                        if !content.is_empty() {
                            let zero = redline_core::document::Position::new(0, 0);
                            file_ops.push(part(
                                format!("Create {}", change.path.as_str()),
                                EditOp::Text {
                                    uri: target_uri.clone(),
                                    version: None,
                                    start: zero,
                                    end: zero,
                                    new_text: content.clone(),
                                },
                            ));
                        }
                    }
                    (ChangeKind::Delete, _) => {
                        if !features.delete_files {
                            return Err(cannot("delete files"));
                        }
                        file_ops.push(part(
                            format!("Delete {}", change.path.as_str()),
                            EditOp::Delete {
                                uri: at_uri.clone(),
                            },
                        ));
                    }
                    (ChangeKind::Rename { from }, HunkKind::Rename) => {
                        if !features.rename_files {
                            return Err(cannot("rename files"));
                        }
                        file_ops.push(part(
                            format!("Rename {} to {}", from.as_str(), change.path.as_str()),
                            EditOp::Rename {
                                from: at_uri.clone(),
                                to: target_uri.clone(),
                            },
                        ));
                    }
                    (_, HunkKind::Text) => {
                        let label = format!(
                            "{}: lines {}-{}",
                            change.old_path().as_str(),
                            placement.start.line + 1,
                            placement.display_end.line + 1
                        );
                        parts.push(part(
                            label,
                            EditOp::Text {
                                uri: at_uri.clone(),
                                version: current.version,
                                start: placement.start,
                                end: placement.end,
                                new_text: hunk.new_text.clone(),
                            },
                        ));
                    }
                    (_, HunkKind::Rename) => {}
                }
            }
            // Text edits address the file under its current name, so they
            // go before a rename of it.
            parts.extend(file_ops);
        }
        Ok((parts, stale))
    }

    async fn mark_stale(&self, task: &TaskId, stale: &[HunkId]) -> Result<()> {
        if stale.is_empty() {
            return Ok(());
        }
        let proposal = self.engine.resolve_hunks(task, stale, HunkStatus::Stale)?;
        self.review().update(task, proposal);
        Ok(())
    }

    /// Accepts hunks: the editor applies them (`workspace/applyEdit`), and
    /// only once it says it did are they recorded as accepted.
    pub async fn accept(&self, task: &TaskId, ids: &[HunkId]) -> Result<Value> {
        let (parts, stale) = self.edit_parts(task, ids)?;
        self.mark_stale(task, &stale).await?;
        if parts.is_empty() {
            self.refresh_diagnostics().await;
            return match stale.first() {
                Some(hunk) => Err(Error::StaleHunk {
                    hunk: hunk.0.clone(),
                    path: self.hunk_path(task, hunk),
                }),
                None => Ok(json!({ "accepted": [], "stale": [] })),
            };
        }
        let edit = to_proto::workspace_edit(&parts, false, self.features().document_changes);
        let response = self
            .client
            .apply_edit(edit)
            .await
            .map_err(|e| Error::Client {
                method: "workspace/applyEdit".into(),
                message: e.to_string(),
            })?;
        if !response.applied {
            return Err(Error::NotApplied {
                reason: response.failure_reason,
            });
        }
        let mut accepted: Vec<HunkId> = parts.iter().map(|p| p.hunk.clone()).collect();
        accepted.dedup();
        let proposal = self
            .engine
            .resolve_hunks(task, &accepted, HunkStatus::Accepted)?;
        self.proposal_changed(task, proposal).await;
        Ok(json!({ "accepted": accepted, "stale": stale }))
    }

    pub async fn reject(&self, task: &TaskId, ids: &[HunkId]) -> Result<Value> {
        if !self.review().tasks.contains_key(task) {
            return Err(Error::UnknownTask {
                task: task.0.clone(),
            });
        }
        let proposal = self.engine.resolve_hunks(task, ids, HunkStatus::Rejected)?;
        self.proposal_changed(task, proposal).await;
        Ok(json!({ "rejected": ids }))
    }

    pub async fn proposal_changed(&self, task: &TaskId, proposal: Proposal) {
        let prompt = self
            .review()
            .tasks
            .get(task)
            .map(|t| t.prompt.clone())
            .unwrap_or_default();
        self.review().update(task, proposal.clone());
        self.client
            .send_notification::<ProposalUpdatedNotification>(ProposalUpdatedParams {
                task_id: task.clone(),
                prompt,
                proposal,
            })
            .await;
        self.refresh_diagnostics().await;
    }

    fn hunk_path(&self, task: &TaskId, hunk: &HunkId) -> String {
        self.engine
            .proposal(task)
            .ok()
            .flatten()
            .and_then(|p| {
                p.hunk(hunk)
                    .map(|(change, _)| change.path.as_str().to_owned())
            })
            .unwrap_or_default()
    }
}

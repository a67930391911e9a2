//! The server's copy of every open document, and the service wrapper that
//! keeps it in step with the client strictly in the order messages arrive.
//!
//! # Why `didChange` is applied in order
//!
//! tower-lsp-server reads messages one at a time in `Server::serve`'s read
//! loop and, for each, calls `Service::call` synchronously before reading
//! the next; the futures `call` returns are then run *concurrently*
//! (`buffer_unordered`), so two `didChange` handlers could interleave if
//! their work ran inside the futures. [`OrderedSync`] wraps the service and
//! applies `didOpen`/`didChange`/`didClose` inside `call` itself, under a
//! mutex, before returning the inner future. Message *n* is therefore
//! applied before message *n + 1* is even read, whatever the scheduler
//! does, and every request sees all changes the client sent before it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use redline_core::document::{Document, PositionEncoding};
use redline_core::syntax::Language;
use serde::Deserialize;
use tower_lsp_server::jsonrpc::Request;
use tower_lsp_server::ls_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams, Uri,
};

use crate::from_proto;

/// Documents larger than this are kept without a syntax tree: tree-sitter
/// reparses on every keystroke inside the ordered sync path, and on
/// multi-megabyte files error recovery can take seconds, stalling every
/// message behind it. Such files lose instruction comments and enclosing
/// symbols, nothing else.
pub const SYNTAX_LIMIT_BYTES: usize = 2 * 1024 * 1024;

/// One open document.
pub struct OpenDocument {
    pub document: Document,
    /// The file behind a `file:` URI.
    pub path: Option<PathBuf>,
    /// Set when a change could not be applied: the text no longer matches
    /// the client's, so nothing may be computed from it until a full-text
    /// change or a reopen.
    pub out_of_sync: Option<String>,
}

#[derive(Default)]
pub struct DocumentsInner {
    pub encoding: PositionEncoding,
    pub open: HashMap<Uri, OpenDocument>,
    /// Sync problems not yet reported to the user (drained by the async
    /// notification handlers, which can talk to the client).
    pub problems: Vec<String>,
}

/// Every open document, shared between the ordered sync path and the
/// handlers.
#[derive(Default)]
pub struct Documents {
    inner: Mutex<DocumentsInner>,
    /// Wakes the reporter task (see `server.rs`) when a problem is queued:
    /// the sync path cannot await, and a malformed notification never
    /// reaches its async handler.
    pub problem_signal: tokio::sync::Notify,
}

impl Documents {
    pub fn lock(&self) -> MutexGuard<'_, DocumentsInner> {
        // A panic while holding the lock cannot leave a half-applied edit:
        // `Document` changes nothing on error. Keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn encoding(&self) -> PositionEncoding {
        self.lock().encoding
    }

    pub fn set_encoding(&self, encoding: PositionEncoding) {
        self.lock().encoding = encoding;
    }

    /// The version and full text of an open document.
    pub fn text(&self, uri: &Uri) -> Option<(i32, String)> {
        let inner = self.lock();
        inner
            .open
            .get(uri)
            .map(|open| (open.document.version(), open.document.text()))
    }

    /// Applies a text-sync notification, if `request` is one. Called in the
    /// transport's read loop (see the module docs).
    pub fn sync(&self, request: &Request) {
        let Some(params) = request.params() else {
            return;
        };
        match request.method() {
            "textDocument/didOpen" => match DidOpenTextDocumentParams::deserialize(params) {
                Ok(params) => self.open(params),
                Err(e) => self.problem(format!("ignored a malformed textDocument/didOpen: {e}")),
            },
            "textDocument/didChange" => match DidChangeTextDocumentParams::deserialize(params) {
                Ok(params) => self.change(&params),
                Err(e) => self.problem(format!("ignored a malformed textDocument/didChange: {e}")),
            },
            "textDocument/didClose" => match DidCloseTextDocumentParams::deserialize(params) {
                Ok(params) => {
                    self.lock().open.remove(&params.text_document.uri);
                }
                Err(e) => self.problem(format!("ignored a malformed textDocument/didClose: {e}")),
            },
            _ => {}
        }
    }

    fn problem(&self, message: String) {
        tracing::warn!("{message}");
        self.lock().problems.push(message);
        self.problem_signal.notify_one();
    }

    pub fn take_problems(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().problems)
    }

    pub fn open(&self, params: DidOpenTextDocumentParams) {
        let item = params.text_document;
        let path = from_proto::file_path(&item.uri).ok();
        let mut language = Language::from_lsp_id(&item.language_id);
        if language == Language::PlainText
            && let Some(path) = &path
        {
            language = Language::from_path(&path.to_string_lossy());
        }
        if item.text.len() > SYNTAX_LIMIT_BYTES {
            language = Language::PlainText;
        }
        let document = Document::new(&item.text, language, item.version);
        self.lock().open.insert(
            item.uri,
            OpenDocument {
                document,
                path,
                out_of_sync: None,
            },
        );
    }

    pub fn change(&self, params: &DidChangeTextDocumentParams) {
        let uri = &params.text_document.uri;
        let version = params.text_document.version;
        let mut inner = self.lock();
        let encoding = inner.encoding;
        let Some(open) = inner.open.get_mut(uri) else {
            drop(inner);
            self.problem(format!(
                "ignored a change to {}, which is not open",
                uri.as_str()
            ));
            return;
        };
        let current = open.document.version();
        if version <= current {
            let message = format!(
                "change to {} has version {version}, not after the current {current}; changes must arrive in order",
                uri.as_str()
            );
            open.out_of_sync = Some(message.clone());
            drop(inner);
            self.problem(message);
            return;
        }
        for change in &params.content_changes {
            let range = change.range.map(from_proto::range);
            if range.is_none() {
                // A full-text change resynchronises the document.
                open.out_of_sync = None;
            }
            if let Err(e) = open
                .document
                .apply_change(range, &change.text, encoding, version)
            {
                let message = format!("cannot apply a change to {}: {e}", uri.as_str());
                open.out_of_sync = Some(message.clone());
                drop(inner);
                self.problem(message);
                return;
            }
        }
        // A notification with no content changes still moves the version.
        open.document.set_version(version);
    }
}

/// Wraps the LSP service so text sync happens in the transport's read loop,
/// in arrival order (see the module docs).
pub struct OrderedSync<S> {
    inner: S,
    documents: Arc<Documents>,
}

impl<S> OrderedSync<S> {
    pub fn new(inner: S, documents: Arc<Documents>) -> OrderedSync<S> {
        OrderedSync { inner, documents }
    }
}

impl<S> tower::Service<Request> for OrderedSync<S>
where
    S: tower::Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.documents.sync(&request);
        self.inner.call(request)
    }
}

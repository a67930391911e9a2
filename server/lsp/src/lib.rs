//! The LSP front end: `redline lsp` serves the Language Server Protocol on
//! stdio so any LSP editor (VS Code, Zed, Neovim, Helix, ...) can ask
//! Redline for changes and review them hunk by hunk.
//!
//! This is the only crate that sees LSP types. It is a thin translator
//! between the wire and [`redline_agent::engine::Engine`]:
//!
//! - `from_proto` / `to_proto`: every conversion, one file per direction
//!   (positions in the negotiated encoding, URIs, diagnostics, edits).
//! - `documents`: the server's copy of each open document, kept in step
//!   with the client strictly in the order notifications arrive.
//! - `server`: the `LanguageServer` handlers and the `redline/*` methods.
//! - `tasks`: runs one task: progress, approvals, events, delivery.
//! - `review`: pending hunks, where they sit in the current text, and the
//!   workspace edits that accept them.
//! - `instruction`: `// redline: ...` instruction comments.
//!
//! The wire surface is documented in `docs/lsp.md`.

mod documents;
mod from_proto;
mod instruction;
mod review;
mod server;
mod tasks;
mod to_proto;

use redline_agent::engine::{Engine, EngineError};
use redline_core::document::DocumentError;
use tokio::io::{AsyncRead, AsyncWrite};

pub use server::methods;

/// Why a request could not be served. Mapped to JSON-RPC errors in one
/// place, `to_proto::jsonrpc_error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("document {uri} is not open in the editor")]
    UnknownDocument { uri: String },
    #[error("{uri} is not a file: Redline works on `file:` URIs")]
    NotAFile { uri: String },
    #[error("the server's copy of {uri} is out of sync ({reason}); close and reopen the file")]
    OutOfSync { uri: String, reason: String },
    #[error("invalid position in {uri}: {source}")]
    Position { uri: String, source: DocumentError },
    #[error("bad arguments for {command}: {message}")]
    BadArguments { command: String, message: String },
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error(
        "Redline: Ask needs an instruction: pass it as `instruction` in the command argument, or write a `// redline: ...` comment and use \"Redline: do what this comment says\""
    )]
    NoInstruction,
    #[error("task {task} has no pending review in this session")]
    UnknownTask { task: String },
    #[error("task {task} has no hunk {hunk}")]
    UnknownHunk { task: String, hunk: String },
    #[error(
        "cannot apply hunk {hunk} of {path}: the file changed since the proposal was made and the change no longer fits"
    )]
    StaleHunk { hunk: String, path: String },
    #[error("the editor cannot {what} through LSP; run `redline review` in a terminal instead")]
    ClientCannot { what: String },
    #[error("the editor did not apply the change{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    NotApplied { reason: Option<String> },
    #[error("the editor did not answer {method}: {message}")]
    Client { method: String, message: String },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Serves LSP on this process's stdin/stdout until the client exits.
pub async fn serve_stdio(engine: Engine) -> std::io::Result<()> {
    serve(engine, tokio::io::stdin(), tokio::io::stdout()).await;
    Ok(())
}

/// Serves LSP on any byte streams (tests and benchmarks use in-memory
/// duplex pipes). Returns when the client sends `exit` or closes `input`.
pub async fn serve<I, O>(engine: Engine, input: I, output: O)
where
    I: AsyncRead + Unpin,
    O: AsyncWrite,
{
    let (service, socket, state) = server::build(engine);
    tower_lsp_server::Server::new(input, output, socket)
        .serve(service)
        .await;
    // The client exited or went away: tasks it started have nobody to
    // review them. Cancel them; nothing was applied (the editor applies).
    let state = state.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(state) = state {
        state.cancel_live();
        let documents = state.documents.clone();
        drop(state);
        documents.problem_signal.notify_one();
    }
}

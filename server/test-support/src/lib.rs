//! Test support for Redline: a scripted mock model server.
//!
//! [`MockModelServer`] is a real HTTP server on loopback that speaks
//! Anthropic's `/v1/messages` and OpenAI's `/v1/chat/completions`, streamed
//! (SSE) or not, answering from a [`Script`]. Tests point the real model
//! clients at it, so the HTTP stack, SSE parser and retry logic all run.
//! It records every request for assertions, injects scripted faults, and
//! rejects malformed conversations (unpaired tool calls) with a 400 as the
//! real APIs do, so pairing bugs fail tests. The script format is described
//! in `docs/mock-model.md`.

pub mod fixtures;
pub mod script;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use script::FaultKind;
pub use script::{Conversation, Fault, Item, Script, ScriptUsage, ToolUse, Turn};
use wire::Answer;

/// The final text answered when a conversation has no turn left.
pub const SCRIPT_EXHAUSTED_TEXT: &str = "(script exhausted)";

/// One request the mock received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub path: String,
    /// Lower-case header names; secrets (`x-api-key`, `authorization`,
    /// cookies) are recorded as `[redacted]`, so tests can see they were sent.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// Index of the conversation that answered, if one did.
    pub conversation: Option<usize>,
    /// The turn index asked for (assistant messages in the request).
    pub turn: usize,
    pub outcome: Outcome,
}

/// How the mock answered a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The scripted turn, in full.
    Answered,
    /// A scripted fault, described.
    Fault(String),
    /// No turn was left: answered with [`SCRIPT_EXHAUSTED_TEXT`].
    ScriptExhausted,
    /// The request was malformed (status 400 or 401) with this message.
    Rejected { status: u16, message: String },
}

#[derive(Default)]
struct MockState {
    requests: Vec<RecordedRequest>,
    /// Attempts seen per (conversation, turn), for faults.
    attempts: HashMap<(usize, usize), usize>,
    /// First user message → conversation without `match` it was given.
    claims: HashMap<String, usize>,
}

struct Shared {
    script: Script,
    state: Mutex<MockState>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, MockState> {
        // A panicking test thread must not poison the mock for the others.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running mock model server; stops when dropped.
pub struct MockModelServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl MockModelServer {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(script: Script) -> anyhow::Result<MockModelServer> {
        MockModelServer::start_on(script, 0).await
    }

    /// Starts on 127.0.0.1:`port` (0 picks a free one).
    pub async fn start_on(script: Script, port: u16) -> anyhow::Result<MockModelServer> {
        script.validate()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let address = listener
            .local_addr()
            .context("cannot read the listening address")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            script,
            state: Mutex::new(MockState::default()),
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(openai))
            .fallback(not_found)
            // Agent requests carry whole files; the real APIs take megabytes.
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            // Serving only ends on shutdown or a listener failure; a test
            // would notice the latter as refused connections.
            let _ = serve.await;
        });
        Ok(MockModelServer {
            address,
            shared,
            shutdown,
            server,
        })
    }

    /// `http://127.0.0.1:PORT` — the Anthropic base URL; OpenAI clients
    /// append `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Requests answered with [`SCRIPT_EXHAUSTED_TEXT`]; a test asserts this
    /// is empty to prove the engine did not ask more than scripted.
    pub fn exhausted_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.outcome == Outcome::ScriptExhausted)
            .collect()
    }

    /// Stops accepting connections and ends every open stream (hanging ones
    /// included).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.server.abort();
    }
}

impl Drop for MockModelServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Anthropic,
    OpenAi,
}

async fn not_found(uri: Uri) -> Response {
    let body = wire::anthropic_error(
        "not_found_error",
        &format!("no mock route for {}", uri.path()),
    );
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn anthropic(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(shared, Dialect::Anthropic, "/v1/messages", headers, body)
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(
        shared,
        Dialect::OpenAi,
        "/v1/chat/completions",
        headers,
        body,
    )
}

const SECRET_HEADERS: [&str; 5] = [
    "x-api-key",
    "authorization",
    "cookie",
    "proxy-authorization",
    "api-key",
];

fn record_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

fn error_response(dialect: Dialect, status: u16, kind: &str, message: &str) -> Response {
    let body = match dialect {
        Dialect::Anthropic => wire::anthropic_error(kind, message),
        Dialect::OpenAi => wire::openai_error(kind, message),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// Checks credentials and shape like the real API; `Err` is the rejection.
fn check_request(
    shared: &Shared,
    dialect: Dialect,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(), (u16, String)> {
    if let Some(expected) = &shared.script.api_key {
        let presented = match dialect {
            Dialect::Anthropic => headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            Dialect::OpenAi => headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned),
        };
        if presented.as_deref() != Some(expected.as_str()) {
            let message = match dialect {
                Dialect::Anthropic => "invalid x-api-key",
                Dialect::OpenAi => "Incorrect API key provided",
            };
            return Err((401, message.to_owned()));
        }
    }
    if body.is_null() {
        return Err((400, "request body is not valid JSON".to_owned()));
    }
    match dialect {
        Dialect::Anthropic => {
            if headers.get("anthropic-version").is_none() {
                return Err((400, "anthropic-version: header is required".to_owned()));
            }
            wire::validate_anthropic(body)
        }
        Dialect::OpenAi => wire::validate_openai(body),
    }
    .map_err(|message| (400, message))
}

/// Picks the conversation for a first user message (see [`Conversation::match_text`]).
fn choose_conversation(script: &Script, state: &mut MockState, first_user: &str) -> Option<usize> {
    let matched = script.conversations.iter().position(|c| {
        c.match_text
            .as_deref()
            .is_some_and(|m| first_user.contains(m))
    });
    if matched.is_some() {
        return matched;
    }
    if let Some(&claimed) = state.claims.get(first_user) {
        return Some(claimed);
    }
    let taken: HashSet<usize> = state.claims.values().copied().collect();
    let free = script
        .conversations
        .iter()
        .enumerate()
        .position(|(i, c)| c.match_text.is_none() && !taken.contains(&i))?;
    state.claims.insert(first_user.to_owned(), free);
    Some(free)
}

fn handle(
    shared: Arc<Shared>,
    dialect: Dialect,
    path: &str,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut record = RecordedRequest {
        path: path.to_owned(),
        headers: record_headers(&headers),
        body: body.clone(),
        conversation: None,
        turn: wire::assistant_count(&body),
        outcome: Outcome::Answered,
    };
    if let Err((status, message)) = check_request(&shared, dialect, &headers, &body) {
        record.outcome = Outcome::Rejected {
            status,
            message: message.clone(),
        };
        shared.state().requests.push(record);
        let kind = wire::error_kind_of_status(status);
        return error_response(dialect, status, kind, &message);
    }

    let streaming = body["stream"].as_bool().unwrap_or(false);
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let model = body["model"].as_str().unwrap_or("mock-model").to_owned();
    let first_user = wire::first_user_text(&body);
    let turn_index = record.turn;

    let (conversation, fault) = {
        let mut state = shared.state();
        let conversation = choose_conversation(&shared.script, &mut state, &first_user);
        let turn = conversation.and_then(|c| shared.script.conversations[c].turns.get(turn_index));
        let fault = match (conversation, turn) {
            (Some(c), Some(turn)) => {
                let attempt = state.attempts.entry((c, turn_index)).or_insert(0);
                let fault = turn.faults.get(*attempt).cloned();
                *attempt += 1;
                fault
            }
            _ => None,
        };
        (conversation, fault)
    };
    record.conversation = conversation;

    let exhausted_turn;
    let turn = match conversation.and_then(|c| shared.script.conversations[c].turns.get(turn_index))
    {
        Some(turn) => turn,
        None => {
            record.outcome = Outcome::ScriptExhausted;
            exhausted_turn = Turn {
                stop_reason: Some("end_turn".to_owned()),
                ..Turn::text(SCRIPT_EXHAUSTED_TEXT)
            };
            &exhausted_turn
        }
    };
    // Validated at start, so `kind()` succeeds; a failure answers normally.
    let fault = fault.and_then(|f| f.kind().ok());
    if let Some(fault) = &fault {
        record.outcome = Outcome::Fault(format!("{fault:?}"));
    }
    shared.state().requests.push(record);

    let answer = Answer {
        turn,
        conversation: conversation.unwrap_or(usize::MAX),
        turn_index,
        model,
        input_estimate: (raw.len() as u64 / 4).max(1),
    };

    if let Some(FaultKind::Status {
        status,
        retry_after,
        retry_after_ms,
    }) = &fault
    {
        let kind = wire::error_kind_of_status(*status);
        let mut response = error_response(dialect, *status, kind, &wire::error_message(kind));
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(*secs));
        }
        if let Some(ms) = retry_after_ms {
            response
                .headers_mut()
                .insert("retry-after-ms", HeaderValue::from(*ms));
        }
        return response;
    }

    let anthropic = dialect == Dialect::Anthropic;
    if streaming {
        let frames = match dialect {
            Dialect::Anthropic => wire::anthropic_frames(&answer),
            Dialect::OpenAi => wire::openai_frames(&answer, include_usage),
        };
        let plan = stream_plan(frames, fault.as_ref(), anthropic);
        let delay = Duration::from_millis(turn.delay_ms.unwrap_or(0));
        return stream_response(plan, delay, shared.shutdown.clone(), "text/event-stream");
    }

    let full = match dialect {
        Dialect::Anthropic => wire::anthropic_message(&answer),
        Dialect::OpenAi => wire::openai_completion(&answer),
    };
    let text = full.to_string();
    let plan = match &fault {
        None | Some(FaultKind::Status { .. }) => {
            let mut response = Response::new(Body::from(text));
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            return response;
        }
        Some(FaultKind::Disconnect { .. }) => {
            let half: String = text.chars().take(text.chars().count() / 2).collect();
            Plan {
                frames: vec![half],
                end: End::Disconnect,
            }
        }
        Some(FaultKind::Malformed { .. }) => Plan {
            frames: vec!["{\"id\": \"msg_mock\", \"content\": [".to_owned()],
            end: End::Clean,
        },
        Some(FaultKind::ErrorEvent { kind, .. }) => {
            return error_response(
                dialect,
                wire::status_of_error_kind(kind),
                kind,
                &wire::error_message(kind),
            );
        }
        Some(FaultKind::Hang { .. }) => Plan {
            frames: Vec::new(),
            end: End::Hang,
        },
    };
    stream_response(
        plan,
        Duration::ZERO,
        shared.shutdown.clone(),
        "application/json",
    )
}

enum End {
    Clean,
    /// Abort the body so the client sees a broken connection.
    Disconnect,
    /// Keep the connection open and silent until the client leaves.
    Hang,
}

struct Plan {
    frames: Vec<String>,
    end: End,
}

/// The frames an attempt sends, with the fault applied.
fn stream_plan(mut frames: Vec<String>, fault: Option<&FaultKind>, anthropic: bool) -> Plan {
    match fault {
        None | Some(FaultKind::Status { .. }) => Plan {
            frames,
            end: End::Clean,
        },
        Some(FaultKind::Disconnect { after_events }) => {
            frames.truncate(*after_events);
            Plan {
                frames,
                end: End::Disconnect,
            }
        }
        Some(FaultKind::Malformed { after_events }) => {
            frames.truncate(*after_events);
            frames.push(wire::malformed_frame(anthropic));
            Plan {
                frames,
                end: End::Clean,
            }
        }
        Some(FaultKind::ErrorEvent { kind, after_events }) => {
            frames.truncate(*after_events);
            frames.push(if anthropic {
                wire::anthropic_error_event(kind)
            } else {
                wire::openai_error_event(kind)
            });
            Plan {
                frames,
                end: End::Clean,
            }
        }
        Some(FaultKind::Hang { after_events }) => {
            frames.truncate(*after_events);
            Plan {
                frames,
                end: End::Hang,
            }
        }
    }
}

fn stream_response(
    plan: Plan,
    delay: Duration,
    mut shutdown: watch::Receiver<bool>,
    content_type: &'static str,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        for (i, frame) in plan.frames.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|stopped| *stopped) => return,
                }
            }
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                return; // the client left
            }
        }
        match plan.end {
            End::Clean => {}
            End::Disconnect => {
                // hyper drops its unflushed write buffer when the body fails;
                // let it flush the frames first (it does so as soon as the
                // body stream is pending), so the client really sees them.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "mock disconnect",
                    )))
                    .await;
            }
            End::Hang => {
                tokio::select! {
                    _ = tx.closed() => {}
                    _ = shutdown.wait_for(|stopped| *stopped) => {}
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("request-id", HeaderValue::from_static("req_mock"));
    response
}

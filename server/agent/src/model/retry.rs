//! Retries, timeouts and cancellation shared by the model clients.
//!
//! Both clients describe a request (URL, headers, JSON body) and a
//! [`StreamDecoder`] for their wire format; [`Transport::send`] does the rest:
//! it posts the request, streams the body through the SSE parser and the
//! decoder, forwards deltas to the engine's sink, and retries transient
//! failures with exponential backoff and full jitter.
//!
//! What is retried: HTTP 429, 529 and 5xx; connection errors; a response that
//! sends no headers within `request_timeout`; a stream that sends no bytes for
//! `idle_timeout`; a stream cut off before its end; garbage in the stream; and
//! provider error events that mean "overloaded". Other 4xx answers are final.
//! A `retry-after-ms` or `retry-after` (seconds) header replaces the computed
//! backoff when it is at most [`MAX_HONOURED_RETRY_AFTER`]; longer waits are
//! treated as ordinary backoff so a task never sleeps for minutes silently.
//!
//! Duplicated deltas: a stream may break after text already reached the
//! sink. The retry then replays the request, and [`ShownOutput`] swallows the
//! replayed deltas while they repeat what was shown, forwarding only what is
//! new, so the user sees every character once. If the replay *differs* from
//! what was shown (a sampled model rarely answers twice alike), the text on
//! screen can no longer be made to match the response, so the send fails
//! with a [`ModelError::Stream`] error saying so instead of showing a second,
//! different answer.
//!
//! Cancellation: every await (headers, each chunk, each backoff sleep) races
//! the [`CancellationToken`]; on cancel the in-flight request future is
//! dropped, which closes the connection, and [`ModelError::Cancelled`] is
//! returned at once.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;

use super::sse::{SseEvent, SseParser};
use super::{ModelError, ModelResponse, StreamEvent, StreamSink};

/// The longest `retry-after` the clients wait for as told.
pub const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often and how patiently a client retries transient failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (0 behaves like 1).
    pub max_attempts: u32,
    /// Backoff cap of the first retry; doubles with each further retry.
    pub base_delay: Duration,
    /// Upper bound of the computed backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1000),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The largest backoff after failed attempt number `attempt` (1-based):
    /// `min(max_delay, base_delay * 2^(attempt-1))`.
    pub fn backoff_cap(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// A "full jitter" backoff: uniformly random in `[0, backoff_cap]`, so
    /// many clients that failed together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let cap = u64::try_from(self.backoff_cap(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=cap))
    }

    /// The delay before the next attempt: the server's `retry-after` when it
    /// gave a usable one, else the jittered backoff.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) if wait <= MAX_HONOURED_RETRY_AFTER => wait,
            _ => self.backoff(attempt),
        }
    }
}

/// Reads `retry-after-ms` (milliseconds, Anthropic and OpenAI send it) or
/// `retry-after` (seconds; an HTTP date is ignored).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let secs = header("retry-after")?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: ModelError,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn retryable(error: ModelError) -> Failure {
        Failure {
            error,
            retryable: true,
            retry_after: None,
        }
    }

    pub fn fatal(error: ModelError) -> Failure {
        Failure {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    /// A broken or garbled stream: retried, as the next attempt is likely fine.
    pub fn stream(message: impl Into<String>) -> Failure {
        Failure::retryable(ModelError::Stream(message.into()))
    }
}

/// What a decoder says after an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The provider's end-of-response marker arrived.
    Done,
}

/// Turns one provider's SSE events into deltas and a final response.
pub(crate) trait StreamDecoder: Send {
    /// Handles one event, pushing the deltas it carries onto `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Failure>;

    /// The assembled response; `saw_end` tells whether the end marker came
    /// (else the body simply stopped).
    fn finish(&mut self, saw_end: bool) -> Result<ModelResponse, Failure>;
}

/// One prepared HTTP request, sent once per attempt.
pub(crate) struct PreparedRequest {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The HTTP side of a client: its endpoint and fixed headers, connection
/// pool, timeouts and retry policy. Clients only build bodies and decode.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    pub url: String,
    pub headers: HeaderMap,
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Scrubbed from every error message (servers sometimes echo keys).
    pub secret: Option<String>,
}

enum AttemptError {
    Cancelled,
    Failed(Failure),
}

impl From<Failure> for AttemptError {
    fn from(failure: Failure) -> Self {
        AttemptError::Failed(failure)
    }
}

impl Transport {
    pub fn new(
        retry: RetryPolicy,
        request_timeout: Duration,
        idle_timeout: Duration,
        secret: Option<String>,
        url: String,
        headers: HeaderMap,
    ) -> Result<Transport, ModelError> {
        let http = reqwest::Client::builder()
            .connect_timeout(request_timeout)
            .build()
            .map_err(|err| ModelError::Network {
                url: url.clone(),
                message: format!("cannot build the HTTP client: {err}"),
            })?;
        Ok(Transport {
            url,
            headers,
            http,
            retry,
            request_timeout,
            idle_timeout,
            secret,
        })
    }

    /// Encodes `body` and sends it to this transport's endpoint with its
    /// headers; see [`Transport::send`].
    pub async fn send_json<D: StreamDecoder>(
        &self,
        body: &serde_json::Value,
        new_decoder: impl Fn() -> D,
        sink: StreamSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ModelResponse, ModelError> {
        let body = serde_json::to_vec(body).map_err(|err| {
            ModelError::Stream(format!("cannot encode the request for {}: {err}", self.url))
        })?;
        let prepared = PreparedRequest {
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
        };
        self.send(&prepared, new_decoder, sink, cancel).await
    }

    /// Sends `request` until it succeeds, fails for good, runs out of
    /// attempts or is cancelled.
    pub async fn send<D: StreamDecoder>(
        &self,
        request: &PreparedRequest,
        new_decoder: impl Fn() -> D,
        sink: StreamSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ModelResponse, ModelError> {
        let max_attempts = self.retry.max_attempts.max(1);
        let mut shown = ShownOutput::default();
        let mut attempt = 1;
        loop {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            shown.begin_attempt();
            let mut decoder = new_decoder();
            let failure = match self
                .attempt(request, &mut decoder, &mut shown, sink, cancel)
                .await
            {
                Ok(response) => return Ok(response),
                Err(AttemptError::Cancelled) => return Err(ModelError::Cancelled),
                Err(AttemptError::Failed(failure)) => failure,
            };
            let error = self.scrub_error(failure.error);
            if !failure.retryable {
                return Err(error);
            }
            if attempt >= max_attempts {
                if max_attempts == 1 {
                    return Err(error);
                }
                return Err(ModelError::RetriesExhausted {
                    attempts: attempt,
                    last: error.to_string(),
                });
            }
            let delay = self.retry.delay(attempt, failure.retry_after);
            tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, %error, "model request failed, retrying");
            sink(StreamEvent::Retrying {
                attempt: attempt + 1,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason: error.to_string(),
            });
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
        }
    }

    async fn attempt<D: StreamDecoder>(
        &self,
        request: &PreparedRequest,
        decoder: &mut D,
        shown: &mut ShownOutput,
        sink: StreamSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ModelResponse, AttemptError> {
        let send = self
            .http
            .post(&request.url)
            .headers(request.headers.clone())
            .body(request.body.clone())
            .send();
        let mut response = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(AttemptError::Cancelled),
            result = tokio::time::timeout(self.request_timeout, send) => match result {
                Err(_) => return Err(Failure::retryable(ModelError::Timeout(format!(
                    "no response from {} within {}", request.url, human(self.request_timeout)
                ))).into()),
                Ok(Err(err)) => return Err(Failure::retryable(ModelError::Network {
                    url: request.url.clone(),
                    message: error_chain(&err),
                }).into()),
                Ok(Ok(response)) => response,
            },
        };

        let status = response.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers());
            let body = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(AttemptError::Cancelled),
                body = tokio::time::timeout(self.idle_timeout, response.text()) => {
                    body.ok().and_then(Result::ok).unwrap_or_default()
                }
            };
            let mut failure = classify_status(status, &body);
            failure.retry_after = retry_after;
            return Err(failure.into());
        }

        let mut parser = SseParser::new();
        let mut deltas = Vec::new();
        loop {
            let chunk = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(AttemptError::Cancelled),
                chunk = tokio::time::timeout(self.idle_timeout, response.chunk()) => chunk,
            };
            let bytes = match chunk {
                Err(_) => {
                    return Err(Failure::retryable(ModelError::Timeout(format!(
                        "the model sent nothing for {}",
                        human(self.idle_timeout)
                    )))
                    .into());
                }
                Ok(Err(err)) => {
                    return Err(Failure::stream(format!(
                        "connection lost mid-response: {}",
                        error_chain(&err)
                    ))
                    .into());
                }
                Ok(Ok(None)) => {
                    let cut_off = parser.finish();
                    if cut_off {
                        tracing::debug!("event stream ended inside an event");
                    }
                    let response = decoder.finish(false)?;
                    shown.check_complete()?;
                    return Ok(response);
                }
                Ok(Ok(Some(bytes))) => bytes,
            };
            let events = parser
                .push(&bytes)
                .map_err(|err| Failure::stream(format!("malformed event stream: {err}")))?;
            for event in &events {
                let flow = decoder.on_event(event, &mut deltas)?;
                for delta in deltas.drain(..) {
                    if let Some(delta) = shown.admit(delta)? {
                        sink(delta);
                    }
                }
                if flow == Flow::Done {
                    let response = decoder.finish(true)?;
                    shown.check_complete()?;
                    return Ok(response);
                }
            }
        }
    }

    fn scrub_error(&self, error: ModelError) -> ModelError {
        let Some(secret) = self.secret.as_deref().filter(|s| s.len() >= 4) else {
            return error;
        };
        let scrub = |text: String| text.replace(secret, "[redacted]");
        match error {
            ModelError::Api {
                status,
                kind,
                message,
            } => ModelError::Api {
                status,
                kind,
                message: scrub(message),
            },
            ModelError::Stream(message) => ModelError::Stream(scrub(message)),
            ModelError::Network { url, message } => ModelError::Network {
                url,
                message: scrub(message),
            },
            other => other,
        }
    }
}

/// Maps a non-2xx answer to a failure, using the provider's error body.
pub(crate) fn classify_status(status: StatusCode, body: &str) -> Failure {
    let code = status.as_u16();
    let (kind, message) = parse_error_body(body);
    let kind = kind.unwrap_or_else(|| default_kind(code).to_owned());
    let message = message.unwrap_or_else(|| {
        let reason = status.canonical_reason().unwrap_or("unexpected status");
        format!("HTTP {code} {reason}")
    });
    let error = match code {
        401 => ModelError::Api {
            status: code,
            kind,
            message: format!("the API key was rejected: {message}"),
        },
        _ => ModelError::Api {
            status: code,
            kind,
            message,
        },
    };
    let retryable = code == 429 || code == 529 || (500..600).contains(&code);
    Failure {
        error,
        retryable,
        retry_after: None,
    }
}

fn default_kind(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The error type and message of an error body in either provider's shape:
/// Anthropic `{"type":"error","error":{"type","message"}}`, OpenAI
/// `{"error":{"type"|"code","message"}}`, or Ollama's `{"error":"text"}`.
pub(crate) fn parse_error_body(body: &str) -> (Option<String>, Option<String>) {
    let trimmed = body.trim();
    let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        let message = (!trimmed.is_empty()).then(|| truncate(trimmed, 300));
        return (None, message);
    };
    let error = &value["error"];
    if let Some(text) = error.as_str() {
        return (None, Some(truncate(text, 300)));
    }
    let kind = error["type"]
        .as_str()
        .or_else(|| error["code"].as_str())
        .map(str::to_owned);
    let message = error["message"]
        .as_str()
        .or_else(|| value["message"].as_str())
        .map(|m| truncate(m, 500));
    (kind, message)
}

/// Whether a provider's in-stream error type is worth another attempt.
pub(crate) fn is_retryable_error_kind(kind: &str) -> bool {
    matches!(
        kind,
        "overloaded_error" | "api_error" | "rate_limit_error" | "server_error" | "overloaded"
    )
}

/// The HTTP status a provider error type corresponds to, for error reports
/// of errors that arrived inside a 200 stream.
pub(crate) fn status_of_error_kind(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A reqwest error with its causes, which hold the useful part
/// ("connection refused", "unexpected end of file").
fn error_chain(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn human(duration: Duration) -> String {
    if duration.as_millis() < 1000 || duration.subsec_millis() != 0 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", duration.as_secs())
    }
}

/// What reached the sink so far, so a retried stream shows nothing twice.
#[derive(Debug, Default)]
pub(crate) struct ShownOutput {
    pieces: Vec<ShownPiece>,
    /// How far the current attempt has replayed `pieces`: piece index and
    /// byte offset inside a text piece.
    replay: (usize, usize),
}

#[derive(Debug, PartialEq)]
enum ShownPiece {
    Text(String),
    /// A tool call start, compared by name: ids are minted per response.
    Tool(String),
}

const DIVERGED: &str = "the connection broke after part of the answer was shown, and the retried answer differs from it";

impl ShownOutput {
    pub fn begin_attempt(&mut self) {
        self.replay = (0, 0);
    }

    fn replay_done(&self) -> bool {
        self.replay.0 >= self.pieces.len()
    }

    /// Returns the part of `event` that is new to the user, or `None` when
    /// the event repeats what an earlier attempt already showed.
    pub fn admit(&mut self, event: StreamEvent) -> Result<Option<StreamEvent>, Failure> {
        match event {
            StreamEvent::TextDelta(text) => {
                let mut rest = text.as_str();
                while !rest.is_empty() && !self.replay_done() {
                    let (index, offset) = self.replay;
                    let ShownPiece::Text(shown) = &self.pieces[index] else {
                        return Err(Failure::fatal(ModelError::Stream(DIVERGED.to_owned())));
                    };
                    let unseen = &shown[offset..];
                    if unseen.len() > rest.len() {
                        if !unseen.starts_with(rest) {
                            return Err(Failure::fatal(ModelError::Stream(DIVERGED.to_owned())));
                        }
                        self.replay.1 += rest.len();
                        rest = "";
                    } else {
                        if !rest.starts_with(unseen) {
                            return Err(Failure::fatal(ModelError::Stream(DIVERGED.to_owned())));
                        }
                        rest = &rest[unseen.len()..];
                        self.replay = (index + 1, 0);
                    }
                }
                if rest.is_empty() {
                    return Ok(None);
                }
                match self.pieces.last_mut() {
                    Some(ShownPiece::Text(shown)) => shown.push_str(rest),
                    _ => self.pieces.push(ShownPiece::Text(rest.to_owned())),
                }
                self.replay = (self.pieces.len(), 0);
                Ok(Some(StreamEvent::TextDelta(rest.to_owned())))
            }
            StreamEvent::ToolUseStarted { id, name } => {
                if self.replay_done() {
                    self.pieces.push(ShownPiece::Tool(name.clone()));
                    self.replay = (self.pieces.len(), 0);
                    return Ok(Some(StreamEvent::ToolUseStarted { id, name }));
                }
                let (index, offset) = self.replay;
                match &self.pieces[index] {
                    ShownPiece::Tool(shown) if offset == 0 && *shown == name => {
                        self.replay = (index + 1, 0);
                        Ok(None)
                    }
                    _ => Err(Failure::fatal(ModelError::Stream(DIVERGED.to_owned()))),
                }
            }
            retrying @ StreamEvent::Retrying { .. } => Ok(Some(retrying)),
        }
    }

    /// A replay that ends before covering what was shown also differs.
    pub fn check_complete(&self) -> Result<(), Failure> {
        if self.replay_done() {
            Ok(())
        } else {
            Err(Failure::fatal(ModelError::Stream(DIVERGED.to_owned())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        let caps: Vec<u128> = (1..=6).map(|a| policy.backoff_cap(a).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff_cap(200), Duration::from_millis(1000));
        for attempt in 1..=6 {
            for _ in 0..50 {
                assert!(policy.backoff(attempt) <= policy.backoff_cap(attempt));
            }
        }
    }

    #[test]
    fn retry_after_headers() {
        fn check(headers: &[(&'static str, &'static str)], expect: Option<u64>) {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.insert(*name, value.parse().unwrap());
            }
            assert_eq!(
                parse_retry_after(&map).map(|d| d.as_millis() as u64),
                expect,
                "{headers:?}"
            );
        }
        check(&[], None);
        check(&[("retry-after", "2")], Some(2000));
        check(&[("retry-after", "0.5")], Some(500));
        check(&[("retry-after-ms", "250")], Some(250));
        check(
            &[("retry-after", "9"), ("retry-after-ms", "250")],
            Some(250),
        );
        check(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], None);
        check(&[("retry-after", "-1")], None);
    }

    #[test]
    fn long_retry_after_falls_back_to_backoff() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        };
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(policy.delay(1, Some(Duration::from_secs(3600))) <= Duration::from_millis(10));
    }

    #[test]
    fn error_bodies() {
        fn check(body: &str, expect: (Option<&str>, Option<&str>)) {
            let (kind, message) = parse_error_body(body);
            assert_eq!((kind.as_deref(), message.as_deref()), expect, "{body}");
        }
        check(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            (Some("overloaded_error"), Some("Overloaded")),
        );
        check(
            r#"{"error":{"message":"bad model","type":null,"code":"model_not_found"}}"#,
            (Some("model_not_found"), Some("bad model")),
        );
        check(
            r#"{"error":"model 'x' not found"}"#,
            (None, Some("model 'x' not found")),
        );
        check(
            "upstream connect error",
            (None, Some("upstream connect error")),
        );
        check("", (None, None));
    }

    #[test]
    fn status_classification() {
        fn check(status: u16, expect: &str) {
            let failure = classify_status(StatusCode::from_u16(status).unwrap(), "");
            let got = format!("retryable={} {}", failure.retryable, failure.error);
            assert_eq!(got, expect);
        }
        check(
            429,
            "retryable=true model API rejected the request (429): HTTP 429 Too Many Requests",
        );
        check(
            529,
            "retryable=true model API rejected the request (529): HTTP 529 unexpected status",
        );
        check(
            503,
            "retryable=true model API rejected the request (503): HTTP 503 Service Unavailable",
        );
        check(
            400,
            "retryable=false model API rejected the request (400): HTTP 400 Bad Request",
        );
        check(
            401,
            "retryable=false model API rejected the request (401): the API key was rejected: HTTP 401 Unauthorized",
        );
    }

    fn text(t: &str) -> StreamEvent {
        StreamEvent::TextDelta(t.to_owned())
    }

    fn tool(name: &str) -> StreamEvent {
        StreamEvent::ToolUseStarted {
            id: format!("id-{name}"),
            name: name.to_owned(),
        }
    }

    /// Runs attempts of deltas through one [`ShownOutput`]; renders what
    /// reached the sink, or the error where an attempt diverged.
    fn check_replay(attempts: &[&[StreamEvent]], expect: &str) {
        let mut shown = ShownOutput::default();
        let mut out = Vec::new();
        for attempt in attempts {
            shown.begin_attempt();
            for event in attempt.iter() {
                match shown.admit(event.clone()) {
                    Ok(Some(StreamEvent::TextDelta(t))) => out.push(format!("{t:?}")),
                    Ok(Some(StreamEvent::ToolUseStarted { name, .. })) => {
                        out.push(format!("tool:{name}"))
                    }
                    Ok(Some(other)) => out.push(format!("{other:?}")),
                    Ok(None) => {}
                    Err(failure) => {
                        out.push(format!("error: {}", failure.error));
                        assert_eq!(out.join(" "), expect);
                        return;
                    }
                }
            }
        }
        if let Err(failure) = shown.check_complete() {
            out.push(format!("incomplete: {}", failure.error));
        }
        assert_eq!(out.join(" "), expect);
    }

    #[test]
    fn replay_suppresses_what_was_shown() {
        check_replay(&[&[text("Hel"), text("lo")]], r#""Hel" "lo""#);
        // Broke after "Hel"; the replay repeats it in other chunk sizes.
        check_replay(
            &[&[text("Hel")], &[text("H"), text("ello"), text(" world")]],
            r#""Hel" "lo" " world""#,
        );
        check_replay(
            &[&[text("Hello")], &[text("Hello world")]],
            r#""Hello" " world""#,
        );
        check_replay(
            &[
                &[text("Hi"), tool("read")],
                &[text("H"), text("i"), tool("read"), text("!")],
            ],
            r#""Hi" tool:read "!""#,
        );
        check_replay(&[&[text("a")], &[text("a")], &[text("ab")]], r#""a" "b""#);
        check_replay(&[&[], &[text("x")]], r#""x""#);
    }

    #[test]
    fn replay_that_differs_is_an_error() {
        check_replay(
            &[&[text("Hello")], &[text("Help")]],
            r#""Hello" error: model stream broken: the connection broke after part of the answer was shown, and the retried answer differs from it"#,
        );
        check_replay(
            &[&[tool("read")], &[tool("write")]],
            "tool:read error: model stream broken: the connection broke after part of the answer was shown, and the retried answer differs from it",
        );
        check_replay(
            &[&[text("Hello")], &[text("He")]],
            r#""Hello" incomplete: model stream broken: the connection broke after part of the answer was shown, and the retried answer differs from it"#,
        );
    }
}

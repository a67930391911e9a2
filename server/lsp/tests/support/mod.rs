//! A small real LSP client over in-memory pipes, and an engine against the
//! mock model, shared by the integration tests and the benchmark.
#![allow(dead_code, clippy::field_reassign_with_default)]
// Also compiled into the benchmark, which is not a test target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use redline_agent::config::Config;
use redline_agent::engine::{Engine, EngineOptions};
use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_agent::model::retry::RetryPolicy;
use redline_core::store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, WriteHalf};
use tokio::sync::{Notify, oneshot};

pub fn engine(base_url: &str, data: &Path) -> Engine {
    let mut config = Config::default();
    config.anthropic_base_url = base_url.to_owned();
    config.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    config.request_timeout = Duration::from_secs(10);
    config.idle_timeout = Duration::from_secs(5);
    config.sandbox = "none".into();
    let model = AnthropicClient::new(AnthropicConfig {
        base_url: base_url.to_owned(),
        api_key: "test-key".into(),
        retry: config.retry.clone(),
        request_timeout: config.request_timeout,
        idle_timeout: config.idle_timeout,
        ..AnthropicConfig::default()
    })
    .unwrap();
    Engine::new(EngineOptions {
        config,
        store: Store::open(&data.join("redline.db")).unwrap(),
        journal_dir: data.join("journal"),
        model: Arc::new(model),
        sandbox: None,
        global_instructions: None,
    })
    .unwrap()
}

/// How the client answers the server's requests.
#[derive(Clone, Debug)]
pub struct Answers {
    /// `workspace/applyEdit` → `applied`.
    pub apply_edit: bool,
}

#[derive(Default)]
struct Inbox {
    notifications: Vec<Value>,
    server_requests: Vec<Value>,
}

pub struct TestClient {
    writer: tokio::sync::Mutex<WriteHalf<DuplexStream>>,
    pending: Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    next_id: AtomicI64,
    pub server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub fn frame(body: &str) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

impl TestClient {
    /// Starts the server on in-memory pipes and connects a client to it.
    pub fn start(engine: Engine, answers: Answers) -> Arc<TestClient> {
        let (client_side, server_side) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_side);
        let server = tokio::spawn(redline_lsp::serve(engine, server_read, server_write));
        let (client_read, client_write) = tokio::io::split(client_side);
        let client = Arc::new(TestClient {
            writer: tokio::sync::Mutex::new(client_write),
            pending: Arc::default(),
            inbox: Arc::default(),
            arrived: Arc::new(Notify::new()),
            next_id: AtomicI64::new(1),
            server: Mutex::new(Some(server)),
        });
        let reader = client.clone();
        tokio::spawn(async move {
            let mut input = BufReader::new(client_read);
            while let Ok(Some(message)) = read_message(&mut input).await {
                reader.dispatch(message, &answers).await;
            }
        });
        client
    }

    async fn dispatch(&self, message: Value, answers: &Answers) {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (message.get("id").cloned(), method) {
            (Some(id), Some(method)) => {
                let result = match method.as_str() {
                    "workspace/applyEdit" => json!({ "applied": answers.apply_edit }),
                    "window/showMessageRequest" => message["params"]["actions"][0].clone(),
                    _ => Value::Null,
                };
                self.inbox.lock().unwrap().server_requests.push(message);
                self.send(&json!({ "jsonrpc": "2.0", "id": id, "result": result }))
                    .await;
            }
            (Some(id), None) => {
                let sender = id
                    .as_i64()
                    .and_then(|id| self.pending.lock().unwrap().remove(&id));
                match sender {
                    Some(sender) => {
                        let _ = sender.send(message);
                    }
                    None => self.inbox.lock().unwrap().notifications.push(message),
                }
            }
            (None, Some(_)) => self.inbox.lock().unwrap().notifications.push(message),
            (None, None) => {}
        }
        self.arrived.notify_waiters();
    }

    pub async fn send(&self, message: &Value) {
        self.send_raw(&frame(&message.to_string())).await;
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        let mut writer = self.writer.lock().await;
        // A closed server shows up as a missing response.
        let _ = writer.write_all(bytes).await;
        let _ = writer.flush().await;
    }

    /// Sends a request; the receiver yields the whole response message.
    pub async fn request_start(&self, method: &str, params: Value) -> oneshot::Receiver<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, sender);
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        receiver
    }

    /// Sends a request and waits for its response: `Ok(result)` or
    /// `Err(error object)`.
    pub async fn request(
        &self,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Result<Value, Value>> {
        let receiver = self.request_start(method, params).await;
        let response = tokio::time::timeout(Duration::from_secs(20), receiver)
            .await
            .with_context(|| format!("no response to {method}"))?
            .context("the server went away")?;
        Ok(match response.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(response["result"].clone()),
        })
    }

    pub async fn notify(&self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }))
            .await;
    }

    pub async fn initialize(&self, capabilities: Value, root: &Path) -> Value {
        let root_uri = uri(root);
        let result = self
            .request("initialize", json!({ "capabilities": capabilities, "rootUri": root_uri, "workspaceFolders": [{ "uri": root_uri, "name": "w" }] }))
            .await
            .unwrap()
            .unwrap();
        self.notify("initialized", json!({})).await;
        result
    }

    /// Waits until a notification matching `predicate` has arrived.
    pub async fn wait_notification(
        &self,
        predicate: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait(|inbox| inbox.notifications.iter().find(|n| predicate(n)).cloned())
            .await
    }

    pub async fn wait_server_request(
        &self,
        predicate: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait(|inbox| inbox.server_requests.iter().find(|n| predicate(n)).cloned())
            .await
    }

    async fn wait(&self, find: impl Fn(&Inbox) -> Option<Value>) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            if let Some(found) = find(&self.inbox.lock().unwrap()) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let inbox = self.inbox.lock().unwrap();
                bail!("timed out; notifications: {:#?}", inbox.notifications);
            }
        }
    }

    /// Closes the client's side of the pipe, as a crashed editor would.
    pub async fn disconnect(&self) {
        let _ = self.writer.lock().await.shutdown().await;
    }

    pub fn notifications(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().notifications.clone()
    }

    pub fn server_requests(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().server_requests.clone()
    }

    /// Clears recorded notifications (e.g. before waiting for a new batch).
    pub fn clear_notifications(&self) {
        self.inbox.lock().unwrap().notifications.clear();
    }
}

pub fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
) -> anyhow::Result<Option<Value>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = Some(value.parse::<usize>()?);
        }
    }
    let mut body = vec![0; length.context("no Content-Length")?];
    input.read_exact(&mut body).await?;
    Ok(Some(serde_json::from_slice(&body)?))
}

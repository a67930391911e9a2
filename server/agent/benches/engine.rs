//! Engine figures, printed: per-turn overhead, stream latency to
//! subscribers, memory per live and per stored task.
//!
//! Runs against the real mock model server over loopback; model time is
//! measured separately and excluded from the overhead figure.

// Test and bench helpers may panic on failure: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use redline_agent::config::Config;
use redline_agent::engine::{Engine, EngineOptions};
use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_agent::model::{
    ModelClient, ModelError, ModelRequest, ModelResponse, StreamEvent, StreamSink,
};
use redline_agent::task::TaskSpec;
use redline_core::store::Store;
use redline_protocol::{TaskEventKind, TaskState};
use redline_test_support::{Conversation, Fault, Item, MockModelServer, Script, ToolUse, Turn};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Wraps a client and records when each request starts and ends, and when
/// each text delta leaves the client.
struct Timed {
    inner: AnthropicClient,
    calls: Mutex<Vec<(Instant, Instant)>>,
    deltas: Arc<Mutex<Vec<Instant>>>,
}

impl ModelClient for Timed {
    fn send<'a>(
        &'a self,
        request: &'a ModelRequest,
        sink: StreamSink<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let start = Instant::now();
            let deltas = self.deltas.clone();
            let timed_sink = move |event: StreamEvent| {
                if matches!(event, StreamEvent::TextDelta(_)) {
                    deltas.lock().unwrap().push(Instant::now());
                }
                sink(event);
            };
            let result = self.inner.send(request, &timed_sink, cancel).await;
            self.calls.lock().unwrap().push((start, Instant::now()));
            result
        })
    }
}

fn engine(
    mock: &MockModelServer,
    data: &std::path::Path,
    concurrency: usize,
) -> (Engine, Arc<Timed>) {
    let config = Config {
        anthropic_base_url: mock.base_url(),
        concurrency,
        max_turns: 100,
        idle_timeout: Duration::from_secs(120),
        ..Config::default()
    };
    let inner = AnthropicClient::new(AnthropicConfig {
        base_url: mock.base_url(),
        api_key: "bench".into(),
        idle_timeout: config.idle_timeout,
        ..AnthropicConfig::default()
    })
    .unwrap();
    let timed = Arc::new(Timed {
        inner,
        calls: Mutex::new(Vec::new()),
        deltas: Arc::new(Mutex::new(Vec::new())),
    });
    let engine = Engine::new(EngineOptions {
        config,
        store: Store::open(&data.join("redline.db")).unwrap(),
        journal_dir: data.join("journal"),
        model: timed.clone(),
        sandbox: None,
        global_instructions: None,
    })
    .unwrap();
    (engine, timed)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(
            dir.path().join(format!("file{i}.rs")),
            format!("fn f{i}() -> u32 {{\n    {i}\n}}\n"),
        )
        .unwrap();
    }
    dir
}

async fn turn_overhead() {
    let mut turns: Vec<Turn> = (0..49)
        .map(|i| Turn {
            content: vec![Item::ToolUse(ToolUse {
                name: if i % 2 == 0 { "read_file".into() } else { "edit".into() },
                input: if i % 2 == 0 {
                    json!({ "path": format!("file{}.rs", i % 20) })
                } else {
                    json!({ "path": format!("file{}.rs", i % 20), "old_string": "fn ", "new_string": "pub fn " })
                },
                id: None,
            })],
            ..Turn::default()
        })
        .collect();
    turns.push(Turn {
        content: vec![Item::Text("done".into())],
        ..Turn::default()
    });
    let mock = MockModelServer::start(Script::single(turns)).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let (engine, timed) = engine(&mock, data.path(), 1);
    let mut gaps = Vec::new();
    let mut model_time = Duration::ZERO;
    for _ in 0..5 {
        let dir = project();
        timed.calls.lock().unwrap().clear();
        let id = engine
            .start_task(TaskSpec::new("bench", vec![dir.path().into()]))
            .unwrap();
        let state = engine.wait(&id).await.unwrap();
        assert!(
            matches!(state, TaskState::Proposed | TaskState::Completed),
            "{state:?}"
        );
        let calls = timed.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 50);
        for pair in calls.windows(2) {
            gaps.push(pair[1].0 - pair[0].1);
        }
        model_time += calls.iter().map(|(s, e)| *e - *s).sum::<Duration>();
    }
    let samples = gaps.len();
    println!(
        "engine overhead per turn (50-turn task x5, {samples} turns, model time excluded): median {:.3} ms, p99 {:.3} ms  [target ≤ 2 ms median]",
        percentile(&mut gaps, 0.5).as_secs_f64() * 1e3,
        percentile(&mut gaps, 0.99).as_secs_f64() * 1e3,
    );
    println!(
        "  (model time in the mock over loopback: {:.1} ms per turn)",
        model_time.as_secs_f64() * 1e3 / 250.0
    );
}

async fn stream_latency() {
    let turn = Turn {
        content: vec![Item::Text("token ".repeat(500))],
        chunk_size: Some(6),
        delay_ms: Some(1),
        ..Turn::default()
    };
    let mock = MockModelServer::start(Script::single(vec![turn]))
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let (engine, timed) = engine(&mock, data.path(), 1);
    let dir = project();
    let id = engine
        .start_task(TaskSpec::new("stream", vec![dir.path().into()]))
        .unwrap();
    let mut subscription = engine.subscribe(&id).unwrap();
    let mut received = Vec::new();
    while let Some(event) = subscription.events.recv().await {
        if matches!(event.kind, TaskEventKind::MessageDelta { .. }) {
            received.push(Instant::now());
        }
    }
    let sent = timed.deltas.lock().unwrap().clone();
    assert_eq!(sent.len(), received.len());
    let mut latencies: Vec<Duration> = sent
        .iter()
        .zip(&received)
        .map(|(s, r)| r.saturating_duration_since(*s))
        .collect();
    let count = latencies.len();
    println!(
        "SSE text chunk → subscriber ({count} chunks): median {:.1} µs, p99 {:.1} µs  [target ≤ 1 ms median]",
        percentile(&mut latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&mut latencies, 0.99).as_secs_f64() * 1e6,
    );
}

async fn memory() {
    const LIVE: usize = 200;
    let conversations = vec![Conversation {
        match_text: None,
        turns: vec![Turn {
            content: vec![Item::Text("never".into())],
            faults: vec![
                Fault {
                    hang: Some(true),
                    ..Fault::default()
                };
                1
            ],
            ..Turn::default()
        }],
    }];
    let mock = MockModelServer::start(Script {
        conversations,
        api_key: None,
    })
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let (engine, _) = engine(&mock, data.path(), LIVE);
    let dir = project();
    // Warm up allocator, SQLite cache and the HTTP pool with one task.
    let warm = engine
        .start_task(TaskSpec::new("warm", vec![dir.path().into()]))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    engine.cancel(&warm).unwrap();
    engine.wait(&warm).await.unwrap();
    let before = rss_bytes();
    let ids: Vec<_> = (0..LIVE)
        .map(|i| {
            engine
                .start_task(TaskSpec::new(format!("live {i}"), vec![dir.path().into()]))
                .unwrap()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let live = rss_bytes();
    let db_before = std::fs::metadata(data.path().join("redline.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    for id in &ids {
        engine.cancel(id).unwrap();
    }
    for id in &ids {
        engine.wait(id).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = rss_bytes();
    let wal = std::fs::metadata(data.path().join("redline.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let db = std::fs::metadata(data.path().join("redline.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + wal;
    println!(
        "memory per live task (waiting on a model stream, {LIVE} tasks): {:.1} KiB RSS",
        live.saturating_sub(before) as f64 / LIVE as f64 / 1024.0
    );
    println!(
        "memory per idle stored task: none held by the engine (finished tasks live in SQLite; RSS after they all finished still {:.1} KiB/task above the start, pages the allocator keeps); {:.1} KiB on disk each incl. events",
        idle.saturating_sub(before) as f64 / LIVE as f64 / 1024.0,
        db.saturating_sub(db_before.min(db)) as f64 / LIVE as f64 / 1024.0
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        turn_overhead().await;
        stream_latency().await;
        memory().await;
    });
}

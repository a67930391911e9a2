//! Benchmarks of the LSP front end, driven through the real server over
//! in-memory pipes with a real JSON-RPC client. Prints its figures:
//!
//! - `textDocument/codeAction` latency on a 20,000-line Rust file;
//! - a one-character `didChange` on a 10 MB file, end to end (the change
//!   plus a `redline/documentState` request that must see it), against the
//!   same request alone;
//! - resident memory added by 1,000 open documents of 1,000 lines.
//!
//! Run with `cargo bench -p redline-lsp --bench lsp`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Answers, TestClient, uri};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(name: &str, samples: &mut [Duration]) {
    let p50 = percentile(samples, 0.50);
    let p99 = percentile(samples, 0.99);
    let max = *samples.iter().max().unwrap();
    println!(
        "{name:<58} n={:<5} p50={p50:>9.1?} p99={p99:>9.1?} max={max:>9.1?}",
        samples.len()
    );
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn open(client: &TestClient, uri: &str, language: &str, text: &str) {
    client
        .notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": language, "version": 1, "text": text } }))
        .await;
}

fn rust_source(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 40);
    let mut line = 0;
    while line < lines {
        out.push_str(&format!(
            "/// Doc {line}.\nfn function_{line}(x: u32) -> u32 {{\n    x + {line}\n}}\n\n"
        ));
        line += 5;
    }
    out
}

async fn code_action_latency(client: &TestClient, dir: &std::path::Path) {
    let text = rust_source(20_000);
    let uri = uri(&dir.join("big.rs"));
    open(client, &uri, "rust", &text).await;
    let mut samples = Vec::new();
    for i in 0..2_000u32 {
        let line = (i * 7919) % 20_000;
        let params = json!({
            "textDocument": { "uri": uri },
            "range": { "start": { "line": line, "character": 0 }, "end": { "line": line + 3, "character": 4 } },
            "context": { "diagnostics": [] }
        });
        let start = Instant::now();
        let result = client
            .request("textDocument/codeAction", params)
            .await
            .unwrap();
        samples.push(start.elapsed());
        assert!(result.is_ok(), "{result:?}");
    }
    report("codeAction, 20,000-line Rust file", &mut samples);
}

async fn did_change_latency(
    client: &TestClient,
    dir: &std::path::Path,
    name: &str,
    language: &str,
    text: &str,
    changes: i32,
) {
    let uri = uri(&dir.join(name));
    open(client, &uri, language, text).await;
    let state = json!({ "uri": uri });
    let mut alone = Vec::new();
    for _ in 0..300 {
        let start = Instant::now();
        client
            .request("redline/documentState", state.clone())
            .await
            .unwrap()
            .unwrap();
        alone.push(start.elapsed());
    }
    let lines = text.lines().count() as u32;
    let mut samples = Vec::new();
    for version in 2..=changes + 1 {
        let line = (version as u32 * 7919) % lines;
        let change = json!({
            "textDocument": { "uri": uri, "version": version },
            "contentChanges": [{ "range": { "start": { "line": line, "character": 5 }, "end": { "line": line, "character": 5 } }, "text": "x" }]
        });
        let start = Instant::now();
        client.notify("textDocument/didChange", change).await;
        let seen: Value = client
            .request("redline/documentState", state.clone())
            .await
            .unwrap()
            .unwrap();
        samples.push(start.elapsed());
        assert_eq!(seen["version"], version);
    }
    let mb = text.len() as f64 / 1e6;
    report(
        &format!("documentState alone, {mb:.1} MB {language}"),
        &mut alone,
    );
    report(
        &format!("1-char didChange + documentState, {mb:.1} MB {language}"),
        &mut samples,
    );
}

async fn memory(client: &TestClient, dir: &std::path::Path, language: &str) {
    let text = rust_source(1_000);
    let before = rss_bytes();
    for i in 0..1_000 {
        open(
            client,
            &uri(&dir.join(format!("m{i}.{language}"))),
            language,
            &text,
        )
        .await;
    }
    // A request after the last didOpen proves all were applied.
    client
        .request(
            "redline/documentState",
            json!({ "uri": uri(&dir.join(format!("m999.{language}"))) }),
        )
        .await
        .unwrap()
        .unwrap();
    let after = rss_bytes();
    let text_mb = (text.len() * 1_000) as f64 / 1e6;
    println!(
        "1,000 open {language} documents x 1,000 lines ({text_mb:.1} MB of text): RSS +{:.1} MB (client + server in one process)",
        after.saturating_sub(before) as f64 / 1e6
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let client = TestClient::start(
            support::engine("http://127.0.0.1:9", data.path()),
            Answers { apply_edit: true },
        );
        client.initialize(json!({}), dir.path()).await;
        memory(&client, dir.path(), "rust").await;
        memory(&client, dir.path(), "plaintext").await;
        code_action_latency(&client, dir.path()).await;
        let ten_mb_text: String = "the quick brown fox jumps over the lazy dog, again and again\n"
            .repeat(10_000_000 / 61);
        did_change_latency(
            &client,
            dir.path(),
            "big.txt",
            "plaintext",
            &ten_mb_text,
            800,
        )
        .await;
        // Below the syntax limit a Rust file keeps its tree: every change
        // reparses incrementally.
        let rust = rust_source(1_500_000 / 14);
        did_change_latency(&client, dir.path(), "big2.rs", "rust", &rust, 200).await;
    });
}

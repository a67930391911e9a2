//! Serves LSP on stdio with an engine built from the environment, for
//! trying editors against the mock model without the CLI:
//!
//! ```sh
//! redline-mock-model --script script.json --port 4010 &
//! ANTHROPIC_BASE_URL=http://127.0.0.1:4010 REDLINE_DATA_DIR=/tmp/rl \
//!   cargo run -p redline-lsp --example stdio_against_mock
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use redline_agent::config::Config;
use redline_agent::engine::{Engine, EngineOptions};
use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_core::store::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::var("ANTHROPIC_BASE_URL").context("set ANTHROPIC_BASE_URL")?;
    let data = PathBuf::from(std::env::var("REDLINE_DATA_DIR").context("set REDLINE_DATA_DIR")?);
    std::fs::create_dir_all(&data)?;
    let config = Config {
        anthropic_base_url: base_url.clone(),
        sandbox: "none".into(),
        ..Config::default()
    };
    let model = AnthropicClient::new(AnthropicConfig {
        base_url,
        api_key: "mock".into(),
        ..AnthropicConfig::default()
    })?;
    let engine = Engine::new(EngineOptions {
        config,
        store: Store::open(&data.join("redline.db"))?,
        journal_dir: data.join("journal"),
        model: Arc::new(model),
        sandbox: None,
        global_instructions: None,
    })?;
    redline_lsp::serve_stdio(engine).await?;
    Ok(())
}

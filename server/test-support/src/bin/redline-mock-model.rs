//! `redline-mock-model`: the scripted mock model server as a process, for
//! end-to-end tests of front ends written in other languages.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use redline_test_support::{MockModelServer, Script};

/// Serve a scripted mock of the Anthropic Messages and OpenAI chat
/// completions APIs on 127.0.0.1. See docs/mock-model.md for the script format.
#[derive(Parser)]
#[command(name = "redline-mock-model", version)]
struct Args {
    /// Script file: `.toml` is read as TOML, anything else as JSON.
    #[arg(long)]
    script: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one (printed on startup).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let script = Script::load(&args.script)?;
    let server = MockModelServer::start_on(script, args.port).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", server.base_url()).context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    drop(stdout);
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    server.shutdown();
    Ok(())
}

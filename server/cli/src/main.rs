//! `redline`: the command-line front end.
//!
//! Thin: parses arguments, opens the engine, renders its event stream and
//! proposals on the terminal. All behaviour lives in the engine and core.

// The CLI's product is its terminal output; `redline lsp` never prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod render;
mod review;
mod sandbox_cmd;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Redline: an agent that works on your files and never touches one until you
/// have reviewed the change.
#[derive(Parser)]
#[command(name = "redline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task: the agent works, then you review its proposal hunk by hunk.
    Run(commands::RunArgs),
    /// List past and running tasks.
    Tasks {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a task: its events and its proposal as a diff.
    Show {
        /// Task id (or a unique prefix).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Review a task's proposal hunk by hunk, then apply what you accepted.
    Review {
        id: String,
        /// Record your choices but do not write files.
        #[arg(long)]
        no_apply: bool,
    },
    /// Apply the accepted hunks of a task's proposal.
    Apply {
        id: String,
        /// Accept every pending hunk first.
        #[arg(long)]
        all: bool,
    },
    /// Undo an apply (the latest when no id is given), restoring exact bytes.
    Undo { apply_id: Option<String> },
    /// Check the setup: config, API key (never printed), model, sandbox, store.
    Doctor {
        /// Folders whose workspace config to include.
        #[arg(long = "folder")]
        folders: Vec<PathBuf>,
    },
    /// Show the audit log, or verify its hash chain.
    Audit {
        #[arg(long)]
        verify: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Serve the Language Server Protocol on stdin/stdout for editors.
    Lsp {
        /// Folders to read workspace config from (the editor's workspace
        /// folders are granted per task).
        #[arg(long = "folder")]
        folders: Vec<PathBuf>,
    },
    /// Run commands in the sandbox the agent uses.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Run a command exactly as the agent would and show the changes it made
    /// as a proposal diff (nothing is applied).
    Exec(sandbox_cmd::SandboxExecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REDLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Sandbox {
            command: SandboxCommand::Exec(args),
        } => sandbox_cmd::run(args),
        command => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(dispatch(command)),
            Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("redline: {}", one_line(&e));
            ExitCode::from(commands::EXIT_USAGE as u8)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => commands::run(args).await,
        Command::Tasks { limit, json } => commands::tasks(limit, json),
        Command::Show { id, json } => commands::show(&id, json),
        Command::Review { id, no_apply } => commands::review(&id, !no_apply).await,
        Command::Apply { id, all } => commands::apply(&id, all),
        Command::Undo { apply_id } => commands::undo(apply_id.as_deref()),
        Command::Doctor { folders } => commands::doctor(&folders).await,
        Command::Audit { verify, limit } => commands::audit(verify, limit),
        Command::Lsp { folders } => commands::lsp(&folders).await,
        Command::Sandbox { .. } => Ok(0),
    }
}

/// An error and its causes on one line.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

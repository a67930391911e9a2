//! The CLI's subcommands.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use redline_agent::engine::{Engine, now_ms};
use redline_agent::router::ModelRequestSpec;
use redline_agent::task::{FocusSpec, TaskSpec, parse_line_range};
use redline_core::apply::ApplyId;
use redline_core::proposal::HunkStatus;
use redline_protocol::{
    PlanDecision, StepStatus, TaskEvent, TaskEventKind, TaskId, TaskMode, TaskState,
};
use serde_json::json;

use crate::render::{self, Style};
use crate::review;
use crate::setup::{self, Needs};

pub const EXIT_OK: i32 = 0;
/// The task failed (model error, budget, refusal).
pub const EXIT_FAILED: i32 = 1;
/// Bad arguments, config or environment.
pub const EXIT_USAGE: i32 = 2;
/// Some accepted hunks were stale and not written.
pub const EXIT_STALE: i32 = 3;
pub const EXIT_CANCELLED: i32 = 130;

#[derive(Args)]
pub struct RunArgs {
    /// What Redline should do.
    pub instruction: String,
    /// A folder the agent may work on (repeatable; default: the current folder).
    #[arg(long = "folder", value_name = "DIR")]
    pub folders: Vec<PathBuf>,
    /// The file you are looking at.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Lines of --file to focus on, 1-based inclusive: START-END.
    #[arg(long, value_name = "START-END", requires = "file")]
    pub range: Option<String>,
    /// Let the agent plan first and wait for your approval.
    #[arg(long)]
    pub plan: bool,
    /// Model tier (fast, deep, auto) or a model id.
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// Accept every hunk and apply without asking.
    #[arg(long)]
    pub apply: bool,
    /// Print the result as JSON on stdout (no interactive review).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let folders = if args.folders.is_empty() {
        vec![std::env::current_dir().context("cannot read the current directory")?]
    } else {
        args.folders.clone()
    };
    let lines = args
        .range
        .as_deref()
        .map(parse_line_range)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let opened = setup::open_engine(&folders, Needs::Model)?;
    let engine = opened.engine;
    let mut spec = TaskSpec::new(args.instruction.clone(), folders);
    spec.focus = args.file.clone().map(|file| FocusSpec { file, lines });
    spec.model = ModelRequestSpec::parse(&args.model);
    spec.mode = if args.plan {
        TaskMode::PlanFirst
    } else {
        TaskMode::Direct
    };
    let id = engine.start_task(spec)?;

    let ctrl_c_engine = engine.clone();
    let ctrl_c_id = id.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = ctrl_c_engine.cancel(&ctrl_c_id);
        }
    });

    let mut progress = Progress::new(Style::for_stream(std::io::stderr().is_terminal()));
    if !opened.sandbox_note.is_empty() {
        progress.note(&opened.sandbox_note);
    }
    let mut subscription = engine.subscribe(&id)?;
    for event in std::mem::take(&mut subscription.history) {
        progress.show(&engine, &event).await;
    }
    while let Some(event) = subscription.events.recv().await {
        progress.show(&engine, &event).await;
    }
    progress.finish();
    let state = engine.wait(&id).await?;
    let summary = engine.summary(&id)?;
    let stdout_style = Style::for_stream(std::io::stdout().is_terminal());
    match state {
        TaskState::Failed => {
            let error = summary.error.unwrap_or_else(|| "unknown error".into());
            if args.json {
                println!(
                    "{}",
                    json!({ "task": summary_json(&engine, &id)?, "error": error })
                );
            }
            eprintln!("redline: task {id} failed: {error}");
            return Ok(EXIT_FAILED);
        }
        TaskState::Cancelled => {
            if args.json {
                println!("{}", json!({ "task": summary_json(&engine, &id)? }));
            }
            eprintln!("redline: task {id} cancelled; nothing was changed");
            return Ok(EXIT_CANCELLED);
        }
        _ => {}
    }
    let Some(proposal) = engine.proposal(&id)?.filter(|p| !p.changes.is_empty()) else {
        if args.json {
            println!(
                "{}",
                json!({ "task": summary_json(&engine, &id)?, "proposal": null })
            );
        } else {
            eprintln!("No changes proposed.");
        }
        return Ok(EXIT_OK);
    };
    if args.json && !args.apply {
        println!(
            "{}",
            json!({ "task": summary_json(&engine, &id)?, "proposal": proposal, "diff": proposal.unified_diff() })
        );
        return Ok(EXIT_OK);
    }
    if args.apply {
        engine.resolve_all(&id, HunkStatus::Accepted)?;
        return apply_and_report(&engine, &id, args.json);
    }
    print!(
        "{}",
        render::colored_diff(&proposal.unified_diff(), stdout_style)
    );
    if std::io::stdin().is_terminal() {
        let stdin = std::io::stdin();
        let outcome = review::review(&engine, &id, stdout_style, &mut stdin.lock())?;
        if outcome.accepted > 0 {
            return apply_and_report(&engine, &id, false);
        }
        eprintln!("Nothing accepted; nothing written. Review later with `redline review {id}`.");
        return Ok(EXIT_OK);
    }
    eprintln!(
        "\nProposal {}: {}. Nothing has been written.\nReview it with `redline review {id}`, or accept everything with `redline apply {id} --all`.",
        proposal.id.0,
        render::proposal_summary(&proposal)
    );
    Ok(EXIT_OK)
}

fn summary_json(engine: &Engine, id: &TaskId) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(engine.summary(id)?)?)
}

fn apply_and_report(engine: &Engine, id: &TaskId, json_output: bool) -> anyhow::Result<i32> {
    let report = engine.apply(id)?;
    if json_output {
        println!(
            "{}",
            json!({
                "task": summary_json(engine, id)?,
                "applyId": report.apply_id.0,
                "files": report.files.iter().map(|f| f.path.to_string()).collect::<Vec<_>>(),
                "stale": report.stale,
            })
        );
    } else {
        for file in &report.files {
            eprintln!("  {:?} {}", file.action, file.path);
        }
        eprintln!(
            "Applied {} file(s) as {}; undo with `redline undo {}`.",
            report.files.len(),
            report.apply_id.0,
            report.apply_id.0
        );
        if !report.stale.is_empty() {
            eprintln!(
                "{} hunk(s) were not written: their files changed since the proposal was made.",
                report.stale.len()
            );
        }
    }
    Ok(if report.stale.is_empty() {
        EXIT_OK
    } else {
        EXIT_STALE
    })
}

/// Renders a task's event stream on stderr: a spinner with the current
/// step, streamed model text, tool calls and the plan.
struct Progress {
    style: Style,
    spinner: Option<ProgressBar>,
    mid_line: bool,
    status: String,
}

impl Progress {
    fn new(style: Style) -> Progress {
        Progress {
            style,
            spinner: None,
            mid_line: false,
            status: "starting".into(),
        }
    }

    fn line(&mut self, text: &str) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        if self.mid_line {
            eprintln!();
            self.mid_line = false;
        }
        eprintln!("{text}");
        self.spin();
    }

    fn note(&mut self, text: &str) {
        let dim = self.style.dim(text);
        self.line(&dim);
    }

    fn spin(&mut self) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let spinner = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            spinner.set_style(style);
        }
        spinner.set_message(self.status.clone());
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
        self.spinner = Some(spinner);
    }

    fn set_status(&mut self, status: String) {
        self.status = status;
        if let Some(spinner) = &self.spinner {
            spinner.set_message(self.status.clone());
        }
    }

    async fn show(&mut self, engine: &Engine, event: &TaskEvent) {
        let style = self.style;
        match &event.kind {
            TaskEventKind::MessageDelta { text } => {
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
                }
                eprint!("{text}");
                self.mid_line = !text.ends_with('\n');
            }
            TaskEventKind::Message { .. } => {
                if self.mid_line {
                    eprintln!();
                    self.mid_line = false;
                }
                self.spin();
            }
            TaskEventKind::StateChanged { state, .. } => {
                self.set_status(state.as_str().to_owned());
                if *state == TaskState::AwaitingPlanApproval {
                    let decision = ask_plan_decision(&mut *self).await;
                    if let Err(e) = engine.decide_plan(&event.task_id, decision) {
                        self.line(&format!("cannot answer the plan: {e}"));
                    }
                }
            }
            TaskEventKind::ModelChosen { model, reason, .. } => {
                self.note(&format!("model {model}: {reason}"));
            }
            TaskEventKind::InstructionsLoaded { files, warnings } => {
                if !files.is_empty() {
                    self.note(&format!("instructions: {}", files.join(", ")));
                }
                for warning in warnings {
                    let text = style.yellow(&format!("warning: {warning}"));
                    self.line(&text);
                }
            }
            TaskEventKind::PlanUpdated { steps } => {
                let mut text = style.bold("Plan:");
                for (i, step) in steps.iter().enumerate() {
                    let mark = match step.status {
                        StepStatus::Done => "✓",
                        StepStatus::InProgress => "▶",
                        StepStatus::Pending => " ",
                    };
                    text.push_str(&format!("\n  {mark} {}. {}", i + 1, step.title));
                }
                self.line(&text);
            }
            TaskEventKind::StepStarted { title, .. } => self.set_status(title.clone()),
            TaskEventKind::ToolCall { summary, .. } => {
                let text = style.dim(&format!("  → {summary}"));
                self.line(&text);
            }
            TaskEventKind::ToolResult {
                summary,
                is_error: true,
                ..
            } => {
                let text = style.yellow(&format!("    ✗ {summary}"));
                self.line(&text);
            }
            TaskEventKind::ProposalUpdated { files, hunks, .. } => {
                self.set_status(format!("proposal: {files} file(s), {hunks} hunk(s)"));
            }
            TaskEventKind::Retrying {
                attempt,
                delay_ms,
                reason,
            } => {
                let text = style.yellow(&format!(
                    "  retrying (attempt {attempt}) in {delay_ms} ms: {reason}"
                ));
                self.line(&text);
            }
            TaskEventKind::Usage { usage } => {
                let cost = usage
                    .cost_usd
                    .map(|c| format!(", ~${c:.4}"))
                    .unwrap_or_default();
                self.set_status(format!(
                    "{} in / {} out tokens{cost}",
                    usage.input_tokens
                        + usage.cache_read_input_tokens
                        + usage.cache_creation_input_tokens,
                    usage.output_tokens
                ));
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        if self.mid_line {
            eprintln!();
            self.mid_line = false;
        }
    }
}

async fn ask_plan_decision(progress: &mut Progress) -> PlanDecision {
    progress.finish();
    eprint!("Approve this plan? [y]es, [e]dit, [n]o (cancel): ");
    let _ = std::io::stderr().flush();
    let answer = read_line().await;
    let decision = match answer.as_deref().map(str::trim) {
        Some("y" | "yes" | "") => PlanDecision::Approve,
        Some("e" | "edit") => {
            eprint!("What should change? ");
            let _ = std::io::stderr().flush();
            match read_line().await {
                Some(instruction) if !instruction.trim().is_empty() => PlanDecision::Steer {
                    instruction: instruction.trim().to_owned(),
                },
                _ => PlanDecision::Cancel,
            }
        }
        _ => PlanDecision::Cancel,
    };
    progress.spin();
    decision
}

async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await
    .ok()
    .flatten()
}

pub fn tasks(limit: usize, json_output: bool) -> anyhow::Result<i32> {
    let engine = setup::open_engine(&[], Needs::StoreOnly)?.engine;
    let tasks = engine.tasks(limit)?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
    } else if tasks.is_empty() {
        eprintln!("No tasks yet. Start one with `redline run \"…\"`.");
    } else {
        print!("{}", render::task_table(&tasks, now_ms()));
    }
    Ok(EXIT_OK)
}

pub fn show(id: &str, json_output: bool) -> anyhow::Result<i32> {
    let engine = setup::open_engine(&[], Needs::StoreOnly)?.engine;
    let id = engine.find_task(id)?;
    let summary = engine.summary(&id)?;
    let events = engine.subscribe(&id)?.history;
    let proposal = engine.proposal(&id)?;
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "task": summary, "events": events, "proposal": proposal })
            )?
        );
        return Ok(EXIT_OK);
    }
    let style = Style::for_stream(std::io::stdout().is_terminal());
    println!(
        "{} {}",
        style.bold(&format!("task {}", summary.id)),
        summary.state.as_str()
    );
    println!("prompt:  {}", summary.prompt);
    println!("folders: {}", summary.folders.join(", "));
    println!("model:   {}", summary.model);
    if let Some(error) = &summary.error {
        println!("error:   {error}");
    }
    for event in &events {
        match &event.kind {
            TaskEventKind::ToolCall { summary, .. } => println!("  → {summary}"),
            TaskEventKind::Message { text } => println!("  {}", text.replace('\n', "\n  ")),
            TaskEventKind::StateChanged { state, detail } => {
                println!(
                    "  [{}]{}",
                    state.as_str(),
                    detail.as_ref().map(|d| format!(" {d}")).unwrap_or_default()
                )
            }
            TaskEventKind::ModelChosen { model, reason, .. } => {
                println!("  model {model}: {reason}")
            }
            TaskEventKind::InstructionsLoaded { files, .. } if !files.is_empty() => {
                println!("  instructions: {}", files.join(", "))
            }
            TaskEventKind::Applied {
                apply_id, files, ..
            } => println!("  applied {files} file(s) as {apply_id}"),
            TaskEventKind::Undone { apply_id, .. } => println!("  undid {apply_id}"),
            _ => {}
        }
    }
    if let Some(proposal) = proposal.filter(|p| !p.changes.is_empty()) {
        println!(
            "proposal {}: {}",
            proposal.id.0,
            render::proposal_summary(&proposal)
        );
        print!("{}", render::colored_diff(&proposal.unified_diff(), style));
    }
    Ok(EXIT_OK)
}

pub async fn review(id: &str, apply_after: bool) -> anyhow::Result<i32> {
    let engine = setup::open_engine(&[], Needs::StoreOnly)?.engine;
    let id = engine.find_task(id)?;
    let style = Style::for_stream(std::io::stdout().is_terminal());
    let stdin = std::io::stdin();
    let outcome = review::review(&engine, &id, style, &mut stdin.lock())?;
    if apply_after && outcome.accepted > 0 {
        return apply_and_report(&engine, &id, false);
    }
    eprintln!(
        "{} accepted, {} rejected, {} still pending.",
        outcome.accepted, outcome.rejected, outcome.pending
    );
    Ok(EXIT_OK)
}

pub fn apply(id: &str, all: bool) -> anyhow::Result<i32> {
    let engine = setup::open_engine(&[], Needs::StoreOnly)?.engine;
    let id = engine.find_task(id)?;
    let proposal = engine.proposal(&id)?.filter(|p| !p.changes.is_empty());
    let Some(proposal) = proposal else {
        anyhow::bail!("task {id} has no proposed changes");
    };
    if all {
        engine.resolve_all(&id, HunkStatus::Accepted)?;
    } else if proposal.counts().accepted == 0 {
        anyhow::bail!(
            "nothing accepted in proposal {} of task {id}: review it with `redline review {id}` or pass --all",
            proposal.id.0
        );
    }
    apply_and_report(&engine, &id, false)
}

pub fn undo(apply_id: Option<&str>) -> anyhow::Result<i32> {
    let engine = setup::open_engine(&[], Needs::StoreOnly)?.engine;
    let apply_id = apply_id.map(|id| ApplyId(id.to_owned()));
    let report = engine.undo(apply_id.as_ref())?;
    for file in &report.files {
        eprintln!("  restored {}", file.path);
    }
    eprintln!(
        "Undid {}: {} file(s) restored.",
        report.apply_id.0,
        report.files.len()
    );
    Ok(EXIT_OK)
}

pub async fn doctor(folders: &[PathBuf]) -> anyhow::Result<i32> {
    let mut healthy = true;
    let mut report = |ok: bool, what: &str, detail: String| {
        healthy &= ok;
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    };
    match setup::load_config(folders) {
        Ok(config) => {
            let sources = if config.sources.is_empty() {
                "none found (defaults)".to_owned()
            } else {
                config
                    .sources
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            report(true, "config", sources);
            report(
                true,
                "provider",
                format!("{:?} at {}", config.provider, config.base_url()),
            );
            report(
                true,
                "models",
                format!("fast = {}, deep = {}", config.fast_model, config.deep_model),
            );
            match (&config.api_key, config.requires_key()) {
                (Some(_), _) => report(
                    true,
                    "API key",
                    format!(
                        "present (from {})",
                        config.api_key_source.clone().unwrap_or_default()
                    ),
                ),
                (None, true) => report(
                    false,
                    "API key",
                    format!(
                        "missing: set {} or `api_key` in your redline.toml",
                        config.key_env_var()
                    ),
                ),
                (None, false) => report(
                    true,
                    "API key",
                    "none (not needed for a local server)".into(),
                ),
            }
            if config.api_key.is_none() && config.requires_key() {
                report(false, "model reachable", "not checked: no API key".into());
            } else {
                let (ok, detail) = crate::setup::probe_model(&config).await;
                report(ok, "model reachable", detail);
            }
        }
        Err(e) => report(false, "config", crate::one_line(&e)),
    }
    for probe in redline_vm::probe() {
        report(
            probe.available,
            &format!("sandbox {}", probe.name),
            probe.reason,
        );
    }
    match redline_core::store::default_store_path() {
        Ok(path) => match redline_core::store::Store::open(&path) {
            Ok(store) => {
                report(
                    true,
                    "store",
                    format!(
                        "{} (schema v{})",
                        path.display(),
                        store.schema_version().unwrap_or(0)
                    ),
                );
                match store.audit_verify() {
                    Ok(verify) => report(
                        true,
                        "audit log",
                        format!("{} entries, chain intact", verify.entries),
                    ),
                    Err(e) => report(false, "audit log", e.to_string()),
                }
            }
            Err(e) => report(false, "store", e.to_string()),
        },
        Err(e) => report(false, "store", e.to_string()),
    }
    Ok(if healthy { EXIT_OK } else { EXIT_FAILED })
}

pub fn audit(verify: bool, limit: usize) -> anyhow::Result<i32> {
    let engine = setup::open_engine(&[], Needs::StoreOnly)?.engine;
    if verify {
        return match engine.verify_audit() {
            Ok(result) => {
                println!(
                    "audit log intact: {} entries, head {}",
                    result.entries, result.head
                );
                Ok(EXIT_OK)
            }
            Err(e) => {
                eprintln!("redline: audit log verification failed: {e}");
                Ok(EXIT_FAILED)
            }
        };
    }
    for entry in engine.audit_entries(limit)? {
        println!(
            "{:>6} {} {:<8} {:<18} {} {}",
            entry.seq, entry.at_ms, entry.actor, entry.action, entry.subject, entry.details
        );
    }
    Ok(EXIT_OK)
}

/// `redline lsp`: stdout is the protocol channel, so nothing else may print
/// there; diagnostics go to stderr through `tracing`.
pub async fn lsp(folders: &[PathBuf]) -> anyhow::Result<i32> {
    let folders = if folders.is_empty() {
        vec![std::env::current_dir().context("cannot read the current directory")?]
    } else {
        folders.to_vec()
    };
    let engine = setup::open_engine(&folders, Needs::Model)?.engine;
    redline_lsp::serve_stdio(engine)
        .await
        .context("the LSP connection failed")?;
    Ok(EXIT_OK)
}

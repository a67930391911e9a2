//! Runs one shell command in a fresh sandbox session on a blocking thread.
//!
//! A fresh session per command (prepared with every staged change) keeps the
//! sandbox's view identical to the proposal even when the model un-stages a
//! file between two commands; preparing one costs a few milliseconds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redline_core::path::RelPath;
use redline_vm::{CancelFlag, CommandSpec, Sandbox, SessionRequest, StagedEntry};
use tokio_util::sync::CancellationToken;

pub(crate) struct Job {
    pub roots: Vec<PathBuf>,
    pub staged: Vec<StagedEntry>,
    pub command: String,
    pub cwd: Option<(usize, RelPath)>,
    pub timeout: Duration,
}

pub(crate) struct JobOutcome {
    pub success: bool,
    pub status_line: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub changes: Vec<JobChange>,
}

/// A file the command left different from the real folder.
pub(crate) struct JobChange {
    pub root: usize,
    pub path: RelPath,
    pub content: Option<Vec<u8>>,
    pub mode: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Sandbox(#[from] redline_vm::SandboxError),
    #[error("sandbox thread failed: {0}")]
    Join(String),
}

pub(crate) async fn run(
    sandbox: Arc<dyn Sandbox>,
    job: Job,
    cancel: CancellationToken,
) -> Result<JobOutcome, JobError> {
    let flag = CancelFlag::new();
    let watcher = {
        let flag = flag.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            flag.cancel();
        })
    };
    let blocking_flag = flag.clone();
    let result =
        tokio::task::spawn_blocking(move || run_blocking(sandbox.as_ref(), job, &blocking_flag))
            .await;
    watcher.abort();
    if cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    result.map_err(|e| JobError::Join(e.to_string()))?
}

fn run_blocking(
    sandbox: &dyn Sandbox,
    job: Job,
    cancel: &CancelFlag,
) -> Result<JobOutcome, JobError> {
    let session = sandbox.prepare(&SessionRequest {
        roots: job.roots,
        staged: job.staged,
    })?;
    let mut session = session;
    let mut spec = CommandSpec::new(["sh", "-c", job.command.as_str()]);
    if let Some((root, path)) = job.cwd {
        spec.cwd = (root, Some(path));
    }
    spec.timeout = job.timeout;
    let outcome = session.run(&spec, &mut |_, _| {}, cancel);
    let changes = session.changes();
    let disposed = session.dispose();
    let outcome = outcome?;
    let changes = changes?;
    disposed?;
    let status_line = if outcome.cancelled {
        "cancelled".to_owned()
    } else if outcome.timed_out {
        format!(
            "timed out after {} s (the whole process tree was killed)",
            job.timeout.as_secs()
        )
    } else if outcome.staging_limit_exceeded {
        "killed: the command wrote more than the sandbox's staging limit".to_owned()
    } else if let Some(code) = outcome.exit_code {
        format!("exit code {code} ({} ms)", outcome.duration.as_millis())
    } else if let Some(signal) = outcome.signal {
        format!("killed by signal {signal}")
    } else {
        "ended".to_owned()
    };
    Ok(JobOutcome {
        success: outcome.success(),
        status_line,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        changes: changes
            .into_iter()
            // Symlinks are not staged yet: the proposal model has no kind
            // for them, so a command's new symlink is reported, not proposed.
            .filter(|c| c.symlink_target.is_none())
            .map(|c| JobChange {
                root: c.root,
                path: c.path,
                content: c.content,
                mode: c.mode,
            })
            .collect(),
    })
}

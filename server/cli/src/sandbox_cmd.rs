//! `redline sandbox exec`: runs one command in the sandbox exactly as the
//! agent would (same backend, same limits, same scrubbed environment),
//! streams its output, and prints what it changed as a proposal diff.
//! Nothing is applied: the granted folders stay as they are.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use redline_core::proposal::{Proposal, ProposalId, StagedFile};
use redline_vm::{
    CancelFlag, ChangeKind, CommandSpec, OutputStream, SandboxConfig, SandboxSession,
    SessionRequest,
};

#[derive(Debug, clap::Args)]
pub struct SandboxExecArgs {
    /// A folder the command may see (at /work/<folder name>); repeat for
    /// several. The command starts in the first one.
    #[arg(long = "folder", value_name = "DIR", required = true)]
    folders: Vec<PathBuf>,
    /// Wall-clock limit in seconds; the whole process tree is killed after it.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
    /// Sandbox backend (default: the first that works here, see `redline doctor`).
    #[arg(long)]
    backend: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command; returns the exit code for the process: the command's
/// own, 128 + signal when killed, 124 on timeout.
pub fn run(args: SandboxExecArgs) -> anyhow::Result<i32> {
    let sandbox = redline_vm::open(&SandboxConfig {
        backend: args.backend.clone(),
        staging_dir: None,
    })
    .context("no sandbox backend works on this machine (run `redline doctor` for details)")?;
    let mut session = sandbox
        .prepare(&SessionRequest {
            roots: args.folders.clone(),
            staged: Vec::new(),
        })
        .context("cannot prepare the sandbox")?;
    let result = run_in(&mut *session, &args);
    let disposed = session
        .dispose()
        .context("cannot remove the sandbox's staging directory");
    let code = result?;
    disposed?;
    Ok(code)
}

fn run_in(session: &mut dyn SandboxSession, args: &SandboxExecArgs) -> anyhow::Result<i32> {
    let mut spec = CommandSpec::new(args.command.iter().cloned());
    spec.timeout = Duration::from_secs(args.timeout);
    let cancel = CancelFlag::new();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let outcome = session
        .run(
            &spec,
            &mut |stream, bytes| {
                // A closed terminal must not stop the command: ignore errors.
                let _ = match stream {
                    OutputStream::Stdout => stdout.write_all(bytes).and_then(|()| stdout.flush()),
                    OutputStream::Stderr => stderr.write_all(bytes).and_then(|()| stderr.flush()),
                };
            },
            &cancel,
        )
        .with_context(|| format!("cannot run `{}` in the sandbox", args.command.join(" ")))?;

    let mut err = std::io::stderr().lock();
    if outcome.stdout_truncated || outcome.stderr_truncated {
        writeln!(
            err,
            "redline: output was cut at {} bytes per stream",
            spec.output_cap_bytes
        )?;
    }
    let code = if outcome.timed_out {
        writeln!(
            err,
            "redline: the command timed out after {} s and was killed",
            args.timeout
        )?;
        124
    } else if outcome.staging_limit_exceeded {
        writeln!(
            err,
            "redline: the command wrote more than the sandbox allows and was killed"
        )?;
        125
    } else if let Some(signal) = outcome.signal {
        writeln!(err, "redline: the command was killed by signal {signal}")?;
        128 + signal
    } else {
        outcome.exit_code.unwrap_or(1)
    };

    let changes = session
        .changes()
        .context("cannot read the sandbox's changes")?;
    let roots: Vec<PathBuf> = session
        .roots()
        .iter()
        .map(|r| r.host_path.clone())
        .collect();
    let mut files = Vec::new();
    let mut out = std::io::stdout().lock();
    for change in changes {
        let Some(root_dir) = roots.get(change.root) else {
            continue;
        };
        let host = root_dir.join(change.path.as_str());
        if let Some(target) = &change.symlink_target {
            writeln!(
                out,
                "symlink {} -> {target} ({:?})",
                change.path, change.kind
            )?;
            continue;
        }
        let before = match change.kind {
            ChangeKind::Created => None,
            ChangeKind::Modified | ChangeKind::Deleted => {
                let meta = std::fs::symlink_metadata(&host).ok();
                if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
                    writeln!(out, "symlink {} replaced ({:?})", change.path, change.kind)?;
                    continue;
                }
                Some(
                    std::fs::read(&host)
                        .with_context(|| format!("cannot read {}", host.display()))?,
                )
            }
        };
        let before_mode = std::fs::metadata(&host)
            .ok()
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
        files.push(StagedFile {
            root: change.root,
            path: change.path,
            renamed_from: None,
            before,
            after: change.content,
            before_mode,
            after_mode: change.mode,
        });
    }
    let proposal = Proposal::build(ProposalId::generate(), roots, files, None);
    if proposal.changes.is_empty() {
        writeln!(err, "redline: the command changed no files")?;
    } else {
        writeln!(err, "redline: proposed changes (nothing was applied):")?;
        out.write_all(proposal.unified_diff().as_bytes())?;
    }
    Ok(code)
}

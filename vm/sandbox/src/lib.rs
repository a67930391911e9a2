//! Where the agent's commands run.
//!
//! A [`Sandbox`] is a backend (Linux namespaces today; a QEMU microVM and a
//! macOS Virtualization.framework VM later). For each task the engine asks it
//! to [`Sandbox::prepare`] a [`SandboxSession`]: the granted folders with the
//! proposal's staged changes laid on top. Commands run in the session see the
//! folders at `/work/<folder name>` (see [`SandboxSession::roots`]) and write
//! into a staging layer; [`SandboxSession::changes`] reads that layer back as
//! [`SandboxChange`]s, which become proposal changes. Nothing a command does
//! reaches the real folders (invariant 1), and nothing outside the granted
//! folders is visible to it (invariant 4).
//!
//! The trait is shaped so that VM backends fit: a session owns whatever
//! lives for the whole task (a staging directory here, a warm VM with a
//! virtiofs share there), `run` is one command with its output streamed back,
//! and `changes` is computed by whoever owns the staging layer (the host here,
//! `redline-guest` inside a VM) and returned as plain data.
//!
//! Everything is synchronous: the engine calls it from `spawn_blocking`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redline_core::path::RelPath;

mod changes;
pub mod namespaces;

pub use namespaces::NamespacesSandbox;

/// Why a sandbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox backend `{backend}` is not available: {reason}")]
    Unavailable { backend: String, reason: String },
    #[error("unknown sandbox backend `{0}`; known backends: namespaces")]
    UnknownBackend(String),
    #[error("granted folder `{path}` cannot be used: {reason}")]
    BadRoot { path: PathBuf, reason: String },
    #[error("root index {index} is out of range; the session has {count} granted folders")]
    NoSuchRoot { index: usize, count: usize },
    #[error("command is empty")]
    EmptyCommand,
    #[error("invalid command argument or environment entry `{0}`: it contains a NUL byte")]
    NulByte(String),
    #[error("environment variable `{0}` looks like a secret and is never passed into the sandbox")]
    SecretInEnvironment(String),
    #[error("cannot set up the sandbox: {step}: {message}")]
    Setup { step: String, message: String },
    #[error("cannot start `{program}` in the sandbox: {message}")]
    Exec { program: String, message: String },
    #[error("cannot change to directory `{dir}` in the sandbox: {message}")]
    Cwd { dir: String, message: String },
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(String),
}

pub type Result<T> = std::result::Result<T, SandboxError>;

impl SandboxError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SandboxError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// A change the proposal already holds, to be visible to commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedEntry {
    /// Index into the session's granted folders.
    pub root: usize,
    pub path: RelPath,
    /// The staged bytes; `None` means the file is deleted.
    pub content: Option<Vec<u8>>,
    /// Permission bits; `None` keeps the folder's (or 0644 for a new file).
    pub mode: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
}

/// One difference between the session's staging layer and the real folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxChange {
    /// Index into the session's granted folders.
    pub root: usize,
    pub path: RelPath,
    pub kind: ChangeKind,
    /// New bytes of a regular file; `None` for deletions and symlinks.
    pub content: Option<Vec<u8>>,
    /// New permission bits (`0o7777` mask); `None` for deletions and symlinks.
    pub mode: Option<u32>,
    /// New target of a symlink.
    pub symlink_target: Option<String>,
}

impl SandboxChange {
    /// True for content that is not text (a NUL byte in the first 8 KiB, or
    /// not UTF-8): such files become whole-file changes in a proposal.
    pub fn is_binary(&self) -> bool {
        self.content.as_deref().is_some_and(changes::looks_binary)
    }
}

/// What a session is made of.
#[derive(Clone, Debug, Default)]
pub struct SessionRequest {
    /// Granted folders (host paths; canonicalized by the backend).
    pub roots: Vec<PathBuf>,
    /// The proposal's staged changes, applied on top of the folders.
    pub staged: Vec<StagedEntry>,
}

/// A granted folder as commands see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRoot {
    /// Canonical host path.
    pub host_path: PathBuf,
    /// Absolute path inside the sandbox, `/work/<folder name>` (a `-2`,
    /// `-3`… suffix tells apart folders with the same name).
    pub guest_path: String,
}

/// Resource limits of one command (and everything it starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds per process (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Address space per process (`RLIMIT_AS`).
    pub address_space_bytes: u64,
    /// Processes and threads alive at once in the sandbox.
    pub max_processes: u32,
    /// Largest file a process may write (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Size of the private `/tmp` and of the sandbox home (memory-backed).
    pub tmp_bytes: u64,
    /// Total bytes the command may add to the staging layer; the run is
    /// killed when it goes over (checked while it runs).
    pub staging_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_seconds: 600,
            address_space_bytes: 8 << 30,
            max_processes: 512,
            file_size_bytes: 1 << 30,
            tmp_bytes: 512 << 20,
            staging_bytes: 2 << 30,
        }
    }
}

/// One command to run.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    /// Program and arguments; a program without `/` is looked up in the
    /// sandbox's `PATH`.
    pub argv: Vec<String>,
    /// Working directory: a granted folder (index) and a path below it;
    /// `(0, None)` is the first folder.
    pub cwd: (usize, Option<RelPath>),
    /// Extra environment on top of the sandbox's scrubbed one.
    pub env: Vec<(String, String)>,
    /// Bytes fed to stdin (then closed); `None` gives `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Wall-clock limit; the whole process tree is killed when it passes.
    pub timeout: Duration,
    pub limits: Limits,
    /// Bytes of stdout and of stderr kept (and streamed); the rest is
    /// drained and dropped.
    pub output_cap_bytes: usize,
}

impl CommandSpec {
    /// A command in the first folder with default limits, a 60 s timeout
    /// and a 1 MiB output cap.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        CommandSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: (0, None),
            env: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(60),
            limits: Limits::default(),
            output_cap_bytes: 1 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How a command ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// The command wrote more than [`Limits::staging_bytes`] and was killed.
    pub staging_limit_exceeded: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration: Duration,
}

impl CommandOutcome {
    /// Exited normally with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Cancels a running command: setting it kills the whole process tree
/// within about 20 ms. Cheap to clone; all clones share one flag.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        CancelFlag::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A sandbox backend.
pub trait Sandbox: Send + Sync {
    /// The backend's name in config and in `redline doctor` (`namespaces`).
    fn name(&self) -> &'static str;

    /// Builds a session over the granted folders with `staged` visible.
    fn prepare(&self, request: &SessionRequest) -> Result<Box<dyn SandboxSession>>;
}

/// The sandbox of one task. Dropping it disposes of it too; [`dispose`]
/// reports errors.
///
/// [`dispose`]: SandboxSession::dispose
pub trait SandboxSession: Send {
    /// The granted folders, in request order.
    fn roots(&self) -> &[SandboxRoot];

    /// Replaces what is staged for each entry's path (the proposal changed
    /// between two commands). Must not be called while a command runs, which
    /// `&mut self` guarantees.
    fn stage(&mut self, entries: &[StagedEntry]) -> Result<()>;

    /// Runs one command to completion (or timeout, or cancellation),
    /// streaming its output to `on_output` as it comes.
    fn run(
        &mut self,
        spec: &CommandSpec,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
        cancel: &CancelFlag,
    ) -> Result<CommandOutcome>;

    /// Everything that differs from the real folders: the staged entries and
    /// what commands did since, sorted by root and path. Costs in proportion
    /// to what changed, not to the size of the folders.
    fn changes(&self) -> Result<Vec<SandboxChange>>;

    /// Removes the staging layer.
    fn dispose(self: Box<Self>) -> Result<()>;
}

/// Whether a backend works on this machine, for `redline doctor`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackendProbe {
    pub name: String,
    pub available: bool,
    /// Why not (with how to fix it), or what works.
    pub reason: String,
}

/// Probes every backend compiled in, most preferred first.
pub fn probe() -> Vec<BackendProbe> {
    vec![namespaces::probe()]
}

/// Which backend to use.
#[derive(Clone, Debug, Default)]
pub struct SandboxConfig {
    /// A backend name, or `None` for the first available one.
    pub backend: Option<String>,
    /// Where per-task staging directories go (default: the system temp dir).
    /// Must be on a file system with user extended attributes (ext4, xfs,
    /// btrfs, tmpfs ≥ 6.6) and outside every granted folder.
    pub staging_dir: Option<PathBuf>,
}

/// Opens the configured backend, or the first one that works here.
pub fn open(config: &SandboxConfig) -> Result<Box<dyn Sandbox>> {
    let probes = probe();
    let wanted = config.backend.as_deref();
    if let Some(name) = wanted
        && !probes.iter().any(|p| p.name == name)
    {
        return Err(SandboxError::UnknownBackend(name.to_owned()));
    }
    for found in &probes {
        if wanted.is_some_and(|name| name != found.name) {
            continue;
        }
        if !found.available {
            if wanted.is_some() {
                return Err(SandboxError::Unavailable {
                    backend: found.name.clone(),
                    reason: found.reason.clone(),
                });
            }
            continue;
        }
        if found.name == "namespaces" {
            return Ok(Box::new(NamespacesSandbox::new(config.staging_dir.clone())));
        }
    }
    let reasons: Vec<String> = probes
        .iter()
        .map(|p| format!("{}: {}", p.name, p.reason))
        .collect();
    Err(SandboxError::Unavailable {
        backend: "any".to_owned(),
        reason: reasons.join("; "),
    })
}

//! The `namespaces` backend: Linux user, mount, pid, net, ipc and uts
//! namespaces, an overlayfs per granted folder, seccomp and rlimits.
//!
//! A session is a staging directory on the host:
//!
//! ```text
//! <staging>/upper/<i>   overlay upper layer of folder i (the proposal's changes)
//! <staging>/work/<i>    overlayfs work dir
//! <staging>/lower/<i>   symlink to folder i (keeps mount options free of `,` and `:`)
//! <staging>/root        mount point of the sandbox's root tmpfs
//! ```
//!
//! Each `run` creates fresh namespaces (see `child.rs`) and builds this file
//! system, then execs the command:
//!
//! ```text
//! /                  tmpfs, read-only once built
//! /usr /bin /lib*    read-only binds of the host's (or its /usr-merge symlinks)
//! /etc               synthetic: passwd, group, hosts, nsswitch.conf, ld.so.cache,
//!                    ssl/certs, alternatives… — never the host's /etc
//! /work/<name>       overlay: lower = the granted folder, upper = <staging>/upper/<i>
//! /home/sandbox      private tmpfs, $HOME
//! /tmp, /dev/shm     private tmpfs
//! /dev               null zero full random urandom tty (read-only binds), fd links
//! /proc              of the new pid namespace, read-only, with info leaks masked
//! ```
//!
//! Between runs no overlay is mounted, so the host reads and writes the
//! upper directories directly (staging, collecting changes).
//!
//! # Users and privileges
//!
//! Sandbox uid/gid 0 is mapped to the caller's own uid/gid, and to nothing
//! else. We keep the caller's identity because the granted folders belong to
//! the caller: mapping to another, unprivileged host uid would make them
//! unreadable (and overlay copy-up, which keeps the owner, would fail).
//! When the caller is host root this means the command's files-system
//! identity is host root, so it must not be able to use it on anything of
//! the host:
//! - it holds no capability at all (empty effective, permitted, inheritable,
//!   ambient and bounding sets; `SECBIT_NOROOT` so exec grants none back;
//!   `no_new_privs` so setuid binaries do not either);
//! - every host inode it can see is on a read-only mount (`/usr`, libs,
//!   `/etc` parts, the device nodes), so owner rights (chmod, write) do not
//!   apply; the granted folders are only reachable through the overlay,
//!   whose writes land in the upper layer;
//! - `/proc` is read-only, which closes the kernel's "euid == global root"
//!   checks (sysctls, `/proc/sysrq-trigger`); `/sys` is not mounted;
//! - seccomp denies the remaining dangerous calls (`seccomp.rs`).
//!
//! For a non-root caller the same code runs and the command is simply that
//! user, which already cannot act as root. It needs unprivileged user
//! namespaces (see [`probe`]).
//!
//! `RLIMIT_NPROC` is not enforced by the kernel for host uid 0, so the
//! process limit is the pid namespace's own `pid_max` (kernel ≥ 6.14), with
//! `RLIMIT_NPROC` as the limit for non-root callers.
//!
//! # Network
//!
//! The network namespace is new: only `lo` exists (brought up, so servers a
//! command starts for its tests work). Egress will go through a host-side
//! allowlist proxy: the session will bind-mount the proxy's Unix socket into
//! the sandbox (`/run/redline/proxy.sock`), and init will run a loopback
//! forwarder with `HTTP(S)_PROXY` pointing at it. The step list in
//! `plan_steps` is where that mount goes; nothing else changes.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libc::c_ulong;

use crate::changes::{self, Layer};
use crate::{
    BackendProbe, CancelFlag, CommandOutcome, CommandSpec, OutputStream, Result, Sandbox,
    SandboxChange, SandboxError, SandboxRoot, SandboxSession, SessionRequest, StagedEntry,
};

mod child;
mod seccomp;

use child::{ChildPlan, ExecArrays, Op, Step};

const NAME: &str = "namespaces";
const HOME: &str = "/home/sandbox";
const HOSTNAME: &str = "redline-sandbox";
const PATH_VAR: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Environment variables copied from the host when set; everything else
/// (API keys, tokens, SSH agent sockets) stays out.
const HOST_ENV_ALLOWLIST: &[&str] = &[
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TERM",
    "TZ",
    "COLORTERM",
    "NO_COLOR",
];
/// Parts of an environment variable name that mark it as a secret.
const SECRET_MARKERS: &[&str] = &[
    "API_KEY",
    "APIKEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "PRIVATE_KEY",
];
/// /proc entries that leak host information; covered with /dev/null or an
/// empty read-only tmpfs.
const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "key-users",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "kallsyms",
    "kmsg",
    "sysrq-trigger",
    "acpi",
    "scsi",
    "asound",
    "firmware",
];
/// Host files shown read-only in the synthetic /etc when present (public
/// system configuration that programs read at start-up).
const ETC_COPIED: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "os-release",
    "debian_version",
    "mime.types",
    "protocols",
    "services",
    "gai.conf",
    "host.conf",
    "ssl/openssl.cnf",
    "bash.bashrc",
    "profile",
    "inputrc",
    "magic",
];
/// Host directories bound read-only into the synthetic /etc.
const ETC_BOUND: &[&str] = &[
    "ssl/certs",
    "alternatives",
    "ca-certificates",
    "python3",
    "python3.11",
    "perl",
];

/// The default Linux backend.
#[derive(Clone, Debug, Default)]
pub struct NamespacesSandbox {
    staging_dir: Option<PathBuf>,
}

impl NamespacesSandbox {
    /// `staging_dir` is where per-task directories go (default: the system
    /// temp dir).
    pub fn new(staging_dir: Option<PathBuf>) -> Self {
        NamespacesSandbox { staging_dir }
    }

    /// Like [`Sandbox::prepare`], returning the concrete session type.
    pub fn prepare_session(&self, request: &SessionRequest) -> Result<NamespacesSession> {
        NamespacesSession::new(self.staging_dir.as_deref(), request)
    }
}

impl Sandbox for NamespacesSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, request: &SessionRequest) -> Result<Box<dyn SandboxSession>> {
        Ok(Box::new(self.prepare_session(request)?))
    }
}

/// A namespaces session: the staging directory of one task.
pub struct NamespacesSession {
    staging: Option<tempfile::TempDir>,
    staging_path: PathBuf,
    roots: Vec<SandboxRoot>,
    /// Host system directories mirrored into the sandbox.
    system: SystemView,
    seccomp: Vec<Vec<seccompiler::sock_filter>>,
}

#[derive(Clone, Debug)]
enum TopLevel {
    Bind(String),
    Symlink(String, PathBuf),
}

/// A host entry of /etc shown in the synthetic one.
#[derive(Clone, Debug)]
enum EtcEntry {
    /// A world-readable file or a directory, bound read-only.
    Bind {
        name: String,
        is_dir: bool,
    },
    Symlink {
        name: String,
        target: PathBuf,
    },
}

#[derive(Clone, Debug)]
struct SystemView {
    top_level: Vec<TopLevel>,
    etc: Vec<EtcEntry>,
    proc_masks: Vec<(String, bool)>,
    per_namespace_pid_max: bool,
}

fn cstring(text: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(text.as_ref().to_vec())
        .map_err(|_| SandboxError::NulByte(String::from_utf8_lossy(text.as_ref()).into_owned()))
}

fn path_cstring(path: &Path) -> Result<CString> {
    cstring(path.as_os_str().as_bytes())
}

/// Kernel version as (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

impl SystemView {
    fn detect() -> Self {
        let mut top_level = vec![TopLevel::Bind("usr".to_owned())];
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(name);
            match fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = fs::read_link(&host) {
                        top_level.push(TopLevel::Symlink(name.to_owned(), target));
                    }
                }
                Ok(meta) if meta.is_dir() => top_level.push(TopLevel::Bind(name.to_owned())),
                _ => {}
            }
        }
        let mut etc = Vec::new();
        for name in ETC_COPIED.iter().chain(ETC_BOUND) {
            let host = Path::new("/etc").join(name);
            let Ok(meta) = fs::symlink_metadata(&host) else {
                continue;
            };
            let name = (*name).to_owned();
            if meta.file_type().is_symlink() {
                if let Ok(target) = fs::read_link(&host) {
                    etc.push(EtcEntry::Symlink { name, target });
                }
            } else if meta.is_dir() || (meta.is_file() && meta.permissions().mode() & 0o004 != 0) {
                // Only world-readable files: anything private stays on the host.
                etc.push(EtcEntry::Bind {
                    name,
                    is_dir: meta.is_dir(),
                });
            }
        }
        let proc_masks = PROC_MASKED
            .iter()
            .filter_map(|name| {
                let meta = fs::symlink_metadata(Path::new("/proc").join(name)).ok()?;
                Some(((*name).to_owned(), meta.is_dir()))
            })
            .collect();
        SystemView {
            top_level,
            etc,
            proc_masks,
            per_namespace_pid_max: kernel_version() >= (6, 14),
        }
    }
}

/// Makes the folder name usable as `/work/<name>`.
fn guest_name(host: &Path, taken: &[SandboxRoot]) -> String {
    let base: String = host
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("folder")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() || base.starts_with('.') {
        format!("folder{base}")
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken
        .iter()
        .any(|r| r.guest_path == format!("/work/{name}"))
    {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The generated files of the synthetic /etc.
fn etc_files() -> Vec<(&'static str, String)> {
    vec![
        ("passwd", format!("root:x:0:0:sandbox:{HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")),
        ("group", "root:x:0:\nnogroup:x:65534:\n".to_owned()),
        ("hosts", format!("127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n")),
        ("hostname", format!("{HOSTNAME}\n")),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n".to_owned(),
        ),
        ("resolv.conf", "# the sandbox has no network access\n".to_owned()),
    ]
}

impl NamespacesSession {
    fn new(staging_parent: Option<&Path>, request: &SessionRequest) -> Result<Self> {
        let mut roots: Vec<SandboxRoot> = Vec::new();
        for raw in &request.roots {
            let host = raw.canonicalize().map_err(|e| SandboxError::BadRoot {
                path: raw.clone(),
                reason: e.to_string(),
            })?;
            if !host.is_dir() {
                return Err(SandboxError::BadRoot {
                    path: raw.clone(),
                    reason: "not a directory".to_owned(),
                });
            }
            let name = guest_name(&host, &roots);
            roots.push(SandboxRoot {
                host_path: host,
                guest_path: format!("/work/{name}"),
            });
        }
        let parent = match staging_parent {
            Some(dir) => dir.to_path_buf(),
            None => std::env::temp_dir(),
        };
        let staging = tempfile::Builder::new()
            .prefix("redline-sandbox-")
            .tempdir_in(&parent)
            .map_err(|e| SandboxError::io("create staging directory in", &parent, e))?;
        let staging_path = staging
            .path()
            .canonicalize()
            .map_err(|e| SandboxError::io("resolve", staging.path(), e))?;
        let text = staging_path.to_string_lossy();
        if text.contains([',', ':', '\\']) {
            return Err(SandboxError::Setup {
                step: "create staging directory".to_owned(),
                message: format!(
                    "`{text}` contains `,`, `:` or `\\`, which overlayfs options cannot hold; choose another staging directory"
                ),
            });
        }
        for root in &roots {
            if staging_path.starts_with(&root.host_path) {
                return Err(SandboxError::BadRoot {
                    path: root.host_path.clone(),
                    reason: format!(
                        "the staging directory `{}` lies inside it; choose a staging directory outside the granted folders",
                        staging_path.display()
                    ),
                });
            }
        }
        // The sandbox's root (as the owner) needs to traverse the staging dir;
        // nobody else may.
        fs::set_permissions(&staging_path, fs::Permissions::from_mode(0o700))
            .map_err(|e| SandboxError::io("set permissions of", &staging_path, e))?;
        for sub in ["upper", "work", "lower", "root"] {
            let dir = staging_path.join(sub);
            fs::create_dir(&dir).map_err(|e| SandboxError::io("create directory", dir, e))?;
        }
        for (index, root) in roots.iter().enumerate() {
            for sub in ["upper", "work"] {
                let dir = staging_path.join(sub).join(index.to_string());
                fs::create_dir(&dir).map_err(|e| SandboxError::io("create directory", dir, e))?;
            }
            let link = staging_path.join("lower").join(index.to_string());
            std::os::unix::fs::symlink(&root.host_path, &link)
                .map_err(|e| SandboxError::io("create symlink", link, e))?;
        }
        let system = SystemView::detect();
        let mut session = NamespacesSession {
            staging: Some(staging),
            staging_path,
            roots,
            system,
            seccomp: seccomp::programs()?,
        };
        session.stage(&request.staged)?;
        Ok(session)
    }

    /// overlayfs leaves `work/<i>/work` with mode 000, which a non-root
    /// owner cannot empty; open it up before removal.
    fn unlock_work_dirs(&self) {
        for index in 0..self.roots.len() {
            let dir = self
                .staging_path
                .join("work")
                .join(index.to_string())
                .join("work");
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        }
    }

    fn upper(&self, index: usize) -> PathBuf {
        self.staging_path.join("upper").join(index.to_string())
    }

    fn layer_paths(&self) -> Vec<(usize, PathBuf, PathBuf)> {
        self.roots
            .iter()
            .enumerate()
            .map(|(i, root)| (i, root.host_path.clone(), self.upper(i)))
            .collect()
    }

    /// The file-system steps of a run, before `pivot_root`.
    fn plan_steps(&self, spec: &CommandSpec) -> Result<Vec<Step>> {
        let new_root = self.staging_path.join("root");
        let at = |p: &str| new_root.join(p.trim_start_matches('/'));
        let mut steps = Vec::new();
        let mut push = |op: Op, what: String| steps.push(Step { op, what });
        let c = |p: &Path| path_cstring(p);
        let tmpfs = |target: &Path, options: String| -> Result<Op> {
            Ok(Op::Mount {
                source: Some(cstring("tmpfs")?),
                target: c(target)?,
                fstype: Some(cstring("tmpfs")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: Some(cstring(options)?),
            })
        };
        let bind = |source: &Path, target: &Path| -> Result<Op> {
            Ok(Op::Mount {
                source: Some(c(source)?),
                target: c(target)?,
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            })
        };
        let read_only = |target: &Path, extra: c_ulong| -> Result<Op> {
            Ok(Op::Mount {
                source: None,
                target: c(target)?,
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | extra,
                data: None,
            })
        };
        let mkdir = |p: &Path| -> Result<Op> {
            Ok(Op::Mkdir {
                path: c(p)?,
                mode: 0o755,
            })
        };

        // Nothing we mount may propagate back to the host.
        push(
            Op::Mount {
                source: None,
                target: cstring("/")?,
                fstype: None,
                flags: libc::MS_REC | libc::MS_PRIVATE,
                data: None,
            },
            "make the mount tree private".to_owned(),
        );
        push(
            tmpfs(&new_root, "mode=0755,size=4m".to_owned())?,
            "mount the root tmpfs".to_owned(),
        );
        for dir in ["etc", "tmp", "proc", "dev", "work", "home", HOME] {
            push(
                mkdir(&at(dir))?,
                format!("create /{}", dir.trim_start_matches('/')),
            );
        }
        for entry in &self.system.top_level {
            match entry {
                TopLevel::Bind(name) => {
                    let target = at(name);
                    push(mkdir(&target)?, format!("create /{name}"));
                    push(
                        bind(&Path::new("/").join(name), &target)?,
                        format!("bind /{name}"),
                    );
                    push(
                        read_only(&target, libc::MS_NODEV)?,
                        format!("make /{name} read-only"),
                    );
                }
                TopLevel::Symlink(name, target) => {
                    push(
                        Op::Symlink {
                            target: c(target)?,
                            link: c(&at(name))?,
                        },
                        format!("link /{name}"),
                    );
                }
            }
        }

        // /etc: a tmpfs with generated files and read-only binds of public
        // host entries (never the host's /etc as a whole).
        let etc = at("etc");
        push(
            tmpfs(&etc, "mode=0755,size=1m".to_owned())?,
            "mount /etc".to_owned(),
        );
        for (name, text) in etc_files() {
            push(
                Op::WriteFile {
                    path: c(&etc.join(name))?,
                    data: text.into_bytes(),
                },
                format!("write /etc/{name}"),
            );
        }
        for entry in &self.system.etc {
            let name = match entry {
                EtcEntry::Bind { name, .. } | EtcEntry::Symlink { name, .. } => name,
            };
            let target = etc.join(name);
            if let Some((parent, _)) = name.rsplit_once('/') {
                push(mkdir(&etc.join(parent))?, format!("create /etc/{parent}"));
            }
            match entry {
                EtcEntry::Symlink {
                    target: link_target,
                    ..
                } => {
                    push(
                        Op::Symlink {
                            target: c(link_target)?,
                            link: c(&target)?,
                        },
                        format!("link /etc/{name}"),
                    );
                }
                EtcEntry::Bind { is_dir, .. } => {
                    let create = if *is_dir {
                        mkdir(&target)?
                    } else {
                        Op::Touch { path: c(&target)? }
                    };
                    push(create, format!("create /etc/{name}"));
                    push(
                        bind(&Path::new("/etc").join(name), &target)?,
                        format!("bind /etc/{name}"),
                    );
                    push(
                        read_only(&target, libc::MS_NODEV)?,
                        format!("make /etc/{name} read-only"),
                    );
                }
            }
        }
        push(
            read_only(&etc, libc::MS_NODEV | libc::MS_NOEXEC)?,
            "make /etc read-only".to_owned(),
        );

        // /dev: a tmpfs with a few device nodes bound from the host; the
        // binds are read-only mounts so the host inodes cannot be chmod'ed.
        let dev = at("dev");
        push(
            tmpfs(&dev, "mode=0755,size=64k".to_owned())?,
            "mount /dev".to_owned(),
        );
        for node in ["null", "zero", "full", "random", "urandom", "tty"] {
            let target = dev.join(node);
            push(
                Op::Touch { path: c(&target)? },
                format!("create /dev/{node}"),
            );
            push(
                bind(&Path::new("/dev").join(node), &target)?,
                format!("bind /dev/{node}"),
            );
            push(
                read_only(&target, 0)?,
                format!("make /dev/{node} read-only"),
            );
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            push(
                Op::Symlink {
                    target: cstring(target)?,
                    link: c(&dev.join(link))?,
                },
                format!("link /dev/{link}"),
            );
        }
        push(mkdir(&dev.join("shm"))?, "create /dev/shm".to_owned());
        push(
            read_only(&dev, libc::MS_NODEV | libc::MS_NOEXEC)?,
            "make /dev read-only".to_owned(),
        );
        let tmp_size = spec.limits.tmp_bytes.max(4096);
        push(
            tmpfs(&dev.join("shm"), format!("mode=1777,size={tmp_size}"))?,
            "mount /dev/shm".to_owned(),
        );
        push(
            tmpfs(&at("tmp"), format!("mode=1777,size={tmp_size}"))?,
            "mount /tmp".to_owned(),
        );
        push(
            tmpfs(&at(HOME), format!("mode=0755,size={tmp_size}"))?,
            format!("mount {HOME}"),
        );

        // The granted folders.
        for (index, root) in self.roots.iter().enumerate() {
            let target = at(&root.guest_path);
            push(mkdir(&target)?, format!("create {}", root.guest_path));
            let options = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                self.staging_path
                    .join("lower")
                    .join(index.to_string())
                    .display(),
                self.upper(index).display(),
                self.staging_path
                    .join("work")
                    .join(index.to_string())
                    .display(),
            );
            push(
                Op::Mount {
                    source: Some(cstring("overlay")?),
                    target: c(&target)?,
                    fstype: Some(cstring("overlay")?),
                    flags: libc::MS_NOSUID | libc::MS_NODEV,
                    data: Some(cstring(options)?),
                },
                format!(
                    "mount overlay on {} (needs kernel >= 5.11 and user xattrs on the staging file system)",
                    root.guest_path
                ),
            );
        }

        // /proc of the new pid namespace.
        let proc_dir = at("proc");
        push(
            Op::Mount {
                source: Some(cstring("proc")?),
                target: c(&proc_dir)?,
                fstype: Some(cstring("proc")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
            },
            "mount /proc".to_owned(),
        );
        if self.system.per_namespace_pid_max {
            // Since 6.14 pid_max is per pid namespace: it caps how many
            // processes the sandbox can have (init, the command, children).
            // On older kernels it is global and must not be touched.
            let pid_max = u64::from(spec.limits.max_processes)
                .saturating_add(2)
                .max(301);
            push(
                Op::WriteFile {
                    path: c(&proc_dir.join("sys/kernel/pid_max"))?,
                    data: pid_max.to_string().into_bytes(),
                },
                "limit the number of processes (pid_max)".to_owned(),
            );
        }
        for (name, is_dir) in &self.system.proc_masks {
            let target = proc_dir.join(name);
            if *is_dir {
                push(
                    Op::Mount {
                        source: Some(cstring("tmpfs")?),
                        target: c(&target)?,
                        fstype: Some(cstring("tmpfs")?),
                        flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: Some(cstring("size=0")?),
                    },
                    format!("mask /proc/{name}"),
                );
            } else {
                push(
                    bind(Path::new("/dev/null"), &target)?,
                    format!("mask /proc/{name}"),
                );
                // Read-only, or chmod on the mask would reach the host's /dev/null.
                push(
                    read_only(&target, libc::MS_NODEV | libc::MS_NOEXEC)?,
                    format!("make the mask of /proc/{name} read-only"),
                );
            }
        }
        push(
            read_only(&proc_dir, libc::MS_NODEV | libc::MS_NOEXEC)?,
            "make /proc read-only".to_owned(),
        );

        push(
            read_only(&new_root, libc::MS_NODEV)?,
            "make / read-only".to_owned(),
        );
        Ok(steps)
    }

    fn environment(&self, spec: &CommandSpec) -> Result<Vec<CString>> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), PATH_VAR.into()),
            ("HOME".into(), HOME.into()),
            ("USER".into(), "root".into()),
            ("LOGNAME".into(), "root".into()),
            ("SHELL".into(), "/bin/sh".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TERM".into(), "dumb".into()),
            ("REDLINE_SANDBOX".into(), "1".into()),
        ];
        let set = |env: &mut Vec<(String, String)>, key: &str, value: &str| {
            env.retain(|(k, _)| k != key);
            env.push((key.to_owned(), value.to_owned()));
        };
        for key in HOST_ENV_ALLOWLIST {
            if let Ok(value) = std::env::var(key) {
                set(&mut env, key, &value);
            }
        }
        for (key, value) in &spec.env {
            let upper = key.to_ascii_uppercase();
            if SECRET_MARKERS.iter().any(|m| upper.contains(m)) {
                return Err(SandboxError::SecretInEnvironment(key.clone()));
            }
            if key.is_empty() || key.contains('=') {
                return Err(SandboxError::NulByte(key.clone()));
            }
            set(&mut env, key, value);
        }
        env.iter()
            .map(|(k, v)| cstring(format!("{k}={v}")))
            .collect()
    }

    fn exec_paths(&self, program: &str, env: &[CString]) -> Result<Vec<CString>> {
        if program.contains('/') {
            return Ok(vec![cstring(program)?]);
        }
        let path = env
            .iter()
            .find_map(|e| {
                e.to_str()
                    .ok()
                    .and_then(|e| e.strip_prefix("PATH="))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| PATH_VAR.to_owned());
        path.split(':')
            .filter(|dir| dir.starts_with('/'))
            .map(|dir| cstring(format!("{dir}/{program}")))
            .collect()
    }

    fn cwd(&self, spec: &CommandSpec) -> Result<String> {
        let (index, rel) = &spec.cwd;
        let root = self.roots.get(*index).ok_or(SandboxError::NoSuchRoot {
            index: *index,
            count: self.roots.len(),
        })?;
        Ok(match rel {
            Some(rel) => format!("{}/{}", root.guest_path, rel.as_str()),
            None => root.guest_path.clone(),
        })
    }

    fn step_name(steps: &[Step], index: i32) -> String {
        match index {
            child::STEP_ID_MAPS => "write the user namespace's uid/gid maps".to_owned(),
            child::STEP_PIVOT => "switch to the sandbox's root (pivot_root)".to_owned(),
            child::STEP_HOSTNAME => "set the hostname".to_owned(),
            child::STEP_LOOPBACK => "bring up the loopback interface".to_owned(),
            child::STEP_FORK => "start the command process".to_owned(),
            child::STEP_RLIMIT => "set resource limits".to_owned(),
            child::STEP_CAPS => "drop capabilities".to_owned(),
            child::STEP_SECCOMP => "install the seccomp filter".to_owned(),
            child::STEP_FDS => "close inherited file descriptors".to_owned(),
            i => steps
                .get(i as usize)
                .map_or_else(|| format!("step {i}"), |s| s.what.clone()),
        }
    }
}

/// A pipe whose ends are at fd >= 10 and close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SandboxError::io(
            "create",
            "pipe",
            io::Error::last_os_error(),
        ));
    }
    let mut high = [0; 2];
    for (slot, fd) in high.iter_mut().zip(fds) {
        // SAFETY: duplicating a descriptor we own, then closing the original.
        *slot = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        // SAFETY: `fd` is ours and no longer used.
        unsafe { libc::close(fd) };
    }
    if high.iter().any(|fd| *fd < 0) {
        return Err(SandboxError::io(
            "create",
            "pipe",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: both descriptors are freshly created and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(high[0]), OwnedFd::from_raw_fd(high[1])) })
}

/// The host's /dev/null for reading, at fd >= 10.
fn dev_null() -> Result<OwnedFd> {
    // SAFETY: opening a constant path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: duplicating and closing our own descriptor.
    let high = unsafe {
        let high = if fd >= 0 {
            libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10)
        } else {
            -1
        };
        if fd >= 0 {
            libc::close(fd);
        }
        high
    };
    if high < 0 {
        return Err(SandboxError::io(
            "open",
            "/dev/null",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

struct Capture {
    fd: Option<OwnedFd>,
    kept: Vec<u8>,
    truncated: bool,
}

impl Capture {
    /// Reads what is available; returns false at end-of-file.
    fn read(
        &mut self,
        stream: OutputStream,
        cap: usize,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> bool {
        let Some(fd) = &self.fd else { return false };
        let mut buf = [0u8; 16384];
        loop {
            // SAFETY: reading into a stack buffer from a descriptor we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let chunk = &buf[..n as usize];
                let room = cap.saturating_sub(self.kept.len());
                let keep = &chunk[..chunk.len().min(room)];
                if !keep.is_empty() {
                    self.kept.extend_from_slice(keep);
                    on_output(stream, keep);
                }
                if keep.len() < chunk.len() {
                    self.truncated = true;
                }
                continue;
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock {
                    return true;
                }
            }
            self.fd = None;
            return false;
        }
    }
}

impl SandboxSession for NamespacesSession {
    fn roots(&self) -> &[SandboxRoot] {
        &self.roots
    }

    fn stage(&mut self, entries: &[StagedEntry]) -> Result<()> {
        for entry in entries {
            let root = self.roots.get(entry.root).ok_or(SandboxError::NoSuchRoot {
                index: entry.root,
                count: self.roots.len(),
            })?;
            let upper = self.upper(entry.root);
            changes::materialize(
                &Layer {
                    root: entry.root,
                    lower: &root.host_path,
                    upper: &upper,
                },
                entry,
            )?;
        }
        Ok(())
    }

    fn run(
        &mut self,
        spec: &CommandSpec,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
        cancel: &CancelFlag,
    ) -> Result<CommandOutcome> {
        let program = spec.argv.first().ok_or(SandboxError::EmptyCommand)?.clone();
        let started = Instant::now();
        let cwd = self.cwd(spec)?;
        let envp = self.environment(spec)?;
        let exec_paths = self.exec_paths(&program, &envp)?;
        let steps = self.plan_steps(spec)?;
        // Without input, stdin is the host's /dev/null: an empty pipe would
        // block anyone reopening it through /proc/self/fd/0 (no writer).
        let (stdin_r, stdin_w) = match &spec.stdin {
            Some(_) => {
                let (r, w) = pipe()?;
                (r, Some(w))
            }
            None => (dev_null()?, None),
        };
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let limits = &spec.limits;
        let plan = ChildPlan {
            uid_map: format!("0 {uid} 1\n").into_bytes(),
            gid_map: format!("0 {gid} 1\n").into_bytes(),
            steps,
            new_root: path_cstring(&self.staging_path.join("root"))?,
            hostname: HOSTNAME.as_bytes().to_vec(),
            cwd: cstring(&cwd)?,
            exec_paths,
            argv: spec.argv.iter().map(cstring).collect::<Result<_>>()?,
            envp,
            rlimits: vec![
                (libc::RLIMIT_CPU as i32, limits.cpu_seconds),
                (libc::RLIMIT_AS as i32, limits.address_space_bytes),
                (libc::RLIMIT_NPROC as i32, u64::from(limits.max_processes)),
                (libc::RLIMIT_FSIZE as i32, limits.file_size_bytes),
                (libc::RLIMIT_CORE as i32, 0),
            ],
            seccomp: self.seccomp.clone(),
            stdin_fd: stdin_r.as_raw_fd(),
            stdout_fd: stdout_w.as_raw_fd(),
            stderr_fd: stderr_w.as_raw_fd(),
            status_fd: status_w.as_raw_fd(),
        };
        let arrays = ExecArrays::new(&plan);
        let flags = (libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS) as c_ulong;
        // SAFETY: the child only runs `init_main`, which makes system calls
        // on the prepared plan and ends in `_exit`.
        let pid = unsafe { child::raw_clone(flags) };
        if pid == 0 {
            // SAFETY: we are the child of `raw_clone`.
            unsafe { child::init_main(&plan, &arrays) }
        }
        if pid < 0 {
            return Err(SandboxError::Setup {
                step: "create namespaces (clone)".to_owned(),
                message: format!("{}; {}", io::Error::last_os_error(), USERNS_HINT),
            });
        }
        drop((stdin_r, stdout_w, stderr_w, status_w));

        let writer = match (&spec.stdin, stdin_w) {
            (Some(bytes), Some(stdin_w)) if !bytes.is_empty() => {
                let bytes = bytes.clone();
                let mut file = fs::File::from(stdin_w);
                Some(std::thread::spawn(move || {
                    // The command may exit without reading: EPIPE is fine.
                    let _ = file.write_all(&bytes);
                }))
            }
            _ => None,
        };

        let mut outcome = CommandOutcome::default();
        let mut out = Capture {
            fd: Some(stdout_r),
            kept: Vec::new(),
            truncated: false,
        };
        let mut err = Capture {
            fd: Some(stderr_r),
            kept: Vec::new(),
            truncated: false,
        };
        let mut status_buf = Vec::new();
        let mut status_fd = Some(status_r);
        for fd in [&out.fd, &err.fd, &status_fd].into_iter().flatten() {
            set_nonblocking(fd);
        }
        let deadline = started + spec.timeout;
        let mut killed = false;
        let mut next_usage_check = started + Duration::from_millis(200);
        let layers = self.layer_paths();
        while out.fd.is_some() || err.fd.is_some() || status_fd.is_some() {
            let mut pollfds: Vec<libc::pollfd> = [&out.fd, &err.fd, &status_fd]
                .into_iter()
                .flatten()
                .map(|fd| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: a valid array of pollfd.
            unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 20) };
            out.read(OutputStream::Stdout, spec.output_cap_bytes, on_output);
            err.read(OutputStream::Stderr, spec.output_cap_bytes, on_output);
            if let Some(fd) = &status_fd {
                let mut buf = [0u8; 256];
                loop {
                    // SAFETY: reading into a stack buffer.
                    let n =
                        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n > 0 {
                        status_buf.extend_from_slice(&buf[..n as usize]);
                        continue;
                    }
                    if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                        status_fd = None;
                    }
                    break;
                }
            }
            if killed {
                continue;
            }
            let now = Instant::now();
            let mut kill = false;
            if cancel.is_cancelled() {
                outcome.cancelled = true;
                kill = true;
            } else if now >= deadline {
                outcome.timed_out = true;
                kill = true;
            } else if now >= next_usage_check {
                next_usage_check = now + Duration::from_millis(250);
                let used: u64 = layers
                    .iter()
                    .map(|(_, _, upper)| changes::usage(upper, limits.staging_bytes))
                    .sum();
                if used > limits.staging_bytes {
                    outcome.staging_limit_exceeded = true;
                    kill = true;
                }
            }
            if kill {
                // Killing init kills every process of the pid namespace.
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
            }
        }
        let mut init_status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut init_status, 0) };
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        outcome.duration = started.elapsed();
        outcome.stdout = out.kept;
        outcome.stderr = err.kept;
        outcome.stdout_truncated = out.truncated;
        outcome.stderr_truncated = err.truncated;

        let mut exited = None;
        for message in status_buf.chunks_exact(12) {
            let word = |i: usize| {
                i32::from_ne_bytes([message[i], message[i + 1], message[i + 2], message[i + 3]])
            };
            let (tag, a, b) = (word(0), word(4), word(8));
            let os = |e: i32| io::Error::from_raw_os_error(e).to_string();
            match tag {
                child::TAG_SETUP_FAILED if !killed => {
                    let step = Self::step_name(&plan.steps, a);
                    let mut message = os(b);
                    if a == child::STEP_ID_MAPS || (b == libc::EPERM && a >= 0) {
                        message = format!("{message}; {USERNS_HINT}");
                    }
                    return Err(SandboxError::Setup { step, message });
                }
                child::TAG_CWD_FAILED => {
                    return Err(SandboxError::Cwd {
                        dir: cwd,
                        message: os(a),
                    });
                }
                child::TAG_EXEC_FAILED => {
                    return Err(SandboxError::Exec {
                        program,
                        message: os(a),
                    });
                }
                child::TAG_EXITED => exited = Some(a),
                _ => {}
            }
        }
        match exited {
            Some(status) if libc::WIFEXITED(status) => {
                outcome.exit_code = Some(libc::WEXITSTATUS(status))
            }
            Some(status) if libc::WIFSIGNALED(status) => {
                outcome.signal = Some(libc::WTERMSIG(status))
            }
            _ if killed => outcome.signal = Some(libc::SIGKILL),
            _ => {
                return Err(SandboxError::Setup {
                    step: "run the sandbox's init".to_owned(),
                    message: format!(
                        "it ended without reporting the command's status (wait status {init_status})"
                    ),
                });
            }
        }
        Ok(outcome)
    }

    fn changes(&self) -> Result<Vec<SandboxChange>> {
        let mut out = Vec::new();
        for (index, lower, upper) in self.layer_paths() {
            changes::collect(
                &Layer {
                    root: index,
                    lower: &lower,
                    upper: &upper,
                },
                &mut out,
            )?;
        }
        out.sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
        Ok(out)
    }

    fn dispose(mut self: Box<Self>) -> Result<()> {
        self.unlock_work_dirs();
        match self.staging.take() {
            Some(dir) => {
                let path = dir.path().to_path_buf();
                dir.close()
                    .map_err(|e| SandboxError::io("remove staging directory", path, e))
            }
            None => Ok(()),
        }
    }
}

impl Drop for NamespacesSession {
    fn drop(&mut self) {
        // `TempDir` removes the rest when dropped after this.
        self.unlock_work_dirs();
    }
}

const USERNS_HINT: &str = "the sandbox needs user namespaces: check `sysctl user.max_user_namespaces` (must be > 0), \
`sysctl kernel.unprivileged_userns_clone` (Debian: set to 1 for non-root users), and \
`sysctl kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 24.04+: set to 0 or add an AppArmor profile)";

/// Whether the backend works here: builds a real sandbox over an empty
/// folder and runs `true` in it.
pub fn probe() -> BackendProbe {
    let result = (|| -> Result<CommandOutcome> {
        let folder =
            tempfile::tempdir().map_err(|e| SandboxError::io("create", std::env::temp_dir(), e))?;
        let sandbox = NamespacesSandbox::default();
        let mut session = sandbox.prepare_session(&SessionRequest {
            roots: vec![folder.path().to_path_buf()],
            staged: Vec::new(),
        })?;
        let mut spec = CommandSpec::new(["true"]);
        spec.timeout = Duration::from_secs(10);
        session.run(&spec, &mut |_, _| {}, &CancelFlag::new())
    })();
    let (available, reason) = match result {
        Ok(outcome) if outcome.success() => {
            let (major, minor) = kernel_version();
            let limit = if kernel_version() >= (6, 14) {
                "process limit by pid namespace"
            } else {
                "process limit by RLIMIT_NPROC only (not enforced for root; kernel >= 6.14 adds a per-sandbox limit)"
            };
            (
                true,
                format!(
                    "user namespaces and overlayfs (userxattr) work on kernel {major}.{minor}; {limit}"
                ),
            )
        }
        Ok(outcome) => (
            false,
            format!(
                "a test command failed in the sandbox: {}",
                String::from_utf8_lossy(&outcome.stderr).trim()
            ),
        ),
        Err(e) => (false, e.to_string()),
    };
    BackendProbe {
        name: NAME.to_owned(),
        available,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names_are_unique_and_plain() {
        let mut roots = Vec::new();
        for host in ["/a/app", "/b/app", "/c/my dir", "/d/.hidden"] {
            let name = guest_name(Path::new(host), &roots);
            roots.push(SandboxRoot {
                host_path: host.into(),
                guest_path: format!("/work/{name}"),
            });
        }
        let names: Vec<&str> = roots.iter().map(|r| r.guest_path.as_str()).collect();
        assert_eq!(
            names,
            [
                "/work/app",
                "/work/app-2",
                "/work/my_dir",
                "/work/folder.hidden"
            ]
        );
    }

    #[test]
    fn secret_environment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let session = NamespacesSandbox::default()
            .prepare_session(&SessionRequest {
                roots: vec![dir.path().to_path_buf()],
                staged: vec![],
            })
            .unwrap();
        let mut spec = CommandSpec::new(["true"]);
        spec.env = vec![("GITHUB_TOKEN".into(), "x".into())];
        let err = session.environment(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `GITHUB_TOKEN` looks like a secret and is never passed into the sandbox"
        );
        spec.env = vec![("RUST_LOG".into(), "debug".into())];
        let env = session.environment(&spec).unwrap();
        assert!(env.iter().any(|e| e.to_str() == Ok("RUST_LOG=debug")));
        assert!(env.iter().any(|e| e.to_str() == Ok("HOME=/home/sandbox")));
    }
}

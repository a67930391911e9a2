//! The code that runs between `clone` and `execve`.
//!
//! The caller is usually multithreaded (a Tokio runtime, a test harness), so
//! after `clone` the child may only make system calls: another thread may
//! have held the allocator's lock at the moment of the copy. Everything the
//! child needs (paths, mount options, argv, envp, the seccomp programs) is
//! therefore built beforehand into a [`ChildPlan`], and the child only reads
//! it. Both processes are created with the raw `clone` system call, not
//! glibc's `fork`, which would run `atfork` handlers and take locks.
//!
//! Process layout: the first child is created in new user, mount, pid, net,
//! ipc and uts namespaces and is the sandbox's init (pid 1). It builds the
//! file system, then starts the command (pid 2), reaps every process that
//! ends, and reports the command's wait status on the status pipe. When the
//! command ends, init exits, and the kernel kills whatever the command left
//! running in the pid namespace; killing init (timeout, cancel) does the same.
//!
//! Status pipe messages are three native-endian `i32`s: a tag and two values.

use std::ffi::CString;

use libc::{c_char, c_int, c_ulong, c_void};

pub(crate) const TAG_SETUP_FAILED: i32 = 1;
pub(crate) const TAG_CWD_FAILED: i32 = 2;
pub(crate) const TAG_EXEC_FAILED: i32 = 3;
pub(crate) const TAG_EXITED: i32 = 4;

/// Step numbers after the plan's own steps, for error messages.
pub(crate) const STEP_ID_MAPS: i32 = -1;
pub(crate) const STEP_PIVOT: i32 = -2;
pub(crate) const STEP_HOSTNAME: i32 = -3;
pub(crate) const STEP_LOOPBACK: i32 = -4;
pub(crate) const STEP_FORK: i32 = -5;
pub(crate) const STEP_RLIMIT: i32 = -6;
pub(crate) const STEP_CAPS: i32 = -7;
pub(crate) const STEP_SECCOMP: i32 = -8;
pub(crate) const STEP_FDS: i32 = -9;

/// One file-system step of the setup, run before `pivot_root` with host
/// paths (the new root is a directory of the staging dir until then).
pub(crate) enum Op {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    /// Creates an empty file to bind a device node onto.
    Touch {
        path: CString,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    WriteFile {
        path: CString,
        data: Vec<u8>,
    },
}

pub(crate) struct Step {
    pub op: Op,
    /// Shown when the step fails: `mount overlay on /work/app`.
    pub what: String,
}

pub(crate) struct ChildPlan {
    pub uid_map: Vec<u8>,
    pub gid_map: Vec<u8>,
    pub steps: Vec<Step>,
    pub new_root: CString,
    pub hostname: Vec<u8>,
    pub cwd: CString,
    /// Candidate paths for the program (the `PATH` search, done ahead).
    pub exec_paths: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub rlimits: Vec<(c_int, u64)>,
    pub seccomp: Vec<Vec<seccompiler::sock_filter>>,
    /// Pipe ends the child makes its 0, 1, 2 and 3 (status).
    pub stdin_fd: c_int,
    pub stdout_fd: c_int,
    pub stderr_fd: c_int,
    pub status_fd: c_int,
}

/// Pointer arrays for `execve`, built before the clone.
pub(crate) struct ExecArrays {
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
}

impl ExecArrays {
    pub(crate) fn new(plan: &ChildPlan) -> Self {
        let mut argv: Vec<*const c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const c_char> = plan.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        ExecArrays { argv, envp }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn report(tag: i32, a: i32, b: i32) {
    let message = [tag, a, b];
    // SAFETY: writes 12 bytes from a stack array to fd 3 (the status pipe).
    unsafe {
        libc::write(
            3,
            message.as_ptr().cast::<c_void>(),
            std::mem::size_of_val(&message),
        )
    };
}

fn fail(step: i32) -> ! {
    report(TAG_SETUP_FAILED, step, errno());
    // SAFETY: exiting the child without running any destructor or atexit.
    unsafe { libc::_exit(126) }
}

fn write_file(path: &[u8], data: &[u8]) -> bool {
    // SAFETY: `path` is NUL-terminated (built from a literal or a CString).
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: valid fd and buffer.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
    written == data.len() as isize
}

fn run_op(op: &Op) -> bool {
    // SAFETY (whole function): every pointer comes from a live CString or
    // Vec in the plan, which the child owns a copy of.
    unsafe {
        match op {
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
                libc::mount(
                    ptr(source),
                    target.as_ptr(),
                    ptr(fstype),
                    *flags,
                    data.as_ref()
                        .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
                ) == 0
            }
            Op::Mkdir { path, mode } => {
                libc::mkdir(path.as_ptr(), *mode) == 0 || errno() == libc::EEXIST
            }
            Op::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd >= 0
            }
            Op::Symlink { target, link } => libc::symlink(target.as_ptr(), link.as_ptr()) == 0,
            Op::WriteFile { path, data } => write_file(path.as_bytes_with_nul(), data),
        }
    }
}

/// Brings up `lo` in the new network namespace.
fn loopback_up() -> bool {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: plain socket/ioctl calls on a stack struct laid out as `ifreq`.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return false;
        }
        let ok = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0
        };
        libc::close(sock);
        ok
    }
}

/// Raw `clone` without a new stack: returns twice, like `fork`.
///
/// # Safety
/// The child must only make system calls and must end in `_exit`/`execve`.
pub(crate) unsafe fn raw_clone(flags: c_ulong) -> libc::pid_t {
    // SAFETY: with a null stack the child runs on a copy of the caller's.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        ) as libc::pid_t
    }
}

/// The sandbox's init. Never returns.
///
/// # Safety
/// Must be called only in the child of [`raw_clone`], with `plan` and
/// `arrays` built before the clone.
pub(crate) unsafe fn init_main(plan: &ChildPlan, arrays: &ExecArrays) -> ! {
    // SAFETY (whole function): system calls only, on data from the plan.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
        // The plan put its pipe ends at fds >= 10, so these do not collide.
        if libc::dup2(plan.stdin_fd, 0) < 0
            || libc::dup2(plan.stdout_fd, 1) < 0
            || libc::dup2(plan.stderr_fd, 2) < 0
            || libc::dup3(plan.status_fd, 3, libc::O_CLOEXEC) < 0
        {
            libc::_exit(126);
        }
        // No descriptor of the host process may reach the command (a file
        // opened without O_CLOEXEC would be reachable as /proc/self/fd/N).
        if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
            fail(STEP_FDS);
        }

        if !write_file(b"/proc/self/setgroups\0", b"deny")
            || !write_file(b"/proc/self/uid_map\0", &plan.uid_map)
            || !write_file(b"/proc/self/gid_map\0", &plan.gid_map)
        {
            fail(STEP_ID_MAPS);
        }

        for (index, step) in plan.steps.iter().enumerate() {
            if !run_op(&step.op) {
                fail(index as i32);
            }
        }

        if libc::chdir(plan.new_root.as_ptr()) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            fail(STEP_PIVOT);
        }
        if libc::sethostname(plan.hostname.as_ptr().cast(), plan.hostname.len()) != 0 {
            fail(STEP_HOSTNAME);
        }
        if !loopback_up() {
            fail(STEP_LOOPBACK);
        }

        let command = raw_clone(0);
        if command < 0 {
            fail(STEP_FORK);
        }
        if command == 0 {
            command_main(plan, arrays);
        }
        // init keeps no stdio: the parent sees end-of-file once the command
        // and everything it started are gone.
        libc::close(0);
        libc::close(1);
        libc::close(2);
        loop {
            let mut status: c_int = 0;
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid == command {
                report(TAG_EXITED, status, 0);
                libc::_exit(0);
            }
            if pid < 0 && errno() != libc::EINTR {
                libc::_exit(125);
            }
        }
    }
}

/// The command process (pid 2): limits, privileges, seccomp, exec.
unsafe fn command_main(plan: &ChildPlan, arrays: &ExecArrays) -> ! {
    // SAFETY (whole function): system calls only, on data from the plan.
    unsafe {
        libc::setsid();
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            report(TAG_CWD_FAILED, errno(), 0);
            libc::_exit(126);
        }
        for &(resource, value) in &plan.rlimits {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource as _, &limit) != 0 {
                fail(STEP_RLIMIT);
            }
        }

        // Drop every capability for good: empty bounding and ambient sets,
        // and secure bits so that exec as uid 0 grants none back.
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0);
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
            0,
            0,
            0,
        );
        let securebits = libc::SECBIT_NOROOT
            | libc::SECBIT_NOROOT_LOCKED
            | libc::SECBIT_NO_SETUID_FIXUP
            | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
            | libc::SECBIT_KEEP_CAPS_LOCKED
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        if libc::prctl(libc::PR_SET_SECUREBITS, securebits as c_ulong, 0, 0, 0) != 0 {
            fail(STEP_CAPS);
        }
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: c_int,
        }
        #[repr(C)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            fail(STEP_CAPS);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(STEP_CAPS);
        }
        for program in &plan.seccomp {
            let fprog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0 {
                fail(STEP_SECCOMP);
            }
        }

        let mut best_errno = libc::ENOENT;
        for path in &plan.exec_paths {
            libc::execve(path.as_ptr(), arrays.argv.as_ptr(), arrays.envp.as_ptr());
            let e = errno();
            // Report the most telling failure, as execvp does: a program
            // found but not runnable beats "not found".
            if e != libc::ENOENT && e != libc::ENOTDIR {
                best_errno = e;
            }
        }
        report(TAG_EXEC_FAILED, best_errno, 0);
        libc::_exit(127)
    }
}

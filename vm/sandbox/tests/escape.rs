//! The escape suite: every way out of the sandbox we know of, each asserting
//! both that the attack failed inside and that the host is untouched
//! (invariant 4). Attacks are written in sh and python3, as a model would.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redline_vm::namespaces::NamespacesSession;
use redline_vm::{
    CancelFlag, CommandOutcome, CommandSpec, NamespacesSandbox, SandboxSession, SessionRequest,
};

const SECRET: &str = "TOP-SECRET-7f3a9c";

struct Jail {
    folder: tempfile::TempDir,
    outside: tempfile::TempDir,
    session: NamespacesSession,
}

struct Ran {
    outcome: CommandOutcome,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn failed(&self) -> bool {
        !self.outcome.success()
    }
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Opens a few syscalls for the python attacks: `sc(nr, *args)` returns
/// `(result, errno name)`.
const PY_PRELUDE: &str = r#"
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return r, errno.errorcode.get(ctypes.get_errno(), "0")
"#;

impl Jail {
    fn new() -> Jail {
        let folder = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("A"), "granted\n").unwrap();
        std::fs::write(outside.path().join("secret"), SECRET).unwrap();
        let session = NamespacesSandbox::default()
            .prepare_session(&SessionRequest {
                roots: vec![folder.path().to_path_buf()],
                staged: vec![],
            })
            .unwrap();
        Jail {
            folder,
            outside,
            session,
        }
    }

    fn outside(&self) -> PathBuf {
        self.outside.path().canonicalize().unwrap()
    }

    fn secret_path(&self) -> String {
        self.outside().join("secret").display().to_string()
    }

    fn run(&mut self, spec: &CommandSpec) -> Ran {
        let outcome = self
            .session
            .run(spec, &mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        Ran {
            stdout: String::from_utf8_lossy(&outcome.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&outcome.stderr).into_owned(),
            outcome,
        }
    }

    fn sh(&mut self, script: &str) -> Ran {
        let mut spec = CommandSpec::new(["sh", "-c", script]);
        spec.timeout = Duration::from_secs(30);
        self.run(&spec)
    }

    fn py(&mut self, code: &str) -> Ran {
        let mut spec = CommandSpec::new(["python3", "-c", &format!("{PY_PRELUDE}\n{code}")]);
        spec.timeout = Duration::from_secs(30);
        self.run(&spec)
    }

    fn assert_outside_untouched(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["secret"]);
        assert_eq!(
            std::fs::read_to_string(self.outside.path().join("secret")).unwrap(),
            SECRET
        );
    }
}

fn host_processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[test]
fn ssh_keys_in_host_home_are_invisible() {
    let mut jail = Jail::new();
    // A fake home with a key, at a host path the attacker knows.
    let home = jail.outside().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), SECRET).unwrap();
    let real_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let ran = jail.sh(&format!(
        "cat {h}/.ssh/id_ed25519; cat ~/.ssh/id_*; ls {real_home}/.ssh; cat {real_home}/.ssh/id_*; \
         grep -rs {SECRET} / --exclude-dir=proc; echo HOME=$HOME",
        h = home.display()
    ));
    assert!(!ran.stdout.contains(SECRET), "{}", ran.stdout);
    assert!(ran.stdout.contains("HOME=/home/sandbox"));
    assert!(ran.stderr.contains("No such file or directory"));
}

#[test]
fn etc_shadow_is_not_there() {
    let mut jail = Jail::new();
    let ran = jail.sh("cat /etc/shadow; cat /etc/gshadow; ls /etc; cat /etc/passwd");
    assert!(
        ran.stderr
            .contains("/etc/shadow: No such file or directory"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stdout.contains("shadow"));
    // The synthetic passwd has only the sandbox's users.
    assert!(
        ran.stdout
            .contains("root:x:0:0:sandbox:/home/sandbox:/bin/sh")
    );
    let host_users = std::fs::read_to_string("/etc/passwd").unwrap();
    let host_only = host_users
        .lines()
        .find(|l| !l.starts_with("root:") && !l.starts_with("nobody:"))
        .unwrap();
    assert!(!ran.stdout.contains(host_only));
}

#[test]
fn writes_outside_the_roots_fail() {
    let mut jail = Jail::new();
    let outside = jail.outside();
    let ran = jail.sh(&format!(
        "echo pwned > {o}/new; echo pwned >> {o}/secret; echo pwned > /usr/pwned; echo pwned > /etc/passwd; \
         echo pwned > /pwned; touch /usr/bin/pwned; echo done",
        o = outside.display()
    ));
    assert!(ran.stdout.contains("done"));
    assert_eq!(
        ran.stderr.matches("Read-only file system").count()
            + ran.stderr.matches("Directory nonexistent").count()
            + ran.stderr.matches("No such file").count(),
        6,
        "{}",
        ran.stderr
    );
    jail.assert_outside_untouched();
    assert!(
        !Path::new("/usr/pwned").exists()
            && !Path::new("/pwned").exists()
            && !Path::new("/usr/bin/pwned").exists()
    );
}

#[test]
fn symlinks_planted_in_the_folder_do_not_lead_out() {
    let mut jail = Jail::new();
    let outside = jail.outside();
    std::os::unix::fs::symlink(&outside, jail.folder.path().join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../..", jail.folder.path().join("up"))
        .unwrap();
    std::os::unix::fs::symlink("/etc/shadow", jail.folder.path().join("shadow")).unwrap();
    let rel_outside = outside.strip_prefix("/").unwrap().display().to_string();
    let ran = jail.sh(&format!(
        "cat abs/secret; echo pwned > abs/new; cat up/{rel_outside}/secret; echo pwned > up/{rel_outside}/new; cat shadow; echo done"
    ));
    assert!(ran.stdout.contains("done") && !ran.stdout.contains(SECRET));
    assert!(
        ran.stderr.matches("No such file").count() + ran.stderr.matches("nonexistent").count() >= 5,
        "{}",
        ran.stderr
    );
    jail.assert_outside_untouched();
    assert!(jail.session.changes().unwrap().is_empty());
}

#[test]
fn hardlink_planted_in_the_folder_is_copied_up_not_written() {
    let mut jail = Jail::new();
    let outside_file = jail.outside().join("secret");
    std::fs::hard_link(&outside_file, jail.folder.path().join("linked")).unwrap();
    let ran = jail.sh("cat linked; echo pwned > linked; ln /etc/passwd mine; echo done");
    assert!(ran.stdout.contains("done"));
    // Linking across mounts fails; writing the planted link only changes the
    // sandbox's copy.
    assert!(
        ran.stderr.contains("Invalid cross-device link"),
        "{}",
        ran.stderr
    );
    jail.assert_outside_untouched();
    let changes = jail.session.changes().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path.as_str(), "linked");
    assert_eq!(changes[0].content.as_deref(), Some(&b"pwned\n"[..]));
}

#[test]
fn dot_dot_and_absolute_host_paths_fail() {
    let mut jail = Jail::new();
    let secret = jail.secret_path();
    let folder = jail.folder.path().canonicalize().unwrap();
    let ran = jail.sh(&format!(
        "cat ../../../../../../..{secret}; cat /work/../..{secret}; cat {secret}; cat {f}/A; echo x > ../../../..{secret}; pwd; echo done",
        f = folder.display()
    ));
    assert!(ran.stdout.contains("done") && !ran.stdout.contains(SECRET));
    assert!(ran.stdout.starts_with("/work/"), "{}", ran.stdout);
    assert_eq!(
        ran.stderr.matches("No such file").count() + ran.stderr.matches("nonexistent").count(),
        5,
        "{}",
        ran.stderr
    );
    jail.assert_outside_untouched();
}

#[test]
fn proc_root_and_cwd_links_stay_inside() {
    let mut jail = Jail::new();
    let secret = jail.secret_path();
    let ran = jail.sh(&format!(
        "cat /proc/1/root{secret}; cat /proc/self/root{secret}; cat /proc/self/cwd/../../..{secret}; \
         ls /proc/1/root/; ls /proc/self/root/ | grep -c work; readlink /proc/self/cwd; ls /proc | grep -c '^[0-9]'; echo done"
    ));
    assert!(ran.stdout.contains("done") && !ran.stdout.contains(SECRET));
    // init's root is not even readable (it keeps capabilities the command
    // lacks); the command's own root is the sandbox's.
    assert_eq!(
        ran.stderr.matches("No such file").count()
            + ran.stderr.matches("Permission denied").count(),
        4,
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.contains("/work/"));
    // Only the sandbox's own processes exist (init, sh, ls|grep).
    let pids: usize = ran
        .stdout
        .lines()
        .rev()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids <= 5, "{}", ran.stdout);
    jail.assert_outside_untouched();
}

#[test]
fn mount_is_denied() {
    let mut jail = Jail::new();
    let ran = jail.py(
        "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None); print('mount', r, errno.errorcode[ctypes.get_errno()])\n\
         print('umount', *sc(166, ctypes.addressof(ctypes.create_string_buffer(b'/proc')), 2))\n\
         print('fsopen', *sc(430, ctypes.addressof(ctypes.create_string_buffer(b'tmpfs')), 0))",
    );
    assert_eq!(
        ran.stdout, "mount -1 EPERM\numount -1 EPERM\nfsopen -1 EPERM\n",
        "{}",
        ran.stderr
    );
    let ran = jail.sh("mount -t tmpfs none /tmp; mount --bind /usr /tmp; echo done");
    assert!(
        ran.stdout.contains("done")
            && ran.stderr.matches("ermission denied").count()
                + ran.stderr.matches("not permitted").count()
                >= 2,
        "{}",
        ran.stderr
    );
}

#[test]
fn ptrace_of_another_process_is_denied() {
    let mut jail = Jail::new();
    let ran = jail.py("pid = os.fork()\n\
         if pid == 0:\n    import time; time.sleep(5); os._exit(0)\n\
         print('attach', *sc(101, 16, pid, 0, 0))\n\
         print('vm_read', *sc(310, pid, 0, 0, 0, 0, 0))\n\
         os.kill(pid, 9)");
    assert_eq!(
        ran.stdout, "attach -1 EPERM\nvm_read -1 EPERM\n",
        "{}",
        ran.stderr
    );
}

#[test]
fn device_nodes_cannot_be_created() {
    let mut jail = Jail::new();
    let ran = jail.py(
        "import stat\n\
         for kind, name in ((stat.S_IFCHR, 'char'), (stat.S_IFBLK, 'block')):\n\
         \x20   try:\n        os.mknod('/tmp/' + name, kind | 0o666, os.makedev(8, 0)); print(name, 'created')\n\
         \x20   except OSError as e: print(name, errno.errorcode[e.errno])\n\
         os.mkfifo('/tmp/fifo'); print('fifo ok')",
    );
    assert_eq!(
        ran.stdout, "char EPERM\nblock EPERM\nfifo ok\n",
        "{}",
        ran.stderr
    );
}

#[test]
fn setuid_binaries_grant_no_privileges() {
    let mut jail = Jail::new();
    let ran = jail.sh(
        "cp /usr/bin/python3.11 ./suid && chmod 4755 ./suid && \
         ./suid -c \"print([l for l in open('/proc/self/status') if l.startswith(('CapEff','CapPrm','NoNewPrivs'))])\"; \
         mount --bind /usr /tmp 2>&1 | head -1; echo done",
    );
    assert!(
        ran.stdout.contains("'CapEff:\\t0000000000000000\\n'"),
        "{} {}",
        ran.stdout,
        ran.stderr
    );
    assert!(ran.stdout.contains("'CapPrm:\\t0000000000000000\\n'"));
    assert!(ran.stdout.contains("'NoNewPrivs:\\t1\\n'"));
    // util-linux mount is setuid root on the host; here it stays powerless.
    assert!(ran.stdout.contains("done") && !ran.stdout.contains("done\n\n"));
    assert!(
        ran.stdout.contains("ermission denied") || ran.stdout.contains("not permitted"),
        "{}",
        ran.stdout
    );
}

#[test]
fn new_user_namespaces_are_denied() {
    let mut jail = Jail::new();
    let ran = jail.py("print('unshare', *sc(272, 0x10000000))\n\
         print('clone', *sc(56, 0x10000000 | 17, 0, 0, 0, 0))\n\
         print('clone3', *sc(435, 0, 0))\n\
         print('setns', *sc(308, 0, 0))");
    assert_eq!(
        ran.stdout, "unshare -1 EPERM\nclone -1 EPERM\nclone3 -1 ENOSYS\nsetns -1 EPERM\n",
        "{}",
        ran.stderr
    );
    let ran = jail.sh("unshare -U -r id; unshare -n true; echo done");
    assert!(
        ran.stdout.contains("done") && !ran.stdout.contains("uid="),
        "{}",
        ran.stdout
    );
    assert_eq!(
        ran.stderr.matches("Operation not permitted").count(),
        2,
        "{}",
        ran.stderr
    );
}

#[test]
fn io_uring_bpf_keyctl_and_perf_are_denied() {
    let mut jail = Jail::new();
    let ran = jail.py("params = ctypes.create_string_buffer(120)\n\
         print('io_uring', *sc(425, 8, ctypes.addressof(params)))\n\
         print('bpf', *sc(321, 0, 0, 0))\n\
         print('keyctl', *sc(250, 0, 0))\n\
         print('perf', *sc(298, 0, 0, -1, -1, 0))");
    assert_eq!(
        ran.stdout, "io_uring -1 EPERM\nbpf -1 EPERM\nkeyctl -1 EPERM\nperf -1 EPERM\n",
        "{}",
        ran.stderr
    );
}

#[test]
fn host_unix_sockets_cannot_be_reached() {
    let mut jail = Jail::new();
    let path = jail.outside().join("host.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    // An abstract socket too: those are per network namespace.
    let abstract_name = format!("redline-escape-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        UnixListener::bind_addr(&addr).unwrap()
    };
    abstract_listener.set_nonblocking(true).unwrap();
    let ran = jail.py(&format!(
        "for addr in ({path:?}, '\\0{abstract_name}', '/run/systemd/private', '/var/run/docker.sock', '/tmp/.X11-unix/X0'):\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   try: s.connect(addr); print('connected', addr)\n\
         \x20   except OSError as e: print(errno.errorcode[e.errno])",
        path = path.display().to_string()
    ));
    assert_eq!(
        ran.stdout, "ENOENT\nECONNREFUSED\nENOENT\nENOENT\nENOENT\n",
        "{}",
        ran.stderr
    );
    assert!(listener.accept().is_err());
    assert!(abstract_listener.accept().is_err());
}

#[test]
fn host_loopback_tcp_service_is_unreachable() {
    let mut jail = Jail::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ran = jail.py(&format!(
        "s = socket.socket()\ntry: s.connect(('127.0.0.1', {port})); print('connected')\nexcept OSError as e: print(errno.errorcode[e.errno])"
    ));
    assert_eq!(ran.stdout, "ECONNREFUSED\n", "{}", ran.stderr);
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );
    // The host side still works, so the refusal is the sandbox's doing.
    TcpStream::connect(("127.0.0.1", port)).unwrap();
}

#[test]
fn dns_and_outbound_tcp_fail() {
    let mut jail = Jail::new();
    let ran = jail.py(
        "try: print(socket.getaddrinfo('example.com', 443))\nexcept OSError as e: print('dns', type(e).__name__)\n\
         for host in ('1.1.1.1', '8.8.8.8'):\n\
         \x20   s = socket.socket(); s.settimeout(3)\n\
         \x20   try: s.connect((host, 443)); print('connected')\n\
         \x20   except OSError as e: print(errno.errorcode.get(e.errno, e))\n\
         print(open('/proc/net/dev').read().count(':'))",
    );
    // Only `lo` exists: two header lines without a colon... and one interface.
    assert_eq!(
        ran.stdout, "dns gaierror\nENETUNREACH\nENETUNREACH\n1\n",
        "{}",
        ran.stderr
    );
}

#[test]
fn fork_bomb_is_contained() {
    let mut jail = Jail::new();
    let mut spec = CommandSpec::new([
        "python3",
        "-c",
        "import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n    except OSError as e:\n        print('stopped after', n, e.strerror, flush=True); break\n    if pid == 0:\n        time.sleep(30); os._exit(0)\n    n += 1",
    ]);
    spec.limits.max_processes = 64;
    spec.timeout = Duration::from_secs(20);
    let ran = jail.run(&spec);
    assert!(!ran.outcome.timed_out);
    let line = ran.stdout.trim();
    assert!(line.starts_with("stopped after"), "{line} {}", ran.stderr);
    let forks: u32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    // The pid namespace's pid_max has a kernel floor of 301.
    assert!(forks <= 300, "{line}");
    // A shell fork bomb is cut off by the timeout and leaves nothing behind.
    let mut spec = CommandSpec::new(["sh", "-c", "b() { b | b & }; b; sleep 100"]);
    spec.limits.max_processes = 64;
    spec.timeout = Duration::from_secs(2);
    let ran = jail.run(&spec);
    assert!(
        ran.outcome.duration < Duration::from_secs(10),
        "{:?}",
        ran.outcome
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(host_processes_with("b() { b | b & }"), 0);
}

#[test]
fn memory_bomb_is_refused() {
    let mut jail = Jail::new();
    let mut spec = CommandSpec::new([
        "python3",
        "-c",
        "x = bytearray(4 << 30)\nprint('allocated')",
    ]);
    spec.limits.address_space_bytes = 1 << 30;
    let ran = jail.run(&spec);
    assert!(ran.failed() && !ran.stdout.contains("allocated"));
    assert!(ran.stderr.contains("MemoryError"), "{}", ran.stderr);
}

#[test]
fn disk_fill_bombs_are_stopped() {
    let mut jail = Jail::new();
    // One big file: RLIMIT_FSIZE.
    let mut spec = CommandSpec::new([
        "sh",
        "-c",
        "dd if=/dev/zero of=big bs=1M count=64; echo status $?",
    ]);
    spec.limits.file_size_bytes = 4 << 20;
    let ran = jail.run(&spec);
    assert!(
        ran.stdout.contains("status 153") || ran.stderr.contains("File too large"),
        "{} {}",
        ran.stdout,
        ran.stderr
    );
    // Many files: the staging limit.
    let mut spec = CommandSpec::new([
        "sh",
        "-c",
        "i=0; while :; do head -c 1048576 /dev/zero > f$i; i=$((i+1)); done",
    ]);
    spec.limits.staging_bytes = 32 << 20;
    spec.timeout = Duration::from_secs(30);
    let ran = jail.run(&spec);
    assert!(
        ran.outcome.staging_limit_exceeded && !ran.outcome.timed_out,
        "{:?}",
        ran.outcome
    );
    // /tmp is a bounded tmpfs.
    let mut spec = CommandSpec::new(["sh", "-c", "head -c 16777216 /dev/zero > /tmp/fill"]);
    spec.limits.tmp_bytes = 4 << 20;
    let ran = jail.run(&spec);
    assert!(
        ran.stderr.contains("No space left on device"),
        "{}",
        ran.stderr
    );
}

#[test]
fn infinite_loop_is_killed_at_the_timeout() {
    let mut jail = Jail::new();
    let mut spec = CommandSpec::new(["sh", "-c", "while :; do :; done"]);
    spec.timeout = Duration::from_millis(300);
    let ran = jail.run(&spec);
    assert!(ran.outcome.timed_out && ran.outcome.exit_code.is_none());
    assert_eq!(ran.outcome.signal, Some(libc::SIGKILL));
    assert!(
        ran.outcome.duration < Duration::from_secs(2),
        "{:?}",
        ran.outcome.duration
    );
}

#[test]
fn cancel_kills_the_tree_quickly() {
    let mut jail = Jail::new();
    let cancel = CancelFlag::new();
    let trigger = cancel.clone();
    let mut spec = CommandSpec::new(["sh", "-c", "sleep 100 & sleep 100; echo unreachable"]);
    spec.timeout = Duration::from_secs(60);
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        trigger.cancel();
        std::time::Instant::now()
    });
    let outcome = jail.session.run(&spec, &mut |_, _| {}, &cancel).unwrap();
    let cancelled_at = timer.join().unwrap();
    assert!(outcome.cancelled && !outcome.timed_out);
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(200),
        "{:?}",
        cancelled_at.elapsed()
    );
}

#[test]
fn background_processes_do_not_outlive_the_command() {
    let mut jail = Jail::new();
    let marker = format!("redline-outlive-{}", std::process::id());
    let ran = jail.sh(&format!(
        "(exec -a {marker} sleep 1000 &); setsid sh -c 'exec -a {marker} sleep 1000' & nohup sh -c 'exec -a {marker} sleep 1000' >/dev/null 2>&1 & echo started"
    ));
    assert!(ran.stdout.contains("started"));
    assert!(ran.outcome.duration < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(host_processes_with(&marker), 0);
}

#[test]
fn parent_environment_secrets_do_not_leak() {
    // SAFETY: std serializes its own environment access; nothing else in
    // this test binary reads the environment through libc directly.
    unsafe { std::env::set_var("ANTHROPIC_API_KEY", "sk-ant-test-leak-4d2c") };
    let mut jail = Jail::new();
    let ran =
        jail.sh("env; cat /proc/1/environ /proc/self/environ; cat /proc/*/environ; echo done");
    assert!(ran.stdout.contains("done"));
    assert!(
        !ran.all().contains("sk-ant-test-leak-4d2c"),
        "{}",
        ran.all()
    );
    assert!(!ran.stdout.contains("ANTHROPIC"));
    let mut spec = CommandSpec::new(["true"]);
    spec.env = vec![("ANTHROPIC_API_KEY".into(), "sk-ant".into())];
    assert!(
        jail.session
            .run(&spec, &mut |_, _| {}, &CancelFlag::new())
            .is_err()
    );
}

#[test]
fn inherited_descriptors_cannot_reach_host_files() {
    let mut jail = Jail::new();
    let path = std::ffi::CString::new(jail.secret_path()).unwrap();
    // Opened without O_CLOEXEC, as a careless host library would.
    // SAFETY: plain open of a path we own.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
    assert!(fd >= 3);
    let ran = jail.sh(&format!(
        "echo pwned > /proc/self/fd/{fd}; cat /proc/self/fd/{fd}; ls -l /proc/$$/fd; for n in $(seq 3 64); do cat /proc/self/fd/$n; done 2>/dev/null; cat /proc/self/fd/0; echo done"
    ));
    // SAFETY: closing the descriptor we opened.
    unsafe { libc::close(fd) };
    assert!(ran.stdout.contains("done") && !ran.stdout.contains(SECRET));
    assert!(!ran.stdout.contains(&jail.secret_path()), "{}", ran.stdout);
    assert!(
        ran.stderr
            .contains(&format!("/proc/self/fd/{fd}: No such file")),
        "{}",
        ran.stderr
    );
    jail.assert_outside_untouched();
}

#[test]
fn host_root_owned_kernel_knobs_are_read_only() {
    let mut jail = Jail::new();
    let host_core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let host_null_mode = std::fs::metadata("/dev/null").unwrap().permissions();
    let ran = jail.sh(
        "echo '|/tmp/x' > /proc/sys/kernel/core_pattern; echo h > /proc/sysrq-trigger; chmod 000 /dev/null; \
         chmod 000 /proc/keys; chown 1:1 /dev/zero; ls /sys; echo done",
    );
    assert!(ran.stdout.contains("done"));
    assert!(
        ran.stderr.matches("Read-only file system").count() >= 4,
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("/sys"), "{}", ran.stderr);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        host_core_pattern
    );
    assert_eq!(
        std::fs::metadata("/dev/null").unwrap().permissions(),
        host_null_mode
    );
}

#[test]
fn host_processes_cannot_be_signalled() {
    let mut jail = Jail::new();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let ran = jail.sh(&format!("kill -9 {pid}; echo done"));
    assert!(
        ran.stdout.contains("done") && ran.stderr.contains("No such process"),
        "{}",
        ran.stderr
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the host process was killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn chroot_and_open_by_handle_are_denied() {
    let mut jail = Jail::new();
    let ran = jail.py(
        "try: os.chroot('/tmp'); print('chrooted')\nexcept OSError as e: print(errno.errorcode[e.errno])\n\
         print('open_by_handle_at', *sc(304, -100, 0, 0))",
    );
    assert_eq!(
        ran.stdout, "EPERM\nopen_by_handle_at -1 EPERM\n",
        "{}",
        ran.stderr
    );
}

#[test]
fn the_real_folder_is_never_written() {
    let mut jail = Jail::new();
    let folder = jail.folder.path().canonicalize().unwrap();
    let ran = jail.sh("echo changed > A; rm -f A; echo new > B; mkdir -p x/y; mv B x/y/C; cat /proc/self/mountinfo");
    assert!(!ran.failed(), "{}", ran.stderr);
    let mut names: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["A"]);
    let mut buf = String::new();
    std::fs::File::open(folder.join("A"))
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert_eq!(buf, "granted\n");
}

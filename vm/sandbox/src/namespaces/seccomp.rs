//! The seccomp filter installed just before a command is exec'd.
//!
//! It is a deny list on top of the other layers (no capabilities, no new
//! privileges, nothing of the host's mounted), aimed at the kernel surface
//! that namespaced root is still allowed to reach or that has a history of
//! bugs. Denied calls fail with `EPERM` (programs handle it), except `clone3`
//! which fails with `ENOSYS` so glibc falls back to `clone`, whose flags the
//! filter can see (`clone3` passes them in memory, out of seccomp's reach).
//!
//! How each class is blocked:
//! - `ptrace`, `process_vm_readv/writev`, `kcmp`: denied outright; the pid
//!   namespace already hides every host process.
//! - mounting (`mount`, `umount2`, `pivot_root`, the new mount API,
//!   `mount_setattr`, `chroot`): denied, and `CAP_SYS_ADMIN` is gone anyway.
//! - `kexec_*`, `reboot`, modules, `swapon/off`, `acct`, `quotactl`,
//!   clock setting, `syslog`, `iopl/ioperm`: denied (need host capabilities
//!   the sandbox never has; denied so a kernel bug in the check cannot help).
//! - `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`, `keyctl`,
//!   `add_key`, `request_key`: denied; large attack surface, not needed by
//!   build tools (io_uring users fall back to plain syscalls).
//! - new namespaces: `unshare` and `clone` with any `CLONE_NEW*` flag, and
//!   every `setns`, are denied, so a command cannot make a user namespace in
//!   which it would be root again.
//! - device nodes: `mknod`/`mknodat` of character or block devices denied
//!   (FIFOs and sockets stay allowed).
//! - `open_by_handle_at` (the classic container escape): denied.
//! - `AF_UNIX` `connect` cannot be filtered by path (the path is in memory).
//!   Instead nothing of the host is there to connect to: the sandbox's file
//!   system has no host socket (no host `/tmp`, `/run`, `/var`, home), and
//!   abstract-namespace sockets belong to the network namespace, which is
//!   new and empty.
//!
//! On x86_64 each denied call is denied under its x32 number too, since an
//! x32 call carries the x86_64 audit architecture.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::{Result, SandboxError};

const NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_syslog,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_setns,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

#[cfg(target_arch = "x86_64")]
const X32_BIT: i64 = 0x4000_0000;

fn arch() -> Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn seccomp_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp(e.to_string())
}

fn insert(rules: &mut BTreeMap<i64, Vec<SeccompRule>>, nr: libc::c_long, chain: Vec<SeccompRule>) {
    #[cfg(target_arch = "x86_64")]
    rules.insert(nr | X32_BIT, chain.clone());
    rules.insert(nr, chain);
}

fn any_flag(arg: u8, flags: &[u64]) -> Result<Vec<SeccompRule>> {
    flags
        .iter()
        .map(|&flag| {
            let cond = SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .map_err(seccomp_err)?;
            SeccompRule::new(vec![cond]).map_err(seccomp_err)
        })
        .collect()
}

fn device_mode(arg: u8) -> Result<Vec<SeccompRule>> {
    [libc::S_IFCHR, libc::S_IFBLK]
        .iter()
        .map(|&kind| {
            let cond = SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(u64::from(libc::S_IFMT)),
                u64::from(kind),
            )
            .map_err(seccomp_err)?;
            SeccompRule::new(vec![cond]).map_err(seccomp_err)
        })
        .collect()
}

/// The two programs to install, in order: the main deny list (`EPERM`) and
/// the `clone3` redirect (`ENOSYS`).
pub(crate) fn programs() -> Result<Vec<BpfProgram>> {
    let arch = arch()?;
    let mut rules = BTreeMap::new();
    for &nr in DENIED {
        insert(&mut rules, nr, Vec::new());
    }
    insert(
        &mut rules,
        libc::SYS_unshare,
        any_flag(0, &NAMESPACE_FLAGS)?,
    );
    insert(&mut rules, libc::SYS_clone, any_flag(0, &NAMESPACE_FLAGS)?);
    insert(&mut rules, libc::SYS_mknodat, device_mode(2)?);
    #[cfg(target_arch = "x86_64")]
    insert(&mut rules, libc::SYS_mknod, device_mode(1)?);
    let main = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;

    let mut clone3 = BTreeMap::new();
    insert(&mut clone3, libc::SYS_clone3, Vec::new());
    let clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;

    Ok(vec![
        BpfProgram::try_from(main).map_err(|e| SandboxError::Seccomp(e.to_string()))?,
        BpfProgram::try_from(clone3).map_err(|e| SandboxError::Seccomp(e.to_string()))?,
    ])
}

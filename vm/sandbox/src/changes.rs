//! The staging layer as data: writing staged entries into an overlayfs
//! upper directory, and reading it back as [`SandboxChange`]s.
//!
//! The upper directory of an overlay holds exactly what differs from the
//! lower one: new and copied-up files, symlinks, whiteouts (character devices
//! 0/0) for deletions, and directories marked opaque (`user.overlay.opaque`
//! = `y` when mounted with `userxattr`) that hide everything below them in
//! the lower layer. Walking the upper directory, and looking up in the lower
//! one only the names found there, makes the cost proportional to what
//! changed. Copy-ups that changed nothing (a file opened for writing and
//! left as it was, a `touch`) are dropped by comparing with the lower file.
//!
//! Only called while no overlay is mounted on the directory (between
//! commands), as overlayfs requires.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use redline_core::path::RelPath;

use crate::{ChangeKind, Result, SandboxChange, SandboxError, StagedEntry};

const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// One granted folder's layers on the host.
pub(crate) struct Layer<'a> {
    pub root: usize,
    pub lower: &'a Path,
    pub upper: &'a Path,
}

pub(crate) fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    head.contains(&0) || std::str::from_utf8(bytes).is_err()
}

fn mode_bits(meta: &fs::Metadata) -> u32 {
    meta.mode() & 0o7777
}

fn lstat(path: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(path).ok()
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 4];
    // SAFETY: both strings are NUL-terminated and the buffer length is right.
    let len = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    len == 1 && value[0] == b'y'
}

fn set_opaque(path: &Path) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::NulByte(path.display().to_string()))?;
    let c_name =
        CString::new(OPAQUE_XATTR).map_err(|_| SandboxError::NulByte(OPAQUE_XATTR.into()))?;
    // SAFETY: valid NUL-terminated strings and a 1-byte value.
    let rc =
        unsafe { libc::lsetxattr(c_path.as_ptr(), c_name.as_ptr(), c"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        return Err(SandboxError::io(
            "mark opaque",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn make_whiteout(path: &Path) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::NulByte(path.display().to_string()))?;
    // SAFETY: valid path; a 0/0 character device is an overlay whiteout,
    // which the kernel lets unprivileged users create.
    let rc = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR, 0) };
    if rc != 0 {
        return Err(SandboxError::io(
            "create whiteout",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<()> {
    match lstat(path) {
        None => Ok(()),
        Some(meta) if meta.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| SandboxError::io("remove", path, e))
        }
        Some(_) => fs::remove_file(path).map_err(|e| SandboxError::io("remove", path, e)),
    }
}

/// Writes `entry` into the upper directory so the overlay shows it.
pub(crate) fn materialize(layer: &Layer<'_>, entry: &StagedEntry) -> Result<()> {
    let mut upper = layer.upper.to_path_buf();
    let mut lower = Some(layer.lower.to_path_buf());
    let parts: Vec<&str> = entry.path.components().collect();
    let (name, dirs) = match parts.split_last() {
        Some(split) => split,
        None => return Ok(()),
    };
    for dir in dirs {
        upper.push(dir);
        let lower_meta = lower.as_mut().and_then(|l| {
            l.push(dir);
            lstat(l)
        });
        let lower_is_dir = lower_meta.as_ref().is_some_and(|m| m.is_dir());
        match lstat(&upper) {
            Some(meta) if meta.is_dir() => {}
            existing => {
                if existing.is_some() {
                    remove_any(&upper)?;
                }
                let mode = lower_meta
                    .as_ref()
                    .filter(|m| m.is_dir())
                    .map_or(0o755, mode_bits);
                fs::create_dir(&upper)
                    .map_err(|e| SandboxError::io("create directory", &upper, e))?;
                fs::set_permissions(&upper, fs::Permissions::from_mode(mode))
                    .map_err(|e| SandboxError::io("set permissions of", &upper, e))?;
                // A directory that replaces a deletion or a non-directory
                // must hide what the lower layer has there.
                if existing.is_some() || (lower_meta.is_some() && !lower_is_dir) {
                    set_opaque(&upper)?;
                }
            }
        }
        if !lower_is_dir {
            lower = None;
        }
    }
    upper.push(name);
    let lower_meta = lower.as_mut().and_then(|l| {
        l.push(name);
        lstat(l)
    });
    remove_any(&upper)?;
    match &entry.content {
        Some(bytes) => {
            fs::write(&upper, bytes).map_err(|e| SandboxError::io("write", &upper, e))?;
            let mode = entry
                .mode
                .or_else(|| lower_meta.as_ref().filter(|m| m.is_file()).map(mode_bits))
                .unwrap_or(0o644);
            fs::set_permissions(&upper, fs::Permissions::from_mode(mode))
                .map_err(|e| SandboxError::io("set permissions of", &upper, e))?;
        }
        None => {
            if lower_meta.is_some() {
                make_whiteout(&upper)?;
            }
        }
    }
    Ok(())
}

/// Reads the upper directory back as changes against the lower one.
pub(crate) fn collect(layer: &Layer<'_>, out: &mut Vec<SandboxChange>) -> Result<()> {
    walk(layer, layer.upper, Some(layer.lower), None, false, out)
}

fn child_rel(parent: Option<&RelPath>, name: &str) -> Option<RelPath> {
    match parent {
        Some(p) => p.join(name).ok(),
        None => RelPath::new(name).ok(),
    }
}

fn change(root: usize, path: RelPath, kind: ChangeKind) -> SandboxChange {
    SandboxChange {
        root,
        path,
        kind,
        content: None,
        mode: None,
        symlink_target: None,
    }
}

fn walk(
    layer: &Layer<'_>,
    upper_dir: &Path,
    lower_dir: Option<&Path>,
    rel: Option<&RelPath>,
    opaque: bool,
    out: &mut Vec<SandboxChange>,
) -> Result<()> {
    let entries =
        fs::read_dir(upper_dir).map_err(|e| SandboxError::io("read directory", upper_dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SandboxError::io("read directory", upper_dir, e))?;
        names.push(entry.file_name());
    }
    if opaque && let Some(lower_dir) = lower_dir {
        // Everything the lower directory has that the upper one does not
        // name was deleted (the directory was removed and made again).
        if let Ok(lower_entries) = fs::read_dir(lower_dir) {
            for lower_entry in lower_entries.flatten() {
                let name = lower_entry.file_name();
                if names.contains(&name) {
                    continue;
                }
                let Some(text) = name.to_str() else { continue };
                if let Some(path) = child_rel(rel, text) {
                    deleted_all(layer.root, &lower_entry.path(), path, out);
                }
            }
        }
    }
    for name in names {
        let Some(text) = name.to_str() else {
            tracing::warn!(dir = %upper_dir.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        let Some(path) = child_rel(rel, text) else {
            continue;
        };
        let upper = upper_dir.join(&name);
        let lower = lower_dir.map(|d| d.join(&name));
        let lower_meta = lower.as_deref().and_then(lstat);
        let Some(upper_meta) = lstat(&upper) else {
            continue;
        };
        let file_type = upper_meta.file_type();
        if is_whiteout(&upper_meta) {
            if let (Some(lower), Some(_)) = (&lower, &lower_meta) {
                deleted_all(layer.root, lower, path, out);
            }
        } else if file_type.is_dir() {
            let lower_is_dir = lower_meta.as_ref().is_some_and(|m| m.is_dir());
            if let (Some(lower), Some(_), false) = (&lower, &lower_meta, lower_is_dir) {
                deleted_all(layer.root, lower, path.clone(), out);
            }
            let here_opaque = opaque || is_opaque(&upper);
            let lower_next = if lower_is_dir { lower.as_deref() } else { None };
            walk(layer, &upper, lower_next, Some(&path), here_opaque, out)?;
        } else if file_type.is_file() {
            let content = fs::read(&upper).map_err(|e| SandboxError::io("read", &upper, e))?;
            let mode = mode_bits(&upper_meta);
            let kind = match (&lower, &lower_meta) {
                (Some(lower), Some(meta)) if meta.is_file() => {
                    if meta.len() == upper_meta.len()
                        && mode_bits(meta) == mode
                        && fs::read(lower).is_ok_and(|old| old == content)
                    {
                        continue;
                    }
                    ChangeKind::Modified
                }
                (Some(lower), Some(meta)) if meta.is_dir() => {
                    deleted_all(layer.root, lower, path.clone(), out);
                    ChangeKind::Created
                }
                (_, Some(_)) => ChangeKind::Modified,
                _ => ChangeKind::Created,
            };
            out.push(SandboxChange {
                content: Some(content),
                mode: Some(mode),
                ..change(layer.root, path, kind)
            });
        } else if file_type.is_symlink() {
            let target =
                fs::read_link(&upper).map_err(|e| SandboxError::io("read link", &upper, e))?;
            let Some(target) = target.to_str().map(str::to_owned) else {
                continue;
            };
            let kind = match (&lower, &lower_meta) {
                (Some(lower), Some(meta)) if meta.file_type().is_symlink() => {
                    if fs::read_link(lower).is_ok_and(|old| old.as_os_str() == target.as_str()) {
                        continue;
                    }
                    ChangeKind::Modified
                }
                (Some(lower), Some(meta)) if meta.is_dir() => {
                    deleted_all(layer.root, lower, path.clone(), out);
                    ChangeKind::Created
                }
                (_, Some(_)) => ChangeKind::Modified,
                _ => ChangeKind::Created,
            };
            out.push(SandboxChange {
                symlink_target: Some(target),
                ..change(layer.root, path, kind)
            });
        } else {
            tracing::debug!(path = %upper.display(), "ignoring a special file in the staging layer");
        }
    }
    Ok(())
}

/// Emits a deletion for `lower` (a file or symlink) or for every file below
/// it (a directory; symlinks inside are not followed).
fn deleted_all(root: usize, lower: &Path, path: RelPath, out: &mut Vec<SandboxChange>) {
    let Some(meta) = lstat(lower) else { return };
    if !meta.is_dir() {
        out.push(change(root, path, ChangeKind::Deleted));
        return;
    }
    let Ok(entries) = fs::read_dir(lower) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        if let Ok(child) = path.join(text) {
            deleted_all(root, &entry.path(), child, out);
        }
    }
}

/// Bytes and entries in an upper directory, for the staging limit. Stops
/// counting once `limit_bytes` is passed.
pub(crate) fn usage(dir: &Path, limit_bytes: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            // Every entry costs an inode and a directory slot.
            total = total.saturating_add(meta.blocks() * 512 + 256);
            if meta.is_dir() {
                stack.push(entry.path());
            }
            if total > limit_bytes {
                return total;
            }
        }
    }
    total
}

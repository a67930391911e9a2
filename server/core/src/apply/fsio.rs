//! The few file-system moves apply is made of, each durable: write a temp
//! file next to its target and fsync it, rename it into place, fsync the
//! directory so the rename survives a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ApplyError;
use crate::hash::ContentHash;

/// What is at a path: its bytes and permission bits, or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileState {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

impl FileState {
    pub fn hash(&self) -> ContentHash {
        ContentHash::of(&self.bytes)
    }
}

pub(crate) fn io_error(action: &'static str, path: &Path, source: io::Error) -> ApplyError {
    ApplyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the file at `path`, following symlinks; `None` when absent.
pub(crate) fn read_state(path: &Path) -> Result<Option<FileState>, ApplyError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error("read", path, e))?;
    if !meta.is_file() {
        return Err(ApplyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error("read", path, e))?;
    Ok(Some(FileState {
        bytes,
        mode: meta.mode() & 0o7777,
    }))
}

/// Writes `bytes` to a new file at `path` with `mode` (umask ignored) and
/// fsyncs it. Fails if `path` exists: temp names are unique per apply.
pub(crate) fn write_new_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ApplyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o7777)
        .open(path)
        .map_err(|e| io_error("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", path, e))?;
    // The umask may have narrowed the mode given to open.
    file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| io_error("set permissions of", path, e))?;
    file.sync_all().map_err(|e| io_error("fsync", path, e))?;
    Ok(())
}

/// fsyncs a directory so renames and unlinks in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ApplyError> {
    let file = File::open(dir).map_err(|e| io_error("open directory", dir, e))?;
    file.sync_all()
        .map_err(|e| io_error("fsync directory", dir, e))
}

pub(crate) fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Atomically replaces `path` with `bytes`/`mode` through `temp` (same
/// directory), fsyncing file and directory.
pub(crate) fn replace_atomically(
    path: &Path,
    temp: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), ApplyError> {
    remove_if_exists(temp)?;
    write_new_synced(temp, bytes, mode)?;
    fs::rename(temp, path).map_err(|e| io_error("rename into place", path, e))?;
    sync_dir(&parent_of(path))
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, ApplyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

/// The temp name for `target` during apply `apply_id`: hidden, in the same
/// directory (so the rename is atomic), unique per apply.
pub(crate) fn temp_path(target: &Path, apply_id: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Stay well under NAME_MAX (255 bytes) whatever the file's name.
    let mut short: String = String::new();
    for c in name.chars() {
        if short.len() + c.len_utf8() > 120 {
            break;
        }
        short.push(c);
    }
    parent_of(target).join(format!(".{short}.redline-{apply_id}.tmp"))
}

/// Ancestors of `path` that do not exist yet, outermost first.
pub(crate) fn missing_dirs(path: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut current = path.parent();
    while let Some(dir) = current {
        if dir.exists() {
            break;
        }
        missing.push(dir.to_path_buf());
        current = dir.parent();
    }
    missing.reverse();
    missing
}

/// Holds an exclusive `flock` on the journal directory so two appliers
/// (e.g. the daemon and the CLI) never interleave applies or recoveries.
pub(crate) struct JournalLock {
    _file: File,
}

impl JournalLock {
    pub fn acquire(journal_dir: &Path) -> Result<JournalLock, ApplyError> {
        use std::os::fd::AsRawFd;
        let path = journal_dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("open lock", &path, e))?;
        // SAFETY: the fd is owned by `file`, which outlives the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io_error("lock", &path, io::Error::last_os_error()));
        }
        Ok(JournalLock { _file: file })
    }
}

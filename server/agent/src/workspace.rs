//! The agent's view of the granted folders: the files on disk with the task's
//! staged changes laid on top.
//!
//! Every writing tool stages into a [`Workspace`]; nothing here writes to the
//! user's files. Reads see the staged state, so the agent works on its own
//! edits as if they were applied. [`Workspace::staged_files`] is the input to
//! `Proposal::build`, and [`Workspace::restore_from`] rebuilds the view from a
//! stored proposal so a resumed task continues where it stopped.
//!
//! Each staged path remembers the bytes it had on disk when first touched, so
//! writing a file back to its original content un-stages it, and a rename is
//! kept as one change (the source is marked "moved", not deleted on its own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use redline_core::path::{PathError, RelPath, Root};
use redline_core::proposal::StagedFile;

use crate::tools::ToolError;

/// Reads larger than this are refused: a model cannot use them and they
/// would flood its context.
pub const MAX_READ_BYTES: u64 = 2 * 1024 * 1024;

/// How many files a walk visits before it stops (keeps searches bounded on
/// huge trees).
const MAX_WALK_ENTRIES: usize = 200_000;

/// A file as it was on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskFile {
    pub bytes: Vec<u8>,
    /// Unix permission bits.
    pub mode: Option<u32>,
}

/// One staged path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    /// The file at this path on disk when first staged; `None` when absent.
    pub original: Option<DiskFile>,
    /// The staged content; `None` when deleted.
    pub current: Option<Vec<u8>>,
    /// Unix permission bits of the staged content.
    pub mode: Option<u32>,
    /// Set on the target of a rename whose source exists on disk. Only when
    /// `original` is `None`: a rename onto a path that exists on disk is
    /// staged as a modification of the target plus a deletion of the source.
    pub renamed_from: Option<RelPath>,
    /// Set on the source of such a rename (whose `current` is `None`): its
    /// deletion is part of the rename, not a change of its own.
    pub moved_to: Option<RelPath>,
}

/// What a path names in the staged view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// An entry of a directory listing, relative to its root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    pub path: RelPath,
    pub is_dir: bool,
}

/// Granted roots plus staged changes; see the module docs.
#[derive(Clone, Debug)]
pub struct Workspace {
    roots: Vec<Root>,
    /// Display names of the roots (their folder names, made unique); paths
    /// are shown as `name/path` when there are several roots.
    names: Vec<String>,
    staged: BTreeMap<(usize, RelPath), Staged>,
}

impl Workspace {
    pub fn new(roots: Vec<Root>) -> Workspace {
        let mut names: Vec<String> = Vec::with_capacity(roots.len());
        for root in &roots {
            let base = root
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("root")
                .to_owned();
            let mut name = base.clone();
            let mut n = 2;
            while names.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            names.push(name);
        }
        Workspace {
            roots,
            names,
            staged: BTreeMap::new(),
        }
    }

    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// The name a root goes by in paths shown to the model.
    pub fn root_name(&self, root: usize) -> &str {
        self.names.get(root).map(String::as_str).unwrap_or("?")
    }

    /// A path as shown to the model: plain with one root, `name/path` with
    /// several, so that [`Workspace::resolve`] maps it back.
    pub fn display(&self, root: usize, path: &RelPath) -> String {
        if self.roots.len() > 1 {
            format!("{}/{}", self.root_name(root), path)
        } else {
            path.to_string()
        }
    }

    /// A directory as shown to the model; `None` is the root itself.
    pub fn display_dir(&self, root: usize, dir: Option<&RelPath>) -> String {
        match dir {
            Some(dir) => format!("{}/", self.display(root, dir)),
            None if self.roots.len() > 1 => format!("{}/", self.root_name(root)),
            None => "./".to_owned(),
        }
    }

    /// Parses a path the model gave, naming a file (not a root itself).
    pub fn resolve(&self, raw: &str) -> Result<(usize, RelPath), ToolError> {
        match self.resolve_scope(raw)? {
            (root, Some(path)) => Ok((root, path)),
            (_, None) => Err(ToolError::Path {
                raw: raw.to_owned(),
                reason: format!("`{raw}` names the granted folder itself, not a file"),
                allowed: self.allowed_paths(),
            }),
        }
    }

    /// Parses a path the model gave, which may name a root itself (`.`, the
    /// absolute root path, or a root's name): `(root, None)`.
    ///
    /// Accepts `path`, `./path`, an absolute path inside a root, and
    /// `name/path` when there are several roots. Refuses `..`, paths outside
    /// the roots and symlinks that lead out of them.
    pub fn resolve_scope(&self, raw: &str) -> Result<(usize, Option<RelPath>), ToolError> {
        let trimmed = raw.trim();
        let refuse = |reason: String| ToolError::Path {
            raw: raw.to_owned(),
            reason,
            allowed: self.allowed_paths(),
        };
        if self.roots.is_empty() {
            return Err(refuse("no folder is granted to this task".to_owned()));
        }
        let (root, rel) = if Path::new(trimmed).is_absolute() {
            let candidate = Path::new(trimmed);
            let found = self
                .roots
                .iter()
                .enumerate()
                .filter(|(_, root)| candidate.starts_with(root.path()))
                .max_by_key(|(_, root)| root.path().as_os_str().len());
            let Some((index, root)) = found else {
                return Err(refuse(format!(
                    "path `{trimmed}` is outside the granted folders"
                )));
            };
            match root.relativize(trimmed) {
                Ok(rel) => (index, Some(rel)),
                Err(PathError::Empty) => (index, None),
                Err(e) => return Err(refuse(e.to_string())),
            }
        } else {
            match RelPath::new(trimmed) {
                Ok(rel) => {
                    let first = rel.components().next().unwrap_or_default();
                    match self.names.iter().position(|n| n == first) {
                        Some(index) if self.roots.len() > 1 => {
                            let rest: Vec<&str> = rel.components().skip(1).collect();
                            if rest.is_empty() {
                                (index, None)
                            } else {
                                let rest = RelPath::new(&rest.join("/"))
                                    .map_err(|e| refuse(e.to_string()))?;
                                (index, Some(rest))
                            }
                        }
                        _ => (0, Some(rel)),
                    }
                }
                Err(PathError::Empty) => (0, None),
                Err(e) => return Err(refuse(e.to_string())),
            }
        };
        if let Some(rel) = &rel {
            check_inside(&self.roots[root], rel).map_err(|e| refuse(e.to_string()))?;
        }
        Ok((root, rel))
    }

    /// What paths the model may use, for error messages.
    fn allowed_paths(&self) -> String {
        match self.roots.as_slice() {
            [] => "ask the user to grant a folder".to_owned(),
            [root] => format!(
                "use a path relative to the granted folder {} (like `src/main.rs`), or an absolute path inside it",
                root.path().display()
            ),
            roots => {
                let names: Vec<String> = self.names.iter().map(|n| format!("`{n}/…`")).collect();
                let paths: Vec<String> = roots
                    .iter()
                    .map(|r| r.path().display().to_string())
                    .collect();
                format!(
                    "use a path starting with a granted folder's name ({}), or an absolute path inside {}",
                    names.join(", "),
                    paths.join(", ")
                )
            }
        }
    }

    fn root(&self, root: usize) -> Result<&Root, ToolError> {
        self.roots.get(root).ok_or(ToolError::UnknownRoot { root })
    }

    /// The host path of `path`, refusing symlink escapes.
    fn host_path(&self, root: usize, path: &RelPath) -> Result<PathBuf, ToolError> {
        check_inside(self.root(root)?, path).map_err(|e| ToolError::Path {
            raw: path.to_string(),
            reason: e.to_string(),
            allowed: self.allowed_paths(),
        })
    }

    /// The file at `path` on disk, ignoring staged changes.
    fn disk_file(&self, root: usize, path: &RelPath) -> Result<Option<DiskFile>, ToolError> {
        let host = self.host_path(root, path)?;
        let io_error = |e: std::io::Error| ToolError::Io {
            path: self.display(root, path),
            message: e.to_string(),
        };
        let meta = match std::fs::metadata(&host) {
            Ok(meta) => meta,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io_error(e)),
        };
        if meta.is_dir() {
            return Err(ToolError::IsDirectory {
                path: self.display(root, path),
            });
        }
        let bytes = std::fs::read(&host).map_err(io_error)?;
        Ok(Some(DiskFile {
            bytes,
            mode: file_mode(&meta),
        }))
    }

    fn disk_kind(&self, root: usize, path: &RelPath) -> Result<Option<EntryKind>, ToolError> {
        let host = self.host_path(root, path)?;
        Ok(match std::fs::metadata(&host) {
            Ok(meta) if meta.is_dir() => Some(EntryKind::Dir),
            Ok(_) => Some(EntryKind::File),
            Err(_) => None,
        })
    }

    /// What `path` names in the staged view.
    pub fn kind(&self, root: usize, path: &RelPath) -> Result<Option<EntryKind>, ToolError> {
        if let Some(entry) = self.staged.get(&(root, path.clone()))
            && entry.current.is_some()
        {
            return Ok(Some(EntryKind::File));
        }
        if self.has_staged_file_below(root, path) {
            return Ok(Some(EntryKind::Dir));
        }
        if self.staged.contains_key(&(root, path.clone())) {
            return Ok(None);
        }
        self.disk_kind(root, path)
    }

    fn has_staged_file_below(&self, root: usize, dir: &RelPath) -> bool {
        self.staged
            .range((root, dir.clone())..)
            .take_while(|((r, p), _)| *r == root && p.as_str().starts_with(dir.as_str()))
            .any(|((_, p), e)| e.current.is_some() && p != dir && p.starts_with(dir))
    }

    /// True when `path` is a file in the staged view.
    pub fn exists(&self, root: usize, path: &RelPath) -> Result<bool, ToolError> {
        Ok(self.kind(root, path)? == Some(EntryKind::File))
    }

    /// The staged entry of `path`, if it has one.
    pub fn staged(&self, root: usize, path: &RelPath) -> Option<&Staged> {
        self.staged.get(&(root, path.clone()))
    }

    /// The file's bytes in the staged view (`None` when it does not exist),
    /// refusing files over [`MAX_READ_BYTES`] and directories.
    pub fn read(&self, root: usize, path: &RelPath) -> Result<Option<Vec<u8>>, ToolError> {
        let too_large = |size: u64| ToolError::TooLarge {
            path: self.display(root, path),
            size,
            limit: MAX_READ_BYTES,
        };
        if let Some(entry) = self.staged.get(&(root, path.clone())) {
            if let Some(bytes) = &entry.current {
                if bytes.len() as u64 > MAX_READ_BYTES {
                    return Err(too_large(bytes.len() as u64));
                }
                return Ok(Some(bytes.clone()));
            }
            if self.has_staged_file_below(root, path) {
                return Err(ToolError::IsDirectory {
                    path: self.display(root, path),
                });
            }
            return Ok(None);
        }
        if self.has_staged_file_below(root, path) {
            return Err(ToolError::IsDirectory {
                path: self.display(root, path),
            });
        }
        let host = self.host_path(root, path)?;
        if let Ok(meta) = std::fs::metadata(&host)
            && meta.is_file()
            && meta.len() > MAX_READ_BYTES
        {
            return Err(too_large(meta.len()));
        }
        Ok(self.disk_file(root, path)?.map(|f| f.bytes))
    }

    /// Bytes and mode in the staged view, without the size cap.
    fn read_full(&self, root: usize, path: &RelPath) -> Result<Option<DiskFile>, ToolError> {
        match self.staged.get(&(root, path.clone())) {
            Some(entry) => Ok(entry.current.clone().map(|bytes| DiskFile {
                bytes,
                mode: entry.mode,
            })),
            None => self.disk_file(root, path),
        }
    }

    /// Refuses to put a file at `path` when the path or one of its parents
    /// is in the way.
    fn check_writable(&self, root: usize, path: &RelPath) -> Result<(), ToolError> {
        if self.kind(root, path)? == Some(EntryKind::Dir) {
            return Err(ToolError::IsDirectory {
                path: self.display(root, path),
            });
        }
        let mut parent = path.parent();
        while let Some(dir) = parent {
            if self.kind(root, &dir)? == Some(EntryKind::File) {
                return Err(ToolError::ParentIsFile {
                    path: self.display(root, path),
                    parent: self.display(root, &dir),
                });
            }
            parent = dir.parent();
        }
        Ok(())
    }

    /// The staged entry of `path`, created (capturing the file on disk) when
    /// it has none yet.
    fn entry(&mut self, root: usize, path: &RelPath) -> Result<&mut Staged, ToolError> {
        let key = (root, path.clone());
        if !self.staged.contains_key(&key) {
            let original = self.disk_file(root, path)?;
            let mode = original.as_ref().and_then(|f| f.mode);
            let current = original.as_ref().map(|f| f.bytes.clone());
            self.staged.insert(
                key.clone(),
                Staged {
                    original,
                    current,
                    mode,
                    renamed_from: None,
                    moved_to: None,
                },
            );
        }
        self.staged
            .get_mut(&key)
            .ok_or(ToolError::UnknownRoot { root })
    }

    /// Drops an entry that no longer differs from the disk.
    fn normalize(&mut self, root: usize, path: &RelPath) {
        let key = (root, path.clone());
        let Some(entry) = self.staged.get(&key) else {
            return;
        };
        let unchanged = match &entry.original {
            None => entry.current.is_none() && entry.renamed_from.is_none(),
            Some(original) => {
                entry.moved_to.is_none()
                    && entry.current.as_deref() == Some(original.bytes.as_slice())
                    && entry.mode == original.mode
            }
        };
        if unchanged {
            self.staged.remove(&key);
        }
    }

    /// Turns a rename whose source gets a life of its own (rewritten, or
    /// renamed onto) into a plain creation of its target.
    fn detach_move(&mut self, root: usize, source: &RelPath) {
        let target = match self.staged.get_mut(&(root, source.clone())) {
            Some(entry) => entry.moved_to.take(),
            None => None,
        };
        if let Some(target) = target
            && let Some(entry) = self.staged.get_mut(&(root, target))
        {
            entry.renamed_from = None;
        }
    }

    /// Stages `bytes` as the content of `path` (creating or overwriting).
    pub fn write(&mut self, root: usize, path: &RelPath, bytes: Vec<u8>) -> Result<(), ToolError> {
        self.check_writable(root, path)?;
        self.detach_move(root, path);
        let entry = self.entry(root, path)?;
        if entry.current.is_none() {
            entry.mode = entry.original.as_ref().and_then(|f| f.mode);
        }
        entry.current = Some(bytes);
        self.normalize(root, path);
        Ok(())
    }

    /// Stages the deletion of the file `path`.
    pub fn delete(&mut self, root: usize, path: &RelPath) -> Result<(), ToolError> {
        match self.kind(root, path)? {
            Some(EntryKind::File) => {}
            Some(EntryKind::Dir) => {
                return Err(ToolError::IsDirectory {
                    path: self.display(root, path),
                });
            }
            None => return Err(self.not_found(root, path)),
        }
        let key = (root, path.clone());
        if let Some(source) = self.staged.get(&key).and_then(|e| e.renamed_from.clone()) {
            // Deleting a renamed file leaves a plain deletion of its source.
            self.staged.remove(&key);
            if let Some(entry) = self.staged.get_mut(&(root, source)) {
                entry.moved_to = None;
            }
            return Ok(());
        }
        let entry = self.entry(root, path)?;
        entry.current = None;
        entry.mode = None;
        self.normalize(root, path);
        Ok(())
    }

    /// Stages moving the file `from` to `to`, which must not exist.
    pub fn rename(&mut self, root: usize, from: &RelPath, to: &RelPath) -> Result<(), ToolError> {
        match self.kind(root, from)? {
            Some(EntryKind::File) => {}
            Some(EntryKind::Dir) => {
                return Err(ToolError::IsDirectory {
                    path: self.display(root, from),
                });
            }
            None => return Err(self.not_found(root, from)),
        }
        if from == to {
            return Err(ToolError::SamePath {
                path: self.display(root, from),
            });
        }
        if self.kind(root, to)?.is_some() {
            return Err(ToolError::AlreadyExists {
                path: self.display(root, to),
            });
        }
        self.check_writable(root, to)?;
        let Some(content) = self.read_full(root, from)? else {
            return Err(self.not_found(root, from));
        };

        // Where the content came from on disk, if anywhere.
        let from_key = (root, from.clone());
        let origin = match self.staged.get(&from_key) {
            Some(entry) if entry.renamed_from.is_some() => entry.renamed_from.clone(),
            Some(entry) if entry.original.is_some() => Some(from.clone()),
            Some(_) => None,
            None => Some(from.clone()),
        };
        if origin.as_ref() == Some(from) {
            let entry = self.entry(root, from)?;
            entry.current = None;
            entry.mode = None;
        } else {
            self.staged.remove(&from_key);
        }
        if let Some(source) = &origin
            && let Some(entry) = self.staged.get_mut(&(root, source.clone()))
        {
            entry.moved_to = None;
        }

        let to_key = (root, to.clone());
        if self.staged.contains_key(&to_key) {
            // `to` exists on disk but is staged as deleted (or moved away):
            // stage a modification of it, and the source as a deletion.
            self.detach_move(root, to);
            if let Some(entry) = self.staged.get_mut(&to_key) {
                entry.current = Some(content.bytes);
                entry.mode = content.mode;
            }
            self.normalize(root, to);
        } else {
            let renamed_from = origin.clone();
            if let Some(source) = &origin
                && let Some(entry) = self.staged.get_mut(&(root, source.clone()))
            {
                entry.moved_to = Some(to.clone());
            }
            self.staged.insert(
                to_key,
                Staged {
                    original: None,
                    current: Some(content.bytes),
                    mode: content.mode,
                    renamed_from,
                    moved_to: None,
                },
            );
        }
        self.normalize(root, from);
        Ok(())
    }

    /// Lets the sandbox push a change it observed: `content` `None` deletes
    /// (a no-op when the file does not exist), `mode` sets permission bits.
    pub fn set_staged_entry(
        &mut self,
        root: usize,
        path: &RelPath,
        content: Option<Vec<u8>>,
        mode: Option<u32>,
    ) -> Result<(), ToolError> {
        match content {
            Some(bytes) => {
                self.write(root, path, bytes)?;
                if mode.is_some() {
                    let entry = self.entry(root, path)?;
                    entry.mode = mode;
                    self.normalize(root, path);
                }
                Ok(())
            }
            None if self.exists(root, path)? => self.delete(root, path),
            None => Ok(()),
        }
    }

    /// Every staged change, in path order, for `Proposal::build`.
    pub fn staged_files(&self) -> Vec<StagedFile> {
        let mut files = Vec::new();
        for ((root, path), entry) in &self.staged {
            if entry.moved_to.is_some() {
                continue;
            }
            let before = match &entry.renamed_from {
                Some(source) => self
                    .staged
                    .get(&(*root, source.clone()))
                    .and_then(|s| s.original.clone()),
                None => entry.original.clone(),
            };
            files.push(StagedFile {
                root: *root,
                path: path.clone(),
                renamed_from: entry.renamed_from.clone(),
                before_mode: before.as_ref().and_then(|f| f.mode),
                before: before.map(|f| f.bytes),
                after_mode: entry.current.as_ref().and(entry.mode),
                after: entry.current.clone(),
            });
        }
        files
    }

    /// Every path the staged changes touch (sources of renames included).
    pub fn staged_paths(&self) -> Vec<(usize, RelPath)> {
        self.staged.keys().cloned().collect()
    }

    /// True when nothing is staged.
    pub fn is_clean(&self) -> bool {
        self.staged.is_empty()
    }

    /// Replaces the staged changes with those of a stored proposal.
    pub fn restore_from(&mut self, files: &[StagedFile]) -> Result<(), ToolError> {
        let mut staged = BTreeMap::new();
        for file in files {
            self.root(file.root)?;
            let original = file.before.clone().map(|bytes| DiskFile {
                bytes,
                mode: file.before_mode,
            });
            match &file.renamed_from {
                Some(source) => {
                    staged.insert(
                        (file.root, source.clone()),
                        Staged {
                            original,
                            current: None,
                            mode: None,
                            renamed_from: None,
                            moved_to: Some(file.path.clone()),
                        },
                    );
                    staged.insert(
                        (file.root, file.path.clone()),
                        Staged {
                            original: None,
                            current: file.after.clone(),
                            mode: file.after_mode,
                            renamed_from: Some(source.clone()),
                            moved_to: None,
                        },
                    );
                }
                None => {
                    staged.insert(
                        (file.root, file.path.clone()),
                        Staged {
                            original,
                            current: file.after.clone(),
                            mode: file.after_mode,
                            renamed_from: None,
                            moved_to: None,
                        },
                    );
                }
            }
        }
        self.staged = staged;
        Ok(())
    }

    /// Lists `dir` (`None`: the root) in the staged view, `depth` levels
    /// deep, gitignore-aware; paths are relative to the root, sorted.
    pub fn list_dir(
        &self,
        root: usize,
        dir: Option<&RelPath>,
        depth: usize,
    ) -> Result<Vec<DirEntry>, ToolError> {
        self.walk(root, dir, Some(depth.max(1)))
    }

    /// Every file below `dir` (`None`: the root) in the staged view,
    /// gitignore-aware, sorted.
    pub fn files(&self, root: usize, dir: Option<&RelPath>) -> Result<Vec<RelPath>, ToolError> {
        Ok(self
            .walk(root, dir, None)?
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.path)
            .collect())
    }

    fn walk(
        &self,
        root: usize,
        dir: Option<&RelPath>,
        max_depth: Option<usize>,
    ) -> Result<Vec<DirEntry>, ToolError> {
        let root_ref = self.root(root)?;
        if let Some(dir) = dir {
            match self.kind(root, dir)? {
                Some(EntryKind::Dir) => {}
                Some(EntryKind::File) => {
                    return Err(ToolError::NotADirectory {
                        path: self.display(root, dir),
                    });
                }
                None => return Err(self.not_found(root, dir)),
            }
        }
        let base = match dir {
            Some(dir) => self.host_path(root, dir)?,
            None => root_ref.path().to_path_buf(),
        };
        let mut entries: BTreeSet<DirEntry> = BTreeSet::new();
        if base.is_dir() {
            let ancestors = ancestor_ignores(root_ref.path(), dir);
            let mut builder = ignore::WalkBuilder::new(&base);
            builder
                .hidden(false)
                .parents(false)
                .git_global(false)
                .require_git(false)
                .follow_links(false)
                .max_depth(max_depth)
                .filter_entry(move |entry| {
                    if entry.file_name() == ".git" {
                        return false;
                    }
                    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                    for matcher in ancestors.iter().rev() {
                        let matched = matcher.matched(entry.path(), is_dir);
                        if matched.is_ignore() {
                            return false;
                        }
                        if matched.is_whitelist() {
                            return true;
                        }
                    }
                    true
                });
            for item in builder.build().take(MAX_WALK_ENTRIES) {
                // Unreadable entries are skipped, as `git status` would.
                let Ok(item) = item else { continue };
                if item.depth() == 0 {
                    continue;
                }
                let Ok(tail) = item.path().strip_prefix(&base) else {
                    continue;
                };
                let Some(tail) = tail.to_str() else { continue };
                let path = match dir {
                    Some(dir) => dir.join(tail),
                    None => RelPath::new(tail),
                };
                let Ok(path) = path else { continue };
                let is_dir = item.file_type().is_some_and(|t| t.is_dir());
                if !is_dir
                    && let Some(entry) = self.staged.get(&(root, path.clone()))
                    && entry.current.is_none()
                {
                    continue;
                }
                entries.insert(DirEntry { path, is_dir });
            }
        }
        // Staged creations, and the directories they imply.
        let base_depth = dir.map_or(0, |d| d.components().count());
        for ((r, path), entry) in &self.staged {
            if *r != root || entry.current.is_none() {
                continue;
            }
            if let Some(dir) = dir
                && (!path.starts_with(dir) || path == dir)
            {
                continue;
            }
            let components: Vec<&str> = path.components().collect();
            for end in base_depth + 1..=components.len() {
                if max_depth.is_some_and(|max| end - base_depth > max) {
                    break;
                }
                let Ok(prefix) = RelPath::new(&components[..end].join("/")) else {
                    break;
                };
                let is_dir = end < components.len();
                entries.insert(DirEntry {
                    path: prefix,
                    is_dir,
                });
            }
        }
        Ok(entries.into_iter().collect())
    }

    /// A "no such file" error with the closest existing paths suggested.
    pub fn not_found(&self, root: usize, path: &RelPath) -> ToolError {
        let candidates = self.files(root, None).unwrap_or_default();
        let suggestions = closest_paths(path, &candidates, 3)
            .into_iter()
            .map(|p| self.display(root, &p))
            .collect();
        ToolError::NotFound {
            path: self.display(root, path),
            suggestions,
        }
    }
}

/// [`Root::resolve`], except that a path running through a regular file
/// (`Cargo.toml/x`) is not an error here: it simply does not exist.
fn check_inside(root: &Root, path: &RelPath) -> Result<PathBuf, PathError> {
    match root.resolve(path) {
        Err(PathError::Io { .. }) if runs_through_file(root.path(), path) => {
            Ok(root.join_unchecked(path))
        }
        other => other,
    }
}

/// True when a proper prefix of `path` is a regular file (not a symlink).
fn runs_through_file(root: &Path, path: &RelPath) -> bool {
    let mut current = root.to_path_buf();
    let components: Vec<&str> = path.components().collect();
    for part in &components[..components.len().saturating_sub(1)] {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_file() => return true,
            Ok(meta) if meta.is_dir() => {}
            _ => return false,
        }
    }
    false
}

/// Ignore files of the directories above `dir` (root included, `dir`
/// excluded: the walker reads its own), top-down.
fn ancestor_ignores(root: &Path, dir: Option<&RelPath>) -> Vec<Gitignore> {
    let Some(dir) = dir else { return Vec::new() };
    let mut matchers = Vec::new();
    let mut current = root.to_path_buf();
    let components: Vec<&str> = dir.components().collect();
    for (index, part) in components.iter().enumerate() {
        let mut builder = GitignoreBuilder::new(&current);
        let mut any = false;
        for name in [".gitignore", ".ignore"] {
            let file = current.join(name);
            if file.is_file() && builder.add(&file).is_none() {
                any = true;
            }
        }
        if any && let Ok(matcher) = builder.build() {
            matchers.push(matcher);
        }
        if index + 1 < components.len() {
            current.push(part);
        }
    }
    matchers
}

/// The paths closest to `wanted`: same file name first, then by edit
/// distance, among those plausibly meant.
fn closest_paths(wanted: &RelPath, candidates: &[RelPath], limit: usize) -> Vec<RelPath> {
    let wanted_name = wanted.file_name();
    let mut scored: Vec<(usize, &RelPath)> = candidates
        .iter()
        .filter_map(|candidate| {
            let full = levenshtein(wanted.as_str(), candidate.as_str());
            let name = levenshtein(wanted_name, candidate.file_name());
            let score = if name == 0 {
                full.min(1)
            } else {
                full.min(name + 2)
            };
            let budget = (wanted_name.chars().count() / 4).max(1) + 1;
            (score <= budget).then_some((score, candidate))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(limit)
        .map(|(_, p)| p.clone())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current[j + 1] = (previous[j] + cost)
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("lib.rs", "lib.rs"), 0);
    }
}

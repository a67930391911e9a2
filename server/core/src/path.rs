//! Paths the agent may touch.
//!
//! `RelPath` is a normalized, relative, forward-slash path that cannot name
//! anything above its root: it is the only way tools, proposals and the
//! sandbox refer to a file. `Root` resolves a `RelPath` to a host path and
//! refuses symlink escapes, so "inside the granted folder" is checked in one
//! place instead of at every call site.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path `{0}` is absolute; use a path relative to the granted folder")]
    Absolute(String),
    #[error("path `{0}` climbs out of the granted folder with `..`")]
    ParentDir(String),
    #[error("path `{0}` contains a NUL byte")]
    Nul(String),
    #[error("path `{0}` is not valid UTF-8")]
    NotUtf8(String),
    #[error("path `{path}` escapes the granted folder through the symlink `{link}`")]
    SymlinkEscape { path: String, link: String },
    #[error("path `{path}` is outside the granted folder `{root}`")]
    OutsideRoot { path: String, root: String },
    #[error("cannot resolve `{path}`: {message}")]
    Io { path: String, message: String },
}

pub type PathResult<T> = std::result::Result<T, PathError>;

/// A relative path inside a granted root, normalized: no `.`/`..`, no leading
/// or doubled `/`, components joined with `/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(String);

impl RelPath {
    /// Parses a user- or model-supplied path. Accepts `a/./b` and `a//b`
    /// (normalized away) but refuses `..`, absolute paths and empty paths.
    pub fn new(raw: &str) -> PathResult<Self> {
        if raw.contains('\0') {
            return Err(PathError::Nul(raw.replace('\0', "\\0")));
        }
        if raw.starts_with('/') || raw.starts_with('\\') || Path::new(raw).has_root() {
            return Err(PathError::Absolute(raw.to_owned()));
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in raw.split(['/', '\\']) {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::ParentDir(raw.to_owned())),
                // A Windows drive prefix such as `C:` is absolute too.
                p if p.len() == 2 && p.ends_with(':') && parts.is_empty() => {
                    return Err(PathError::Absolute(raw.to_owned()));
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(RelPath(parts.join("/")))
    }

    /// Builds a `RelPath` from a host path below `root` (both absolute, as
    /// returned by a directory walk).
    pub fn from_host(root: &Path, path: &Path) -> PathResult<Self> {
        let rel = path
            .strip_prefix(root)
            .map_err(|_| PathError::OutsideRoot {
                path: path.display().to_string(),
                root: root.display().to_string(),
            })?;
        let text = rel
            .to_str()
            .ok_or_else(|| PathError::NotUtf8(rel.display().to_string()))?;
        RelPath::new(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The final component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The containing directory, `None` at the top level.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_owned()))
    }

    /// Appends a relative path (which is itself validated).
    pub fn join(&self, tail: &str) -> PathResult<RelPath> {
        RelPath::new(&format!("{}/{}", self.0, tail))
    }

    /// The components, top-down.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl TryFrom<String> for RelPath {
    type Error = PathError;
    fn try_from(value: String) -> PathResult<Self> {
        RelPath::new(&value)
    }
}

impl From<RelPath> for String {
    fn from(value: RelPath) -> String {
        value.0
    }
}

/// A granted folder: an absolute, canonical host directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Root {
    path: PathBuf,
}

impl Root {
    /// Canonicalizes `dir`; it must exist and be a directory.
    pub fn new(dir: &Path) -> PathResult<Self> {
        let path = dir.canonicalize().map_err(|e| PathError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        if !path.is_dir() {
            return Err(PathError::Io {
                path: dir.display().to_string(),
                message: "not a directory".to_owned(),
            });
        }
        Ok(Root { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel` without touching the file system. Only for
    /// display; use [`Root::resolve`] before reading or writing.
    pub fn join_unchecked(&self, rel: &RelPath) -> PathBuf {
        self.path.join(rel.as_str())
    }

    /// Resolves `rel` to a host path, refusing any symlink (in an existing
    /// ancestor or the file itself) whose target leaves the root. The file
    /// itself need not exist. A symlink that stays inside is followed.
    pub fn resolve(&self, rel: &RelPath) -> PathResult<PathBuf> {
        let mut current = self.path.clone();
        for (index, part) in rel.components().enumerate() {
            current.push(part);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = current.canonicalize().map_err(|e| PathError::Io {
                        path: rel.to_string(),
                        message: format!("dangling symlink at `{}`: {e}", current.display()),
                    })?;
                    if !target.starts_with(&self.path) {
                        let link: Vec<&str> = rel.components().take(index + 1).collect();
                        return Err(PathError::SymlinkEscape {
                            path: rel.to_string(),
                            link: link.join("/"),
                        });
                    }
                    current = target;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Nothing below a missing component can be a symlink.
                    for rest in rel.components().skip(index + 1) {
                        current.push(rest);
                    }
                    return Ok(current);
                }
                Err(e) => {
                    return Err(PathError::Io {
                        path: rel.to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(current)
    }

    /// Parses a path a user or model gave, which may be absolute as long as it
    /// lies inside this root.
    pub fn relativize(&self, raw: &str) -> PathResult<RelPath> {
        let candidate = Path::new(raw);
        if candidate.is_absolute() {
            let mut normal = PathBuf::new();
            for component in candidate.components() {
                match component {
                    Component::ParentDir => return Err(PathError::ParentDir(raw.to_owned())),
                    Component::CurDir => {}
                    other => normal.push(other),
                }
            }
            return RelPath::from_host(&self.path, &normal);
        }
        RelPath::new(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expect: Result<&str, &str>) {
        let got = RelPath::new(raw)
            .map(|p| p.to_string())
            .map_err(|e| e.to_string());
        assert_eq!(got.as_deref().map_err(|e| e.as_str()), expect, "{raw}");
    }

    #[test]
    fn rel_path_normalizes_and_refuses_escapes() {
        check("a/b.rs", Ok("a/b.rs"));
        check("./a//b/./c", Ok("a/b/c"));
        check("a\\b", Ok("a/b"));
        check("", Err("path is empty"));
        check(".", Err("path is empty"));
        check(
            "/etc/passwd",
            Err("path `/etc/passwd` is absolute; use a path relative to the granted folder"),
        );
        check(
            "a/../../b",
            Err("path `a/../../b` climbs out of the granted folder with `..`"),
        );
        check(
            "..",
            Err("path `..` climbs out of the granted folder with `..`"),
        );
        check(
            "C:/x",
            Err("path `C:/x` is absolute; use a path relative to the granted folder"),
        );
        check("a\0b", Err("path `a\\0b` contains a NUL byte"));
    }

    #[test]
    fn root_refuses_symlink_escape_but_follows_inner_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inner")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("inner", dir.path().join("alias")).unwrap();
        let root = Root::new(dir.path()).unwrap();
        let err = root
            .resolve(&RelPath::new("out/secret").unwrap())
            .unwrap_err();
        assert_eq!(
            err,
            PathError::SymlinkEscape {
                path: "out/secret".into(),
                link: "out".into()
            }
        );
        let ok = root
            .resolve(&RelPath::new("alias/new.txt").unwrap())
            .unwrap();
        assert_eq!(ok, root.path().join("inner/new.txt"));
        assert_eq!(
            root.relativize(&format!("{}/inner/x", root.path().display()))
                .unwrap()
                .as_str(),
            "inner/x"
        );
        assert!(root.relativize("/etc/passwd").is_err());
    }
}

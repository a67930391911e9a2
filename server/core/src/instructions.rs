//! Instruction discovery: the workspace files (`AGENTS.md`, `CLAUDE.md`,
//! `.redline/instructions.md`) that steer every task in their folder.
//!
//! [`discover`] reads the user's global file, then for each granted root the
//! files from the root down to the focused folder, and concatenates them
//! root-first so the nearest file speaks last. Each file's text is introduced
//! by a `[redline: instructions from PATH]` line so the model and the user can
//! tell where a rule came from, and the result lists every file used (tasks
//! record it).
//!
//! Imports follow Claude Code's `@path` convention, in two forms:
//!
//! - a line that is only `@relative/path.md` is replaced, in place, by the
//!   imported file (between `begin`/`end` marker lines); problems with such a
//!   line (missing file, escape, cycle, depth) are reported as warnings;
//! - an inline `@relative/path.md` token in prose (preceded by whitespace or
//!   the start of the line, outside code spans and fenced code blocks) imports
//!   the file after the importing file's text, with its own header. Prose is
//!   full of `@` words (`@param`, `@dataclass`, `@username`), so an inline
//!   token that names no existing file is silently left alone; one that tries
//!   to leave the root is still reported.
//!
//! Imports resolve relative to the importing file, never outside its root
//! (the global file's root is its own folder), never absolute or `~/`, and
//! through [`Root::resolve`] so a symlink cannot smuggle a file in from
//! elsewhere. Chains are limited to [`MAX_IMPORT_DEPTH`] levels, cycles are
//! reported with the chain that forms them, and a file already included (a
//! `CLAUDE.md` that imports `@AGENTS.md`, or a `CLAUDE.md` symlinked to
//! `AGENTS.md`) is included once.
//!
//! Everything is cut at a byte cap ([`DEFAULT_CAP_BYTES`]) on a character
//! boundary, with a visible note naming what was omitted. Because the nearest
//! file comes last, the cap removes the most specific text first; the note and
//! a warning make that visible instead of silent. Unreadable and non-UTF-8
//! files are warnings, never failures: a broken instruction file must not stop
//! a task.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::path::{RelPath, Root};

/// The default cap on the instruction text handed to the model.
pub const DEFAULT_CAP_BYTES: usize = 32 * 1024;

/// How many levels of `@path` imports are followed below a discovered file.
pub const MAX_IMPORT_DEPTH: usize = 4;

/// The files looked for in each folder, in the order they are concatenated.
pub const INSTRUCTION_FILE_NAMES: [&str; 3] =
    ["AGENTS.md", "CLAUDE.md", ".redline/instructions.md"];

/// Environment variable that overrides the user config directory.
pub const CONFIG_DIR_ENV: &str = "REDLINE_CONFIG_DIR";

/// What to discover.
#[derive(Clone, Debug)]
pub struct InstructionQuery<'a> {
    /// The user's global instruction file (see [`default_global_file`]).
    pub global_file: Option<&'a Path>,
    /// The granted folders, in the order the task lists them.
    pub roots: &'a [PathBuf],
    /// The root index and the focused file or folder in it. Without a focus,
    /// only the files at the top of each root are read.
    pub focus: Option<(usize, RelPath)>,
    /// The cap on [`Instructions::text`], excluding the truncation note.
    pub cap_bytes: usize,
}

/// The instruction text for one task and where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Instructions {
    pub text: String,
    /// Every file whose text (or part of it) is in `text`, in order.
    pub files: Vec<InstructionFile>,
    /// Problems the user should see: unreadable files, refused imports,
    /// cycles, truncation.
    pub warnings: Vec<String>,
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstructionFile {
    pub path: PathBuf,
    /// The file's size on disk.
    pub bytes: usize,
    /// The file whose `@path` line brought this one in.
    pub imported_by: Option<PathBuf>,
}

/// `$REDLINE_CONFIG_DIR/instructions.md`, else
/// `<user config dir>/redline/instructions.md` (`~/.config` on Linux).
pub fn default_global_file() -> Option<PathBuf> {
    match std::env::var_os(CONFIG_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("instructions.md")),
        _ => dirs::config_dir().map(|dir| dir.join("redline").join("instructions.md")),
    }
}

/// Reads, imports and concatenates the instruction files for `query`.
pub fn discover(query: &InstructionQuery) -> Instructions {
    let mut builder = Builder::default();

    if let Some(global) = query.global_file {
        builder.discover_global(global);
    }

    if let Some((index, _)) = &query.focus
        && *index >= query.roots.len()
    {
        builder.warn(format!(
                "focus names root {index}, but only {} roots are granted; reading top-level instructions only",
                query.roots.len()
            ));
    }

    for (index, dir) in query.roots.iter().enumerate() {
        let root = match Root::new(dir) {
            Ok(root) => root,
            Err(e) => {
                builder.warn(format!("skipped instructions of `{}`: {e}", dir.display()));
                continue;
            }
        };
        let focus = match &query.focus {
            Some((focus_index, rel)) if *focus_index == index => Some(rel),
            _ => None,
        };
        for folder in folders_to_visit(&root, focus, &mut builder.warnings) {
            for name in INSTRUCTION_FILE_NAMES {
                let rel = match &folder {
                    None => RelPath::new(name),
                    Some(folder) => folder.join(name),
                };
                // File names are constants, so this only fails on a bug.
                let Ok(rel) = rel else { continue };
                builder.discover_in_root(&root, &rel);
            }
        }
    }

    builder.finish(query.cap_bytes)
}

/// The folders from the root (`None`) down to the focused folder. A focused
/// file contributes its parent; a focus that cannot be resolved safely falls
/// back to the root alone.
fn folders_to_visit(
    root: &Root,
    focus: Option<&RelPath>,
    warnings: &mut Vec<String>,
) -> Vec<Option<RelPath>> {
    let mut folders = vec![None];
    let Some(focus) = focus else { return folders };
    let folder = match root.resolve(focus) {
        Ok(host) if host.is_dir() => Some(focus.clone()),
        Ok(_) => focus.parent(),
        Err(e) => {
            warnings.push(format!(
                "read only the top-level instructions of `{}`: {e}",
                root.path().display()
            ));
            return folders;
        }
    };
    if let Some(folder) = folder {
        let mut prefix: Option<RelPath> = None;
        for part in folder.components() {
            let next = match &prefix {
                None => RelPath::new(part),
                Some(p) => p.join(part),
            };
            let Ok(next) = next else { break };
            folders.push(Some(next.clone()));
            prefix = Some(next);
        }
    }
    folders
}

/// Where a file lives: the root it may import from and its path inside it.
struct Location {
    root: Root,
    rel: RelPath,
    /// How the file is named to the user (the root joined with `rel`).
    display: PathBuf,
    /// The file as the file system sees it, for cycle and duplicate checks.
    canonical: PathBuf,
}

/// Output text plus which file produced each byte, so truncation can say
/// whose text it cut.
#[derive(Default)]
struct Builder {
    text: String,
    /// `(end offset, file index)`: bytes up to `end` (from the previous
    /// piece's end) were written on behalf of that file.
    pieces: Vec<(usize, usize)>,
    files: Vec<InstructionFile>,
    warnings: Vec<String>,
    included: HashSet<PathBuf>,
}

/// An `@path` reference found in a file.
struct Import<'t> {
    target: &'t str,
    /// A line of its own (in place, warnings on failure) or a token in prose.
    standalone: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// A discovered file, with a header line.
    TopLevel,
    /// An inline `@path` import, after the importing file, with a header.
    Appended,
    /// A standalone `@path` line, replaced between begin/end markers.
    InPlace,
}

enum ImportError {
    /// Not a problem for an inline token: probably not meant as an import.
    Missing(String),
    Refused(String),
}

impl Builder {
    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn push(&mut self, file: usize, text: &str) {
        self.text.push_str(text);
        match self.pieces.last_mut() {
            Some((end, owner)) if *owner == file => *end = self.text.len(),
            _ => self.pieces.push((self.text.len(), file)),
        }
    }

    fn separate(&mut self, file: usize) {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            let sep = if self.text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            self.push(file, sep);
        }
    }

    fn discover_global(&mut self, global: &Path) {
        match std::fs::metadata(global) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.warn(format!(
                    "cannot read instructions `{}`: {e}",
                    global.display()
                ));
                return;
            }
            Ok(meta) if !meta.is_file() => {
                self.warn(format!(
                    "skipped instructions `{}`: not a regular file",
                    global.display()
                ));
                return;
            }
            Ok(_) => {}
        }
        // The global file may import from its own folder and below.
        let parent = global
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let root = match Root::new(parent) {
            Ok(root) => root,
            Err(e) => {
                self.warn(format!(
                    "cannot read instructions `{}`: {e}",
                    global.display()
                ));
                return;
            }
        };
        let name = global
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Ok(rel) = RelPath::new(name) else {
            self.warn(format!(
                "skipped instructions `{}`: file name is not valid UTF-8",
                global.display()
            ));
            return;
        };
        let Ok(canonical) = global.canonicalize() else {
            return;
        };
        let location = Location {
            root,
            rel,
            display: global.to_path_buf(),
            canonical,
        };
        self.include_top_level(location);
    }

    fn discover_in_root(&mut self, root: &Root, rel: &RelPath) {
        let display = root.join_unchecked(rel);
        let host = match root.resolve(rel) {
            Ok(host) => host,
            Err(e) => {
                self.warn(format!("skipped instructions `{}`: {e}", display.display()));
                return;
            }
        };
        let canonical = match host.canonicalize() {
            Ok(canonical) => canonical,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.warn(format!(
                    "cannot read instructions `{}`: {e}",
                    display.display()
                ));
                return;
            }
        };
        if !canonical.is_file() {
            return;
        }
        let location = Location {
            root: root.clone(),
            rel: rel.clone(),
            display,
            canonical,
        };
        self.include_top_level(location);
    }

    fn include_top_level(&mut self, location: Location) {
        // A `CLAUDE.md` symlinked to `AGENTS.md`, or a file an earlier one
        // imported, is already in the text.
        if self.included.contains(&location.canonical) {
            return;
        }
        let mut chain = Vec::new();
        self.include(&location, None, Placement::TopLevel, 0, &mut chain);
    }

    /// Writes `location`'s text with its imports; false when it could not be
    /// read (`read` warned). `chain` holds the files importing it, outermost
    /// first.
    fn include(
        &mut self,
        location: &Location,
        imported_by: Option<&Location>,
        placement: Placement,
        depth: usize,
        chain: &mut Vec<PathBuf>,
    ) -> bool {
        let Some((content, bytes)) = self.read(&location.display, &location.canonical) else {
            return false;
        };
        self.included.insert(location.canonical.clone());
        let file = self.files.len();
        self.files.push(InstructionFile {
            path: location.display.clone(),
            bytes,
            imported_by: imported_by.map(|l| l.display.clone()),
        });
        let display = location.display.display().to_string();
        let by = imported_by
            .map(|l| l.display.display().to_string())
            .unwrap_or_default();
        match placement {
            Placement::TopLevel => {
                self.separate(file);
                self.push(file, &format!("[redline: instructions from {display}]\n"));
            }
            Placement::Appended => {
                self.separate(file);
                self.push(
                    file,
                    &format!("[redline: instructions from {display}, imported by {by}]\n"),
                );
            }
            Placement::InPlace => self.push(
                file,
                &format!("[redline: begin {display}, imported by {by}]\n"),
            ),
        }
        chain.push(location.canonical.clone());

        let mut appended: Vec<Location> = Vec::new();
        let mut seen_inline: HashSet<&str> = HashSet::new();
        let mut in_fence = false;
        for line in content.split_inclusive('\n') {
            let trimmed = line.trim();
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                in_fence = !in_fence;
            }
            if in_fence {
                self.push(file, line);
                continue;
            }
            let imports = find_imports(line);
            let standalone = match imports.as_slice() {
                [
                    Import {
                        target,
                        standalone: true,
                    },
                ] => Some(*target),
                _ => None,
            };
            if let Some(target) = standalone
                && self.import_in_place(location, target, depth, chain, file)
            {
                continue;
            }
            self.push(file, line);
            for import in imports.iter().filter(|i| !i.standalone) {
                if !seen_inline.insert(import.target) {
                    continue;
                }
                match self.resolve_import(location, import.target, depth, chain) {
                    Ok(Some(target)) => appended.push(target),
                    Ok(None) | Err(ImportError::Missing(_)) => {}
                    Err(ImportError::Refused(message)) => self.warn(message),
                }
            }
        }
        if !self.text.ends_with('\n') {
            self.push(file, "\n");
        }
        if placement == Placement::InPlace {
            self.push(file, &format!("[redline: end {display}]\n"));
        }
        chain.pop();
        for target in appended {
            // An earlier inline import may have pulled this one in already.
            if self.included.contains(&target.canonical) {
                continue;
            }
            // Appended imports are still imports of this file: its chain.
            chain.push(location.canonical.clone());
            self.include(
                &target,
                Some(location),
                Placement::Appended,
                depth + 1,
                chain,
            );
            chain.pop();
        }
        true
    }

    /// Replaces a standalone `@path` line by the imported file. Returns false
    /// when the line should stay as written.
    fn import_in_place(
        &mut self,
        location: &Location,
        target: &str,
        depth: usize,
        chain: &mut Vec<PathBuf>,
        file: usize,
    ) -> bool {
        match self.resolve_import(location, target, depth, chain) {
            Ok(Some(imported)) => self.include(
                &imported,
                Some(location),
                Placement::InPlace,
                depth + 1,
                chain,
            ),
            Ok(None) => {
                self.push(
                    file,
                    &format!("[redline: @{target} is already included above]\n"),
                );
                true
            }
            Err(ImportError::Missing(message) | ImportError::Refused(message)) => {
                self.warn(message);
                false
            }
        }
    }

    /// Resolves `@target` written in `from`. `Ok(None)`: already included.
    fn resolve_import(
        &self,
        from: &Location,
        target: &str,
        depth: usize,
        chain: &[PathBuf],
    ) -> Result<Option<Location>, ImportError> {
        let from_display = from.display.display();
        let refused = |why: String| {
            ImportError::Refused(format!(
                "refused import `@{target}` in `{from_display}`: {why}"
            ))
        };
        if target.starts_with('/')
            || target.starts_with('\\')
            || target.starts_with('~')
            || Path::new(target).has_root()
        {
            return Err(refused(
                "imports must be relative to the importing file".to_owned(),
            ));
        }
        let rel = join_relative(from.rel.parent().as_ref(), target)
            .ok_or_else(|| refused(format!("it leaves `{}`", from.root.path().display())))?;
        let host = from
            .root
            .resolve(&rel)
            .map_err(|e| refused(e.to_string()))?;
        let display = from.root.join_unchecked(&rel);
        let canonical = match host.canonicalize() {
            Ok(c) if c.is_file() => c,
            Ok(_) => {
                return Err(ImportError::Missing(format!(
                    "skipped import `@{target}` in `{from_display}`: `{}` is not a file",
                    display.display()
                )));
            }
            Err(_) => {
                return Err(ImportError::Missing(format!(
                    "skipped import `@{target}` in `{from_display}`: `{}` does not exist",
                    display.display()
                )));
            }
        };
        if chain.contains(&canonical) {
            let start = chain.iter().position(|c| *c == canonical).unwrap_or(0);
            let mut names: Vec<String> = chain[start..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            names.push(canonical.display().to_string());
            return Err(ImportError::Refused(format!(
                "skipped import `@{target}` in `{from_display}`: import cycle {}",
                names.join(" -> ")
            )));
        }
        if self.included.contains(&canonical) {
            return Ok(None);
        }
        if depth + 1 > MAX_IMPORT_DEPTH {
            return Err(ImportError::Refused(format!(
                "skipped import `@{target}` in `{from_display}`: imports nest deeper than {MAX_IMPORT_DEPTH} levels"
            )));
        }
        Ok(Some(Location {
            root: from.root.clone(),
            rel,
            display,
            canonical,
        }))
    }

    /// Reads a file as UTF-8, at most enough of it to fill any cap we use.
    /// Returns the text and the file's full size.
    fn read(&mut self, display: &Path, host: &Path) -> Option<(String, usize)> {
        let result = (|| {
            let file = File::open(host)?;
            let size = file.metadata()?.len();
            let mut bytes = Vec::new();
            file.take(MAX_READ_BYTES as u64).read_to_end(&mut bytes)?;
            Ok::<_, std::io::Error>((bytes, size))
        })();
        let (mut bytes, size) = match result {
            Ok(read) => read,
            Err(e) => {
                self.warn(format!(
                    "cannot read instructions `{}`: {e}",
                    display.display()
                ));
                return None;
            }
        };
        let partial = size > bytes.len() as u64;
        if let Err(e) = std::str::from_utf8(&bytes) {
            // A read cut short may end inside a character; that is not an error.
            if partial && e.error_len().is_none() {
                bytes.truncate(e.valid_up_to());
            } else {
                self.warn(format!(
                    "skipped instructions `{}`: not valid UTF-8 (byte {})",
                    display.display(),
                    e.valid_up_to()
                ));
                return None;
            }
        }
        let mut text = String::from_utf8(bytes).ok()?;
        if text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        if partial {
            self.warn(format!(
                "read only the first {} of `{}` ({} bytes)",
                format_size(MAX_READ_BYTES),
                display.display(),
                group_digits(size)
            ));
        }
        Some((text, usize::try_from(size).unwrap_or(usize::MAX)))
    }

    fn finish(mut self, cap: usize) -> Instructions {
        let total = self.text.len();
        if total <= cap {
            return Instructions {
                text: self.text,
                files: self.files,
                warnings: self.warnings,
                truncated: false,
            };
        }
        let mut cut = cap;
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        // Bytes omitted per file, in file order.
        let mut omitted = vec![0usize; self.files.len()];
        let mut start = 0;
        for &(end, file) in &self.pieces {
            if end > cut
                && let Some(slot) = omitted.get_mut(file)
            {
                *slot += end - start.max(cut);
            }
            start = end;
        }
        // A file none of whose bytes survive was not used.
        let mut first_byte = vec![usize::MAX; self.files.len()];
        let mut start = 0;
        for &(end, file) in &self.pieces {
            if let Some(slot) = first_byte.get_mut(file) {
                *slot = (*slot).min(start);
            }
            start = end;
        }
        let parts: Vec<String> = omitted
            .iter()
            .enumerate()
            .filter(|(_, bytes)| **bytes > 0)
            .map(|(file, bytes)| {
                format!(
                    "{} bytes from {}",
                    group_digits(*bytes as u64),
                    self.files[file].path.display()
                )
            })
            .collect();
        let note = format!(
            "[redline: instructions truncated at {}; {} omitted]",
            format_size(cap),
            parts.join(", ")
        );
        self.text.truncate(cut);
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.text.push_str(&note);
        self.text.push('\n');
        self.warnings.push(format!(
            "instructions exceed {}; {} bytes were left out",
            format_size(cap),
            group_digits((total - cut) as u64)
        ));
        let files = self
            .files
            .into_iter()
            .enumerate()
            .filter(|(index, _)| first_byte[*index] < cut)
            .map(|(_, file)| file)
            .collect();
        Instructions {
            text: self.text,
            files,
            warnings: self.warnings,
            truncated: true,
        }
    }
}

/// No instruction file needs more than this; reading stops there.
const MAX_READ_BYTES: usize = 1024 * 1024;

/// Finds `@path` references in one line (outside backtick code spans).
fn find_imports(line: &str) -> Vec<Import<'_>> {
    let trimmed = line.trim();
    let standalone = trimmed
        .strip_prefix('@')
        .filter(|target| !target.is_empty() && !target.contains(char::is_whitespace));
    if let Some(target) = standalone {
        return vec![Import {
            target,
            standalone: true,
        }];
    }
    let mut imports = Vec::new();
    let mut in_code = false;
    let mut previous: Option<char> = None;
    for (index, c) in line.char_indices() {
        if c == '`' {
            in_code = !in_code;
        } else if c == '@' && !in_code && previous.is_none_or(char::is_whitespace) {
            let rest = &line[index + 1..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '`')
                .unwrap_or(rest.len());
            let target = rest[..end]
                .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '"', '\'']);
            if !target.is_empty() {
                imports.push(Import {
                    target,
                    standalone: false,
                });
            }
        }
        previous = Some(c);
    }
    imports
}

/// `dir/target` with `.` and `..` resolved; `None` when `..` climbs above
/// the root.
fn join_relative(dir: Option<&RelPath>, target: &str) -> Option<RelPath> {
    let mut parts: Vec<&str> = dir.map(|d| d.components().collect()).unwrap_or_default();
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    RelPath::new(&parts.join("/")).ok()
}

/// `32 KiB` for whole KiB, otherwise a byte count.
fn format_size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", group_digits((bytes / 1024) as u64))
    } else {
        format!("{} bytes", group_digits(bytes as u64))
    }
}

/// `10240` → `10,240`.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_standalone_and_inline_imports() {
        let check = |line: &str, expect: &[(&str, bool)]| {
            let got: Vec<(&str, bool)> = find_imports(line)
                .iter()
                .map(|i| (i.target, i.standalone))
                .collect();
            assert_eq!(got, expect, "{line:?}");
        };
        check("@docs/style.md\n", &[("docs/style.md", true)]);
        check("  @a.md  ", &[("a.md", true)]);
        check(
            "See @README.md and @docs/x.md.",
            &[("README.md", false), ("docs/x.md", false)],
        );
        check("mail me@example.com", &[]);
        check("use `@decorator` here", &[]);
        check("@ alone", &[]);
        check("(@a.md)", &[]);
        check("see @a.md)", &[("a.md", false)]);
    }

    #[test]
    fn joins_relative_paths_inside_the_root() {
        let dir = RelPath::new("a/b").unwrap();
        let check = |target: &str, expect: Option<&str>| {
            assert_eq!(
                join_relative(Some(&dir), target)
                    .map(|p| p.to_string())
                    .as_deref(),
                expect,
                "{target}"
            );
        };
        check("x.md", Some("a/b/x.md"));
        check("../x.md", Some("a/x.md"));
        check("../../x.md", Some("x.md"));
        check("../../../x.md", None);
        check("../../../../etc/passwd", None);
        check("./c/../y.md", Some("a/b/y.md"));
        assert_eq!(join_relative(None, "../x"), None);
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(32 * 1024), "32 KiB");
        assert_eq!(format_size(1000), "1,000 bytes");
        assert_eq!(group_digits(10240), "10,240");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_000_000), "1,000,000");
    }
}

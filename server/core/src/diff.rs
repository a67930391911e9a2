//! Line diffs and their git-compatible rendering.
//!
//! Proposals are built from (old, new) text pairs: [`line_hunks`] runs
//! imara-diff's histogram algorithm and groups the changes the way git does
//! (changes whose 3-line contexts touch or overlap become one hunk), so every
//! hunk can be accepted or rejected on its own and the rendered diff shows
//! exactly the hunks the user reviews. [`apply_hunks`] is the pure
//! "old + these hunks" function that both the review UI and `apply` rely on,
//! and [`render_file_change`] produces the `diff --git` text that real
//! `git apply` accepts (text, creations, deletions, renames, mode changes and
//! `GIT binary patch` literals).

use std::fmt::Write as _;

use imara_diff::{Algorithm, Diff, InternedInput};

use crate::proposal::{ChangeKind, FileChange, FileContent, Hunk, HunkKind};

/// Lines of context around each hunk; changes closer than twice this merge.
pub const CONTEXT_LINES: u32 = 3;

/// Where one grouped change sits: 0-based, half-open line ranges in the old
/// and new text. Unchanged lines between merged changes are inside the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRange {
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
}

impl LineRange {
    pub fn old_end(&self) -> u32 {
        self.old_start + self.old_lines
    }

    pub fn new_end(&self) -> u32 {
        self.new_start + self.new_lines
    }
}

/// Splits text into lines that keep their terminator (`\n`, so `\r\n` keeps
/// its `\r`); the last line lacks one when the text does not end in `\n`.
pub fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Byte offset at which each line starts, plus the text length at the end, so
/// `text[starts[a]..starts[b]]` is lines `a..b`.
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::with_capacity(text.len() / 32 + 2);
    starts.push(0);
    for (index, byte) in text.bytes().enumerate() {
        if byte == b'\n' && index + 1 < text.len() {
            starts.push(index + 1);
        }
    }
    if text.is_empty() {
        return starts;
    }
    starts.push(text.len());
    starts
}

/// Text of lines `range` given precomputed [`line_starts`].
fn slice_lines<'a>(text: &'a str, starts: &[usize], from: u32, to: u32) -> &'a str {
    let last = starts.len().saturating_sub(1);
    let a = starts[(from as usize).min(last)];
    let b = starts[(to as usize).min(last)];
    &text[a..b]
}

/// The grouped changes between `old` and `new` (histogram diff, indent
/// heuristic for slider placement, git's hunk merging with `context` lines).
pub fn line_hunks(old: &str, new: &str, context: u32) -> Vec<LineRange> {
    let input = InternedInput::new(old, new);
    let mut diff = Diff::compute(Algorithm::Histogram, &input);
    diff.postprocess_lines(&input);
    let mut grouped: Vec<LineRange> = Vec::new();
    for change in diff.hunks() {
        if let Some(last) = grouped.last_mut() {
            let gap = change.before.start - last.old_end();
            // Same rule as xdiff's xdl_get_hunk: merge when the gap is at most
            // both contexts, so no context line is shown twice.
            if gap <= 2 * context {
                last.old_lines = change.before.end - last.old_start;
                last.new_lines = change.after.end - last.new_start;
                continue;
            }
        }
        grouped.push(LineRange {
            old_start: change.before.start,
            old_lines: change.before.end - change.before.start,
            new_start: change.after.start,
            new_lines: change.after.end - change.after.start,
        });
    }
    grouped
}

/// A grouped change with the exact text it removes and adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextChange {
    pub range: LineRange,
    pub old_text: String,
    pub new_text: String,
}

/// [`line_hunks`] with each range's old and new text filled in.
pub fn text_changes(old: &str, new: &str) -> Vec<TextChange> {
    let ranges = line_hunks(old, new, CONTEXT_LINES);
    let old_starts = line_starts(old);
    let new_starts = line_starts(new);
    ranges
        .into_iter()
        .map(|range| TextChange {
            range,
            old_text: slice_lines(old, &old_starts, range.old_start, range.old_end()).to_owned(),
            new_text: slice_lines(new, &new_starts, range.new_start, range.new_end()).to_owned(),
        })
        .collect()
}

/// Why hunks could not be applied to a text as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HunkMismatch {
    #[error("hunk {id} overlaps an earlier hunk")]
    Overlap { id: String },
    #[error("hunk {id} lies beyond the end of the file ({lines} lines)")]
    OutOfRange { id: String, lines: u32 },
    #[error("hunk {id} expects text the file does not have at line {line}")]
    TextDiffers { id: String, line: u32 },
}

/// `old` with `hunks` applied (text hunks only; others are ignored). Each
/// hunk replaces lines `old_start .. old_start + old_lines` of `old` with its
/// `new_text`; hunks may be given in any order. For hunks built from `old`
/// by [`crate::proposal::Proposal::build`] this is exact; hunks that do not
/// fit (overlapping or past the end) are skipped rather than guessed at —
/// use [`try_apply_hunks`] to be told.
pub fn apply_hunks(old: &str, hunks: &[&Hunk]) -> String {
    apply_inner(old, hunks, false).unwrap_or_else(|_| old.to_owned())
}

/// Like [`apply_hunks`], but checks that every hunk's `old_text` is what
/// `old` holds at its range and refuses overlapping or out-of-range hunks.
pub fn try_apply_hunks(old: &str, hunks: &[&Hunk]) -> Result<String, HunkMismatch> {
    apply_inner(old, hunks, true)
}

fn apply_inner(old: &str, hunks: &[&Hunk], strict: bool) -> Result<String, HunkMismatch> {
    let starts = line_starts(old);
    let line_count = (starts.len().saturating_sub(1)) as u32;
    let mut sorted: Vec<&Hunk> = hunks
        .iter()
        .copied()
        .filter(|h| h.kind == HunkKind::Text)
        .collect();
    sorted.sort_by_key(|h| (h.old_start, h.old_lines));
    let mut out = String::with_capacity(old.len());
    let mut position = 0u32;
    for hunk in sorted {
        let end = hunk.old_start.saturating_add(hunk.old_lines);
        if end > line_count {
            if strict {
                return Err(HunkMismatch::OutOfRange {
                    id: hunk.id.0.clone(),
                    lines: line_count,
                });
            }
            continue;
        }
        if hunk.old_start < position {
            if strict {
                return Err(HunkMismatch::Overlap {
                    id: hunk.id.0.clone(),
                });
            }
            continue;
        }
        let existing = slice_lines(old, &starts, hunk.old_start, end);
        if strict && existing != hunk.old_text {
            return Err(HunkMismatch::TextDiffers {
                id: hunk.id.0.clone(),
                line: hunk.old_start + 1,
            });
        }
        out.push_str(slice_lines(old, &starts, position, hunk.old_start));
        out.push_str(&hunk.new_text);
        position = end;
    }
    out.push_str(slice_lines(old, &starts, position, line_count));
    Ok(out)
}

// ---------------------------------------------------------------------------
// Rendering

/// The git file mode for Unix permission bits: executable or not.
fn git_mode(mode: Option<u32>) -> &'static str {
    match mode {
        Some(bits) if bits & 0o111 != 0 => "100755",
        _ => "100644",
    }
}

const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// Quotes a path the way git does when it holds characters that would break
/// the header line (quote, backslash, control characters).
fn quote_path(path: &str) -> String {
    let needs = path
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control());
    if !needs {
        return path.to_owned();
    }
    let mut out = String::from("\"");
    for c in path.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{byte:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `a/<path>` (quoted as a whole when needed, as git does).
fn side_name(side: &str, path: &str) -> String {
    let raw = format!("{side}/{path}");
    quote_path(&raw)
}

/// The `---`/`+++` name; git appends a tab when the name holds a space so
/// the name's end is unambiguous.
fn file_line_name(name: &str) -> String {
    if name.contains(' ') && !name.starts_with('"') {
        format!("{name}\t")
    } else {
        name.to_owned()
    }
}

/// Renders one file change as a `diff --git` section. `prefix` is put in
/// front of both paths (the root's folder name plus `/` when a proposal has
/// several roots, empty otherwise). Every hunk is rendered whatever its
/// status: this is the proposal as proposed.
pub fn render_file_change(change: &FileChange, prefix: &str, out: &mut String) {
    let old_path = match &change.kind {
        ChangeKind::Rename { from } => format!("{prefix}{from}"),
        _ => format!("{prefix}{}", change.path),
    };
    let new_path = format!("{prefix}{}", change.path);
    let a_name = side_name("a", &old_path);
    let b_name = side_name("b", &new_path);
    let _ = writeln!(out, "diff --git {a_name} {b_name}");

    let empty = FileContent::Text(String::new());
    let old = change.old.as_ref().unwrap_or(&empty);
    let new = change.new.as_ref().unwrap_or(&empty);
    let binary = old.is_binary() || new.is_binary();
    let old_oid = match change.kind {
        ChangeKind::Create => ZERO_OID.to_owned(),
        _ => git_blob_oid(old.as_bytes()),
    };
    let new_oid = match change.kind {
        ChangeKind::Delete => ZERO_OID.to_owned(),
        _ => git_blob_oid(new.as_bytes()),
    };

    match &change.kind {
        ChangeKind::Create => {
            let _ = writeln!(out, "new file mode {}", git_mode(change.new_mode));
            let _ = writeln!(out, "index {ZERO_OID}..{new_oid}");
        }
        ChangeKind::Delete => {
            let _ = writeln!(out, "deleted file mode {}", git_mode(change.old_mode));
            let _ = writeln!(out, "index {old_oid}..{ZERO_OID}");
        }
        ChangeKind::Modify | ChangeKind::Rename { .. } => {
            let mode_changed =
                git_mode(change.old_mode) != git_mode(change.new_mode) && change.new_mode.is_some();
            let new_mode = if change.new_mode.is_some() {
                change.new_mode
            } else {
                change.old_mode
            };
            if mode_changed {
                let _ = writeln!(out, "old mode {}", git_mode(change.old_mode));
                let _ = writeln!(out, "new mode {}", git_mode(new_mode));
            }
            if let ChangeKind::Rename { from } = &change.kind {
                let _ = writeln!(out, "similarity index {}%", similarity(old, new));
                let _ = writeln!(
                    out,
                    "rename from {}",
                    quote_path(&format!("{prefix}{from}"))
                );
                let _ = writeln!(out, "rename to {}", quote_path(&new_path));
            }
            if old.as_bytes() != new.as_bytes() {
                if mode_changed {
                    let _ = writeln!(out, "index {old_oid}..{new_oid}");
                } else {
                    let _ = writeln!(out, "index {old_oid}..{new_oid} {}", git_mode(new_mode));
                }
            } else {
                return;
            }
        }
    }

    if binary {
        out.push_str("GIT binary patch\n");
        write_binary_literal(new.as_bytes(), out);
        write_binary_literal(old.as_bytes(), out);
        return;
    }
    let (FileContent::Text(old_text), FileContent::Text(new_text)) = (old, new) else {
        return;
    };
    let mut text_hunks: Vec<&Hunk> = change
        .hunks
        .iter()
        .filter(|h| h.kind == HunkKind::Text)
        .collect();
    if text_hunks.is_empty() || old_text == new_text {
        return;
    }
    text_hunks.sort_by_key(|h| h.old_start);
    let minus = if change.kind == ChangeKind::Create {
        "/dev/null".to_owned()
    } else {
        file_line_name(&a_name)
    };
    let plus = if change.kind == ChangeKind::Delete {
        "/dev/null".to_owned()
    } else {
        file_line_name(&b_name)
    };
    let _ = writeln!(out, "--- {minus}");
    let _ = writeln!(out, "+++ {plus}");
    let old_lines = split_lines(old_text);
    for hunk in text_hunks {
        write_text_hunk(hunk, &old_lines, out);
    }
}

/// A rough `similarity index` for rename headers: the share of bytes in
/// lines the two sides have in common. Git only displays it.
fn similarity(old: &FileContent, new: &FileContent) -> u32 {
    match (old, new) {
        (FileContent::Text(a), FileContent::Text(b)) => {
            let total = a.len() + b.len();
            if total == 0 || a == b {
                return 100;
            }
            let changed: usize = text_changes(a, b)
                .iter()
                .map(|c| c.old_text.len() + c.new_text.len())
                .sum();
            (((total - changed.min(total)) * 100) / total) as u32
        }
        (a, b) if a.as_bytes() == b.as_bytes() => 100,
        _ => 0,
    }
}

fn push_line(marker: char, line: &str, out: &mut String) {
    out.push(marker);
    out.push_str(line);
    if !line.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

/// One `@@` section: 3 lines of context around the hunk, and inside the hunk
/// a fresh diff of its old/new text so unchanged lines between merged
/// changes show as context rather than as removed-and-added.
fn write_text_hunk(hunk: &Hunk, old_lines: &[&str], out: &mut String) {
    let total = old_lines.len() as u32;
    let start = hunk.old_start.min(total);
    let end = (hunk.old_start + hunk.old_lines).min(total);
    let pre_start = start.saturating_sub(CONTEXT_LINES);
    let post_end = (end + CONTEXT_LINES).min(total);
    let pre = start - pre_start;
    let post = post_end - end;
    let old_count = pre + hunk.old_lines + post;
    let new_count = pre + hunk.new_lines + post;
    let old_first = pre_start;
    let new_first = hunk.new_start.saturating_sub(pre);
    let header_start = |first: u32, count: u32| if count == 0 { first } else { first + 1 };
    let header_range = |first: u32, count: u32| {
        if count == 1 {
            format!("{}", header_start(first, count))
        } else {
            format!("{},{count}", header_start(first, count))
        }
    };
    let _ = writeln!(
        out,
        "@@ -{} +{} @@",
        header_range(old_first, old_count),
        header_range(new_first, new_count)
    );
    for line in &old_lines[pre_start as usize..start as usize] {
        push_line(' ', line, out);
    }
    let inner_old = split_lines(&hunk.old_text);
    let inner_new = split_lines(&hunk.new_text);
    let mut old_pos = 0u32;
    for part in line_hunks(&hunk.old_text, &hunk.new_text, 0) {
        for line in &inner_old[old_pos as usize..part.old_start as usize] {
            push_line(' ', line, out);
        }
        for line in &inner_old[part.old_start as usize..part.old_end() as usize] {
            push_line('-', line, out);
        }
        for line in &inner_new[part.new_start as usize..part.new_end() as usize] {
            push_line('+', line, out);
        }
        old_pos = part.old_end();
    }
    for line in &inner_old[old_pos as usize..] {
        push_line(' ', line, out);
    }
    for line in &old_lines[end as usize..post_end as usize] {
        push_line(' ', line, out);
    }
}

fn write_binary_literal(bytes: &[u8], out: &mut String) {
    let _ = writeln!(out, "literal {}", bytes.len());
    let compressed = git_binary::zlib_stored(bytes);
    for chunk in compressed.chunks(52) {
        let len = chunk.len() as u8;
        out.push(if len <= 26 {
            (b'A' + len - 1) as char
        } else {
            (b'a' + len - 27) as char
        });
        git_binary::base85(chunk, out);
        out.push('\n');
    }
    out.push('\n');
}

/// Git's object id of a blob holding `bytes` (SHA-1 of `blob <len>\0` + bytes),
/// needed for the full `index` lines that binary patches require.
pub fn git_blob_oid(bytes: &[u8]) -> String {
    let mut data = format!("blob {}\0", bytes.len()).into_bytes();
    data.extend_from_slice(bytes);
    hex::encode(git_binary::sha1(&data))
}

/// The encodings a `GIT binary patch` needs, small enough to keep here
/// instead of pulling in zlib and SHA-1 crates: git inflates any valid zlib
/// stream, so stored (uncompressed) deflate blocks are enough.
mod git_binary {
    pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 11);
        out.extend_from_slice(&[0x78, 0x01]);
        let mut chunks = data.chunks(65535).peekable();
        if chunks.peek().is_none() {
            out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            out.push(u8::from(last));
            let len = chunk.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }

    const EN85: &[u8; 85] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";

    pub fn base85(data: &[u8], out: &mut String) {
        for group in data.chunks(4) {
            let mut acc = 0u32;
            for (i, &byte) in group.iter().enumerate() {
                acc |= u32::from(byte) << (24 - 8 * i);
            }
            let mut buf = [0u8; 5];
            for slot in buf.iter_mut().rev() {
                *slot = EN85[(acc % 85) as usize];
                acc /= 85;
            }
            out.extend(buf.iter().map(|&b| b as char));
        }
    }

    pub fn sha1(data: &[u8]) -> [u8; 20] {
        let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
        let mut message = data.to_vec();
        let bit_len = (data.len() as u64).wrapping_mul(8);
        message.push(0x80);
        while message.len() % 64 != 56 {
            message.push(0);
        }
        message.extend_from_slice(&bit_len.to_be_bytes());
        for block in message.chunks_exact(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, &word) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A827999),
                    20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                    _ => (b ^ c ^ d, 0xCA62C1D6),
                };
                let temp = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(word);
                e = d;
                d = c;
                c = b.rotate_left(30);
                b = a;
                a = temp;
            }
            for (slot, value) in h.iter_mut().zip([a, b, c, d, e]) {
                *slot = slot.wrapping_add(value);
            }
        }
        let mut out = [0u8; 20];
        for (i, word) in h.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_oids_match_git() {
        // `git hash-object` of these contents.
        assert_eq!(
            git_blob_oid(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_oid(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    fn check_ranges(old: &str, new: &str, expect: &[(u32, u32, u32, u32)]) {
        let got: Vec<(u32, u32, u32, u32)> = line_hunks(old, new, CONTEXT_LINES)
            .iter()
            .map(|r| (r.old_start, r.old_lines, r.new_start, r.new_lines))
            .collect();
        assert_eq!(got, expect, "{old:?} -> {new:?}");
    }

    #[test]
    fn changes_merge_when_contexts_touch() {
        let text = |edit: &[usize]| -> String {
            (0..20)
                .map(|i| {
                    if edit.contains(&i) {
                        format!("edited {i}\n")
                    } else {
                        format!("{i}\n")
                    }
                })
                .collect()
        };
        let old = text(&[]);
        // Gap of 6 unchanged lines (2..8): merged, like git.
        check_ranges(&old, &text(&[1, 8]), &[(1, 8, 1, 8)]);
        // Gap of 7 (2..9): two hunks.
        let new = text(&[1, 9]);
        check_ranges(&old, &new, &[(1, 1, 1, 1), (9, 1, 9, 1)]);
        check_ranges("", "a\n", &[(0, 0, 0, 1)]);
        check_ranges("a\n", "", &[(0, 1, 0, 0)]);
        check_ranges("a\nb", "a\nb\n", &[(1, 1, 1, 1)]);
    }

    #[test]
    fn line_starts_cover_terminated_and_unterminated_text() {
        assert_eq!(line_starts(""), vec![0]);
        assert_eq!(line_starts("a\n"), vec![0, 2]);
        assert_eq!(line_starts("a\nb"), vec![0, 2, 3]);
        assert_eq!(line_starts("a\nb\n"), vec![0, 2, 4]);
    }
}

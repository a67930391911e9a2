//! An open text document: a rope, the version the editor gave it, its
//! language, and a tree-sitter tree kept current by incremental reparsing.
//!
//! Every front end funnels edits through here — LSP `didChange` ranges in
//! UTF-16 (or UTF-8/UTF-32 when negotiated), the agent's byte and char
//! edits — so position conversion is decided in one place:
//!
//! - **Lines** are LSP lines: ended by `\n`, `\r\n` or a lone `\r`. Form
//!   feed, NEL, U+2028 and U+2029 are ordinary characters (ropey counts them
//!   as breaks, so documents containing them use a slower scanned index).
//! - **A character beyond the end of its line** is clamped to the line's end,
//!   as LSP specifies. The end is *before* the line terminator, so a position
//!   never splits a `\r\n`.
//! - **A line beyond the last line** is an error
//!   ([`DocumentError::LineOutOfRange`]), not clamped: it means the client and
//!   server disagree about the text, and guessing would corrupt it silently.
//!   A text ending in a line break has a last, empty line, so
//!   `{line: line_count - 1, character: 0}` addresses the very end.
//! - **A position inside a character** (between the two UTF-16 halves of
//!   😀, or inside a UTF-8 sequence) snaps back to the start of that
//!   character, so edits never cut a character in two.
//! - Byte and char offsets (`edit_bytes`, `byte_to_position`, ...) are our
//!   own, exact numbers: out of range or inside a character is an error.
//!
//! The syntax is reparsed after every edit from the rope's chunks, with the
//! old tree edited by an `InputEdit`. A large file is held as several trees,
//! one per segment of top-level nodes (see `syntax::segments`), so
//! a keystroke in a 10 MB file reparses about 64 KiB, not the whole file.

use std::fmt;
use std::sync::OnceLock;

use ropey::Rope;
use serde::{Deserialize, Serialize};
use tree_sitter::{InputEdit, Point, Tree};

use crate::syntax::segments::{ParseText, SegmentedSyntax};
use crate::syntax::source::{BreakCounts, LineTable, Source};
use crate::syntax::{self, Comment, Language, LineCol, Symbol, SyntaxError};

/// How the `character` of a [`Position`] counts: UTF-8 bytes, UTF-16 code
/// units (LSP's default) or UTF-32 code points (chars).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionEncoding {
    Utf8,
    #[default]
    Utf16,
    Utf32,
}

/// A 0-based line and a 0-based offset in that line, counted in some
/// [`PositionEncoding`] (as LSP's `Position`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub fn new(line: u32, character: u32) -> Position {
        Position { line, character }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.character)
    }
}

/// A range between two [`Position`]s, end exclusive (as LSP's `Range`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    pub fn new(start: Position, end: Position) -> Range {
        Range { start, end }
    }
}

/// Why an edit or a conversion was refused. The document is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "line {line} is beyond the end of the document ({line_count} lines, {len_bytes} bytes; lines count from 0)"
    )]
    LineOutOfRange {
        line: u32,
        line_count: usize,
        len_bytes: usize,
    },
    #[error("byte offset {offset} is beyond the end of the document ({len_bytes} bytes)")]
    ByteOutOfRange { offset: usize, len_bytes: usize },
    #[error(
        "char offset {offset} is beyond the end of the document ({len_chars} chars, {len_bytes} bytes)"
    )]
    CharOutOfRange {
        offset: usize,
        len_chars: usize,
        len_bytes: usize,
    },
    #[error(
        "byte offset {offset} is inside a multi-byte character (document has {len_bytes} bytes)"
    )]
    NotCharBoundary { offset: usize, len_bytes: usize },
    #[error("{unit} range {start}..{end} ends before it starts (document has {len_bytes} bytes)")]
    InvertedRange {
        unit: &'static str,
        start: usize,
        end: usize,
        len_bytes: usize,
    },
    #[error(
        "range {start}..{end} (line:character) ends before it starts (document has {line_count} lines, {len_bytes} bytes)"
    )]
    InvertedPositionRange {
        start: Position,
        end: Position,
        line_count: usize,
        len_bytes: usize,
    },
    #[error(
        "change for version {version} arrived after version {current}; changes must be applied in order"
    )]
    VersionWentBackwards { version: i32, current: i32 },
}

/// An open document. See the module docs for how positions are read.
pub struct Document {
    rope: Rope,
    version: i32,
    language: Language,
    /// `None` for plain text (or if tree-sitter gave up, which it only does
    /// when cancelled).
    syntax: Option<SegmentedSyntax>,
    /// Decides whether ropey's line index can be trusted (see `BreakCounts`).
    breaks: BreakCounts,
    /// Scanned line index for documents ropey cannot index for us; built on
    /// first use after each edit.
    line_table: OnceLock<LineTable>,
}

impl Document {
    pub fn new(text: &str, language: Language, version: i32) -> Document {
        let mut document = Document {
            rope: Rope::from_str(text),
            version,
            language,
            syntax: None,
            breaks: BreakCounts::scan(std::iter::once(text.as_bytes())),
            line_table: OnceLock::new(),
        };
        document.parse_from_scratch();
        document
    }

    /// The whole text (a copy; prefer [`Document::rope`] for large files).
    pub fn text(&self) -> String {
        self.rope.to_string()
    }

    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    /// Sets the version, for callers that edit with `edit_bytes`/`edit_chars`.
    pub fn set_version(&mut self, version: i32) {
        self.version = version;
    }

    pub fn language(&self) -> Language {
        self.language
    }

    pub fn len_bytes(&self) -> usize {
        self.rope.len_bytes()
    }

    /// Number of LSP lines; a text ending in a line break has a last, empty
    /// line, and the empty text has one line.
    pub fn line_count(&self) -> usize {
        if self.breaks.is_regular() {
            self.rope.len_lines()
        } else {
            self.line_table().line_count()
        }
    }

    /// The text of `line` without its line terminator.
    pub fn line_text(&self, line: usize) -> Option<String> {
        let (start, end) = self.line_bounds(line)?;
        Some(self.slice_lossy(start..end))
    }

    /// The current syntax trees in document order, one per segment of
    /// top-level nodes (none for plain text). Nodes carry whole-document
    /// offsets and points.
    pub fn syntax_trees(&self) -> impl Iterator<Item = &Tree> {
        self.syntax.iter().flat_map(SegmentedSyntax::trees)
    }

    /// The syntax trees whose segment intersects or touches `byte_range`.
    pub fn syntax_trees_touching(
        &self,
        byte_range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = &Tree> {
        self.syntax
            .iter()
            .flat_map(move |syntax| syntax.trees_touching(byte_range.clone()))
    }

    /// How many trees the syntax is held in (0 for plain text).
    pub fn syntax_segment_count(&self) -> usize {
        self.syntax
            .as_ref()
            .map_or(0, SegmentedSyntax::segment_count)
    }

    /// Applies one LSP content change. `None` replaces the whole text. The
    /// version must not go backwards (several changes of one notification
    /// share a version). On error nothing changes.
    pub fn apply_change(
        &mut self,
        range: Option<Range>,
        text: &str,
        encoding: PositionEncoding,
        version: i32,
    ) -> Result<(), DocumentError> {
        if version < self.version {
            return Err(DocumentError::VersionWentBackwards {
                version,
                current: self.version,
            });
        }
        match range {
            None => self.replace_all(text),
            Some(range) => {
                if range.start > range.end {
                    return Err(DocumentError::InvertedPositionRange {
                        start: range.start,
                        end: range.end,
                        line_count: self.line_count(),
                        len_bytes: self.len_bytes(),
                    });
                }
                let start = self.position_to_byte(range.start, encoding)?;
                let end = self.position_to_byte(range.end, encoding)?;
                // Conversion is monotonic, so `start <= end` still holds.
                self.replace(start..end, text);
            }
        }
        self.version = version;
        Ok(())
    }

    /// Replaces the bytes of `range` with `text`. Both ends must be on
    /// character boundaries. The version is left alone.
    pub fn edit_bytes(
        &mut self,
        range: std::ops::Range<usize>,
        text: &str,
    ) -> Result<(), DocumentError> {
        self.check_byte_range(&range)?;
        self.replace(range, text);
        Ok(())
    }

    /// Replaces the chars (Unicode scalar values) of `range` with `text`.
    /// The version is left alone.
    pub fn edit_chars(
        &mut self,
        range: std::ops::Range<usize>,
        text: &str,
    ) -> Result<(), DocumentError> {
        let len_chars = self.rope.len_chars();
        if range.start > range.end {
            return Err(DocumentError::InvertedRange {
                unit: "char",
                start: range.start,
                end: range.end,
                len_bytes: self.len_bytes(),
            });
        }
        if range.end > len_chars {
            return Err(DocumentError::CharOutOfRange {
                offset: range.end,
                len_chars,
                len_bytes: self.len_bytes(),
            });
        }
        let start = self.rope.char_to_byte(range.start);
        let end = self.rope.char_to_byte(range.end);
        self.replace(start..end, text);
        Ok(())
    }

    /// The byte offset of `position`, clamping a character beyond the line
    /// end and snapping a position inside a character back to its start
    /// (see the module docs).
    pub fn position_to_byte(
        &self,
        position: Position,
        encoding: PositionEncoding,
    ) -> Result<usize, DocumentError> {
        let line = position.line as usize;
        let Some((start, end)) = self.line_bounds(line) else {
            return Err(DocumentError::LineOutOfRange {
                line: position.line,
                line_count: self.line_count(),
                len_bytes: self.len_bytes(),
            });
        };
        let character = position.character as usize;
        let rope = &self.rope;
        let byte = match encoding {
            PositionEncoding::Utf8 => {
                let byte = start.saturating_add(character).min(end);
                // `byte_to_char` maps a byte inside a character to that
                // character, which snaps back to its start.
                rope.char_to_byte(rope.byte_to_char(byte))
            }
            PositionEncoding::Utf16 => {
                let start_unit = rope.char_to_utf16_cu(rope.byte_to_char(start));
                let end_unit = rope.char_to_utf16_cu(rope.byte_to_char(end));
                let unit = start_unit.saturating_add(character).min(end_unit);
                // Between the halves of a surrogate pair, ropey returns the
                // pair's char: the start of the character.
                rope.char_to_byte(rope.utf16_cu_to_char(unit))
            }
            PositionEncoding::Utf32 => {
                let start_char = rope.byte_to_char(start);
                let end_char = rope.byte_to_char(end);
                rope.char_to_byte(start_char.saturating_add(character).min(end_char))
            }
        };
        Ok(byte)
    }

    /// The position of a byte offset. The offset must be on a character
    /// boundary. An offset between `\r` and `\n` is reported as one past the
    /// line's last character (no client sends it; we never produce it from
    /// a position).
    pub fn byte_to_position(
        &self,
        byte: usize,
        encoding: PositionEncoding,
    ) -> Result<Position, DocumentError> {
        self.check_byte(byte)?;
        let line = self.line_of(byte);
        let start = self.line_start(line);
        let rope = &self.rope;
        let character = match encoding {
            PositionEncoding::Utf8 => byte - start,
            PositionEncoding::Utf16 => {
                rope.char_to_utf16_cu(rope.byte_to_char(byte))
                    - rope.char_to_utf16_cu(rope.byte_to_char(start))
            }
            PositionEncoding::Utf32 => rope.byte_to_char(byte) - rope.byte_to_char(start),
        };
        Ok(Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            character: u32::try_from(character).unwrap_or(u32::MAX),
        })
    }

    /// The outline of the document (see [`syntax::outline`]).
    pub fn outline(&self) -> Vec<Symbol> {
        // Top-level nodes never straddle segments, so per-tree outlines
        // concatenate with correct depths and containers.
        self.syntax_trees()
            .flat_map(|tree| syntax::outline_tree(self.language, tree, self, None))
            .collect()
    }

    /// The innermost symbol whose range contains `byte_range`.
    pub fn enclosing_symbol(&self, byte_range: std::ops::Range<usize>) -> Option<Symbol> {
        if byte_range.start > byte_range.end || byte_range.end > self.len_bytes() {
            return None;
        }
        // Only definitions intersecting the range can contain it. Widened by
        // a byte each side: the cursor skips nodes that merely touch an empty
        // range (a cursor at the very end of a definition).
        let query_range =
            byte_range.start.saturating_sub(1)..(byte_range.end + 1).min(self.len_bytes());
        let symbols = self
            .syntax_trees_touching(query_range.clone())
            .flat_map(|tree| {
                syntax::outline_tree(self.language, tree, self, Some(query_range.clone()))
            })
            .collect();
        syntax::innermost_enclosing(symbols, &byte_range)
    }

    /// Where the parser had to recover (see [`syntax::syntax_errors`]).
    pub fn syntax_errors(&self) -> Vec<SyntaxError> {
        self.syntax_trees()
            .flat_map(|tree| syntax::syntax_errors_tree(tree, self))
            .collect()
    }

    /// Every comment (see [`syntax::comments`]).
    pub fn comments(&self) -> Vec<Comment> {
        if self.language == Language::Json {
            return Vec::new();
        }
        self.syntax_trees()
            .flat_map(|tree| syntax::comments_tree(self.language, tree, self))
            .collect()
    }

    fn check_byte(&self, byte: usize) -> Result<(), DocumentError> {
        let len_bytes = self.len_bytes();
        if byte > len_bytes {
            return Err(DocumentError::ByteOutOfRange {
                offset: byte,
                len_bytes,
            });
        }
        if self.rope.char_to_byte(self.rope.byte_to_char(byte)) != byte {
            return Err(DocumentError::NotCharBoundary {
                offset: byte,
                len_bytes,
            });
        }
        Ok(())
    }

    fn check_byte_range(&self, range: &std::ops::Range<usize>) -> Result<(), DocumentError> {
        if range.start > range.end {
            return Err(DocumentError::InvertedRange {
                unit: "byte",
                start: range.start,
                end: range.end,
                len_bytes: self.len_bytes(),
            });
        }
        self.check_byte(range.end)?;
        self.check_byte(range.start)
    }

    fn line_table(&self) -> &LineTable {
        self.line_table
            .get_or_init(|| LineTable::build(self.rope.chunks().map(str::as_bytes)))
    }

    /// Start byte of a line that exists.
    fn line_start(&self, line: usize) -> usize {
        if self.breaks.is_regular() {
            self.rope.line_to_byte(line)
        } else {
            self.line_table()
                .line_start(line)
                .unwrap_or(self.len_bytes())
        }
    }

    /// The line holding `byte` (at most the length).
    fn line_of(&self, byte: usize) -> usize {
        if self.breaks.is_regular() {
            self.rope.byte_to_line(byte)
        } else {
            self.line_table().line_of(byte)
        }
    }

    /// Start byte and content end byte (before the terminator) of `line`.
    fn line_bounds(&self, line: usize) -> Option<(usize, usize)> {
        if line >= self.line_count() {
            return None;
        }
        let start = self.line_start(line);
        let next = if line + 1 < self.line_count() {
            self.line_start(line + 1)
        } else {
            self.len_bytes()
        };
        let mut end = next;
        if end > start && self.rope.byte(end - 1) == b'\n' {
            end -= 1;
            if end > start && self.rope.byte(end - 1) == b'\r' {
                end -= 1;
            }
        } else if end > start && self.rope.byte(end - 1) == b'\r' {
            end -= 1;
        }
        Some((start, end))
    }

    /// Tree-sitter's point for `byte`: rows end only at `\n`, columns in bytes.
    fn ts_point(&self, byte: usize) -> Point {
        if self.breaks.is_regular() {
            let row = self.rope.byte_to_line(byte);
            Point::new(row, byte - self.rope.line_to_byte(row))
        } else {
            let (row, column) = self.line_table().row_col(byte);
            Point::new(row, column)
        }
    }

    fn replace_all(&mut self, text: &str) {
        self.rope = Rope::from_str(text);
        self.breaks = BreakCounts::scan(std::iter::once(text.as_bytes()));
        self.line_table = OnceLock::new();
        // Nothing of the old trees can be reused.
        self.parse_from_scratch();
    }

    /// Replaces a validated byte range, keeping the tree in step.
    fn replace(&mut self, range: std::ops::Range<usize>, text: &str) {
        let start_position = self.ts_point(range.start);
        let old_end_position = self.ts_point(range.end);

        // Line-break bookkeeping: recount a window one byte wider on each
        // side, so `\r\n` pairs formed or broken at the edges are seen.
        let window_start = range.start.saturating_sub(1);
        let before = BreakCounts::scan(rope_chunks(
            &self.rope,
            window_start..(range.end + 1).min(self.len_bytes()),
        ));

        let start_char = self.rope.byte_to_char(range.start);
        let end_char = self.rope.byte_to_char(range.end);
        self.rope.remove(start_char..end_char);
        self.rope.insert(start_char, text);

        let new_end = range.start + text.len();
        let after = BreakCounts::scan(rope_chunks(
            &self.rope,
            window_start..(new_end + 1).min(self.len_bytes()),
        ));
        self.breaks.subtract(before);
        self.breaks.add(after);
        self.line_table = OnceLock::new();

        // Taken out so the parse can read the rest of the document.
        if let Some(mut syntax) = self.syntax.take() {
            syntax.edit(
                &InputEdit {
                    start_byte: range.start,
                    old_end_byte: range.end,
                    new_end_byte: new_end,
                    start_position,
                    old_end_position,
                    new_end_position: advance(start_position, text),
                },
                &*self,
            );
            self.syntax = Some(syntax);
        }
    }

    fn parse_from_scratch(&mut self) {
        self.syntax = SegmentedSyntax::parse(self.language, &*self);
    }
}

/// The point after `text` inserted at `start`.
fn advance(start: Point, text: &str) -> Point {
    match text.bytes().rposition(|byte| byte == b'\n') {
        None => Point::new(start.row, start.column + text.len()),
        Some(last_newline) => {
            let rows = text.bytes().filter(|&byte| byte == b'\n').count();
            Point::new(start.row + rows, text.len() - last_newline - 1)
        }
    }
}

/// The bytes of `range` as a run of slices of the rope's chunks.
fn rope_chunks(rope: &Rope, range: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> {
    let (chunks, chunk_start, _, _) = rope.chunks_at_byte(range.start.min(rope.len_bytes()));
    let mut offset = chunk_start;
    chunks.map_while(move |chunk| {
        let chunk_offset = offset;
        offset += chunk.len();
        if chunk_offset >= range.end {
            return None;
        }
        let from = range.start.saturating_sub(chunk_offset).min(chunk.len());
        let to = (range.end - chunk_offset).min(chunk.len());
        chunk.as_bytes().get(from..to)
    })
}

impl Source for Document {
    fn len_bytes(&self) -> usize {
        self.rope.len_bytes()
    }

    fn chunks_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> {
        rope_chunks(&self.rope, range)
    }

    fn line_col(&self, byte: usize) -> LineCol {
        let byte = byte.min(self.len_bytes());
        let line = self.line_of(byte);
        LineCol {
            line,
            column: byte - self.line_start(line),
        }
    }
}

impl ParseText for Document {
    fn point(&self, byte: usize) -> Point {
        self.ts_point(byte)
    }
}

impl Clone for Document {
    fn clone(&self) -> Document {
        Document {
            rope: self.rope.clone(),
            version: self.version,
            language: self.language,
            syntax: self.syntax.as_ref().and_then(SegmentedSyntax::try_clone),
            breaks: self.breaks,
            line_table: self.line_table.clone(),
        }
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("language", &self.language)
            .field("version", &self.version)
            .field("len_bytes", &self.len_bytes())
            .field("line_count", &self.line_count())
            .finish_non_exhaustive()
    }
}

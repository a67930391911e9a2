//! Read access to source text for the syntax queries, over either a `&str`
//! or a rope, plus the line bookkeeping both need.
//!
//! Lines follow the LSP definition: a line ends at `\n`, `\r\n` or a lone
//! `\r`. Nothing else (form feed, U+2028, NEL, ...) ends a line, even though
//! ropey's default `unicode_lines` feature would count those.

use std::ops::Range;

use super::LineCol;

/// Text that tree-sitter queries and error reports read from.
pub(crate) trait Source {
    /// Length in bytes.
    fn len_bytes(&self) -> usize;

    /// The bytes of `range`, in order, as one or more slices.
    fn chunks_in(&self, range: Range<usize>) -> impl Iterator<Item = &[u8]>;

    /// The 0-based LSP line and byte column of `byte` (clamped to the length).
    fn line_col(&self, byte: usize) -> LineCol;

    /// The text of `range`; invalid UTF-8 (a range cut inside a character)
    /// is replaced rather than rejected, since this only feeds names and
    /// messages.
    fn slice_lossy(&self, range: Range<usize>) -> String {
        let mut bytes = Vec::with_capacity(range.len());
        for chunk in self.chunks_in(range) {
            bytes.extend_from_slice(chunk);
        }
        match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        }
    }

    /// The 0-based *character* column of `byte` on its line, for messages
    /// meant for people (a byte column is confusing next to CJK text).
    fn char_column(&self, byte: usize) -> usize {
        let line_col = self.line_col(byte);
        let line_start = byte.saturating_sub(line_col.column);
        self.slice_lossy(line_start..byte).chars().count()
    }
}

/// Start offsets of every line of a text, built by one scan.
#[derive(Clone, Debug, Default)]
pub(crate) struct LineTable {
    /// Start byte of each LSP line (`\n`, `\r\n`, `\r`); always starts with 0.
    lsp_line_starts: Vec<usize>,
    /// Start byte of each tree-sitter row (only `\n` ends a row).
    row_starts: Vec<usize>,
}

impl LineTable {
    /// Scans `chunks` (the whole text, in order) once.
    pub(crate) fn build<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> LineTable {
        let mut lsp_line_starts = vec![0];
        let mut row_starts = vec![0];
        let mut offset = 0;
        let mut previous_was_cr = false;
        for chunk in chunks {
            for &byte in chunk {
                match byte {
                    b'\n' => {
                        if previous_was_cr {
                            // `\r\n` is one line break: move the start that the
                            // `\r` recorded past the `\n`.
                            if let Some(last) = lsp_line_starts.last_mut() {
                                *last = offset + 1;
                            }
                        } else {
                            lsp_line_starts.push(offset + 1);
                        }
                        row_starts.push(offset + 1);
                    }
                    b'\r' => lsp_line_starts.push(offset + 1),
                    _ => {}
                }
                previous_was_cr = byte == b'\r';
                offset += 1;
            }
        }
        LineTable {
            lsp_line_starts,
            row_starts,
        }
    }

    /// Number of LSP lines (a text ending in a line break has a last, empty line).
    pub(crate) fn line_count(&self) -> usize {
        self.lsp_line_starts.len()
    }

    /// Start byte of LSP line `line`, if it exists.
    pub(crate) fn line_start(&self, line: usize) -> Option<usize> {
        self.lsp_line_starts.get(line).copied()
    }

    /// The LSP line holding `byte`.
    pub(crate) fn line_of(&self, byte: usize) -> usize {
        self.lsp_line_starts
            .partition_point(|&start| start <= byte)
            .saturating_sub(1)
    }

    /// Tree-sitter row and byte column of `byte`.
    pub(crate) fn row_col(&self, byte: usize) -> (usize, usize) {
        let row = self
            .row_starts
            .partition_point(|&start| start <= byte)
            .saturating_sub(1);
        let row_start = self.row_starts.get(row).copied().unwrap_or(0);
        (row, byte - row_start)
    }
}

/// A `&str` with its line table.
pub(crate) struct StrSource<'a> {
    text: &'a str,
    lines: LineTable,
}

impl<'a> StrSource<'a> {
    pub(crate) fn new(text: &'a str) -> StrSource<'a> {
        StrSource {
            text,
            lines: LineTable::build(std::iter::once(text.as_bytes())),
        }
    }
}

impl Source for StrSource<'_> {
    fn len_bytes(&self) -> usize {
        self.text.len()
    }

    fn chunks_in(&self, range: Range<usize>) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.text.as_bytes().get(range).unwrap_or_default())
    }

    fn line_col(&self, byte: usize) -> LineCol {
        let byte = byte.min(self.text.len());
        let line = self.lines.line_of(byte);
        let start = self.lines.line_start(line).unwrap_or(0);
        LineCol {
            line,
            column: byte - start,
        }
    }
}

/// Counts of the characters that decide whether ropey's line index agrees
/// with LSP lines and tree-sitter rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BreakCounts {
    /// Characters ropey treats as line breaks but LSP does not:
    /// VT, FF, NEL (U+0085), LS (U+2028), PS (U+2029).
    pub(crate) exotic: usize,
    /// `\r` bytes.
    pub(crate) carriage_returns: usize,
    /// `\r\n` pairs.
    pub(crate) crlf_pairs: usize,
}

impl BreakCounts {
    /// When true, ropey's lines, LSP lines and tree-sitter rows all agree
    /// (only `\n` and `\r\n` end lines), so ropey's O(log n) index can be used.
    pub(crate) fn is_regular(&self) -> bool {
        self.exotic == 0 && self.carriage_returns == self.crlf_pairs
    }

    /// Counts over `chunks`, taken as one contiguous text.
    pub(crate) fn scan<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> BreakCounts {
        let mut counts = BreakCounts::default();
        // The last two bytes seen, to recognise sequences split across chunks.
        let mut previous = [0u8; 2];
        for chunk in chunks {
            for &byte in chunk {
                match byte {
                    0x0B | 0x0C => counts.exotic += 1,
                    b'\r' => counts.carriage_returns += 1,
                    b'\n' if previous[1] == b'\r' => counts.crlf_pairs += 1,
                    0x85 if previous[1] == 0xC2 => counts.exotic += 1,
                    0xA8 | 0xA9 if previous == [0xE2, 0x80] => counts.exotic += 1,
                    _ => {}
                }
                previous = [previous[1], byte];
            }
        }
        counts
    }

    pub(crate) fn add(&mut self, other: BreakCounts) {
        self.exotic += other.exotic;
        self.carriage_returns += other.carriage_returns;
        self.crlf_pairs += other.crlf_pairs;
    }

    pub(crate) fn subtract(&mut self, other: BreakCounts) {
        self.exotic = self.exotic.saturating_sub(other.exotic);
        self.carriage_returns = self.carriage_returns.saturating_sub(other.carriage_returns);
        self.crlf_pairs = self.crlf_pairs.saturating_sub(other.crlf_pairs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_table_follows_lsp_line_breaks() {
        let table = LineTable::build(["a\r", "\nb\rc\n", "d"].iter().map(|s| s.as_bytes()));
        assert_eq!(table.lsp_line_starts, vec![0, 3, 5, 7]);
        assert_eq!(table.row_starts, vec![0, 3, 7]);
        assert_eq!(table.line_of(2), 0, "between \\r and \\n stays on the line");
        assert_eq!(table.row_col(6), (1, 3));
    }

    #[test]
    fn break_counts_see_sequences_split_across_chunks() {
        let counts = BreakCounts::scan(
            ["x\r", "\n\u{2028}\u{c}", "\r"]
                .iter()
                .map(|s| s.as_bytes()),
        );
        assert_eq!(
            counts,
            BreakCounts {
                exotic: 2,
                carriage_returns: 2,
                crlf_pairs: 1
            }
        );
        assert!(!counts.is_regular());
        assert!(BreakCounts::scan(["a\r\nb\n".as_bytes()].into_iter()).is_regular());
    }
}

//! A document's syntax as several tree-sitter trees, one per *segment*: a
//! run of whole top-level nodes (items, statements, sections).
//!
//! Why not one tree: tree-sitter never reuses a "fragile" node (one reduced
//! on a lookahead with several parse actions), and the top-level repetition
//! of the grammars we ship is fragile — in tree-sitter-rust every
//! `source_file_repeat1` node is. An incremental reparse of one tree
//! therefore re-shifts every top-level item of the file and rebalances the
//! repetition: about 70 ms per keystroke in a 10 MB Rust file, wherever the
//! edit is. Segments of about [`SEGMENT_TARGET_BYTES`] bound that work by the
//! segment's size. Each segment is parsed with `included_ranges`, so its
//! nodes carry whole-document offsets and points and every query runs on it
//! unchanged.
//!
//! Cuts are made only where a parse ended one top-level node and began the
//! next at the start of a line, neither containing an error nor joining the
//! text before it (see [`continues_before`]), so a valid file parses into
//! the same top-level nodes as one tree would. Edits keep that true:
//! - an edit touching a cut merges the segments on both sides;
//! - an edit that leaves a segment with an open edge ([`edge_is_open`]: an
//!   unclosed bracket, a string or comment that may run on, a first line
//!   that continues the previous segment) merges it with its neighbours and
//!   reparses, until the edge is clean or the file's end is reached: the
//!   reach a single tree's reparse would have;
//! - a segment grown past [`SPLIT_FACTOR`] times the target is cut again.
//!
//! Whether an error may run on past a cut is judged from the error's shape
//! (tree-sitter does not expose how far its lexer looked ahead), so it is a
//! heuristic; the property tests below check it against one whole tree for
//! Rust, Python, Go, JavaScript and Markdown after random edits with
//! brackets, quotes and comment markers.

use std::ops::Range;

use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

use super::Language;
use super::source::Source;

/// Preferred segment size: a reparse re-shifts the top-level nodes of one
/// segment, about 0.5 ms for 64 KiB of Rust.
pub(crate) const SEGMENT_TARGET_BYTES: usize = 64 * 1024;

/// A segment is cut again once it is this many times the target.
const SPLIT_FACTOR: usize = 4;

/// The text being parsed: a [`Source`] that also knows tree-sitter points.
pub(crate) trait ParseText: Source {
    /// Tree-sitter's point: rows end only at `\n`, columns count bytes.
    fn point(&self, byte: usize) -> Point;
}

/// The bytes of `range`, one by one.
fn bytes_in(text: &impl Source, range: Range<usize>) -> impl Iterator<Item = u8> + '_ {
    text.chunks_in(range).flatten().copied()
}

#[derive(Clone)]
struct Segment {
    /// Always at the start of a row; the segment ends where the next begins.
    start: usize,
    tree: Tree,
    /// Cutting it failed (a piece came out with an open edge); not retried
    /// until the segment is merged or its errors are fixed.
    split_failed: bool,
}

pub(crate) struct SegmentedSyntax {
    language: Language,
    parser: Parser,
    /// In document order, covering it; never empty.
    segments: Vec<Segment>,
    target: usize,
}

impl SegmentedSyntax {
    /// Parses the whole text, then cuts it into segments. `None` only if
    /// tree-sitter gives up, which it does when cancelled.
    /// `None` for plain text.
    pub(crate) fn parse(language: Language, text: &impl ParseText) -> Option<Self> {
        Self::parse_with_target(language, text, SEGMENT_TARGET_BYTES)
    }

    fn parse_with_target(language: Language, text: &impl ParseText, target: usize) -> Option<Self> {
        let mut syntax = SegmentedSyntax {
            language,
            parser: language.parser()?,
            segments: Vec::new(),
            target: target.max(1),
        };
        let tree = syntax.parse_range(0..text.len_bytes(), None, text, true)?;
        syntax.segments.push(Segment {
            start: 0,
            tree,
            split_failed: false,
        });
        syntax.split_if_large(0, text);
        Some(syntax)
    }

    /// A copy sharing the trees (tree-sitter trees are reference counted).
    pub(crate) fn try_clone(&self) -> Option<Self> {
        Some(SegmentedSyntax {
            language: self.language,
            parser: self.language.parser()?,
            segments: self.segments.clone(),
            target: self.target,
        })
    }

    /// Every tree, in document order.
    pub(crate) fn trees(&self) -> impl Iterator<Item = &Tree> {
        self.segments.iter().map(|segment| &segment.tree)
    }

    /// The trees whose segment intersects or touches `range`.
    pub(crate) fn trees_touching(&self, range: Range<usize>) -> impl Iterator<Item = &Tree> {
        let first = self.first_ending_at_or_after(range.start);
        self.segments[first..]
            .iter()
            .take_while(move |segment| segment.start <= range.end)
            .map(|segment| &segment.tree)
    }

    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Applies an edit already made to `text` (post-edit), reparsing the
    /// segment it falls in.
    pub(crate) fn edit(&mut self, edit: &InputEdit, text: &impl ParseText) {
        let first = self.first_ending_at_or_after(edit.start_byte);
        let last = self
            .segments
            .partition_point(|segment| segment.start <= edit.old_end_byte)
            .saturating_sub(1)
            .max(first);

        self.segments[first].tree.edit(edit);
        if last > first {
            self.segments.drain(first + 1..=last);
            self.segments[first].split_failed = false;
        }
        // Later segments lie wholly after the edit (one touching a cut
        // merged it above): they only shift.
        for segment in &mut self.segments[first + 1..] {
            segment.tree.edit(edit);
            segment.start = edit.new_end_byte + (segment.start - edit.old_end_byte);
        }

        let mut index = first;
        let mut merge_step = 1;
        loop {
            let had_error = self.segments[index].tree.root_node().has_error();
            self.reparse_segment(index, text);
            if had_error && !self.segments[index].tree.root_node().has_error() {
                // Fixed: worth trying to cut again.
                self.segments[index].split_failed = false;
            }
            if self.segments.len() == 1 {
                break;
            }
            if index + 1 < self.segments.len() && self.open_edge(index, Edge::End, text) {
                // Twice as many each round: an error that reaches to the end
                // costs a few reparses, not one per segment.
                let through = (index + merge_step).min(self.segments.len() - 1);
                self.segments.drain(index + 1..=through);
                self.segments[index].split_failed = false;
                merge_step *= 2;
                continue;
            }
            if index > 0 && self.open_edge(index, Edge::Start, text) {
                self.segments.remove(index);
                index -= 1;
                self.segments[index].split_failed = false;
                continue;
            }
            break;
        }
        self.split_if_large(index, text);
    }

    /// The index of the first segment whose end is at or after `byte`.
    fn first_ending_at_or_after(&self, byte: usize) -> usize {
        // Segment i ends where i + 1 starts; the last one ends at the end.
        self.segments
            .partition_point(|segment| segment.start < byte)
            .saturating_sub(1)
    }

    fn segment_end(&self, index: usize, text: &impl ParseText) -> usize {
        self.segments
            .get(index + 1)
            .map_or(text.len_bytes(), |next| next.start)
    }

    /// Reparses segment `index` over its current extent, reusing its tree.
    /// If tree-sitter gives up (it only does when cancelled), the edited
    /// old tree is kept: stale, but with correct offsets.
    fn reparse_segment(&mut self, index: usize, text: &impl ParseText) {
        let end = self.segment_end(index, text);
        let whole = self.segments.len() == 1;
        let (start, old) = (
            self.segments[index].start,
            self.segments[index].tree.clone(),
        );
        if let Some(tree) = self.parse_range(start..end, Some(&old), text, whole) {
            self.segments[index].tree = tree;
        }
    }

    /// Parses `range` alone, or the whole text when `whole` (no included
    /// ranges: tree-sitter's default, which also covers text appended later).
    fn parse_range(
        &mut self,
        range: Range<usize>,
        old: Option<&Tree>,
        text: &impl ParseText,
        whole: bool,
    ) -> Option<Tree> {
        let ranges = if whole {
            Vec::new()
        } else {
            vec![tree_sitter::Range {
                start_byte: range.start,
                end_byte: range.end,
                start_point: text.point(range.start),
                end_point: text.point(range.end),
            }]
        };
        // Only fails for unordered or overlapping ranges, which one range
        // cannot be.
        self.parser.set_included_ranges(&ranges).ok()?;
        self.parser.parse_with_options(
            &mut |byte, _point| {
                text.chunks_in(byte..text.len_bytes())
                    .next()
                    .unwrap_or_default()
            },
            old,
            None,
        )
    }

    /// Cuts segment `index` into pieces of about the target size if it has
    /// grown past [`SPLIT_FACTOR`] times that, reusing its tree. Keeps it
    /// whole if any piece comes out with an error on its edge.
    fn split_if_large(&mut self, index: usize, text: &impl ParseText) {
        let end = self.segment_end(index, text);
        let segment = &self.segments[index];
        if segment.split_failed || end - segment.start <= self.target * SPLIT_FACTOR {
            return;
        }
        let cuts = cut_points(
            self.language,
            text,
            &segment.tree,
            segment.start,
            end,
            self.target,
        );
        if cuts.is_empty() {
            return;
        }
        let old = segment.tree.clone();
        let mut starts = vec![segment.start];
        starts.extend(cuts);
        let mut pieces = Vec::with_capacity(starts.len());
        for (position, &start) in starts.iter().enumerate() {
            let piece_end = starts.get(position + 1).copied().unwrap_or(end);
            let tree = self.parse_range(start..piece_end, Some(&old), text, false);
            let healthy = tree.as_ref().is_some_and(|tree| {
                ((position == 0 && index == 0)
                    || !edge_is_open(self.language, tree, Edge::Start, text))
                    && ((piece_end == end && index + 1 == self.segments.len())
                        || !edge_is_open(self.language, tree, Edge::End, text))
            });
            match tree {
                Some(tree) if healthy => pieces.push(Segment {
                    start,
                    tree,
                    split_failed: false,
                }),
                _ => {
                    self.segments[index].split_failed = true;
                    return;
                }
            }
        }
        self.segments.splice(index..=index, pieces);
    }
}

/// Where a piece of `tree` (spanning `start..end`) may be cut: the start of
/// a top-level node at column 0, the node and the one before it free of
/// errors, the node not one that would join the text before it (see
/// [`continues_before`]), every piece at least `target` bytes.
fn cut_points(
    language: Language,
    text: &impl ParseText,
    tree: &Tree,
    start: usize,
    end: usize,
    target: usize,
) -> Vec<usize> {
    let root = tree.root_node();
    let mut cuts = Vec::new();
    let mut piece_start = start;
    let mut cursor = root.walk();
    let mut previous: Option<Node<'_>> = None;
    for child in root.children(&mut cursor) {
        let at = child.start_byte();
        if let Some(before) = previous
            && at - piece_start >= target
            && end - at >= target
            && child.start_position().column == 0
            && !child.kind().contains("comment")
            && !child.has_error()
            && !before.has_error()
            && before.end_byte() <= at
            && !continues_before(language, child, text)
        {
            cuts.push(at);
            piece_start = at;
        }
        previous = Some(child);
    }
    cuts
}

#[derive(Clone, Copy)]
enum Edge {
    Start,
    End,
}

impl SegmentedSyntax {
    fn open_edge(&self, index: usize, edge: Edge, text: &impl ParseText) -> bool {
        edge_is_open(self.language, &self.segments[index].tree, edge, text)
    }
}

/// Whether a segment's tree shows, at one edge, that the text on the other
/// side of the cut may belong to it.
///
/// At the end: an error or missing node on its last path (an unclosed
/// bracket), an error that may be a string or comment left open (the whole
/// parse's lexer would have looked for the closer up to the end of the
/// file; in JavaScript and TypeScript any error), or, in Markdown, a code
/// fence left open.
///
/// At the start: an error on its first path, or a first node that would
/// continue the text before the cut (see [`continues_before`]).
fn edge_is_open(language: Language, tree: &Tree, edge: Edge, text: &impl ParseText) -> bool {
    let root = tree.root_node();
    if error_on_path(root, edge) {
        return true;
    }
    match edge {
        Edge::End => match language {
            Language::Markdown => open_fence_on_end_path(root),
            // `/` starts a comment, a regular expression or a division, so
            // an unterminated `/*` can leave its error anywhere after it:
            // any error keeps the cut open.
            Language::JavaScript | Language::TypeScript | Language::Tsx => root.has_error(),
            _ => has_unterminated_opener(root, text),
        },
        Edge::Start => {
            let Some(first) = root.child(0) else {
                return false;
            };
            let mut cursor = root.walk();
            let first_code = root
                .children(&mut cursor)
                .find(|node| !node.kind().contains("comment"));
            continues_before(language, first, text)
                || first_code.is_some_and(|node| continues_before(language, node, text))
        }
    }
}

/// Whether a top-level `node` would, in a whole parse, join the text before
/// it: an indented line (Python puts it in the previous block); in
/// JavaScript and TypeScript a comment (a statement ended by automatic
/// semicolon insertion takes the comments after it) or a line starting with
/// a token that continues the previous statement; in Markdown anything but
/// a level-1 section.
fn continues_before(language: Language, node: Node<'_>, text: &impl ParseText) -> bool {
    starts_indented(node, text)
        || match language {
            Language::JavaScript | Language::TypeScript | Language::Tsx => {
                node.kind().contains("comment")
                    || matches!(
                        bytes_in(text, node.start_byte()..node.start_byte() + 1).next(),
                        Some(b'(' | b'[' | b'`' | b'+' | b'-' | b'/' | b'.')
                    )
            }
            Language::Markdown => !is_markdown_h1_section(node),
            _ => false,
        }
}

/// How far before an error node [`has_unterminated_opener`] looks.
const OPENER_WINDOW_BYTES: usize = 8;

/// An error node holding (or just preceded by) a quote, a backtick or a `/`
/// (a comment or a regular expression), or a missing quote or comment closer: maybe a token
/// whose closer was never found, which a whole parse would have looked for
/// up to the end of the file. Errors of other kinds (a stray `}`) stay local.
fn has_unterminated_opener(root: Node<'_>, text: &impl ParseText) -> bool {
    let mut stack = vec![root];
    let mut cursor = root.walk();
    while let Some(node) = stack.pop() {
        if node.is_missing()
            && ["\"", "'", "`", "*/"]
                .iter()
                .any(|closer| node.kind().contains(closer))
        {
            return true;
        }
        if node.is_error() {
            // A few bytes before it too: JavaScript lexes an unterminated
            // `/*` as `/` and `*`, leaving the error on the next token.
            let from = node.start_byte().saturating_sub(OPENER_WINDOW_BYTES);
            if bytes_in(text, from..node.end_byte())
                .any(|byte| matches!(byte, b'"' | b'\'' | b'`' | b'/'))
            {
                return true;
            }
            // Nested errors lie inside the bytes just scanned.
            continue;
        }
        if node.has_error() {
            stack.extend(node.children(&mut cursor));
        }
    }
    false
}

/// Whether `node` starts after only spaces and tabs on an indented row.
fn starts_indented(node: Node<'_>, text: &impl ParseText) -> bool {
    let column = node.start_position().column;
    let row_start = node.start_byte() - column;
    column > 0
        && bytes_in(text, row_start..node.start_byte()).all(|byte| matches!(byte, b' ' | b'\t'))
}

fn is_markdown_h1_section(node: Node<'_>) -> bool {
    node.kind() == "section"
        && node.child(0).is_some_and(|heading| {
            heading.kind() == "atx_heading"
                && heading
                    .child(0)
                    .is_some_and(|marker| marker.kind() == "atx_h1_marker")
        })
}

/// A fenced code block on the last path without its closing fence: the
/// fence pairing of everything after the cut depends on it.
fn open_fence_on_end_path(root: Node<'_>) -> bool {
    let mut node = root;
    while let Some(last) = node.child(node.child_count().saturating_sub(1)) {
        if last.kind() == "fenced_code_block" {
            let mut cursor = last.walk();
            return last
                .children(&mut cursor)
                .filter(|child| child.kind() == "fenced_code_block_delimiter")
                .count()
                < 2;
        }
        node = last;
    }
    false
}

/// Whether an error or missing node sits on the first (last) path below
/// `node`, comments aside: what an unclosed bracket, string or comment
/// leaves at the edge where the text ran out.
fn error_on_path(mut node: Node<'_>, edge: Edge) -> bool {
    loop {
        if node.is_error() || node.is_missing() {
            return true;
        }
        if !node.has_error() {
            return false;
        }
        // Comments (extras) can sit between the error and the edge; an
        // ERROR node at the top can be an extra itself.
        let mut cursor = node.walk();
        let mut children = node
            .children(&mut cursor)
            .filter(|child| !child.is_extra() || child.has_error());
        let child = match edge {
            Edge::Start => children.next(),
            Edge::End => children.last(),
        };
        match child {
            Some(child) => node = child,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    struct Text(String);

    impl Source for Text {
        fn len_bytes(&self) -> usize {
            self.0.len()
        }

        fn chunks_in(&self, range: Range<usize>) -> impl Iterator<Item = &[u8]> {
            std::iter::once(self.0.as_bytes().get(range).unwrap_or_default())
        }

        fn line_col(&self, byte: usize) -> crate::syntax::LineCol {
            crate::syntax::source::StrSource::new(&self.0).line_col(byte)
        }
    }

    impl ParseText for Text {
        fn point(&self, byte: usize) -> Point {
            let before = &self.0.as_bytes()[..byte];
            let row = before.iter().filter(|&&b| b == b'\n').count();
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            Point::new(row, byte - line_start)
        }
    }

    /// Replaces `range` of `text` and tells the syntax, as `Document` does.
    fn replace(syntax: &mut SegmentedSyntax, text: &mut Text, range: Range<usize>, with: &str) {
        let start_position = text.point(range.start);
        let old_end_position = text.point(range.end);
        text.0.replace_range(range.clone(), with);
        let new_end = range.start + with.len();
        let edit = InputEdit {
            start_byte: range.start,
            old_end_byte: range.end,
            new_end_byte: new_end,
            start_position,
            old_end_position,
            new_end_position: text.point(new_end),
        };
        syntax.edit(&edit, text);
    }

    /// Every top-level node of the trees but comments: start and shape.
    /// Comments are left out because which node a comment after a
    /// JavaScript statement without `;` lands in differs between a fresh
    /// and an incremental parse even with one tree.
    fn top_level<'a>(trees: impl Iterator<Item = &'a Tree>) -> Vec<(usize, String)> {
        let mut nodes = Vec::new();
        for tree in trees {
            let root = tree.root_node();
            let mut cursor = root.walk();
            for child in root.children(&mut cursor) {
                if !child.kind().contains("comment") {
                    let shape = child.to_sexp().replace(" (comment)", "");
                    nodes.push((child.start_byte(), shape));
                }
            }
        }
        nodes
    }

    /// The segments agree with one tree of the whole text: same top-level
    /// nodes when it is valid, some error when it is not; cuts at row starts
    /// with the right points.
    fn check(syntax: &SegmentedSyntax, text: &Text, language: Language) -> Result<(), String> {
        let mut parser = language.parser().unwrap();
        let whole = parser.parse(&text.0, None).unwrap();
        for (index, segment) in syntax.segments.iter().enumerate() {
            if index > 0 && text.point(segment.start).column != 0 {
                return Err(format!("segment {index} starts mid-row"));
            }
            if index > 0 && segment.start <= syntax.segments[index - 1].start {
                return Err(format!("segment {index} out of order"));
            }
        }
        let segmented_error = syntax.trees().any(|tree| tree.root_node().has_error());
        if whole.root_node().has_error() {
            if !segmented_error {
                return Err("the whole text has an error the segments miss".into());
            }
        } else {
            if segmented_error {
                let starts: Vec<(usize, bool)> = syntax
                    .segments
                    .iter()
                    .map(|segment| (segment.start, segment.tree.root_node().has_error()))
                    .collect();
                return Err(format!(
                    "valid text, but a segment has an error: {starts:?}"
                ));
            }
            let expected = top_level(std::iter::once(&whole));
            let actual = top_level(syntax.trees());
            if expected != actual {
                return Err(format!(
                    "top-level nodes differ:\n  whole:     {expected:?}\n  segmented: {actual:?}"
                ));
            }
        }
        Ok(())
    }

    fn rust_source(items: usize) -> String {
        (0..items)
            .map(|i| {
                format!("/// Item {i}.\nfn item_{i}(a: i64) -> i64 {{\n    let s = \"{i}\";\n    a + {i}\n}}\n\n")
            })
            .collect()
    }

    fn python_source(items: usize) -> String {
        (0..items)
            .map(|i| {
                format!("# Item {i}.\ndef item_{i}(a):\n    s = \"{i}\"\n    return a + {i}\n\n")
            })
            .collect()
    }

    fn markdown_source(items: usize) -> String {
        (0..items)
            .map(|i| format!("# Part {i}\n\nText {i}.\n\n```\n# not a heading {i}\n```\n\n"))
            .collect()
    }

    fn javascript_source(items: usize) -> String {
        (0..items)
            .map(|i| format!("// Item {i}.\nfunction item{i}(a) {{\n  const s = `{i}`;\n  return a + {i}\n}}\nlet v{i} = item{i}(1)\n\n"))
            .collect()
    }

    fn go_source(items: usize) -> String {
        let mut text = String::from("package main\n\n");
        for i in 0..items {
            text.push_str(&format!(
                "// Item {i}.\nfunc item{i}(a int) int {{\n\treturn a + {i}\n}}\n\n"
            ));
        }
        text
    }

    #[test]
    fn a_large_text_is_cut_at_top_level_nodes() {
        let text = Text(rust_source(200));
        let syntax = SegmentedSyntax::parse_with_target(Language::Rust, &text, 1024).unwrap();
        assert!(
            syntax.segment_count() > 10,
            "{} segments",
            syntax.segment_count()
        );
        check(&syntax, &text, Language::Rust).unwrap();
    }

    #[test]
    fn a_small_text_is_one_tree_of_the_whole_document() {
        let text = Text(rust_source(3));
        let syntax = SegmentedSyntax::parse(Language::Rust, &text).unwrap();
        assert_eq!(syntax.segment_count(), 1);
        // No included ranges: tree-sitter's default, the whole input.
        let ranges = syntax.trees().next().unwrap().included_ranges();
        assert_eq!(
            (ranges[0].start_byte, ranges[0].end_byte),
            (0, u32::MAX as usize)
        );
    }

    #[test]
    fn an_unclosed_comment_reaches_past_cuts_and_closing_it_cuts_again() {
        let mut text = Text(rust_source(200));
        let language = Language::Rust;
        let mut syntax = SegmentedSyntax::parse_with_target(language, &text, 1024).unwrap();
        let before = syntax.segment_count();

        // Open a block comment early: everything after it is comment.
        let at = text.0.find("fn item_10(").unwrap();
        replace(&mut syntax, &mut text, at..at, "/* ");
        check(&syntax, &text, language).unwrap();
        assert!(
            syntax.segment_count() < before / 2,
            "{before} -> {}",
            syntax.segment_count()
        );

        // Close it: valid again, and cut again.
        let close = text.0.find("fn item_12(").unwrap();
        replace(&mut syntax, &mut text, close..close, "*/ ");
        check(&syntax, &text, language).unwrap();
        assert!(
            syntax.segment_count() > before / 2,
            "{before} -> {}",
            syntax.segment_count()
        );
    }

    #[test]
    fn an_edit_on_a_cut_merges_its_two_segments() {
        let mut text = Text(rust_source(200));
        let mut syntax = SegmentedSyntax::parse_with_target(Language::Rust, &text, 1024).unwrap();
        let before = syntax.segment_count();
        let cut = syntax.segments[3].start;
        replace(&mut syntax, &mut text, cut..cut, "const X: i64 = 1;\n");
        assert_eq!(syntax.segment_count(), before - 1);
        check(&syntax, &text, Language::Rust).unwrap();
    }

    const SNIPPETS: &[&str] = &[
        "x",
        " ",
        "\n",
        "{",
        "}",
        "(",
        ")",
        "\"",
        "/*",
        "*/",
        "#",
        "//",
        "'",
        ":",
        "    ",
        "fn extra() {}\n",
        "def extra():\n    pass\n",
        "\n# Heading\n",
        "```\n",
        "\n\n",
        "`",
        "\n(x)",
        "\n[1]",
        "\n-1",
        ";",
    ];

    fn edits() -> impl Strategy<Value = Vec<(usize, usize, usize)>> {
        // (position per mille, deleted length, snippet index)
        prop::collection::vec((0usize..=1000, 0usize..12, 0..SNIPPETS.len() + 4), 1..25)
    }

    fn run_edits(
        language: Language,
        source: String,
        edits: Vec<(usize, usize, usize)>,
    ) -> Result<(), TestCaseError> {
        let mut text = Text(source);
        let mut syntax = SegmentedSyntax::parse_with_target(language, &text, 96).unwrap();
        check(&syntax, &text, language).map_err(TestCaseError::fail)?;
        for (per_mille, delete, snippet) in edits {
            let at = text.0.len() * per_mille / 1000;
            let end = (at + delete).min(text.0.len());
            // Indices past the pool delete without inserting.
            let with = SNIPPETS.get(snippet).copied().unwrap_or("");
            replace(&mut syntax, &mut text, at..end, with);
            check(&syntax, &text, language)
                .map_err(|error| TestCaseError::fail(format!("{error}\ntext:\n{}", text.0)))?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn rust_segments_agree_with_one_tree(edits in edits()) {
            run_edits(Language::Rust, rust_source(12), edits)?;
        }

        #[test]
        fn python_segments_agree_with_one_tree(edits in edits()) {
            run_edits(Language::Python, python_source(12), edits)?;
        }

        #[test]
        fn markdown_segments_agree_with_one_tree(edits in edits()) {
            run_edits(Language::Markdown, markdown_source(12), edits)?;
        }

        #[test]
        fn javascript_segments_agree_with_one_tree(edits in edits()) {
            run_edits(Language::JavaScript, javascript_source(12), edits)?;
        }

        #[test]
        fn go_segments_agree_with_one_tree(edits in edits()) {
            run_edits(Language::Go, go_source(12), edits)?;
        }
    }
}

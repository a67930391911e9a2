//! `Document`: position encodings, edits, incremental reparsing.

// Helpers outside `#[test]` functions unwrap too; a failure is the test failing.
#![allow(clippy::unwrap_used)]

use expect_test::{Expect, expect};
use proptest::prelude::*;
use redline_core::document::{Document, DocumentError, Position, PositionEncoding, Range};
use redline_core::syntax::Language;

use PositionEncoding::{Utf8, Utf16, Utf32};

/// `byte` of `text` is at `line` with the given character offsets in UTF-8,
/// UTF-16 and UTF-32; checks both directions.
fn check_position(text: &str, byte: usize, line: u32, utf8: u32, utf16: u32, utf32: u32) {
    let document = Document::new(text, Language::PlainText, 0);
    for (encoding, character) in [(Utf8, utf8), (Utf16, utf16), (Utf32, utf32)] {
        let position = Position::new(line, character);
        assert_eq!(
            document.byte_to_position(byte, encoding).unwrap(),
            position,
            "byte {byte} of {text:?} in {encoding:?}"
        );
        assert_eq!(
            document.position_to_byte(position, encoding).unwrap(),
            byte,
            "{position:?} of {text:?} in {encoding:?}"
        );
    }
}

#[test]
fn positions_in_ascii() {
    let text = "hello\nworld";
    check_position(text, 0, 0, 0, 0, 0);
    check_position(text, 5, 0, 5, 5, 5);
    check_position(text, 6, 1, 0, 0, 0);
    check_position(text, 11, 1, 5, 5, 5);
}

#[test]
fn positions_with_accents() {
    // é and ï are 2 bytes, 1 UTF-16 unit, 1 char.
    let text = "café\nnaïve";
    check_position(text, 3, 0, 3, 3, 3);
    check_position(text, 5, 0, 5, 4, 4);
    check_position(text, 10, 1, 4, 3, 3);
    check_position(text, 12, 1, 6, 5, 5);
}

#[test]
fn positions_with_cjk() {
    // Each of 日本語 is 3 bytes, 1 UTF-16 unit, 1 char.
    let text = "日本語\nテキスト";
    check_position(text, 3, 0, 3, 1, 1);
    check_position(text, 9, 0, 9, 3, 3);
    check_position(text, 10, 1, 0, 0, 0);
    check_position(text, 16, 1, 6, 2, 2);
}

#[test]
fn positions_with_emoji() {
    // 😀 is 4 bytes, 2 UTF-16 units (a surrogate pair), 1 char.
    let text = "a😀b\n😀😀";
    check_position(text, 1, 0, 1, 1, 1);
    check_position(text, 5, 0, 5, 3, 2);
    check_position(text, 6, 0, 6, 4, 3);
    check_position(text, 11, 1, 4, 2, 1);
    check_position(text, 15, 1, 8, 4, 2);
}

#[test]
fn positions_with_crlf() {
    let text = "ab\r\ncd\r\n";
    check_position(text, 2, 0, 2, 2, 2);
    check_position(text, 4, 1, 0, 0, 0);
    check_position(text, 6, 1, 2, 2, 2);
    check_position(text, 8, 2, 0, 0, 0);
}

#[test]
fn a_lone_carriage_return_ends_a_line() {
    let text = "a\rb\nc";
    check_position(text, 2, 1, 0, 0, 0);
    check_position(text, 4, 2, 0, 0, 0);
    let document = Document::new(text, Language::PlainText, 0);
    assert_eq!(document.line_count(), 3);
}

#[test]
fn unicode_line_separators_do_not_end_lines() {
    // LSP only knows \n, \r\n and \r; U+2028 (3 bytes, 1 unit) and form
    // feed are ordinary characters even though ropey counts them as breaks.
    let text = "a\u{2028}b\u{c}c\nd";
    check_position(text, 4, 0, 4, 2, 2);
    check_position(text, 6, 0, 6, 4, 4);
    check_position(text, 8, 1, 0, 0, 0);
    let document = Document::new(text, Language::PlainText, 0);
    assert_eq!(document.line_count(), 2);
    assert_eq!(document.line_text(0).as_deref(), Some("a\u{2028}b\u{c}c"));
}

/// `position` of `text` in `encoding` resolves to `byte` (clamped or snapped).
fn check_lenient(text: &str, position: Position, encoding: PositionEncoding, byte: usize) {
    let document = Document::new(text, Language::PlainText, 0);
    assert_eq!(
        document.position_to_byte(position, encoding).unwrap(),
        byte,
        "{position:?} of {text:?} in {encoding:?}"
    );
}

#[test]
fn a_character_beyond_the_line_end_clamps_before_the_terminator() {
    check_lenient("ab\ncd", Position::new(0, 99), Utf16, 2);
    check_lenient("ab\r\ncd", Position::new(0, 3), Utf16, 2);
    check_lenient("ab\r\ncd", Position::new(0, 3), Utf8, 2);
    check_lenient("ab\r\ncd", Position::new(1, 99), Utf32, 6);
    check_lenient("😀\n", Position::new(0, 7), Utf8, 4);
    check_lenient("", Position::new(0, 5), Utf16, 0);
}

#[test]
fn a_position_inside_a_character_snaps_to_its_start() {
    // Between the two UTF-16 halves of 😀.
    check_lenient("a😀b", Position::new(0, 2), Utf16, 1);
    // Inside the UTF-8 bytes of é and 😀.
    check_lenient("café", Position::new(0, 4), Utf8, 3);
    check_lenient("a😀b", Position::new(0, 3), Utf8, 1);
}

fn check_error(result: Result<impl std::fmt::Debug, DocumentError>, expect: Expect) {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => expect.assert_eq(&error.to_string()),
    }
}

#[test]
fn errors_name_the_position_and_the_document_size() {
    let mut document = Document::new("a😀\nb\n", Language::PlainText, 1);
    check_error(
        document.position_to_byte(Position::new(3, 0), Utf16),
        expect!["line 3 is beyond the end of the document (3 lines, 8 bytes; lines count from 0)"],
    );
    check_error(
        document.byte_to_position(9, Utf16),
        expect!["byte offset 9 is beyond the end of the document (8 bytes)"],
    );
    check_error(
        document.byte_to_position(2, Utf16),
        expect!["byte offset 2 is inside a multi-byte character (document has 8 bytes)"],
    );
    #[allow(clippy::reversed_empty_ranges)] // an inverted range is refused, not a panic
    let inverted = 3..1;
    check_error(
        document.edit_bytes(inverted, "x"),
        expect!["byte range 3..1 ends before it starts (document has 8 bytes)"],
    );
    check_error(
        document.edit_chars(0..9, "x"),
        expect!["char offset 9 is beyond the end of the document (5 chars, 8 bytes)"],
    );
    check_error(
        document.apply_change(
            Some(Range::new(Position::new(1, 1), Position::new(0, 0))),
            "x",
            Utf16,
            2,
        ),
        expect![
            "range 1:1..0:0 (line:character) ends before it starts (document has 3 lines, 8 bytes)"
        ],
    );
    check_error(
        document.apply_change(None, "x", Utf16, 0),
        expect!["change for version 0 arrived after version 1; changes must be applied in order"],
    );
    assert_eq!(document.text(), "a😀\nb\n", "failed edits change nothing");
    assert_eq!(document.version(), 1);
}

#[test]
fn apply_change_follows_lsp_did_change() {
    let mut document = Document::new(
        "fn main() {\r\n    let x = \"😀\";\r\n}\r\n",
        Language::Rust,
        1,
    );
    // Replace the emoji (UTF-16 columns 13..15) with CJK text.
    let range = Range::new(Position::new(1, 13), Position::new(1, 15));
    document
        .apply_change(Some(range), "日本", Utf16, 2)
        .unwrap();
    assert_eq!(
        document.text(),
        "fn main() {\r\n    let x = \"日本\";\r\n}\r\n"
    );
    assert_eq!(document.version(), 2);
    // The same again in UTF-8 and UTF-32 columns.
    let range = Range::new(Position::new(1, 13), Position::new(1, 19));
    document.apply_change(Some(range), "é", Utf8, 3).unwrap();
    let range = Range::new(Position::new(1, 13), Position::new(1, 14));
    document.apply_change(Some(range), "ü", Utf32, 3).unwrap();
    assert_eq!(document.line_text(1).as_deref(), Some("    let x = \"ü\";"));
    document
        .apply_change(None, "fn f() {}\n", Utf16, 4)
        .unwrap();
    assert_eq!(document.text(), "fn f() {}\n");
    assert_eq!(document.line_count(), 2);
    assert!(document.syntax_errors().is_empty());
}

#[test]
fn edits_by_bytes_and_chars() {
    let mut document = Document::new("a😀b", Language::PlainText, 0);
    document.edit_chars(1..2, "é").unwrap();
    assert_eq!(document.text(), "aéb");
    document.edit_bytes(3..4, "😀😀").unwrap();
    assert_eq!(document.text(), "aé😀😀");
    assert_eq!(document.len_bytes(), 11);
}

#[test]
fn crlf_pairs_split_and_joined_by_edits_keep_lines_right() {
    let mut document = Document::new("a\r\nb", Language::PlainText, 0);
    // Put text between \r and \n: two lone-ish breaks now (\r and \n).
    document.edit_bytes(2..2, "x").unwrap();
    assert_eq!(document.line_count(), 3);
    assert_eq!(document.line_text(1).as_deref(), Some("x"));
    document.edit_bytes(2..3, "").unwrap();
    assert_eq!(document.line_count(), 2);
    assert_eq!(
        document
            .position_to_byte(Position::new(1, 0), Utf16)
            .unwrap(),
        3
    );
}

#[test]
fn document_queries_match_the_free_functions() {
    let source = "// redline: tidy this\nstruct A;\nimpl A {\n    fn f(&self) {}\n}\n";
    let document = Document::new(source, Language::Rust, 0);
    assert_eq!(
        document.outline(),
        redline_core::syntax::outline(Language::Rust, source)
    );
    assert_eq!(
        document.comments(),
        redline_core::syntax::comments(Language::Rust, source)
    );
    let inside_f = source.find("{}").unwrap();
    let symbol = document.enclosing_symbol(inside_f..inside_f + 1).unwrap();
    assert_eq!(
        (symbol.name.as_str(), symbol.container.as_deref()),
        ("f", Some("A"))
    );
}

/// A reference implementation of LSP UTF-16 positions on a `String`, written
/// independently of the document's (scan the text, count units).
fn model_position_to_byte(text: &str, position: Position) -> Option<usize> {
    let mut line_starts = vec![0];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                line_starts.push(i + 2);
                i += 1;
            }
            b'\r' | b'\n' => line_starts.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    let start = *line_starts.get(position.line as usize)?;
    let mut units = 0;
    for (offset, c) in text[start..].char_indices() {
        if c == '\n' || c == '\r' || units + c.len_utf16() > position.character as usize {
            return Some(start + offset);
        }
        units += c.len_utf16();
    }
    Some(text.len())
}

fn fragment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "a",
        "fn f() {",
        "}",
        "\n",
        "\r\n",
        "\r",
        "😀",
        "é",
        "日本",
        "(",
        ")",
        "let x = 1;",
        "    ",
        "\"",
        "//",
        "\u{2028}",
        "class A:\n    def f(self):\n        return 1\n",
        "{\"k\": [1, 2]}",
        "# Title\n",
        "'",
    ])
    .prop_map(str::to_owned)
}

fn language() -> impl Strategy<Value = Language> {
    prop::sample::select(vec![
        Language::Rust,
        Language::Python,
        Language::TypeScript,
        Language::Json,
        Language::Markdown,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random UTF-16 edits keep the rope equal to a `String` model and the
    /// incremental tree equal to a fresh parse.
    #[test]
    fn random_utf16_edits_match_a_string_model_and_a_fresh_parse(
        language in language(),
        initial in prop::collection::vec(fragment(), 0..8),
        edits in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), fragment()), 1..12),
    ) {
        let mut model = initial.concat();
        let mut document = Document::new(&model, language, 0);
        for (version, (line_a, character_a, line_b, character_b, insert)) in edits.into_iter().enumerate() {
            let line_count = document.line_count() as u32;
            // A few columns past the end to exercise clamping.
            let a = Position::new(line_a % line_count, character_a % 12);
            let b = Position::new(line_b % line_count, character_b % 12);
            let (start, end) = if a <= b { (a, b) } else { (b, a) };
            let start_byte = model_position_to_byte(&model, start).unwrap();
            let end_byte = model_position_to_byte(&model, end).unwrap().max(start_byte);
            prop_assert_eq!(document.position_to_byte(start, Utf16).unwrap(), start_byte);
            document
                .apply_change(Some(Range::new(start, end)), &insert, Utf16, version as i32)
                .unwrap();
            model.replace_range(start_byte..end_byte, &insert);
            prop_assert_eq!(document.text(), model.clone());

            let fresh = Document::new(&model, language, 0);
            prop_assert_eq!(document.line_count(), fresh.line_count());
            let sexps = |document: &Document| -> Vec<String> {
                document.syntax_trees().map(|tree| tree.root_node().to_sexp()).collect()
            };
            prop_assert_eq!(sexps(&document), sexps(&fresh));
            prop_assert_eq!(document.outline(), fresh.outline());
        }
        // Every character boundary converts to a position and back.
        for (byte, _) in model.char_indices().chain([(model.len(), ' ')]) {
            let position = document.byte_to_position(byte, Utf16).unwrap();
            let back = document.position_to_byte(position, Utf16).unwrap();
            let between_cr_lf = byte > 0 && model.as_bytes()[byte - 1] == b'\r' && model.as_bytes().get(byte) == Some(&b'\n');
            if !between_cr_lf {
                prop_assert_eq!(back, byte, "round trip of byte {} at {:?}", byte, position);
            }
        }
    }
}

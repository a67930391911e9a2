//! Languages, and what tree-sitter tells us about a text: its outline
//! (symbols with their kind, range and nesting), its syntax errors and its
//! comments.
//!
//! The free functions here parse a `&str` from scratch, for callers that have
//! no [`Document`](crate::document::Document) (the agent's outline tool on a
//! file it just read). A `Document` keeps its tree and reparses incrementally,
//! then calls the same tree walkers through [`source::Source`].
//!
//! Positions in this module are [`LineCol`]s: 0-based LSP line (ended by
//! `\n`, `\r\n` or `\r`) and 0-based *byte* column. Front ends that need
//! UTF-16 columns convert through `Document::byte_to_position`.

pub(crate) mod queries;
pub(crate) mod segments;
pub(crate) mod source;

use std::ops::Range;

use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Parser, QueryCursor, StreamingIterator, Tree};

use self::queries::{CaptureRole, queries};
use self::source::{Source, StrSource};

/// A language Redline can parse. `PlainText` has no grammar: it yields no
/// symbols, errors or comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    TypeScript,
    Tsx,
    JavaScript,
    Go,
    Json,
    Markdown,
    PlainText,
}

impl Language {
    /// Every language, in declaration order.
    pub const ALL: [Language; 9] = [
        Language::Rust,
        Language::Python,
        Language::TypeScript,
        Language::Tsx,
        Language::JavaScript,
        Language::Go,
        Language::Json,
        Language::Markdown,
        Language::PlainText,
    ];

    /// The language of a file, by its extension (case-insensitive);
    /// `PlainText` when unknown. Accepts `/` and `\` separated paths.
    pub fn from_path(path: &str) -> Language {
        let file_name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let Some((stem, extension)) = file_name.rsplit_once('.') else {
            return Language::PlainText;
        };
        if stem.is_empty() {
            // `.json` alone is a hidden file named "json", not a JSON file.
            return Language::PlainText;
        }
        match extension.to_ascii_lowercase().as_str() {
            "rs" => Language::Rust,
            "py" | "pyi" | "pyw" => Language::Python,
            "ts" | "mts" | "cts" => Language::TypeScript,
            "tsx" => Language::Tsx,
            // The JavaScript grammar parses JSX too.
            "js" | "mjs" | "cjs" | "jsx" => Language::JavaScript,
            "go" => Language::Go,
            "json" | "jsonc" | "json5" => Language::Json,
            "md" | "markdown" | "mdx" => Language::Markdown,
            _ => Language::PlainText,
        }
    }

    /// The language of an LSP `languageId`; `PlainText` when unknown.
    pub fn from_lsp_id(id: &str) -> Language {
        match id {
            "rust" => Language::Rust,
            "python" => Language::Python,
            "typescript" => Language::TypeScript,
            "typescriptreact" => Language::Tsx,
            "javascript" | "javascriptreact" => Language::JavaScript,
            "go" => Language::Go,
            "json" | "jsonc" => Language::Json,
            "markdown" => Language::Markdown,
            _ => Language::PlainText,
        }
    }

    /// The LSP `languageId` of this language (`from_lsp_id` maps it back).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::TypeScript => "typescript",
            Language::Tsx => "typescriptreact",
            Language::JavaScript => "javascript",
            Language::Go => "go",
            Language::Json => "json",
            Language::Markdown => "markdown",
            Language::PlainText => "plaintext",
        }
    }

    /// The tree-sitter grammar, `None` for plain text.
    pub(crate) fn grammar(self) -> Option<tree_sitter::Language> {
        let function = match self {
            Language::Rust => tree_sitter_rust::LANGUAGE,
            Language::Python => tree_sitter_python::LANGUAGE,
            Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
            Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX,
            Language::JavaScript => tree_sitter_javascript::LANGUAGE,
            Language::Go => tree_sitter_go::LANGUAGE,
            Language::Json => tree_sitter_json::LANGUAGE,
            // The block grammar: headings, sections, code blocks. Inline
            // markup does not matter for outlines.
            Language::Markdown => tree_sitter_md::LANGUAGE,
            Language::PlainText => return None,
        };
        Some(function.into())
    }

    /// A parser set to this language; `None` for plain text (or, which the
    /// tests rule out, a grammar whose ABI this tree-sitter cannot load).
    pub(crate) fn parser(self) -> Option<Parser> {
        let grammar = self.grammar()?;
        let mut parser = Parser::new();
        parser.set_language(&grammar).ok()?;
        Some(parser)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 0-based line (LSP line breaks) and 0-based byte column.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// What a symbol is. Languages map their own constructs onto these
/// (a Go `type X struct` is a `Struct`, a JSON member a `Key`, a Markdown
/// section a `Heading`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    Function,
    Method,
    Struct,
    Enum,
    Trait,
    Impl,
    Class,
    Interface,
    Module,
    Constant,
    Variable,
    Type,
    Heading,
    Key,
    Field,
}

impl SymbolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Trait => "trait",
            SymbolKind::Impl => "impl",
            SymbolKind::Class => "class",
            SymbolKind::Interface => "interface",
            SymbolKind::Module => "module",
            SymbolKind::Constant => "constant",
            SymbolKind::Variable => "variable",
            SymbolKind::Type => "type",
            SymbolKind::Heading => "heading",
            SymbolKind::Key => "key",
            SymbolKind::Field => "field",
        }
    }
}

impl std::fmt::Display for SymbolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an outline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// The name as written, whitespace runs collapsed to one space. Rust
    /// impls are named `Type` or `Trait for Type`; Rust macros `name!`;
    /// JSON keys without their quotes.
    pub name: String,
    pub kind: SymbolKind,
    /// The whole definition (for a Markdown heading: its whole section).
    pub byte_range: Range<usize>,
    pub start: LineCol,
    pub end: LineCol,
    /// How many symbols of the outline enclose this one (0 = top level).
    pub depth: u32,
    /// The name of the innermost enclosing symbol; for a Go method, its
    /// receiver type (which does not enclose it lexically).
    pub container: Option<String>,
}

/// A place where the parser had to recover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntaxError {
    pub byte_range: Range<usize>,
    pub start: LineCol,
    /// For people and models: `syntax error at 3:5: unexpected `}`` or
    /// `syntax error at 3:5: missing `;`` (1-based line and character).
    pub message: String,
}

/// A comment, delimiters included, line terminator excluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub byte_range: Range<usize>,
    pub start: LineCol,
    pub end: LineCol,
    pub text: String,
}

/// Parses `text` from scratch; `None` for plain text.
fn parse_str(language: Language, text: &str) -> Option<Tree> {
    language.parser()?.parse(text, None)
}

/// The outline of `text`: its symbols in source order, each with its depth
/// and container. Empty for plain text.
pub fn outline(language: Language, text: &str) -> Vec<Symbol> {
    match parse_str(language, text) {
        Some(tree) => outline_tree(language, &tree, &StrSource::new(text), None),
        None => Vec::new(),
    }
}

/// Where the parser had to recover, in source order; empty for valid text
/// and for plain text.
pub fn syntax_errors(language: Language, text: &str) -> Vec<SyntaxError> {
    match parse_str(language, text) {
        Some(tree) => syntax_errors_tree(&tree, &StrSource::new(text)),
        None => Vec::new(),
    }
}

/// Every comment in `text`, in source order. Empty for plain text and JSON;
/// for Markdown, the HTML comments (`<!-- ... -->`).
pub fn comments(language: Language, text: &str) -> Vec<Comment> {
    if language == Language::Json {
        return Vec::new();
    }
    match parse_str(language, text) {
        Some(tree) => comments_tree(language, &tree, &StrSource::new(text)),
        None => Vec::new(),
    }
}

/// A symbol before nesting is known.
struct RawSymbol {
    pattern_index: usize,
    kind: SymbolKind,
    byte_range: Range<usize>,
    name_range: Range<usize>,
    name: String,
    /// For Go methods, the receiver type.
    receiver: Option<String>,
}

/// The outline of a parsed tree. With `within`, only symbols whose
/// definition intersects that byte range are looked at (still with correct
/// depth and container, since enclosing definitions intersect it too).
pub(crate) fn outline_tree(
    language: Language,
    tree: &Tree,
    source: &impl Source,
    within: Option<Range<usize>>,
) -> Vec<Symbol> {
    let Ok(queries) = queries(language) else {
        return Vec::new();
    };
    let mut cursor = QueryCursor::new();
    if let Some(range) = within {
        cursor.set_byte_range(range);
    }
    let mut raw = Vec::new();
    let mut matches = cursor.matches(&queries.outline, tree.root_node(), |node: Node<'_>| {
        source.chunks_in(node.byte_range())
    });
    while let Some(found) = matches.next() {
        let mut definition = None;
        let mut name_node = None;
        let mut trait_node = None;
        let mut receiver_node = None;
        for capture in found.captures() {
            match queries.outline_captures.get(capture.index as usize) {
                Some(CaptureRole::Name) => name_node = Some(capture.node),
                Some(CaptureRole::Trait) => trait_node = Some(capture.node),
                Some(CaptureRole::Receiver) => receiver_node = Some(capture.node),
                Some(CaptureRole::Definition(kind)) => definition = Some((*kind, capture.node)),
                Some(CaptureRole::Ignored) | None => {}
            }
        }
        let (Some((kind, definition)), Some(name_node)) = (definition, name_node) else {
            continue;
        };
        let mut name = normalize_name(&source.slice_lossy(name_node.byte_range()));
        match (language, definition.kind()) {
            (Language::Rust, "impl_item") => {
                if let Some(trait_node) = trait_node {
                    let trait_name = normalize_name(&source.slice_lossy(trait_node.byte_range()));
                    name = format!("{trait_name} for {name}");
                }
            }
            (Language::Rust, "macro_definition") => name.push('!'),
            (Language::Json, _) => name = unquote_json_key(&name),
            _ => {}
        }
        if name.is_empty() {
            continue;
        }
        let receiver = receiver_node.and_then(|node| go_receiver_type(node, source));
        raw.push(RawSymbol {
            pattern_index: found.pattern_index,
            kind,
            byte_range: definition.byte_range(),
            name_range: name_node.byte_range(),
            name,
            receiver,
        });
    }
    nest(language, raw, source)
}

/// Orders symbols, drops duplicate matches and works out depth, container
/// and methods.
fn nest(language: Language, mut raw: Vec<RawSymbol>, source: &impl Source) -> Vec<Symbol> {
    // Outer definitions first when two start together; the earliest pattern
    // first among duplicates, so the dedup below keeps it.
    raw.sort_by(|a, b| {
        (
            a.byte_range.start,
            std::cmp::Reverse(a.byte_range.end),
            a.pattern_index,
        )
            .cmp(&(
                b.byte_range.start,
                std::cmp::Reverse(b.byte_range.end),
                b.pattern_index,
            ))
    });
    raw.dedup_by(|later, earlier| {
        later.byte_range == earlier.byte_range && later.name_range == earlier.name_range
    });

    let mut symbols: Vec<Symbol> = Vec::with_capacity(raw.len());
    // Indexes into `symbols` of the definitions enclosing the current one.
    let mut open: Vec<usize> = Vec::new();
    for candidate in raw {
        while let Some(&top) = open.last() {
            let enclosing = &symbols[top].byte_range;
            if enclosing.start <= candidate.byte_range.start
                && candidate.byte_range.end <= enclosing.end
            {
                break;
            }
            open.pop();
        }
        let parent = open.last().map(|&index| &symbols[index]);
        let mut kind = candidate.kind;
        if kind == SymbolKind::Function
            && parent.is_some_and(|parent| {
                matches!(
                    parent.kind,
                    SymbolKind::Impl
                        | SymbolKind::Trait
                        | SymbolKind::Class
                        | SymbolKind::Interface
                )
            })
            && !candidate.name.ends_with('!')
        {
            kind = SymbolKind::Method;
        }
        if language == Language::Python
            && kind == SymbolKind::Variable
            && is_constant_name(&candidate.name)
        {
            kind = SymbolKind::Constant;
        }
        let container = candidate
            .receiver
            .or_else(|| parent.map(|parent| parent.name.clone()));
        let depth = u32::try_from(open.len()).unwrap_or(u32::MAX);
        symbols.push(Symbol {
            start: source.line_col(candidate.byte_range.start),
            end: source.line_col(candidate.byte_range.end),
            name: candidate.name,
            kind,
            byte_range: candidate.byte_range,
            depth,
            container,
        });
        open.push(symbols.len() - 1);
    }
    symbols
}

/// The innermost symbol of `symbols` (an outline in source order) whose
/// range contains `range`.
pub(crate) fn innermost_enclosing(symbols: Vec<Symbol>, range: &Range<usize>) -> Option<Symbol> {
    symbols
        .into_iter()
        .filter(|symbol| {
            symbol.byte_range.start <= range.start && range.end <= symbol.byte_range.end
        })
        // Later in source order among containing symbols means nested deeper.
        .max_by_key(|symbol| (symbol.depth, symbol.byte_range.start))
}

fn normalize_name(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn unquote_json_key(text: &str) -> String {
    let inner = text.strip_prefix('"').unwrap_or(text);
    inner.strip_suffix('"').unwrap_or(inner).to_owned()
}

fn is_constant_name(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `(s *Server[T])` → `Server`.
fn go_receiver_type(receiver: Node<'_>, source: &impl Source) -> Option<String> {
    let mut cursor = receiver.walk();
    let parameter = receiver.named_children(&mut cursor).next()?;
    let type_node = parameter.child_by_field_name("type")?;
    let text = source.slice_lossy(type_node.byte_range());
    let text = text.trim_start_matches(['*', ' ']);
    let text = text.split('[').next().unwrap_or(text).trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Longest token text quoted in an error message.
const MAX_TOKEN_CHARS: usize = 40;

pub(crate) fn syntax_errors_tree(tree: &Tree, source: &impl Source) -> Vec<SyntaxError> {
    let mut errors = Vec::new();
    let mut stack = vec![tree.root_node()];
    let mut cursor = tree.walk();
    while let Some(node) = stack.pop() {
        if node.is_error() {
            errors.push(describe_error_node(node, source));
        } else if node.is_missing() {
            let what = if node.is_named() {
                node.kind().replace('_', " ")
            } else {
                format!("`{}`", node.kind())
            };
            errors.push(error_at(node, format!("missing {what}"), source));
        } else if node.has_error() {
            let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
            // Reversed so the stack pops them in source order.
            stack.extend(children.into_iter().rev());
        }
    }
    errors
}

fn error_at(node: Node<'_>, what: String, source: &impl Source) -> SyntaxError {
    let byte_range = node.byte_range();
    let start = source.line_col(byte_range.start);
    SyntaxError {
        message: format!(
            "syntax error at {}: {what}",
            human_position(byte_range.start, source)
        ),
        byte_range,
        start,
    }
}

/// `line:character`, both 1-based, for messages.
fn human_position(byte: usize, source: &impl Source) -> String {
    let line_col = source.line_col(byte);
    format!("{}:{}", line_col.line + 1, source.char_column(byte) + 1)
}

/// An ERROR node that runs to the end of the text usually means a bracket
/// was never closed, and tree-sitter wraps everything from the opener on: the
/// useful report is the unclosed bracket, not the first token of the node.
fn describe_error_node(node: Node<'_>, source: &impl Source) -> SyntaxError {
    let runs_to_end = {
        let end = node.end_byte();
        let rest_len = source.len_bytes().saturating_sub(end);
        rest_len < 4096 && source.slice_lossy(end..end + rest_len).trim().is_empty()
    };
    if runs_to_end && let Some((opener, closer)) = innermost_unclosed_bracket(node) {
        return SyntaxError {
            message: format!(
                "syntax error at {}: `{}` is never closed, missing `{closer}` before the end of the file",
                human_position(opener.start_byte(), source),
                opener.kind(),
            ),
            byte_range: opener.byte_range(),
            start: source.line_col(opener.start_byte()),
        };
    }
    let token = first_token_text(node, source);
    error_at(node, format!("unexpected `{token}`"), source)
}

/// The last bracket token under `node` left open at its end, with the
/// closer it needs.
fn innermost_unclosed_bracket(node: Node<'_>) -> Option<(Node<'_>, &'static str)> {
    let mut open: Vec<(Node<'_>, &'static str)> = Vec::new();
    // A cursor made from `node` never walks outside it.
    let mut cursor = node.walk();
    loop {
        if cursor.goto_first_child() {
            continue;
        }
        let leaf = cursor.node();
        if !leaf.is_missing() {
            match leaf.kind() {
                "{" => open.push((leaf, "}")),
                "(" => open.push((leaf, ")")),
                "[" => open.push((leaf, "]")),
                closer @ ("}" | ")" | "]")
                    if open.last().is_some_and(|(_, expected)| *expected == closer) =>
                {
                    open.pop();
                }
                _ => {}
            }
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return open.pop();
            }
        }
    }
}

/// The text of the first token inside an error node, shortened to one line.
fn first_token_text(node: Node<'_>, source: &impl Source) -> String {
    let mut leaf = node;
    while let Some(child) = leaf.child(0) {
        if child.byte_range().is_empty() {
            break;
        }
        leaf = child;
    }
    let text = source.slice_lossy(leaf.byte_range());
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > MAX_TOKEN_CHARS {
        let cut: String = line.chars().take(MAX_TOKEN_CHARS).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

pub(crate) fn comments_tree(language: Language, tree: &Tree, source: &impl Source) -> Vec<Comment> {
    let Some(query) = queries(language)
        .ok()
        .and_then(|queries| queries.comments.as_ref())
    else {
        return Vec::new();
    };
    let mut cursor = QueryCursor::new();
    let mut comments = Vec::new();
    let mut captures = cursor.captures(query, tree.root_node(), |node: Node<'_>| {
        source.chunks_in(node.byte_range())
    });
    while let Some((found, index)) = captures.next() {
        let Some(capture) = found.captures().get(*index) else {
            continue;
        };
        let mut byte_range = capture.node.byte_range();
        let mut text = source.slice_lossy(byte_range.clone());
        // Some grammars (Rust line comments, Markdown blocks) include the
        // line break; callers want the comment alone.
        while text.ends_with(['\n', '\r']) {
            text.pop();
            byte_range.end -= 1;
        }
        if language == Language::Markdown && !text.trim_start().starts_with("<!--") {
            continue;
        }
        comments.push(Comment {
            start: source.line_col(byte_range.start),
            end: source.line_col(byte_range.end),
            byte_range,
            text,
        });
    }
    comments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grammar_loads() {
        for language in Language::ALL {
            assert_eq!(
                language.parser().is_some(),
                language != Language::PlainText,
                "{language}"
            );
        }
    }

    #[test]
    fn language_from_path_and_lsp_id() {
        let check = |path: &str, expected: Language| {
            assert_eq!(Language::from_path(path), expected, "{path}")
        };
        check("src/main.rs", Language::Rust);
        check("C:\\code\\app.PY", Language::Python);
        check("web/App.tsx", Language::Tsx);
        check("types.d.ts", Language::TypeScript);
        check("index.mjs", Language::JavaScript);
        check("go.mod", Language::PlainText);
        check("cmd/main.go", Language::Go);
        check("package.json", Language::Json);
        check("README.md", Language::Markdown);
        check(".json", Language::PlainText);
        check("Makefile", Language::PlainText);
        for language in Language::ALL {
            assert_eq!(Language::from_lsp_id(language.as_str()), language);
        }
        assert_eq!(
            Language::from_lsp_id("javascriptreact"),
            Language::JavaScript
        );
        assert_eq!(Language::from_lsp_id("jsonc"), Language::Json);
        assert_eq!(Language::from_lsp_id("cobol"), Language::PlainText);
    }
}

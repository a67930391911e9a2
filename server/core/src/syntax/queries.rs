//! The tree-sitter queries behind `outline()` and `comments()`, one small
//! hand-written set per language.
//!
//! We write our own rather than reuse the grammars' `TAGS_QUERY`: those mark
//! references and docs too, differ in capture names between grammars, and do
//! not cover JSON or Markdown. Conventions of the outline queries:
//! - `@name` is the node whose text names the symbol;
//! - exactly one capture named after a [`SymbolKind`] (`@function`,
//!   `@struct`, ...) is the whole definition, which gives the symbol's range;
//! - `@trait` (Rust impls) and `@receiver` (Go methods) add to the name or
//!   container (so Rust trait definitions are captured as `@trait_item`).
//!
//! When two patterns match the same definition and name, the earlier
//! pattern wins, so specific patterns come before general ones.

use std::sync::OnceLock;

use tree_sitter::Query;

use super::{Language, SymbolKind};

const RUST_OUTLINE: &str = r#"
(function_item name: (identifier) @name) @function
(function_signature_item name: (identifier) @name) @function
(struct_item name: (type_identifier) @name) @struct
(union_item name: (type_identifier) @name) @struct
(enum_item name: (type_identifier) @name) @enum
(enum_variant name: (identifier) @name) @field
(field_declaration name: (field_identifier) @name) @field
(trait_item name: (type_identifier) @name) @trait_item
(impl_item trait: (_)? @trait type: (_) @name) @impl
(mod_item name: (identifier) @name) @module
(const_item name: (identifier) @name) @constant
(static_item name: (identifier) @name) @constant
(type_item name: (type_identifier) @name) @type
(associated_type name: (type_identifier) @name) @type
(macro_definition name: (identifier) @name) @function
"#;

const PYTHON_OUTLINE: &str = r#"
(function_definition name: (identifier) @name) @function
(class_definition name: (identifier) @name) @class
(module (expression_statement (assignment left: (identifier) @name) @variable))
(class_definition body: (block (expression_statement (assignment left: (identifier) @name) @field)))
"#;

/// Shared by TypeScript and TSX (same node names).
const TYPESCRIPT_OUTLINE: &str = r#"
(function_declaration name: (identifier) @name) @function
(generator_function_declaration name: (identifier) @name) @function
(function_signature name: (identifier) @name) @function
(class_declaration name: (type_identifier) @name) @class
(abstract_class_declaration name: (type_identifier) @name) @class
(method_definition name: (_) @name) @method
(abstract_method_signature name: (_) @name) @method
(method_signature name: (_) @name) @method
(public_field_definition name: (_) @name) @field
(property_signature name: (_) @name) @field
(interface_declaration name: (type_identifier) @name) @interface
(type_alias_declaration name: (type_identifier) @name) @type
(enum_declaration name: (identifier) @name) @enum
(internal_module name: (_) @name) @module
(module name: (_) @name) @module
"#;

/// Top-level bindings, the same in JavaScript and TypeScript; appended
/// after each language's own patterns so those win.
const SCRIPT_TOP_LEVEL_OUTLINE: &str = r#"
(program (lexical_declaration (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)]) @function))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)]) @function)))
(program (lexical_declaration kind: "const" (variable_declarator name: (identifier) @name) @constant))
(program (export_statement (lexical_declaration kind: "const" (variable_declarator name: (identifier) @name) @constant)))
(program (lexical_declaration (variable_declarator name: (identifier) @name) @variable))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier) @name) @variable)))
(program (variable_declaration (variable_declarator name: (identifier) @name) @variable))
"#;

const JAVASCRIPT_OUTLINE: &str = r#"
(function_declaration name: (identifier) @name) @function
(generator_function_declaration name: (identifier) @name) @function
(class_declaration name: (identifier) @name) @class
(method_definition name: (_) @name) @method
(field_definition property: (_) @name) @field
"#;

const GO_OUTLINE: &str = r#"
(function_declaration name: (identifier) @name) @function
(method_declaration receiver: (parameter_list) @receiver name: (field_identifier) @name) @method
(type_spec name: (type_identifier) @name type: (struct_type)) @struct
(type_spec name: (type_identifier) @name type: (interface_type)) @interface
(type_spec name: (type_identifier) @name) @type
(type_alias name: (type_identifier) @name) @type
(field_declaration name: (field_identifier) @name) @field
(method_elem name: (field_identifier) @name) @method
(const_spec name: (identifier) @name) @constant
(source_file (var_declaration (var_spec name: (identifier) @name) @variable))
(source_file (var_declaration (var_spec_list (var_spec name: (identifier) @name) @variable)))
"#;

const JSON_OUTLINE: &str = r#"
(pair key: (string) @name) @key
"#;

/// An ATX heading (`## Usage`) opens a section, which is the symbol's range
/// and nests the headings below it. The grammar gives setext headings
/// (underlined with `===`/`---`) no section, so their range is the heading
/// alone, nested in whatever section holds it.
const MARKDOWN_OUTLINE: &str = r#"
(section (atx_heading heading_content: (_) @name)) @heading
(setext_heading heading_content: (_) @name) @heading
"#;

const RUST_COMMENTS: &str = "[(line_comment) (block_comment)] @comment";
const COMMENT_NODE: &str = "(comment) @comment";
/// Markdown has no comment node; HTML comments come out as `html_block`s,
/// which the caller filters down to those starting with `<!--`.
const MARKDOWN_COMMENTS: &str = "(html_block) @comment";

/// The compiled queries of one language.
pub(crate) struct LanguageQueries {
    pub(crate) outline: Query,
    /// For each outline capture index, what it means.
    pub(crate) outline_captures: Vec<CaptureRole>,
    pub(crate) comments: Option<Query>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CaptureRole {
    Name,
    Trait,
    Receiver,
    Definition(SymbolKind),
    Ignored,
}

fn capture_role(name: &str) -> CaptureRole {
    match name {
        "name" => CaptureRole::Name,
        "trait" => CaptureRole::Trait,
        "receiver" => CaptureRole::Receiver,
        "function" => CaptureRole::Definition(SymbolKind::Function),
        "method" => CaptureRole::Definition(SymbolKind::Method),
        "struct" => CaptureRole::Definition(SymbolKind::Struct),
        "enum" => CaptureRole::Definition(SymbolKind::Enum),
        "trait_item" => CaptureRole::Definition(SymbolKind::Trait),
        "impl" => CaptureRole::Definition(SymbolKind::Impl),
        "class" => CaptureRole::Definition(SymbolKind::Class),
        "interface" => CaptureRole::Definition(SymbolKind::Interface),
        "module" => CaptureRole::Definition(SymbolKind::Module),
        "constant" => CaptureRole::Definition(SymbolKind::Constant),
        "variable" => CaptureRole::Definition(SymbolKind::Variable),
        "type" => CaptureRole::Definition(SymbolKind::Type),
        "heading" => CaptureRole::Definition(SymbolKind::Heading),
        "key" => CaptureRole::Definition(SymbolKind::Key),
        "field" => CaptureRole::Definition(SymbolKind::Field),
        _ => CaptureRole::Ignored,
    }
}

fn sources(language: Language) -> Option<(tree_sitter::Language, String, Option<&'static str>)> {
    let grammar = language.grammar()?;
    let (outline, comments) = match language {
        Language::Rust => (RUST_OUTLINE.to_owned(), Some(RUST_COMMENTS)),
        Language::Python => (PYTHON_OUTLINE.to_owned(), Some(COMMENT_NODE)),
        Language::TypeScript | Language::Tsx => (
            format!("{TYPESCRIPT_OUTLINE}{SCRIPT_TOP_LEVEL_OUTLINE}"),
            Some(COMMENT_NODE),
        ),
        Language::JavaScript => (
            format!("{JAVASCRIPT_OUTLINE}{SCRIPT_TOP_LEVEL_OUTLINE}"),
            Some(COMMENT_NODE),
        ),
        Language::Go => (GO_OUTLINE.to_owned(), Some(COMMENT_NODE)),
        Language::Json => (JSON_OUTLINE.to_owned(), None),
        Language::Markdown => (MARKDOWN_OUTLINE.to_owned(), Some(MARKDOWN_COMMENTS)),
        Language::PlainText => return None,
    };
    Some((grammar, outline, comments))
}

fn compile(language: Language) -> Result<LanguageQueries, String> {
    let Some((grammar, outline_source, comments_source)) = sources(language) else {
        return Err(format!("no grammar for {}", language.as_str()));
    };
    let outline = Query::new(&grammar, &outline_source)
        .map_err(|error| format!("outline query for {}: {error}", language.as_str()))?;
    let outline_captures = outline
        .capture_names()
        .iter()
        .map(|name| capture_role(name))
        .collect();
    let comments = match comments_source {
        Some(source) => Some(
            Query::new(&grammar, source)
                .map_err(|error| format!("comment query for {}: {error}", language.as_str()))?,
        ),
        None => None,
    };
    Ok(LanguageQueries {
        outline,
        outline_captures,
        comments,
    })
}

/// The compiled queries of `language`, built once per process. Errors mean
/// a query in this file does not fit its grammar — a bug caught by the
/// `every_query_compiles` test, so at run time the language just gets no
/// outline rather than a panic.
pub(crate) fn queries(language: Language) -> Result<&'static LanguageQueries, &'static str> {
    static CACHE: [OnceLock<Result<LanguageQueries, String>>; Language::ALL.len()] =
        [const { OnceLock::new() }; Language::ALL.len()];
    let slot = &CACHE[language as usize];
    slot.get_or_init(|| compile(language))
        .as_ref()
        .map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_compiles() {
        for language in Language::ALL {
            if language == Language::PlainText {
                continue;
            }
            if let Err(error) = queries(language) {
                panic!("{error}");
            }
        }
    }
}

//! Instruction comments: `// redline: make this async`, `# redline: ...`,
//! `/* redline: ... */`, `<!-- redline: ... -->` — a way to ask Redline for
//! something in editors without an input box. Comments are found with
//! tree-sitter, so any language's comment syntax works and a `redline:`
//! inside a string is not an instruction.

use std::ops::Range;

use redline_core::document::Document;
use tree_sitter::Node;

/// An instruction comment on some line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionComment {
    /// 0-based line of the comment's start.
    pub line: u32,
    /// The comment as written.
    pub text: String,
    /// What it asks, without delimiters and the `redline:` prefix.
    pub instruction: String,
}

/// The instruction of a comment's text, if it is an instruction comment.
pub fn parse(comment: &str) -> Option<String> {
    let mut body = comment.trim();
    for (open, close) in [("<!--", "-->"), ("/*", "*/"), ("{-", "-}"), ("(*", "*)")] {
        if let Some(inner) = body.strip_prefix(open) {
            body = inner.strip_suffix(close).unwrap_or(inner);
            break;
        }
    }
    let body = body
        .trim_start_matches(['/', '#', '-', ';', '!', '*', '%'])
        .trim();
    let (prefix, rest) = body.split_at_checked("redline:".len())?;
    if !prefix.eq_ignore_ascii_case("redline:") {
        return None;
    }
    // Later lines of a block comment may start with ` * `.
    let instruction: Vec<&str> = rest
        .lines()
        .map(|line| line.trim().trim_start_matches('*').trim())
        .filter(|line| !line.is_empty())
        .collect();
    let instruction = instruction.join(" ");
    (!instruction.is_empty()).then_some(instruction)
}

/// Instruction comments overlapping `bytes` (a line range, typically).
/// Walks only the part of the trees that overlaps, so it costs the same on
/// a 20,000-line file as on a small one.
pub fn find(document: &Document, bytes: Range<usize>) -> Vec<InstructionComment> {
    let mut nodes = Vec::new();
    for tree in document.syntax_trees_touching(bytes.clone()) {
        collect(tree.root_node(), &bytes, &mut nodes);
    }
    nodes
        .into_iter()
        .filter_map(|node| {
            let start = node.start_byte();
            let end = node.end_byte();
            let text = document.rope().get_byte_slice(start..end)?.to_string();
            let instruction = parse(&text)?;
            let line = document
                .byte_to_position(start, Default::default())
                .ok()?
                .line;
            Some(InstructionComment {
                line,
                text,
                instruction,
            })
        })
        .collect()
}

fn collect<'tree>(node: Node<'tree>, bytes: &Range<usize>, out: &mut Vec<Node<'tree>>) {
    if node.end_byte() < bytes.start || node.start_byte() > bytes.end {
        return;
    }
    if node.kind().contains("comment") {
        out.push(node);
        return;
    }
    let mut child = node.first_child_for_byte(bytes.start);
    while let Some(current) = child {
        if current.start_byte() > bytes.end {
            break;
        }
        collect(current, bytes, out);
        child = current.next_sibling();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_core::syntax::Language;

    #[test]
    fn instruction_comments_in_any_syntax() {
        let check = |comment: &str, expect: Option<&str>| {
            assert_eq!(parse(comment).as_deref(), expect, "{comment}")
        };
        check("// redline: make this async", Some("make this async"));
        check("/// Redline: document me", Some("document me"));
        check("# REDLINE: use pathlib", Some("use pathlib"));
        check(
            "/* redline: split\n * into two functions */",
            Some("split into two functions"),
        );
        check(
            "<!-- redline: shorten this section -->",
            Some("shorten this section"),
        );
        check("-- redline: add an index", Some("add an index"));
        check("// redline:", None);
        check("// todo: redline: later", None);
        check("// plain comment", None);
    }

    #[test]
    fn finds_comments_on_the_lines_asked_only() {
        let text = "fn a() {}\n// redline: make b async\nfn b() {\n    let s = \"// redline: not me\";\n}\n# no\n";
        let document = Document::new(text, Language::Rust, 1);
        let all = find(&document, 0..text.len());
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].line, all[0].instruction.as_str()),
            (1, "make b async")
        );
        assert!(find(&document, 0..5).is_empty());
        let python = Document::new("x = 1\n# redline: rename x\n", Language::Python, 1);
        assert_eq!(find(&python, 6..20)[0].instruction, "rename x");
    }
}

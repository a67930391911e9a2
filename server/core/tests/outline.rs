//! Outlines (snapshots per language), enclosing symbols, syntax errors and
//! comments, through the free functions of `redline_core::syntax`.

// Helpers outside `#[test]` functions unwrap too; a failure is the test failing.
#![allow(clippy::unwrap_used)]

use expect_test::{Expect, expect};
use redline_core::document::Document;
use redline_core::syntax::{self, Language, Symbol};

/// One line per symbol: indent by depth, kind, name, `line:column` range
/// (0-based, byte columns) and container.
fn render(symbols: &[Symbol]) -> String {
    let mut out = String::new();
    for symbol in symbols {
        let container = symbol
            .container
            .as_deref()
            .map(|name| format!("  in {name}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}{} {} {}:{}-{}:{}{container}\n",
            "  ".repeat(symbol.depth as usize),
            symbol.kind,
            symbol.name,
            symbol.start.line,
            symbol.start.column,
            symbol.end.line,
            symbol.end.column,
        ));
    }
    out
}

fn snapshot_outline(language: Language, source: &str) -> String {
    let symbols = syntax::outline(language, source);
    // The document's outline must be the same as the free function's.
    assert_eq!(Document::new(source, language, 0).outline(), symbols);
    render(&symbols)
}

const RUST: &str = r#"//! A tiny shape library.
use std::fmt;

pub const MAX_SIDES: usize = 12;

/// A point in the plane.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

pub enum Shape {
    Circle { center: Point, radius: f64 },
    Polygon(Vec<Point>),
}

pub trait Area {
    fn area(&self) -> f64;
    fn describe(&self) -> String {
        format!("area {}", self.area())
    }
}

impl Area for Shape {
    fn area(&self) -> f64 {
        match self {
            Shape::Circle { radius, .. } => std::f64::consts::PI * radius * radius,
            Shape::Polygon(_) => 0.0,
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

mod tests {
    type Pair = (i32, i32);
    static ORIGIN: super::Point = super::Point { x: 0.0, y: 0.0 };

    fn helper() -> Pair {
        (1, 2)
    }
}

macro_rules! square {
    ($x:expr) => { $x * $x };
}
"#;

const PYTHON: &str = r#""""Inventory helpers."""
import dataclasses

MAX_ITEMS = 100
default_owner = "ops"


@dataclasses.dataclass
class Item:
    name: str
    count = 0

    def total(self, price: float) -> float:
        return self.count * price

    class Meta:
        ordering = "name"


def load(path):
    def parse(line):
        return line.split(",")
    return [parse(line) for line in open(path)]
"#;

const TYPESCRIPT: &str = r#"import { readFile } from "fs";

export const VERSION = "1.0";
let counter = 0;

export interface Config {
  name: string;
  retries?: number;
  validate(input: string): boolean;
}

export type Mode = "fast" | "deep";

enum Color { Red, Green }

namespace Util {
  export function clamp(x: number): number { return x; }
}

export abstract class Base {
  abstract run(): void;
}

export class Service extends Base {
  private cache = new Map<string, number>();

  constructor(private readonly config: Config) {
    super();
  }

  run(): void {
    counter++;
  }
}

export const handler = async (event: unknown) => {
  return event;
};

function* ids() {
  yield 1;
}
"#;

const TSX: &str = r#"import React from "react";

type Props = { title: string };

export function Header({ title }: Props) {
  return <h1 className="title">{title}</h1>;
}

export const Footer = () => <footer>bye</footer>;

class Panel extends React.Component<Props> {
  render() {
    return <div>{this.props.title}</div>;
  }
}
"#;

const JAVASCRIPT: &str = r#"const express = require("express");

const PORT = 8080;
var legacy = true;

class Router {
  routes = [];

  add(path, handler) {
    this.routes.push({ path, handler });
  }

  static create() {
    return new Router();
  }
}

function start(app) {
  app.listen(PORT);
}

export const stop = function (app) {
  app.close();
};
"#;

const GO: &str = r#"package server

import "net/http"

const (
	DefaultPort = 8080
	maxConns    = 100
)

var logger = newLogger()

type Server struct {
	Addr    string
	handler http.Handler
}

type Handler interface {
	Serve(w http.ResponseWriter, r *http.Request)
}

type ID = string

type Counter int

func New(addr string) *Server {
	return &Server{Addr: addr}
}

func (s *Server) Start() error {
	return http.ListenAndServe(s.Addr, s.handler)
}

func (c Counter) Inc() Counter { return c + 1 }
"#;

const JSON: &str = r#"{
  "name": "redline",
  "version": "0.1.0",
  "scripts": {
    "build": "tsc",
    "test": "node --test"
  },
  "files": ["dist", { "nested": true }]
}
"#;

const MARKDOWN: &str = r#"# Redline

An agent that proposes, never imposes.

## Install

Run the installer.

### From source

```sh
cargo build
```

## Usage
<!-- redline: keep this short -->

Setext heading
--------------

Text.
"#;

#[test]
fn rust_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::Rust, RUST));
}

#[test]
fn python_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::Python, PYTHON));
}

#[test]
fn typescript_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::TypeScript, TYPESCRIPT));
}

#[test]
fn tsx_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::Tsx, TSX));
}

#[test]
fn javascript_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::JavaScript, JAVASCRIPT));
}

#[test]
fn go_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::Go, GO));
}

#[test]
fn json_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::Json, JSON));
}

#[test]
fn markdown_outline() {
    insta::assert_snapshot!(snapshot_outline(Language::Markdown, MARKDOWN));
}

#[test]
fn plain_text_has_no_outline_errors_or_comments() {
    let text = "fn main() { // not code\n";
    assert!(syntax::outline(Language::PlainText, text).is_empty());
    assert!(syntax::syntax_errors(Language::PlainText, text).is_empty());
    assert!(syntax::comments(Language::PlainText, text).is_empty());
}

#[test]
fn outline_positions_are_byte_columns_on_lsp_lines() {
    // The CJK name is 6 bytes; `\r\n` is one line break.
    let symbols = syntax::outline(Language::Python, "x = 1\r\ndef 名前():\r\n    pass\r\n");
    let function = symbols.iter().find(|symbol| symbol.name == "名前").unwrap();
    assert_eq!((function.start.line, function.start.column), (1, 0));
    assert_eq!((function.end.line, function.end.column), (2, 8));
}

/// For every byte offset of `source`, `enclosing_symbol` (which queries only
/// around the offset) agrees with the innermost symbol of the full outline.
fn check_enclosing_against_full_outline(language: Language, source: &str) {
    let document = Document::new(source, language, 0);
    let outline = document.outline();
    let boundaries: Vec<usize> = source
        .char_indices()
        .map(|(i, _)| i)
        .chain([source.len()])
        .collect();
    for (index, &start) in boundaries.iter().enumerate() {
        for &end in boundaries[index..].iter().take(3) {
            let expected = outline
                .iter()
                .filter(|symbol| symbol.byte_range.start <= start && end <= symbol.byte_range.end)
                .max_by_key(|symbol| symbol.depth);
            assert_eq!(
                document.enclosing_symbol(start..end).as_ref(),
                expected,
                "{language} range {start}..{end}"
            );
        }
    }
}

#[test]
fn enclosing_symbol_agrees_with_the_full_outline() {
    check_enclosing_against_full_outline(Language::Rust, RUST);
    check_enclosing_against_full_outline(Language::Python, PYTHON);
    check_enclosing_against_full_outline(Language::Go, GO);
    check_enclosing_against_full_outline(Language::Markdown, MARKDOWN);
}

#[test]
fn enclosing_symbol_finds_the_innermost_definition() {
    let document = Document::new(RUST, Language::Rust, 0);
    let check = |needle: &str, expect: Expect| {
        let start = RUST.find(needle).unwrap();
        let found = document
            .enclosing_symbol(start..start + needle.len())
            .map(|symbol| format!("{} {} in {:?}", symbol.kind, symbol.name, symbol.container));
        expect.assert_eq(&format!("{found:?}"));
    };
    check(
        "self.x, self.y",
        expect![[r#"Some("method fmt in Some(\"fmt::Display for Point\")")"#]],
    );
    check(
        "(1, 2)",
        expect![[r#"Some("function helper in Some(\"tests\")")"#]],
    );
    check(
        "pub x: f64",
        expect![[r#"Some("field x in Some(\"Point\")")"#]],
    );
    check("use std::fmt;", expect![[r#"None"#]]);
    #[allow(clippy::reversed_empty_ranges)] // an inverted range is refused, not a panic
    let inverted = 5..2;
    assert_eq!(document.enclosing_symbol(inverted), None);
    assert_eq!(document.enclosing_symbol(0..RUST.len() + 1), None);
}

fn check_errors(language: Language, source: &str, expect: Expect) {
    let errors = syntax::syntax_errors(language, source);
    assert_eq!(Document::new(source, language, 0).syntax_errors(), errors);
    let rendered: Vec<String> = errors
        .iter()
        .map(|error| format!("{:?} {}", error.byte_range, error.message))
        .collect();
    expect.assert_debug_eq(&rendered);
}

#[test]
fn syntax_errors_report_a_missing_brace() {
    check_errors(
        Language::Rust,
        "fn main() {\n    let x = 1;\n",
        expect![[r#"
            [
                "10..11 syntax error at 1:11: `{` is never closed, missing `}` before the end of the file",
            ]
        "#]],
    );
    check_errors(
        Language::Rust,
        "fn a() {\n    if x {\n        y();\n}\n\nfn b() {}\n",
        expect![[r#"
            [
                "7..8 syntax error at 1:8: `{` is never closed, missing `}` before the end of the file",
            ]
        "#]],
    );
    check_errors(
        Language::Python,
        "def f(x:\n    return x\n",
        expect![[r#"
            [
                "0..8 syntax error at 1:1: unexpected `def`",
            ]
        "#]],
    );
    check_errors(
        Language::TypeScript,
        "function f() {\n  return [1, 2;\n}\n",
        expect![[r#"
            [
                "29..29 syntax error at 2:15: missing `]`",
            ]
        "#]],
    );
    check_errors(
        Language::Go,
        "package main\n\nfunc main() {\n\tx := 1\n",
        expect![[r#"
            [
                "36..36 syntax error at 5:1: missing `}`",
            ]
        "#]],
    );
}

#[test]
fn syntax_errors_report_unexpected_tokens_with_character_columns() {
    check_errors(
        Language::Rust,
        "fn main() {\n    let 名 = 1;\n}\n}\n",
        expect![[r#"
            [
                "31..32 syntax error at 4:1: unexpected `}`",
            ]
        "#]],
    );
    check_errors(
        Language::Json,
        "{\"a\": 1,, \"b\": 2}",
        expect![[r#"
            [
                "7..8 syntax error at 1:8: unexpected `,`",
            ]
        "#]],
    );
}

#[test]
fn syntax_errors_are_empty_for_valid_code() {
    for (language, source) in [
        (Language::Rust, RUST),
        (Language::Python, PYTHON),
        (Language::TypeScript, TYPESCRIPT),
        (Language::Tsx, TSX),
        (Language::JavaScript, JAVASCRIPT),
        (Language::Go, GO),
        (Language::Json, JSON),
        (Language::Markdown, MARKDOWN),
    ] {
        assert_eq!(
            syntax::syntax_errors(language, source),
            vec![],
            "{language}"
        );
    }
}

fn check_comments(language: Language, source: &str, expect: Expect) {
    let comments = syntax::comments(language, source);
    assert_eq!(Document::new(source, language, 0).comments(), comments);
    let rendered: Vec<String> = comments
        .iter()
        .map(|comment| {
            assert_eq!(&source[comment.byte_range.clone()], comment.text);
            format!(
                "{}:{}-{}:{} {}",
                comment.start.line,
                comment.start.column,
                comment.end.line,
                comment.end.column,
                comment.text
            )
        })
        .collect();
    expect.assert_debug_eq(&rendered);
}

#[test]
fn comments_find_redline_instructions() {
    check_comments(
        Language::Rust,
        "// redline: rename this\nfn f() {} /* block\n comment */\n/// doc\nfn g() {}\r\n// crlf\r\n",
        expect![[r#"
            [
                "0:0-0:23 // redline: rename this",
                "1:10-2:11 /* block\n comment */",
                "3:0-3:7 /// doc",
                "5:0-5:7 // crlf",
            ]
        "#]],
    );
    check_comments(
        Language::Python,
        "x = 1  # redline: make this a constant\n",
        expect![[r#"
            [
                "0:7-0:38 # redline: make this a constant",
            ]
        "#]],
    );
    check_comments(
        Language::TypeScript,
        "/* redline: add types */\nconst a = 1; // tail\n",
        expect![[r#"
            [
                "0:0-0:24 /* redline: add types */",
                "1:13-1:20 // tail",
            ]
        "#]],
    );
    check_comments(
        Language::Go,
        "package p\n// redline: add a test\nfunc F() {}\n",
        expect![[r#"
            [
                "1:0-1:22 // redline: add a test",
            ]
        "#]],
    );
    check_comments(
        Language::Markdown,
        MARKDOWN,
        expect![[r#"
            [
                "15:0-15:33 <!-- redline: keep this short -->",
            ]
        "#]],
    );
    check_comments(
        Language::Json,
        "{\"a\": 1}",
        expect![[r#"
        []
    "#]],
    );
}

#![allow(clippy::print_stdout, clippy::unwrap_used)]
use std::time::Instant;
use tree_sitter::{InputEdit, Parser, Point};
fn main() {
  for size_mb in [1usize, 3, 10] {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < size_mb * 1024 * 1024 {
        text.push_str(&format!("pub struct L{i} {{ e: i64 }}\nimpl L{i} {{\n    pub fn record_{i}(&mut self, a: i64) -> i64 {{\n        self.e += a;\n        self.e\n    }}\n}}\n\n"));
        i += 1;
    }
    let mut parser = Parser::new();
    parser.set_language(&tree_sitter_rust::LANGUAGE.into()).unwrap();
    let mut tree = parser.parse(&text, None).unwrap();
    let mut total = vec![];
    for round in 0..8 {
        let at = text.len() * round / 8;
        let at = text[at..].find("record_").unwrap() + at + 7;
        let row = text[..at].matches('\n').count();
        let col = at - text[..at].rfind('\n').map(|p| p + 1).unwrap_or(0);
        text.insert(at, 'x');
        tree.edit(&InputEdit { start_byte: at, old_end_byte: at, new_end_byte: at + 1, start_position: Point::new(row, col), old_end_position: Point::new(row, col), new_end_position: Point::new(row, col + 1) });
        let t = Instant::now();
        let new_tree = parser.parse(&text, Some(&tree)).unwrap();
        total.push(t.elapsed());
        tree = new_tree;
    }
    total.sort();
    println!("{size_mb} MB: median reparse {:?}", total[4]);
  }
}

//! Single-character edits on a 10 MB Rust document: the rope update alone
//! (a plain-text document: rope + line bookkeeping, no parser) and with the
//! incremental tree-sitter reparse. Targets: median ≤ 50 µs and ≤ 5 ms.
//! Also prints the cost of an edit whose error reaches across segments.
//!
//! Run with `cargo bench -p redline-core --bench documents`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use redline_core::document::Document;
use redline_core::syntax::Language;

const TARGET_BYTES: usize = 10 * 1024 * 1024;

/// A Rust file of about 10 MB built from a realistic block with unique names.
fn generate_rust() -> String {
    let mut text = String::with_capacity(TARGET_BYTES + 4096);
    text.push_str("//! Generated benchmark input.\nuse std::collections::HashMap;\n\n");
    let mut index = 0;
    while text.len() < TARGET_BYTES {
        text.push_str(&format!(
            r#"/// Totals the orders of customer {index} (café, 日本, 😀).
pub struct Ledger{index} {{
    entries: HashMap<String, i64>,
    owner: String,
}}

impl Ledger{index} {{
    pub fn record_{index}(&mut self, account: &str, amount: i64) -> i64 {{
        let balance = self.entries.entry(account.to_owned()).or_insert(0);
        *balance += amount;
        if *balance < 0 {{
            println!("{{}} is overdrawn by {{}}", account, -*balance);
        }}
        *balance
    }}
}}

"#
        ));
        index += 1;
    }
    text
}

/// Offsets just after the `record_` of each method name: inserting a letter
/// there keeps the code valid.
fn identifier_offsets(text: &str) -> Vec<usize> {
    text.match_indices("fn record_")
        .map(|(at, _)| at + "fn record_".len())
        .collect()
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |fraction: f64| samples[((samples.len() - 1) as f64 * fraction).round() as usize];
    println!(
        "{label:<42} n={:<5} median {:>10.1?}  p99 {:>10.1?}  max {:>10.1?}",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Inserts a letter at a random identifier and deletes it again, timing each
/// of the two single-character edits.
fn time_edits(document: &mut Document, offsets: &[usize], rounds: usize) -> Vec<Duration> {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut samples = Vec::with_capacity(rounds * 2);
    for _ in 0..rounds {
        let at = offsets[random.below(offsets.len())];
        let started = Instant::now();
        document.edit_bytes(at..at, "x").unwrap();
        samples.push(started.elapsed());
        let started = Instant::now();
        document.edit_bytes(at..at + 1, "").unwrap();
        samples.push(started.elapsed());
    }
    samples
}

fn main() {
    let text = generate_rust();
    let offsets = identifier_offsets(&text);
    println!(
        "document: {:.1} MB of Rust, {} lines, {} methods",
        text.len() as f64 / 1_048_576.0,
        text.lines().count(),
        offsets.len()
    );

    let mut plain = Document::new(&text, Language::PlainText, 0);
    report(
        "single-char edit, rope only",
        time_edits(&mut plain, &offsets, 5_000),
    );

    let started = Instant::now();
    let mut rust = Document::new(&text, Language::Rust, 0);
    println!(
        "initial parse (whole, then cut into {} segments): {:.1?}",
        rust.syntax_segment_count(),
        started.elapsed()
    );
    report(
        "single-char edit, rope + incremental reparse",
        time_edits(&mut rust, &offsets, 60),
    );

    assert_eq!(rust.text().len(), text.len(), "edits were undone");
    assert!(rust.syntax_errors().is_empty(), "edits kept the code valid");

    // The price of an error that reaches across segments: a block comment
    // opened in the middle reparses everything after it as one piece (as a
    // single tree would), and closing it cuts that piece again.
    let middle = offsets[offsets.len() / 2];
    let started = Instant::now();
    rust.edit_bytes(middle..middle, "/*").unwrap();
    let opened = started.elapsed();
    let segments_open = rust.syntax_segment_count();
    let started = Instant::now();
    rust.edit_bytes(middle..middle + 2, "").unwrap();
    println!(
        "open a block comment mid-file: {opened:.1?} ({segments_open} segments); close it: {:.1?} ({} segments)",
        started.elapsed(),
        rust.syntax_segment_count()
    );
    assert!(rust.syntax_errors().is_empty(), "the comment was removed");

    let started = Instant::now();
    let symbols = rust.outline();
    println!(
        "outline of the whole document: {} symbols in {:.1?}",
        symbols.len(),
        started.elapsed()
    );
    let middle = offsets[offsets.len() / 2];
    let started = Instant::now();
    let enclosing = rust
        .enclosing_symbol(middle..middle)
        .map(|symbol| symbol.name);
    println!(
        "enclosing_symbol in the middle: {enclosing:?} in {:.1?}",
        started.elapsed()
    );
}

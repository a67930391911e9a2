//! Proposal benchmarks, printed as figures:
//! 1. diffing a 100,000-line file with 1,000 scattered edits into hunks
//!    (target ≤ 20 ms), next to `git diff --no-index --histogram` on the
//!    same pair in the same run (the whole git process is timed);
//! 2. applying a proposal of 1,000 one-hunk files, fsync included, and
//!    undoing it.
//!
//! Run with `cargo bench -p redline-core --bench proposals`.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redline_core::apply::Applier;
use redline_core::diff;
use redline_core::path::RelPath;
use redline_core::proposal::{HunkStatus, Proposal, ProposalId, StagedFile};

/// A small deterministic generator so every run diffs the same pair.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn big_pair() -> (String, String) {
    let mut rng = Lcg(42);
    let lines: Vec<String> = (0..100_000)
        .map(|i| {
            format!(
                "    let value_{i} = compute({}, {});",
                rng.next() % 1000,
                i % 97
            )
        })
        .collect();
    let old = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let mut new_lines = lines.clone();
    let mut edited = 0;
    while edited < 1000 {
        let at = (rng.next() % new_lines.len() as u64) as usize;
        match rng.next() % 3 {
            0 => new_lines[at] = format!("    // edited {edited}"),
            1 => new_lines.insert(at, format!("    inserted_{edited}();")),
            _ => {
                new_lines.remove(at);
            }
        }
        edited += 1;
    }
    let new = new_lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    (old, new)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn bench_diff() {
    let (old, new) = big_pair();
    let runs = 15;
    let mut hunk_count = 0;
    let mut diff_times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let changes = diff::text_changes(&old, &new);
        diff_times.push(start.elapsed());
        hunk_count = changes.len();
    }
    let mut build_times = Vec::new();
    for _ in 0..5 {
        let staged = StagedFile {
            root: 0,
            path: RelPath::new("big.rs").unwrap(),
            renamed_from: None,
            before: Some(old.as_bytes().to_vec()),
            after: Some(new.as_bytes().to_vec()),
            before_mode: Some(0o644),
            after_mode: Some(0o644),
        };
        let start = Instant::now();
        let proposal = Proposal::build(
            ProposalId::generate(),
            vec![PathBuf::from("/")],
            vec![staged],
            None,
        );
        build_times.push(start.elapsed());
        assert_eq!(proposal.changes[0].hunks.len(), hunk_count);
    }
    let render_start = Instant::now();
    let mut proposal = Proposal::build(
        ProposalId::generate(),
        vec![PathBuf::from("/")],
        vec![StagedFile {
            root: 0,
            path: RelPath::new("big.rs").unwrap(),
            renamed_from: None,
            before: Some(old.as_bytes().to_vec()),
            after: Some(new.as_bytes().to_vec()),
            before_mode: Some(0o644),
            after_mode: Some(0o644),
        }],
        None,
    );
    proposal.set_all(HunkStatus::Accepted);
    let rendered = proposal.unified_diff();
    let render_time = render_start.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("old.rs"), dir.path().join("new.rs"));
    std::fs::write(&a, &old).unwrap();
    std::fs::write(&b, &new).unwrap();
    let mut git_times = Vec::new();
    let mut git_hunks = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new("git")
            .args(["diff", "--no-index", "--histogram", "--no-color"])
            .arg(&a)
            .arg(&b)
            .output()
            .expect("git is installed");
        git_times.push(start.elapsed());
        git_hunks = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("@@"))
            .count();
    }
    println!("diff: 100,000 lines, 1,000 scattered edits");
    println!(
        "  redline-core text_changes (histogram + grouping): median {} (min {}) over {runs} runs, {hunk_count} hunks  [target ≤ 20 ms]",
        ms(median(diff_times.clone())),
        ms(*diff_times.iter().min().unwrap())
    );
    println!(
        "  redline-core Proposal::build (diff + ids + hash): median {}",
        ms(median(build_times))
    );
    println!(
        "  redline-core build + unified_diff render: {} ({} bytes)",
        ms(render_time),
        rendered.len()
    );
    println!(
        "  git diff --no-index --histogram (whole process): median {} over 5 runs, {git_hunks} hunks",
        ms(median(git_times))
    );
}

fn bench_apply() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("work");
    std::fs::create_dir(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let body: String = (0..50).map(|i| format!("line {i}\n")).collect();
    let mut files = Vec::new();
    for i in 0..1000 {
        let path = format!("dir{}/file{i}.txt", i % 20);
        let host = root.join(&path);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, &body).unwrap();
        files.push(StagedFile {
            root: 0,
            path: RelPath::new(&path).unwrap(),
            renamed_from: None,
            before: Some(body.as_bytes().to_vec()),
            after: Some(
                body.replace("line 25\n", &format!("edited {i}\n"))
                    .into_bytes(),
            ),
            before_mode: Some(0o644),
            after_mode: Some(0o644),
        });
    }
    let mut proposal = Proposal::build(ProposalId::generate(), vec![root.clone()], files, None);
    proposal.set_all(HunkStatus::Accepted);
    let applier = Applier::new(&dir.path().join("journal")).unwrap();
    // Flush the setup's dirty pages first, or the first fsync pays for them.
    Command::new("sync").status().unwrap();
    let start = Instant::now();
    let report = applier.apply(&mut proposal).unwrap();
    let apply_time = start.elapsed();
    assert_eq!(report.files.len(), 1000);
    Command::new("sync").status().unwrap();
    let start = Instant::now();
    applier.undo(&report.apply_id).unwrap();
    let undo_time = start.elapsed();
    println!("apply: 1,000 files, one hunk each (journal + temp + fsync + rename + dir fsync)");
    println!(
        "  apply: {} ({:.2} ms/file)",
        ms(apply_time),
        apply_time.as_secs_f64() * 1000.0 / 1000.0
    );
    println!("  undo:  {}", ms(undo_time));
}

fn main() {
    bench_diff();
    bench_apply();
}

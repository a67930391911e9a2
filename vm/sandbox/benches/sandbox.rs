//! Sandbox figures: `cargo bench -p redline-vm --bench sandbox`.
//!
//! - start + run `/bin/true` in a fresh sandbox (session prepared and
//!   disposed each time, and run-only in a kept session), next to plain
//!   `/bin/true` and `bwrap --unshare-all --ro-bind / / /bin/true`;
//! - collecting changes from a 20,000-file folder after 50 files changed;
//! - `python3 -c pass` inside vs outside.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use redline_vm::{CancelFlag, CommandSpec, NamespacesSandbox, SandboxSession, SessionRequest};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..n)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn request(dir: &Path) -> SessionRequest {
    SessionRequest {
        roots: vec![dir.to_path_buf()],
        staged: vec![],
    }
}

fn run(session: &mut dyn SandboxSession, argv: &[&str]) {
    let outcome = session
        .run(
            &CommandSpec::new(argv.iter().copied()),
            &mut |_, _| {},
            &CancelFlag::new(),
        )
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
}

fn main() {
    let backend = NamespacesSandbox::default();
    let folder = tempfile::tempdir().unwrap();
    let n = 50;

    let fresh = time(n, || {
        let mut session = backend.prepare_session(&request(folder.path())).unwrap();
        run(&mut session, &["/bin/true"]);
        Box::new(session).dispose().unwrap();
    });
    let mut kept = backend.prepare_session(&request(folder.path())).unwrap();
    let run_only = time(n, || run(&mut kept, &["/bin/true"]));
    let plain = time(n, || {
        assert!(Command::new("/bin/true").status().unwrap().success())
    });
    let bwrap = Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok()
        .then(|| {
            time(n, || {
                let status = Command::new("bwrap")
                    .args(["--unshare-all", "--ro-bind", "/", "/", "/bin/true"])
                    .status()
                    .unwrap();
                assert!(status.success());
            })
        });
    println!("start + run /bin/true (median of {n}):");
    println!("  fresh sandbox (prepare + run + dispose)  {}", ms(fresh));
    println!(
        "  run in a prepared session                {}",
        ms(run_only)
    );
    println!("  plain /bin/true                          {}", ms(plain));
    match bwrap {
        Some(d) => println!("  bwrap --unshare-all --ro-bind / /        {}", ms(d)),
        None => {
            println!("  bwrap --unshare-all --ro-bind / /        skipped: bwrap is not installed")
        }
    }

    // 20,000 files, 50 of them changed by a command.
    let big = tempfile::tempdir().unwrap();
    for d in 0..200 {
        let dir = big.path().join(format!("d{d}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}.txt")), format!("file {d}/{f}\n")).unwrap();
        }
    }
    let mut session = backend.prepare_session(&request(big.path())).unwrap();
    run(
        &mut session,
        &[
            "sh",
            "-c",
            "for i in $(seq 0 49); do echo changed >> d$i/f$i.txt; done",
        ],
    );
    let collect = time(20, || assert_eq!(session.changes().unwrap().len(), 50));
    println!(
        "collect changes, 20,000-file folder, 50 changed (median of 20): {}",
        ms(collect)
    );

    let inside = time(20, || run(&mut kept, &["/usr/bin/python3", "-c", "pass"]));
    let outside = time(20, || {
        assert!(
            Command::new("/usr/bin/python3")
                .args(["-c", "pass"])
                .status()
                .unwrap()
                .success()
        )
    });
    println!(
        "python3 -c pass (median of 20): inside {}, outside {}, overhead {}",
        ms(inside),
        ms(outside),
        ms(inside.saturating_sub(outside))
    );
}

//! Interactive review, like `git add -p`: one hunk at a time.

use std::io::{BufRead, Write};

use redline_agent::engine::Engine;
use redline_core::proposal::{HunkId, HunkStatus};
use redline_protocol::TaskId;

use crate::render::{self, Style};

pub struct ReviewOutcome {
    pub accepted: usize,
    pub rejected: usize,
    pub pending: usize,
}

const HELP: &str = "y - accept this change\nn - reject this change\na - accept this and all remaining changes\nd - reject this and all remaining changes\nq - quit; leave the remaining changes pending\n? - show this help\n";

/// Walks the pending hunks of a task's proposal, recording each answer.
pub fn review(
    engine: &Engine,
    id: &TaskId,
    style: Style,
    input: &mut dyn BufRead,
) -> anyhow::Result<ReviewOutcome> {
    let proposal = engine
        .proposal(id)?
        .filter(|p| !p.changes.is_empty())
        .ok_or_else(|| anyhow::anyhow!("task {id} has no proposed changes"))?;
    let pending: Vec<(usize, HunkId)> = proposal
        .changes
        .iter()
        .enumerate()
        .flat_map(|(i, change)| {
            change
                .hunks
                .iter()
                .filter(|h| h.status == HunkStatus::Pending)
                .map(move |h| (i, h.id.clone()))
        })
        .collect();
    let total = pending.len();
    let mut bulk: Option<HunkStatus> = None;
    let mut index = 0;
    while index < total {
        let (file_index, hunk_id) = &pending[index];
        let change = &proposal.changes[*file_index];
        let Some(hunk) = change.hunks.iter().find(|h| &h.id == hunk_id) else {
            index += 1;
            continue;
        };
        let status = match bulk {
            Some(status) => status,
            None => {
                print!("{}", render::hunk_view(change, hunk, style));
                print!(
                    "{}",
                    style.bold(&format!(
                        "({}/{total}) Accept this change [y,n,a,d,q,?]? ",
                        index + 1
                    ))
                );
                std::io::stdout().flush()?;
                let mut line = String::new();
                if input.read_line(&mut line)? == 0 {
                    println!();
                    break;
                }
                match line.trim() {
                    "y" | "yes" => HunkStatus::Accepted,
                    "n" | "no" => HunkStatus::Rejected,
                    "a" => {
                        bulk = Some(HunkStatus::Accepted);
                        HunkStatus::Accepted
                    }
                    "d" => {
                        bulk = Some(HunkStatus::Rejected);
                        HunkStatus::Rejected
                    }
                    "q" => break,
                    _ => {
                        print!("{HELP}");
                        continue;
                    }
                }
            }
        };
        engine.resolve_hunks(id, std::slice::from_ref(hunk_id), status)?;
        index += 1;
    }
    let counts = engine.proposal(id)?.map(|p| p.counts());
    Ok(counts
        .map(|c| ReviewOutcome {
            accepted: c.accepted,
            rejected: c.rejected,
            pending: c.pending,
        })
        .unwrap_or(ReviewOutcome {
            accepted: 0,
            rejected: 0,
            pending: 0,
        }))
}

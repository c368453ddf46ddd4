//! `cargo xtask transcripts [CHAPTER...]`: the book's console blocks, typed into a shell
//! on a terminal and compared with the book (the `keel-transcripts` crate; see its
//! docs for how a block is written).
//!
//! The workspace is built first, so that the stage binaries the blocks run are the
//! current code, and the introduction's `cargo build` finds nothing to do.

use anyhow::{Result, bail};

use crate::{cmd, workspace};

/// The blocks that passed, failed and were skipped: counted as tests are.
pub use crate::scoreboard::Tally;

/// Reads the harness's last line: `N passed, N failed, N skipped`.
pub fn parse_tally(line: &str) -> Option<Tally> {
    let mut numbers = line.split(", ").map(|part| {
        let (n, word) = part.trim().split_once(' ')?;
        Some((n.parse::<usize>().ok()?, word))
    });
    match (numbers.next()??, numbers.next()??, numbers.next()??) {
        ((passed, "passed"), (failed, "failed"), (skipped, "skipped")) => Some(Tally {
            passed,
            failed,
            skipped,
        }),
        _ => None,
    }
}

/// Builds the workspace, runs the harness on `chapters` (all when empty), and returns
/// its tally, failed blocks included; fails when the harness could not run.
pub fn run(chapters: &[String]) -> Result<Tally> {
    cmd::run(workspace::cargo().current_dir(workspace::root()).args([
        "build",
        "--workspace",
        "--quiet",
    ]))?;
    let mut tally = None;
    let mut cargo = workspace::cargo();
    cargo
        .current_dir(workspace::root())
        .args(["run", "--quiet", "--package", "keel-transcripts", "--"])
        .args(chapters)
        .stdin(std::process::Stdio::null());
    let status = cmd::stream(&mut cargo, |line| {
        if let Some(found) = parse_tally(line) {
            tally = Some(found);
        }
    })?;
    let Some(tally) = tally else {
        bail!("the transcripts did not say how many blocks passed ({status})");
    };
    if !status.success() && tally.failed == 0 {
        bail!("the transcripts' harness failed ({status})");
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tally() {
        assert_eq!(
            parse_tally("85 passed, 0 failed, 1 skipped"),
            Some(Tally {
                passed: 85,
                failed: 0,
                skipped: 1
            })
        );
        assert_eq!(parse_tally("ok    book/src/x.md:12 (0.1s)"), None);
        assert_eq!(parse_tally("1 passed, 2 skipped"), None);
    }
}

//! `cargo xtask test`: every check, in the order CI runs them, stopping at the first
//! that fails.

use std::process::{ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::libtest::{self, Counts, SKIP_LOG_VAR};
use crate::transcripts::Tally;
use crate::{book, check, cmd, setup, student_book, transcripts, workspace};

/// A step: its name, and what it does.
type Step = (&'static str, fn() -> Result<()>);

/// The tests and the book's transcripts counted together (`N passed, N failed,
/// N skipped`), printed again as the very last line, where CI services look for it.
static TOTALS: Mutex<Option<Tally>> = Mutex::new(None);

/// Adds to [`TOTALS`].
fn count(more: Tally) {
    let mut totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    totals.get_or_insert_default().add(more);
}

/// The steps, in order.
const STEPS: &[Step] = &[
    ("machine setup (Debian packages, mdbook)", setup::run),
    ("cargo fmt --all --check", fmt),
    (
        "cargo clippy --workspace --all-targets -- -D warnings",
        clippy,
    ),
    ("the static build the README installs", static_build),
    ("cargo test --workspace", tests),
    ("exercises --check", exercises),
    ("book", book::run),
    ("book --student", student_book::run),
    ("the book's transcripts", book_transcripts),
];

pub fn run() -> ExitCode {
    let mut done: Vec<(&str, Duration, bool)> = Vec::new();
    for (i, (name, step)) in STEPS.iter().enumerate() {
        println!("\n==> [{}/{}] {name}", i + 1, STEPS.len());
        let start = Instant::now();
        let result = step();
        let ok = result.is_ok();
        if let Err(e) = result {
            eprintln!("error: {e:#}");
        }
        done.push((name, start.elapsed(), ok));
        if !ok {
            break;
        }
    }
    println!("\n==> summary");
    for (name, took, ok) in &done {
        let verdict = if *ok { "ok" } else { "FAILED" };
        println!("  {verdict:<6} {:>7.1}s  {name}", took.as_secs_f64());
    }
    for (name, _) in &STEPS[done.len()..] {
        println!("  {:<6} {:>8}  {name}", "-", "not run");
    }
    if let Some(t) = *TOTALS.lock().unwrap_or_else(|p| p.into_inner()) {
        println!(
            "\n{} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        );
    }
    if done.iter().all(|(_, _, ok)| *ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    cmd::run(workspace::cargo().current_dir(workspace::root()).args(args))
}

fn fmt() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])
}

fn clippy() -> Result<()> {
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
}

/// Every test of the workspace, then one line counting them: `N passed, N failed,
/// N skipped`. A skipped test ends as "ok" for libtest, so it is taken out of the
/// passed ones. `#[ignore]`d tests are counted on a line of their own.
fn tests() -> Result<()> {
    let log = workspace::skip_log();
    libtest::reset_skip_log(&log)?;
    let mut counts = Counts::default();
    let mut cargo = workspace::cargo();
    cargo
        .current_dir(workspace::root())
        .args(["test", "--workspace", "--no-fail-fast"])
        .env(SKIP_LOG_VAR, &log)
        .stdin(Stdio::null());
    let status = cmd::stream(&mut cargo, |line| {
        if let Some(more) = libtest::parse_result_line(line) {
            counts.add(more);
        }
    })?;
    let skips = libtest::read_skip_log(&log);
    println!();
    for skip in &skips {
        println!("skipped: {} {}: {}", skip.binary, skip.test, skip.reason);
    }
    if counts.ignored > 0 {
        println!("{} ignored", counts.ignored);
    }
    let passed = counts.passed.saturating_sub(skips.len());
    let totals = format!(
        "{passed} passed, {} failed, {} skipped",
        counts.failed,
        skips.len()
    );
    println!("{totals}");
    count(Tally {
        passed,
        failed: counts.failed,
        skipped: skips.len(),
    });
    if !status.success() {
        bail!("`cargo test --workspace` failed ({status})");
    }
    Ok(())
}

fn book_transcripts() -> Result<()> {
    let tally = transcripts::run(&[])?;
    count(tally);
    if tally.failed > 0 {
        bail!(
            "{} of the book's transcripts differ from what keel prints",
            tally.failed
        );
    }
    Ok(())
}

fn exercises() -> Result<()> {
    if !check::run()? {
        bail!("some exercises are not proven to be graded");
    }
    Ok(())
}

/// `cargo build --release --target x86_64-unknown-linux-musl -p stage06-cgroups`, before
/// the tests, whose grader of it then finds it built; where the machine cannot make it,
/// that grader says why it skips.
fn static_build() -> Result<()> {
    match workspace::static_build_missing() {
        None => workspace::build_static("stage06-cgroups").map(drop),
        Some(why) => {
            println!("not built: {why}");
            Ok(())
        }
    }
}

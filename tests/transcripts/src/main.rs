//! `keel-transcripts [--book SRC] [CHAPTER...]`: runs the book's console blocks and compares them
//! with the book. Run as root (`cargo xtask transcripts`); CI runs it in
//! `cargo xtask test`. The last line counts the blocks: `N passed, N failed, N skipped`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use keel_transcripts::{book, machine::Machine, run};

fn main() -> ExitCode {
    match main_() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keel-transcripts: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_() -> Result<ExitCode> {
    let mut filter: Vec<String> = std::env::args().skip(1).collect();
    // `--book DIR`: another book's `src` (the harness's own tests use one).
    let mut book_dir = None;
    if let Some(at) = filter.iter().position(|a| a == "--book") {
        book_dir = Some(PathBuf::from(filter.get(at + 1).context("--book DIR")?));
        filter.drain(at..at + 2);
    }
    let workspace = keel_graders::workspace::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| workspace.join(d))
        .unwrap_or_else(|| workspace.join("target"));
    // The cargo that built us (set by `cargo run`), or the one on PATH.
    let cargo_bin = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|dir| dir.join("cargo"))
                .find(|c| c.is_file())
        })
        .and_then(|c| c.parent().map(PathBuf::from));
    if !nix::unistd::geteuid().is_root() {
        println!(
            "SKIP: transcripts: the book's transcripts run as root and as users that they \
             create: run as root"
        );
        println!("0 passed, 0 failed, 1 skipped");
        return Ok(ExitCode::SUCCESS);
    }
    let src = book_dir.unwrap_or_else(|| run::book_src(&workspace));
    let mut chapters = book::chapters(&src, &workspace)?;
    if !filter.is_empty() {
        // A chapter run alone still gets what earlier chapters make first.
        let last = chapters
            .iter()
            .rposition(|c| filter.iter().any(|f| c.name.contains(f.as_str())));
        chapters.truncate(last.map_or(0, |l| l + 1));
        for chapter in &mut chapters {
            if !filter.iter().any(|f| chapter.name.contains(f.as_str())) {
                chapter.blocks.retain(|b| b.directive.first);
            }
        }
    }
    // The binaries the book may install: one per stage crate.
    let mut stages: Vec<String> = std::fs::read_dir(&workspace)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.starts_with("stage") && workspace.join(name).join("Cargo.toml").is_file()
        })
        .collect();
    stages.sort();
    // Before any thread exists: it enters a mount namespace.
    let keep: Vec<PathBuf> = [
        Some(workspace.clone()),
        Some(target.clone()),
        cargo_bin.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let machine = Machine::prepare(&stages, &keep)?;
    run::stop_on_signals()?;
    let setup = run::Setup {
        workspace,
        target,
        cargo_bin,
    };
    let outcome = run::run(&chapters, &setup, &machine);
    for process in machine.kill_leftovers(&[]) {
        println!("killed what was left running: {process}");
    }
    let problems = machine.restore();
    drop(machine);
    let outcome = outcome?;
    for problem in &problems {
        println!("clean-up: {problem}");
    }
    if !outcome.failed.is_empty() {
        println!("\nfailed:");
        for at in &outcome.failed {
            println!("  {at}");
        }
    }
    println!(
        "\n{} passed, {} failed, {} skipped",
        outcome.passed,
        outcome.failed.len(),
        outcome.skipped.len()
    );
    Ok(if outcome.failed.is_empty() && problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

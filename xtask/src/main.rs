//! keel's own tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! Plain Rust instead of shell scripts or a Makefile: it runs wherever cargo does,
//! and what CI runs is `cargo xtask test`, the same command a developer types.

mod bench;
mod bench_image;
mod bench_net;
mod book;
mod bundle;
mod check;
mod ci;
mod cmd;
mod copy;
mod exercises;
mod grade;
mod graders;
mod layout;
mod libtest;
mod order;
mod probe;
mod repo;
mod rootfs;
mod scoreboard;
mod setup;
mod student_book;
mod todos;
mod transcripts;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "keel's own tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every check CI runs: setup, fmt, clippy, tests, exercises, book, transcripts.
    Test,
    /// Write a student copy of the workspace (exercises stripped, a git repository of
    /// its own) into DIR, or with --check prove that the graders catch every stripped
    /// exercise.
    Exercises {
        /// An empty or new directory outside the workspace.
        #[arg(required_unless_present = "check", conflicts_with = "check")]
        dir: Option<PathBuf>,
        /// Check each exercise: graders pass on the reference, fail without it.
        #[arg(long)]
        check: bool,
    },
    /// Run the graders and print a scoreboard (exit code 1 unless all is done).
    Grade {
        /// One stage, e.g. stage01 (default: every stage).
        stage: Option<String>,
    },
    /// Check the book's includes and build it with mdBook into book/build.
    Book {
        /// Build the students' book instead, into book/build-student: every exercise
        /// shows its hint and todo!(), none its solution.
        #[arg(long)]
        student: bool,
    },
    /// Run the book's console blocks on a terminal and compare them with the book
    /// (as root: it creates the book's users).
    Transcripts {
        /// Only these chapters (e.g. stage03), after what earlier ones make first.
        chapters: Vec<String>,
    },
    /// Trace what stage 6's `run` executes and write stage06-cgroups/run.order, the
    /// order the linker lays its code out in (as root: it runs the benchmark's runs).
    Layout,
    /// Time starting a container against unshare, bwrap, crun and runc; with `net`,
    /// stage 4's start-up and the throughput of its port drivers; with `image`, stage
    /// 5's pull, unpacking and start-up against skopeo, umoci and tar.
    Bench {
        /// What to measure: start-up of stages 2 and 3 (the default), `start` (stage 6's), `net` or `image`.
        what: Option<BenchWhat>,
        /// Measured runs of each command [default: 50; 5 with `image`, whose start-up
        /// part runs ten times as many].
        #[arg(long)]
        runs: Option<usize>,
        /// With `net`: MiB moved each way per measurement.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
    },
}

/// The benchmarks besides start-up.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchWhat {
    /// Stage 6, the whole runtime: an image's start-up, as root with a cgroup and
    /// rootless, against stage 5, runc, crun, bubblewrap and unshare.
    Start,
    /// Stage 4: start-up with each network, and throughput through published ports.
    Net,
    /// Stage 5: pull + unpack of a 100+ MB image from a registry on loopback, one
    /// layer's unpacking, and the start-up an image's overlay costs.
    Image,
}

/// Runs of each command when `--runs` is not given: pulling a 100+ MB image takes
/// seconds, starting a container milliseconds.
fn default_runs(what: Option<BenchWhat>) -> usize {
    match what {
        None | Some(BenchWhat::Start) | Some(BenchWhat::Net) => 50,
        Some(BenchWhat::Image) => 5,
    }
}

fn run(task: Task) -> Result<ExitCode> {
    match task {
        Task::Test => return Ok(ci::run()),
        Task::Exercises { check: true, .. } => {
            if !check::run()? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Task::Exercises { dir, .. } => copy::student(&dir.expect("clap requires DIR"))?,
        Task::Grade { stage } => return grade::run(stage.as_deref()),
        Task::Book { student: false } => book::run()?,
        Task::Book { student: true } => student_book::run()?,
        Task::Transcripts { chapters } => {
            if transcripts::run(&chapters)?.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Task::Layout => layout::run()?,
        Task::Bench { what, runs, mib } => {
            let runs = runs.unwrap_or_else(|| default_runs(what));
            match what {
                None => bench::run(runs)?,
                Some(BenchWhat::Start) => bench::run_start(runs)?,
                Some(BenchWhat::Net) => bench::run_net(runs, mib)?,
                Some(BenchWhat::Image) => bench_image::run(runs)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    run(Cli::parse().task).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

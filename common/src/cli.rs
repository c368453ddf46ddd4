//! The command line every stage shares:
//!
//! ```text
//! stageNN-x [run] [OPTIONS] [--] [CMD [ARG...]]   run CMD (default: /bin/sh) in the sandbox
//! stageNN-x doctor                                check what this stage needs
//! ```
//!
//! and whatever subcommands a stage adds of its own (stage 5's `pull`, `images`, ...).
//!
//! A stage brings its own options as a clap `Args` struct that flattens the previous
//! stage's, so stage N accepts everything stage N-1 does, plus its own.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, FromArgMatches, Parser, Subcommand};

use crate::doctor::Report;
use crate::exec::DEFAULT_PATH;
use crate::exit::{self, NOT_FOUND, RUNTIME_FAILED};
use crate::explain;
use crate::layer::{Layer, Process};
use crate::suggest;

/// A stage: its options, its layers and its checks.
pub trait Stage {
    /// The binary's name, e.g. `stage01-pidns`.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// This stage's options (flattening the previous stage's).
    type Args: Args + std::fmt::Debug;
    /// This stage's own subcommands besides `run` and `doctor` ([`NoCommands`] for none).
    type Commands: Subcommand + std::fmt::Debug;
    /// Runs one of [`Stage::Commands`]; returns the exit code.
    fn command(command: Self::Commands) -> i32;
    /// The previous stage's layers plus this stage's one.
    fn layers(args: &Self::Args) -> Result<Vec<Box<dyn Layer>>>;
    /// The previous stage's checks plus this stage's.
    fn doctor(report: &mut Report);
    /// Runs the container: the runner, with this stage's layers. A stage that keeps
    /// state about its containers (stage 6) runs them its own way.
    fn run(process: Process, args: &Self::Args) -> Result<i32> {
        let mut layers = Self::layers(args)?;
        crate::runner::run(process, &mut layers)
    }
}

/// Options of `run` that belong to no layer: what to run and how to show it.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print every step (syscall, arguments, why) to stderr as it happens.
    #[arg(long)]
    pub explain: bool,
    /// Set an environment variable in the container (KEY=VAL, or KEY to copy the host's).
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Give the container a pseudo-terminal of its own (implied, with -i, when no command is given and stdin is a terminal).
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Keep stdin open: with -t, what you type goes to the container's terminal.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Run a small init as PID 1: it reaps zombies, forwards signals, and dies with the runtime.
    #[arg(long)]
    pub init: bool,
}

/// `run`'s whole set of options: the shared ones, the stage's, then the command.
#[derive(Debug, Args)]
pub struct Run<S: Args> {
    #[command(flatten)]
    pub common: RunArgs,
    #[command(flatten)]
    pub stage: S,
    /// The command to run and its arguments (default: an interactive /bin/sh).
    /// Options before the command belong to the runtime (an unknown one is an error,
    /// 125); everything from the command's name on belongs to the command.
    #[arg(trailing_var_arg = true, value_name = "CMD", help_heading = "Command")]
    pub command: Vec<String>,
}

/// The subcommands of a stage that adds none.
#[derive(Debug, Subcommand)]
pub enum NoCommands {}

#[derive(Debug, Subcommand)]
enum Command<S: Args, C: Subcommand> {
    /// Run a command in this stage's sandbox (the default).
    Run(Run<S>),
    /// Check what this stage needs from the machine, and how to fix what is missing.
    Doctor,
    #[command(flatten)]
    Stage(C),
}

#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
struct Cli<S: Args, C: Subcommand> {
    #[command(subcommand)]
    command: Option<Command<S, C>>,
    #[command(flatten)]
    run: Run<S>,
}

/// The whole `main` of a stage binary.
pub fn main<S: Stage>() -> ExitCode {
    main_from::<S, _, _>(std::env::args_os())
}

/// [`main`], with the arguments given.
pub fn main_from<S, I, T>(args: I) -> ExitCode
where
    S: Stage,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    crate::program::set(S::NAME);
    let command = <Cli<S::Args, S::Commands> as clap::CommandFactory>::command()
        .name(crate::program::name())
        .about(S::ABOUT);
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let matches = match command.try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err) => {
            let _ = err.print();
            // --help and --version are not errors; usage errors are the runtime's.
            return ExitCode::from(if err.use_stderr() {
                RUNTIME_FAILED as u8
            } else {
                0
            });
        }
    };
    let cli = match <Cli<S::Args, S::Commands> as FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(RUNTIME_FAILED as u8);
        }
    };
    let code = match cli.command {
        Some(Command::Doctor) => doctor::<S>(),
        Some(Command::Stage(command)) => S::command(command),
        Some(Command::Run(run)) => run_stage::<S>(run, None),
        None => {
            // The first word of the command line, if it is the command: a subcommand
            // it is one letter away from is suggested if the container lacks it.
            let first = args.get(1).and_then(|arg| arg.to_str());
            let names: Vec<&str> = subcommands.iter().map(String::as_str).collect();
            let meant = match cli.run.command.first() {
                Some(word) if first == Some(word.as_str()) => suggest::misspelled(word, &names),
                _ => None,
            };
            run_stage::<S>(cli.run, meant)
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn doctor<S: Stage>() -> i32 {
    println!("{} doctor", crate::program::name());
    let mut report = Report::default();
    S::doctor(&mut report);
    match report.failures() {
        0 => {
            println!("everything {} needs is here", crate::program::name());
            0
        }
        n => {
            println!("{n} check(s) failed: see the fixes above");
            1
        }
    }
}

/// Runs the container. `meant` is the subcommand the command's name may be a
/// misspelling of (see [`suggest`]).
fn run_stage<S: Stage>(run: Run<S::Args>, meant: Option<&str>) -> i32 {
    explain::enable(run.common.explain);
    // Before anything else: no fd of the caller's, and no way to the runtime's binary.
    let result = crate::fds::close_inherited()
        .and_then(|()| crate::sealed::ensure())
        .and_then(|()| process_of(&run))
        .and_then(|process| S::run(process, &run.stage));
    match result {
        Ok(code) => code,
        Err(err) => match meant {
            Some(meant) if exit::code_of(&err) == NOT_FOUND => {
                eprintln!(
                    "{}: {err:#}; did you mean `{meant}`? (with no subcommand, the first \
                     word is the command to run in the container)",
                    crate::program::name()
                );
                RUNTIME_FAILED
            }
            _ => {
                eprintln!("{}: {err:#}", crate::program::name());
                exit::code_of(&err)
            }
        },
    }
}

/// One `-e` option: `KEY=VALUE`, or `KEY` to pass on the host's value (looked up with
/// `host`). A name must be non-empty, and neither may hold a NUL byte (the kernel
/// takes the environment as C strings).
pub fn env_assignment(
    item: &str,
    host: impl Fn(&str) -> Option<String>,
) -> Result<(String, String)> {
    if item.contains('\0') {
        bail!("-e {item:?}: a NUL byte cannot be passed in the environment");
    }
    match item.split_once('=') {
        Some(("", _)) => bail!("-e {item:?}: the variable has no name; write -e KEY=VALUE"),
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None if item.is_empty() => bail!("-e \"\": write -e KEY=VALUE"),
        None => match host(item) {
            Some(value) => Ok((item.to_owned(), value)),
            None => bail!(
                "-e {item}: the host has no variable {item} to pass on; write -e {item}=VALUE"
            ),
        },
    }
}

/// The process to run, from the command line. Like docker, the container gets a
/// clean environment: it does not inherit the host's variables unless asked to.
fn process_of<S: Args>(run: &Run<S>) -> Result<Process> {
    // `docker run -it` with no command: a shell on a terminal of its own.
    let shell_on_a_terminal =
        run.command.is_empty() && nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let mut process = Process {
        // Empty: the default, which a layer may choose (stage 5: the image's command).
        argv: run.command.clone(),
        env: Vec::new(),
        user_env: Vec::new(),
        cwd: run.common.workdir.clone(),
        terminal: run.common.tty || shell_on_a_terminal,
        interactive: run.common.interactive || shell_on_a_terminal,
        init: run.common.init,
        user: None,
        capabilities: None,
    };
    process.setenv("PATH", DEFAULT_PATH);
    process.setenv("HOME", "/root");
    if let Ok(term) = std::env::var("TERM") {
        process.setenv("TERM", term);
    }
    for item in &run.common.env {
        let (key, value) = env_assignment(item, |key| std::env::var(key).ok())?;
        process.setenv(&key, value);
        process.user_env.push(key);
    }
    if let Some(cwd) = &process.cwd
        && !cwd.is_absolute()
    {
        bail!(
            "-w {}: the working directory must be an absolute path inside the container",
            cwd.display()
        );
    }
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::env_assignment;
    use proptest::prelude::*;

    #[test]
    fn env_options_read_like_docker() {
        let host = |key: &str| (key == "LANG").then(|| "C.UTF-8".to_owned());
        assert_eq!(
            env_assignment("A=b=c", host).unwrap(),
            ("A".into(), "b=c".into())
        );
        assert_eq!(
            env_assignment("A=", host).unwrap(),
            ("A".into(), String::new())
        );
        assert_eq!(
            env_assignment("LANG", host).unwrap(),
            ("LANG".into(), "C.UTF-8".into())
        );
        assert!(env_assignment("NOPE", host).is_err());
        assert!(env_assignment("=x", host).is_err());
        assert!(env_assignment("", host).is_err());
        assert!(env_assignment("A=\0", host).is_err());
    }

    proptest! {
        /// Any text: an error or a name without `=` or NUL, never a panic.
        #[test]
        fn env_options_never_panic(item in any::<String>(), known in any::<bool>()) {
            let host = |_: &str| known.then(|| "value".to_owned());
            if let Ok((key, value)) = env_assignment(&item, host) {
                prop_assert!(!key.is_empty());
                prop_assert!(!key.contains('=') && !key.contains('\0') && !value.contains('\0'));
            }
        }
    }
}

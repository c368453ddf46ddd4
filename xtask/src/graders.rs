//! Running the graders: the package `keel-graders` in `tests/`, one integration test
//! file per stage (`tests/stage01.rs` is the test target `stage01`).
//!
//! A grader test grades the exercise its module is named after
//! (`clone_flags::echo_dollar_dollar_prints_1` grades `stage01/clone_flags`); tests
//! in other modules are the stage's general tests.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd;
use crate::libtest::{self, Outcome, SKIP_LOG_VAR, Skip, TestLine};
use crate::todos;
use crate::workspace;

/// The package holding the graders.
pub const PACKAGE: &str = "keel-graders";

/// Where to run the graders: the workspace itself, or a copy of it.
#[derive(Debug)]
pub struct Graders {
    /// The workspace (or copy) to build and test.
    pub dir: PathBuf,
    /// A target directory other than the workspace's own.
    pub target_dir: Option<PathBuf>,
    /// Build with `--offline` (copies use what the workspace already fetched).
    pub offline: bool,
    /// The file the graders append skipped tests to.
    pub skip_log: PathBuf,
}

/// The tests of one stage, as the graders reported them.
#[derive(Debug, Default)]
pub struct Report {
    pub tests: Vec<TestLine>,
    /// For each failed test, the exercises whose `todo!()` it ran into.
    pub todos: HashMap<String, Vec<String>>,
    /// For each failed test, what it printed: why it failed.
    pub failures: HashMap<String, String>,
    /// The tests that skipped, and why.
    pub skips: Vec<Skip>,
}

impl Report {
    /// The tests that grade exercise `name`: those in its module.
    pub fn of_exercise(&self, name: &str) -> Vec<&TestLine> {
        self.tests
            .iter()
            .filter(|t| module(&t.name) == name)
            .collect()
    }

    /// The names of the failed tests among `tests`.
    pub fn failed<'a>(tests: &[&'a TestLine]) -> Vec<&'a str> {
        let failed = tests.iter().filter(|t| t.outcome == Outcome::Failed);
        failed.map(|t| t.name.as_str()).collect()
    }

    /// The exercises whose `todo!()` the failed test `test` ran into.
    pub fn todos_of(&self, test: &str) -> &[String] {
        self.todos.get(test).map(Vec::as_slice).unwrap_or_default()
    }
}

/// What building the graders gave.
#[derive(Debug, Default)]
pub struct Build {
    /// Why it failed: the compiler's errors as it renders them, or cargo's own message
    /// when it stopped before compiling. `None` when it built.
    pub errors: Option<String>,
    /// The compiler's warnings, each once, as it renders them. Only counted on the
    /// scoreboard: in a student copy they are pages about the code its `todo!()`s leave
    /// unused, which say nothing to a student.
    pub warnings: HashSet<String>,
}

/// The first module of a test's path: `clone_flags` for `clone_flags::prints_1`.
pub fn module(test: &str) -> &str {
    test.split("::").next().unwrap_or(test)
}

/// Whether the graders have a test target for `stage`.
pub fn exist(dir: &Path, stage: &str) -> bool {
    dir.join("tests").join(format!("{stage}.rs")).is_file()
}

impl Graders {
    /// The graders of the workspace itself.
    pub fn here() -> Graders {
        Graders {
            dir: workspace::root().to_path_buf(),
            target_dir: None,
            offline: false,
            skip_log: workspace::skip_log(),
        }
    }

    fn cargo(&self, subcommand: &str) -> Command {
        let mut cargo = workspace::cargo();
        cargo.current_dir(&self.dir).arg(subcommand);
        if self.offline {
            cargo.arg("--offline");
        }
        if let Some(target_dir) = &self.target_dir {
            cargo.env("CARGO_TARGET_DIR", target_dir);
        }
        cargo
    }

    /// Builds the graders of `stage` and the stage binaries they run, showing nothing:
    /// the compiler speaks JSON, so that its errors can be told from its warnings.
    pub fn build(&self, stage: &str) -> Result<Build> {
        let mut cargo = self.cargo("test");
        cargo.args([
            "--no-run",
            "--message-format=json",
            "--package",
            PACKAGE,
            "--test",
            stage,
        ]);
        let mut errors = Vec::new();
        let mut warnings = HashSet::new();
        let (status, stderr) = cmd::read_lines(&mut cargo, |line| match compiler_message(line) {
            Some((Level::Error, rendered)) => errors.push(rendered),
            Some((Level::Warning, rendered)) => {
                warnings.insert(rendered);
            }
            None => {}
        })?;
        let errors = if status.success() {
            None
        } else if errors.is_empty() {
            Some(stderr)
        } else {
            Some(errors.concat())
        };
        Ok(Build { errors, warnings })
    }

    /// Runs the graders of `stage` (only the tests matching `filter`, if given), showing
    /// at most a progress line.
    ///
    /// The environment is the grade's own: whatever `RUST_BACKTRACE` a student set, a
    /// stage binary's panic (a `todo!()`) prints its message and no backtrace.
    pub fn run(&self, stage: &str, filter: Option<&str>, progress: bool) -> Result<Report> {
        libtest::reset_skip_log(&self.skip_log)?;
        let mut cargo = self.cargo("test");
        cargo
            .args([
                "--no-fail-fast",
                "--package",
                PACKAGE,
                "--test",
                stage,
                "--",
            ])
            .args(filter)
            .env(SKIP_LOG_VAR, &self.skip_log)
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0");
        let mut shown = Progress::new(stage, progress);
        let mut output = String::new();
        let (_status, stderr) = cmd::read_lines(&mut cargo, |line| {
            shown.line(line);
            output.push_str(line);
            output.push('\n');
        })?;
        shown.done();
        if !output
            .lines()
            .any(|line| libtest::parse_result_line(line).is_some())
        {
            bail!("the graders of {stage} did not run:\n{output}{stderr}");
        }
        let skips = libtest::read_skip_log(&self.skip_log);
        let tests = libtest::results(&output, &skips);
        let failed: Vec<&str> = Report::failed(&tests.iter().collect::<Vec<_>>());
        let failures: HashMap<String, String> = libtest::failure_outputs(&output, &failed)
            .into_iter()
            .collect();
        let todos = failures
            .iter()
            .map(|(test, printed)| (test.clone(), todos::hit(printed)))
            .collect();
        Ok(Report {
            tests,
            todos,
            failures,
            skips,
        })
    }
}

/// How bad a compiler message is: all the scoreboard tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Error,
    Warning,
}

/// The level and rendered text of a compiler message in cargo's JSON output
/// (`{"reason":"compiler-message","message":{"level":"error","rendered":"..."}}`).
fn compiler_message(line: &str) -> Option<(Level, String)> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    if json["reason"] != "compiler-message" {
        return None;
    }
    let message = &json["message"];
    let level = match message["level"].as_str()? {
        level if level.starts_with("error") => Level::Error,
        "warning" => Level::Warning,
        _ => return None,
    };
    Some((level, message["rendered"].as_str()?.to_owned()))
}

/// `ran 12/47 graders of stage01`, rewritten in place on a terminal; nothing otherwise.
struct Progress<'a> {
    stage: &'a str,
    on: bool,
    total: Option<usize>,
    ran: usize,
}

impl<'a> Progress<'a> {
    fn new(stage: &'a str, wanted: bool) -> Self {
        let on = wanted && std::io::stdout().is_terminal();
        Progress {
            stage,
            on,
            total: None,
            ran: 0,
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(total) = line
            .strip_prefix("running ")
            .and_then(|rest| rest.strip_suffix(" tests").or(rest.strip_suffix(" test")))
        {
            self.total = total.parse().ok();
        } else if libtest::parse_test_line(line).is_some() {
            self.ran += 1;
        } else {
            return;
        }
        if self.on {
            let total = self.total.map(|n| n.to_string()).unwrap_or("?".into());
            print!("\r  ran {}/{total} graders of {}", self.ran, self.stage);
            let _ = std::io::stdout().flush();
        }
    }

    fn done(&self) {
        if self.on {
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_compiler_errors_from_warnings() {
        let error = r#"{"reason":"compiler-message","package_id":"x","message":{"level":"error","rendered":"error[E0308]: mismatched types\n"}}"#;
        assert_eq!(
            compiler_message(error),
            Some((Level::Error, "error[E0308]: mismatched types\n".into()))
        );
        let warning = r#"{"reason":"compiler-message","message":{"level":"warning","rendered":"warning: unused variable: `pid`\n"}}"#;
        assert_eq!(compiler_message(warning).map(|m| m.0), Some(Level::Warning));
        let note = r#"{"reason":"compiler-message","message":{"level":"note","rendered":"note"}}"#;
        assert_eq!(compiler_message(note), None);
        let artifact =
            r#"{"reason":"compiler-artifact","message":{"level":"error","rendered":"x"}}"#;
        assert_eq!(compiler_message(artifact), None);
        assert_eq!(compiler_message("   Compiling nix v0.31.0"), None);
    }

    #[test]
    fn a_test_grades_the_exercise_of_its_first_module() {
        assert_eq!(
            module("clone_flags::echo_dollar_dollar_prints_1"),
            "clone_flags"
        );
        assert_eq!(module("cli::help::lists_run"), "cli");
        assert_eq!(module("toplevel_test"), "toplevel_test");
    }
}

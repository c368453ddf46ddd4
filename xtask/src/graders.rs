//! Running the graders: the package `keel-graders` in `tests/`, one integration test
//! file per stage (`tests/stage01.rs` is the test target `stage01`).
//!
//! A grader test grades the exercise its module is named after
//! (`clone_flags::echo_dollar_dollar_prints_1` grades `stage01/clone_flags`); tests
//! in other modules are the stage's general tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::cmd;
use crate::libtest::{self, Outcome, SKIP_LOG_VAR, TestLine};
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

    /// Builds the graders of `stage` (and the stage binaries they run). `Ok(Err(output))`
    /// when the code does not compile, with the compiler's messages.
    pub fn build(&self, stage: &str, quiet: bool) -> Result<Result<(), String>> {
        let mut cargo = self.cargo("test");
        cargo.args(["--no-run", "--package", PACKAGE, "--test", stage]);
        if !quiet {
            return Ok(cmd::run(&mut cargo).map_err(|e| e.to_string()));
        }
        let out = cmd::quiet(&mut cargo)?;
        if out.status.success() {
            Ok(Ok(()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    }

    /// Runs the graders of `stage` (only the tests matching `filter`, if given), live on
    /// the terminal or quietly.
    pub fn run(&self, stage: &str, filter: Option<&str>, quiet: bool) -> Result<Report> {
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
            .stdin(Stdio::null());
        let output = if quiet {
            let out = cmd::quiet(&mut cargo)?;
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            output
        } else {
            let mut output = String::new();
            cmd::stream(&mut cargo, |line| {
                output.push_str(line);
                output.push('\n');
            })?;
            output
        };
        if !output
            .lines()
            .any(|line| libtest::parse_result_line(line).is_some())
        {
            bail!("the graders of {stage} did not run:\n{output}");
        }
        let skips = libtest::read_skip_log(&self.skip_log);
        Ok(Report {
            tests: libtest::results(&output, &skips),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

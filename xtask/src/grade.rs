//! `cargo xtask grade [stageNN]`: runs the graders and prints a scoreboard, one row per
//! exercise and one for the stage's general tests.
//!
//! An exercise is done (✓) when its tests ran and none failed; ✗ when one failed or it
//! has no test; `?` when every test was skipped because this machine lacks something
//! (see the `SKIP:` lines). The exit code is 0 when everything passed and 1 otherwise
//! (a failed test, an exercise not done, or code that does not compile), so that
//! scripts can wait for a stage to be done.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::exercises::{self, Exercise};
use crate::graders::{self, Graders, Report};
use crate::libtest::{Outcome, TestLine};
use crate::workspace;

/// Tallies of a set of tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    /// Skipped because the machine lacks something, or marked `#[ignore]`.
    pub skipped: usize,
}

impl Tally {
    pub fn of<'a>(tests: impl IntoIterator<Item = &'a TestLine>) -> Tally {
        let mut tally = Tally::default();
        for test in tests {
            match test.outcome {
                Outcome::Passed => tally.passed += 1,
                Outcome::Failed => tally.failed += 1,
                Outcome::Ignored | Outcome::Skipped => tally.skipped += 1,
            }
        }
        tally
    }

    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    /// The tests that ran to a verdict.
    pub fn ran(&self) -> usize {
        self.passed + self.failed
    }

    /// ✓ done, ✗ not done, ? could not be told on this machine.
    pub fn mark(&self) -> char {
        match (self.failed, self.passed, self.skipped) {
            (0, 0, 1..) => '?',
            (0, 1.., _) => '✓',
            _ => '✗',
        }
    }
}

/// One row of the scoreboard.
fn row(mark: char, label: &str, tally: Tally) -> String {
    let skipped = match tally.skipped {
        0 => String::new(),
        n => format!("  ({n} skipped)"),
    };
    let score = format!("{}/{}", tally.passed, tally.ran());
    format!("  {mark} {label:<28} {score:>7}{skipped}")
}

/// Grades `stage` (e.g. `stage01`, or `stage01-pidns`), or every stage.
pub fn run(stage: Option<&str>) -> Result<ExitCode> {
    let all = workspace::stages()?;
    let stages: Vec<String> = match stage {
        None => all,
        Some(wanted) => {
            let id = wanted.get(..7).unwrap_or(wanted);
            if !all.iter().any(|s| s == id) {
                bail!("no stage {wanted}: the stages are {}", all.join(", "));
            }
            vec![id.to_owned()]
        }
    };
    let exercises = exercises::find()?;
    let graders = Graders::here();
    let mut board = Vec::new();
    let (mut done, mut total_exercises, mut all_tests) = (0, 0, Tally::default());
    let mut broken = false;
    for stage in &stages {
        let ours: Vec<&Exercise> = exercises.iter().filter(|e| &e.stage == stage).collect();
        total_exercises += ours.len();
        board.push(stage.clone());
        let report = if !graders::exist(&graders.dir, stage) {
            board.push(format!("    (no graders: tests/{stage}.rs is missing)"));
            broken |= !ours.is_empty();
            Report::default()
        } else {
            println!("==> grading {stage}");
            if graders.build(stage, false)?.is_ok() {
                graders.run(stage, None, false)?
            } else {
                board.push("    (does not compile: see the errors above)".to_owned());
                broken = true;
                Report::default()
            }
        };
        for exercise in &ours {
            let tally = Tally::of(report.of_exercise(&exercise.name));
            done += usize::from(tally.mark() == '✓');
            board.push(row(tally.mark(), &exercise.name, tally));
        }
        let general = Tally::of(general_tests(&report, &ours));
        if general != Tally::default() {
            board.push(row(general.mark(), "general", general));
        }
        all_tests.add(Tally::of(&report.tests));
    }
    println!();
    for line in &board {
        println!("{line}");
    }
    let skipped = match all_tests.skipped {
        0 => String::new(),
        n => format!(" ({n} skipped)"),
    };
    println!(
        "score: {done}/{total_exercises} exercises, {}/{} tests{skipped}",
        all_tests.passed,
        all_tests.ran()
    );
    let perfect = !broken && all_tests.failed == 0 && done == total_exercises;
    Ok(if perfect {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The tests that grade no exercise of the stage.
fn general_tests<'a>(report: &'a Report, exercises: &[&Exercise]) -> Vec<&'a TestLine> {
    let graded = |test: &TestLine| {
        exercises
            .iter()
            .any(|e| graders::module(&test.name) == e.name)
    };
    report.tests.iter().filter(|t| !graded(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(outcome: Outcome) -> TestLine {
        TestLine {
            name: "a::b".into(),
            outcome,
        }
    }

    #[test]
    fn marks_tell_done_from_not_done_from_unknown() {
        let passed = test(Outcome::Passed);
        let failed = test(Outcome::Failed);
        let skipped = test(Outcome::Skipped);
        assert_eq!(Tally::of([&passed, &skipped]).mark(), '✓');
        assert_eq!(Tally::of([&passed, &failed]).mark(), '✗');
        assert_eq!(Tally::of([&skipped]).mark(), '?');
        assert_eq!(Tally::of([]).mark(), '✗');
    }
}

//! `cargo xtask exercises --check`: proves that every exercise is graded.
//!
//! For each exercise, the graders must pass on the reference and fail on a copy of the
//! workspace where that one exercise is stripped. Otherwise a student could leave the
//! `todo!()` in place and still be told they are done.
//!
//! The copies live in `target/exercise-check/<stage>-<name>/` and share one target
//! directory, so dependencies compile once. Cargo names a workspace crate's artifacts
//! after its path *relative to the workspace*, so every copy's `stage01-pidns` lands on
//! the same files, and cargo decides whether to rebuild by comparing modification
//! times. Each copy's files with exercises are therefore touched before it is built:
//! otherwise cargo could reuse what it built from another copy.
//!
//! In a student copy, an exercise still `todo!()` has no solution to prove anything
//! with: it is reported as such, and the solved ones are checked as in the reference.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::copy;
use crate::exercises::{self, Exercise};
use crate::graders::{self, Graders, Report};
use crate::scoreboard::Tally;
use crate::workspace;

/// What became of one exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Graders pass on the reference and fail without the solution.
    Proven,
    /// Still the `todo!()` of a student copy here: there is no solution to check.
    Unsolved,
    /// No grader test is in the exercise's module.
    NoTests,
    /// The reference itself fails these tests (each with what it printed); some ran
    /// into these `todo!()`s.
    ReferenceFails(Vec<(String, String)>, Vec<String>),
    /// Every test skipped on this machine, so nothing is proven either way.
    Unchecked,
    /// The copy without the solution does not compile.
    DoesNotCompile(String),
    /// The graders still pass without the solution.
    NotCaught,
}

impl Verdict {
    fn is_ok(&self) -> bool {
        match self {
            Verdict::Proven => true,
            // Root-only tests skip on a developer's machine; CI must run them.
            Verdict::Unchecked => !workspace::is_ci(),
            _ => false,
        }
    }

    fn explain(&self, exercise: &Exercise) -> String {
        match self {
            Verdict::Proven => "proven".into(),
            Verdict::NoTests => format!(
                "no grader test: add tests to `mod {}` in tests/{}.rs",
                exercise.name, exercise.stage
            ),
            Verdict::Unsolved => "still todo!() here: no solution to check".into(),
            Verdict::ReferenceFails(tests, todos) if !todos.is_empty() => format!(
                "the reference fails {}: they stop at the todo!() of {}",
                names(tests),
                todos.join(", ")
            ),
            Verdict::ReferenceFails(tests, _) => {
                format!(
                    "the reference fails {} (what they printed is below)",
                    names(tests)
                )
            }
            Verdict::Unchecked => "every test was skipped on this machine: not checked".into(),
            Verdict::DoesNotCompile(_) => "the copy without the solution does not compile".into(),
            Verdict::NotCaught => "the graders still pass without the solution".into(),
        }
    }
}

/// The names of failed tests, for a line of the table.
fn names(tests: &[(String, String)]) -> String {
    let names: Vec<&str> = tests.iter().map(|(name, _)| name.as_str()).collect();
    names.join(", ")
}

/// One row of the table.
struct Row<'a> {
    exercise: &'a Exercise,
    tests: usize,
    reference: &'static str,
    stripped: &'static str,
    verdict: Verdict,
}

/// Checks every exercise; `Ok(false)` if one is not proven.
pub fn run() -> Result<bool> {
    let exercises = exercises::find()?;
    if exercises.is_empty() {
        println!("no exercises in the workspace");
        return Ok(true);
    }
    let mut by_stage: BTreeMap<&str, Vec<&Exercise>> = BTreeMap::new();
    for exercise in &exercises {
        by_stage.entry(&exercise.stage).or_default().push(exercise);
    }
    let stubs: Vec<String> = exercises
        .iter()
        .filter(|e| e.is_stub())
        .map(Exercise::id)
        .collect();
    if !stubs.is_empty() {
        println!(
            "{} of {} exercises are still todo!() here: {}\n\
             (a student copy?) Only solved exercises can be proven; to grade your work: \
             cargo xtask grade",
            stubs.len(),
            exercises.len(),
            stubs.join(", ")
        );
    }
    let base = workspace::target_dir().join("exercise-check");
    let files: BTreeSet<&Path> = exercises.iter().map(|e| e.file.as_path()).collect();
    let here = Graders::here();
    let mut rows = Vec::new();
    for (stage, ours) in by_stage {
        let report = if ours.iter().all(|e| e.is_stub()) {
            None
        } else {
            println!("==> {stage}: the reference");
            reference(&here, stage)?
        };
        for exercise in ours {
            let (tests, reference, verdict) = if exercise.is_stub() {
                (0, "todo!()", Some(Verdict::Unsolved))
            } else {
                judge_reference(report.as_ref(), &exercise.name)
            };
            let (stripped, verdict) = match verdict {
                Some(verdict) => ("-", verdict),
                None => {
                    println!("==> {}: without its solution", exercise.id());
                    let dir = base.join(format!("{stage}-{}", exercise.name));
                    check_stripped(exercise, &dir, &base.join("target"), &files)?
                }
            };
            rows.push(Row {
                exercise,
                tests,
                reference,
                stripped,
                verdict,
            });
        }
    }
    print_table(&rows);
    Ok(rows.iter().all(|row| row.verdict.is_ok()))
}

/// Judges an exercise by the reference: how many tests it has, how they did, and the
/// verdict if there is no point in stripping it.
fn judge_reference(report: Option<&Report>, name: &str) -> (usize, &'static str, Option<Verdict>) {
    let tests = report.map(|r| r.of_exercise(name)).unwrap_or_default();
    let failed = Report::failed(&tests);
    let (reference, verdict) = if tests.is_empty() {
        ("-", Some(Verdict::NoTests))
    } else if !failed.is_empty() {
        let mut todos: Vec<String> = Vec::new();
        for test in &failed {
            for todo in report.map(|r| r.todos_of(test)).unwrap_or_default() {
                if !todos.contains(todo) {
                    todos.push(todo.clone());
                }
            }
        }
        let failed = failed
            .into_iter()
            .map(|test| {
                let printed = report.and_then(|r| r.failures.get(test));
                (test.to_owned(), printed.cloned().unwrap_or_default())
            })
            .collect();
        ("FAIL", Some(Verdict::ReferenceFails(failed, todos)))
    } else if Tally::of(tests.iter().copied()).passed == 0 {
        ("skipped", Some(Verdict::Unchecked))
    } else {
        ("pass", None)
    };
    (tests.len(), reference, verdict)
}

/// Runs a stage's graders on the workspace itself (`None` if there are none).
fn reference(graders: &Graders, stage: &str) -> Result<Option<Report>> {
    if !graders::exist(&graders.dir, stage) {
        return Ok(None);
    }
    if let Some(errors) = graders.build(stage)?.errors {
        anyhow::bail!("the reference of {stage} does not compile:\n{errors}");
    }
    graders.run(stage, None, false).map(Some)
}

/// Strips `exercise` alone in a copy at `dir` and runs its graders there.
fn check_stripped(
    exercise: &Exercise,
    dir: &Path,
    target_dir: &Path,
    files: &BTreeSet<&Path>,
) -> Result<(&'static str, Verdict)> {
    let id = exercise.id();
    copy::sync(dir, |candidate| candidate == id)?;
    for file in files {
        let path = dir.join(file);
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .with_context(|| format!("touching {}", path.display()))?;
    }
    let graders = Graders {
        dir: dir.to_path_buf(),
        target_dir: Some(target_dir.to_path_buf()),
        offline: true,
        skip_log: target_dir.join("skips.log"),
    };
    // Warnings about unused code are expected without a solution: only errors count.
    if let Some(errors) = graders.build(&exercise.stage)?.errors {
        return Ok(("no build", Verdict::DoesNotCompile(errors)));
    }
    let filter = format!("{}::", exercise.name);
    let report = graders.run(&exercise.stage, Some(&filter), false)?;
    let tally = Tally::of(report.of_exercise(&exercise.name));
    Ok(match tally {
        Tally { failed: 1.., .. } => ("fail", Verdict::Proven),
        Tally { passed: 0, .. } => ("skipped", Verdict::Unchecked),
        _ => ("PASS", Verdict::NotCaught),
    })
}

fn print_table(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.exercise.id().len())
        .max()
        .unwrap_or(0)
        .max(8);
    println!();
    println!("{:<width$}  tests  reference  stripped", "exercise");
    for row in rows {
        let mark = match row.verdict {
            Verdict::Proven => '✓',
            _ if row.verdict.is_ok() => '?',
            _ => '✗',
        };
        let note = match &row.verdict {
            Verdict::Proven => String::new(),
            verdict => format!("  {}", verdict.explain(row.exercise)),
        };
        println!(
            "{:<width$}  {:>5}  {:<9}  {:<8}  {mark}{note}",
            row.exercise.id(),
            row.tests,
            row.reference,
            row.stripped
        );
    }
    for row in rows {
        match &row.verdict {
            Verdict::DoesNotCompile(messages) => println!(
                "\n{} without its solution does not compile:\n{messages}",
                row.exercise.id()
            ),
            // A reference that fails here and passed elsewhere is a flaky grader: what
            // it printed is the only trace of why.
            Verdict::ReferenceFails(tests, todos) if todos.is_empty() => {
                for (test, printed) in tests {
                    println!("\n---- the reference's {test} printed:\n{printed}");
                }
            }
            _ => {}
        }
    }
    let proven = rows.iter().filter(|r| r.verdict == Verdict::Proven).count();
    println!("\n{proven}/{} exercises proven", rows.len());
    if rows.iter().any(|r| r.verdict == Verdict::Unchecked) && !workspace::is_ci() {
        println!("(exercises whose tests all skipped are not counted as failures outside CI)");
    }
}

//! The scoreboard of `cargo xtask grade`: what a student reads to know where they are
//! and what to do next.
//!
//! ```text
//! stage01 (book: Stage 1: a PID namespace)
//!    1. ✓ clone_flags          4/4
//!    2. ✗ mount_proc           0/4  todo!() at stage01-pidns/src/pid.rs:62
//!       ✗ other graders      37/39  2 stop at the todo!() of mount_proc
//!
//! next: stage01/mount_proc, at stage01-pidns/src/pid.rs:62
//!   mount a new "proc" filesystem on /proc (...)
//!
//! stage01: 1/2 exercises done, 41/47 graders pass
//! ```
//!
//! The exercises are numbered in the order to do them (the book's). A failed grader
//! that ran into the `todo!()` of another exercise is *blocked* by it: the row says
//! which exercise to do first, rather than count against the one it grades.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::exercises::Exercise;
use crate::graders::{self, Report};
use crate::libtest::{Outcome, TestLine};

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

    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }
}

/// Where an exercise stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Its graders ran and none failed.
    Done,
    /// Every grader skipped: this machine cannot tell.
    Unknown,
    /// The graders have no test for it.
    NoGraders,
    /// Nothing ran: the code does not compile, or the stage has no graders.
    NotRun,
    /// Its graders ran into its own `todo!()`.
    Todo,
    /// Its failed graders all ran into the `todo!()` of these other exercises.
    Blocked(Vec<String>),
    /// These graders failed for reasons of their own; others may be blocked.
    Failing {
        failing: Vec<String>,
        blocked_by: Vec<String>,
    },
}

impl Status {
    /// Judges `tests`, the graders of exercise `id` (or of none, for `id` empty).
    pub fn of(id: &str, tests: &[&TestLine], report: &Report, ran: bool) -> Status {
        if !ran {
            return Status::NotRun;
        }
        if tests.is_empty() {
            return Status::NoGraders;
        }
        let failed = Report::failed(tests);
        if failed.is_empty() {
            let passed = tests.iter().any(|t| t.outcome == Outcome::Passed);
            return if passed {
                Status::Done
            } else {
                Status::Unknown
            };
        }
        let mut failing = Vec::new();
        let mut blocked_by: Vec<String> = Vec::new();
        for test in failed {
            let todos = report.todos_of(test);
            if todos.iter().any(|todo| todo == id) {
                return Status::Todo;
            }
            if todos.is_empty() {
                failing.push(test.to_owned());
            }
            for todo in todos {
                if !blocked_by.contains(todo) {
                    blocked_by.push(todo.clone());
                }
            }
        }
        if failing.is_empty() {
            Status::Blocked(blocked_by)
        } else {
            Status::Failing {
                failing,
                blocked_by,
            }
        }
    }

    /// ✓ done, ? cannot be told here, ✗ not done.
    pub fn mark(&self) -> char {
        match self {
            Status::Done => '✓',
            Status::Unknown => '?',
            _ => '✗',
        }
    }
}

/// One exercise on the board.
#[derive(Debug)]
pub struct Graded {
    pub exercise: Exercise,
    pub tally: Tally,
    pub status: Status,
}

/// One stage's part of the board.
#[derive(Debug)]
pub struct Stage {
    /// `stage01`
    pub name: String,
    /// The book's chapter for it.
    pub chapter: Option<String>,
    /// Why no grader ran, if none did.
    pub not_run: Option<String>,
    /// Its exercises, in the order to do them.
    pub exercises: Vec<Graded>,
    /// The graders of no exercise (command line, signals, hardening...).
    pub others: Tally,
    pub others_status: Status,
    /// Every grader of the stage.
    pub tests: Tally,
    /// Why graders skipped: reason, and how many.
    pub skips: BTreeMap<String, usize>,
}

impl Stage {
    /// Grades one stage from its graders' report; `ran` is false when they could not
    /// run. `exercises` are the stage's own, in the order to do them.
    pub fn grade(
        name: &str,
        chapter: Option<String>,
        exercises: Vec<Exercise>,
        report: &Report,
        not_run: Option<String>,
    ) -> Stage {
        let ran = not_run.is_none();
        let graded: Vec<Graded> = exercises
            .into_iter()
            .map(|exercise| {
                let tests = report.of_exercise(&exercise.name);
                Graded {
                    tally: Tally::of(tests.iter().copied()),
                    status: Status::of(&exercise.id(), &tests, report, ran),
                    exercise,
                }
            })
            .collect();
        let others: Vec<&TestLine> = report
            .tests
            .iter()
            .filter(|t| {
                let module = graders::module(&t.name);
                !graded.iter().any(|g| g.exercise.name == module)
            })
            .collect();
        let mut skips = BTreeMap::new();
        for skip in &report.skips {
            *skips.entry(skip.reason.clone()).or_default() += 1;
        }
        Stage {
            name: name.to_owned(),
            chapter,
            not_run,
            others: Tally::of(others.iter().copied()),
            others_status: Status::of("", &others, report, ran),
            exercises: graded,
            tests: Tally::of(&report.tests),
            skips,
        }
    }

    fn done(&self) -> usize {
        let done = self.exercises.iter().filter(|g| g.status == Status::Done);
        done.count()
    }

    /// Everything done: every exercise, every grader passed, nothing left out.
    pub fn all_done(&self) -> bool {
        self.not_run.is_none() && self.tests.failed == 0 && self.done() == self.exercises.len()
    }

    /// `stage01: 1/2 exercises done, 41/47 graders pass (3 skipped)`
    fn score(&self) -> String {
        score_line(&self.name, self.done(), self.exercises.len(), self.tests)
    }
}

fn score_line(label: &str, done: usize, exercises: usize, tests: Tally) -> String {
    let skipped = match tests.skipped {
        0 => String::new(),
        n => format!(" ({n} skipped)"),
    };
    format!(
        "{label}: {done}/{exercises} exercises done, {}/{} graders pass{skipped}",
        tests.passed,
        tests.total()
    )
}

/// `clone_flags` within its own stage, `stage01/clone_flags` from another.
fn shown_id<'a>(id: &'a str, stage: &str) -> &'a str {
    id.strip_prefix(stage)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(id)
}

fn shown_ids(ids: &[String], stage: &str) -> String {
    let shown: Vec<&str> = ids.iter().map(|id| shown_id(id, stage)).collect();
    shown.join(", ")
}

/// What a row says after the score.
fn note(status: &Status, exercise: Option<&Exercise>, stage: &str) -> String {
    match status {
        Status::Done | Status::NotRun => String::new(),
        Status::Unknown => "every grader skipped (see why below)".into(),
        Status::NoGraders => format!("no grader for it in tests/{stage}.rs"),
        Status::Todo => match exercise {
            Some(exercise) => format!("todo!() at {}", exercise.place()),
            None => "a todo!() is left".into(),
        },
        Status::Blocked(ids) if exercise.is_some_and(|e| !e.is_stub()) => format!(
            "written; its graders stop at the todo!() of {} first: do that next",
            shown_ids(ids, stage)
        ),
        Status::Blocked(ids) => format!(
            "blocked: do {} first (its todo!() stops these graders)",
            shown_ids(ids, stage)
        ),
        Status::Failing {
            failing,
            blocked_by,
        } => {
            let example = failing.first().map(String::as_str).unwrap_or_default();
            let mut note = format!("{} fail, e.g. {example}", failing.len());
            if !blocked_by.is_empty() {
                let _ = write!(note, "; others wait for {}", shown_ids(blocked_by, stage));
            }
            note
        }
    }
}

fn row(number: Option<usize>, status: &Status, label: &str, tally: Tally, note: &str) -> String {
    let number = number.map(|n| format!("{n:>2}.")).unwrap_or_default();
    let score = format!("{}/{}", tally.passed, tally.total());
    let line = format!(
        "  {number:>3} {} {label:<20} {score:>6}  {note}",
        status.mark()
    );
    line.trim_end().to_owned()
}

/// What to do next: the first exercise not done, or what blocks it.
fn next(stages: &[Stage], all: &[Exercise]) -> Option<String> {
    let find = |id: &str| all.iter().find(|e| e.id() == id);
    let todo = |exercise: &Exercise| {
        format!(
            "next: {}, at {}\n  {}",
            exercise.id(),
            exercise.place(),
            exercise.hint
        )
    };
    let why = |stage: &str, module: &str| {
        format!(
            "  see why: cargo test -p {} --test {stage} -- {module}",
            graders::PACKAGE
        )
    };
    for stage in stages {
        if let Some(reason) = &stage.not_run {
            return Some(format!("next: {}: {reason}", stage.name));
        }
        let others = (&stage.others_status, None, "");
        let rows = stage
            .exercises
            .iter()
            .map(|g| (&g.status, Some(&g.exercise), g.exercise.name.as_str()));
        for (status, exercise, module) in rows.chain([others]) {
            match status {
                Status::Todo => return exercise.map(todo),
                Status::Blocked(ids) => {
                    let first = ids.first()?;
                    return Some(find(first).map_or_else(|| format!("next: {first}"), todo));
                }
                Status::Failing { failing, .. } => {
                    let what = match exercise {
                        Some(exercise) => format!("{} ({})", exercise.id(), exercise.place()),
                        None => format!("the other graders of {}", stage.name),
                    };
                    let module = match module {
                        "" => failing.first().map(String::as_str).unwrap_or_default(),
                        module => &format!("{module}::"),
                    };
                    return Some(format!(
                        "next: make {what} pass\n{}",
                        why(&stage.name, module)
                    ));
                }
                _ => {}
            }
        }
    }
    None
}

/// The whole board: each stage's rows, what to do next, the notes, and the score last.
/// `all` is every exercise of the workspace (a blocker may be in a stage not graded);
/// `warnings` counts the compiler's warnings, which are not shown.
pub fn render(stages: &[Stage], all: &[Exercise], warnings: usize) -> String {
    let mut out = String::new();
    for stage in stages {
        rows(&mut out, stage);
    }
    let notes = notes(stages, all, warnings);
    if !notes.is_empty() {
        let _ = write!(out, "\n{notes}");
    }
    out.push('\n');
    for stage in stages {
        let _ = writeln!(out, "{}", stage.score());
    }
    if stages.len() > 1 {
        let mut tests = Tally::default();
        let (mut done, mut exercises) = (0, 0);
        for stage in stages {
            tests.add(stage.tests);
            done += stage.done();
            exercises += stage.exercises.len();
        }
        let _ = writeln!(out, "{}", score_line("all", done, exercises, tests));
    }
    out
}

/// A stage's heading and rows.
fn rows(out: &mut String, stage: &Stage) {
    let _ = match &stage.chapter {
        Some(chapter) => writeln!(out, "{} (book: {chapter})", stage.name),
        None => writeln!(out, "{}", stage.name),
    };
    if let Some(reason) = &stage.not_run {
        let _ = writeln!(out, "        {reason}");
    }
    for (i, graded) in stage.exercises.iter().enumerate() {
        let note = note(&graded.status, Some(&graded.exercise), &stage.name);
        let line = row(
            Some(i + 1),
            &graded.status,
            &graded.exercise.name,
            graded.tally,
            &note,
        );
        let _ = writeln!(out, "{line}");
    }
    if stage.others.total() > 0 {
        let status = &stage.others_status;
        let note = match status {
            Status::Blocked(ids) => format!(
                "{} stop at the todo!() of {}",
                stage.others.failed,
                shown_ids(ids, &stage.name)
            ),
            status => note(status, None, &stage.name),
        };
        let line = row(None, status, "other graders", stage.others, &note);
        let _ = writeln!(out, "{line}");
    }
}

/// What to do next, why graders skipped, and the warnings not shown.
fn notes(stages: &[Stage], all: &[Exercise], warnings: usize) -> String {
    let mut out = String::new();
    if let Some(next) = next(stages, all) {
        let _ = writeln!(out, "{next}");
    }
    let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
    for stage in stages {
        for (reason, count) in &stage.skips {
            *skips.entry(reason).or_default() += count;
        }
    }
    for (reason, count) in skips {
        let graders = if count == 1 { "grader" } else { "graders" };
        let _ = writeln!(out, "skipped: {count} {graders}: {reason}");
    }
    if warnings > 0 {
        let _ = writeln!(
            out,
            "the compiler gave {warnings} warnings, not shown (the code a todo!() leaves \
             unused is expected): `cargo build --workspace` shows them"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::libtest::Skip;

    /// An exercise as a fresh student copy has it: its body is the stub.
    fn exercise(stage: &str, name: &str, line: usize) -> Exercise {
        let mut exercise = Exercise {
            stage: stage.into(),
            name: name.into(),
            hint: format!("the hint of {name}"),
            file: "stage01-pidns/src/pid.rs".into(),
            line,
            body: String::new(),
        };
        exercise.body = format!("        {}\n", exercise.stub());
        exercise
    }

    fn test(name: &str, outcome: Outcome) -> TestLine {
        TestLine {
            name: name.into(),
            outcome,
        }
    }

    /// A report: (test, outcome, the todo!()s its output shows).
    fn report(tests: &[(&str, Outcome, &[&str])]) -> Report {
        Report {
            failures: Default::default(),
            tests: tests.iter().map(|(name, o, _)| test(name, *o)).collect(),
            todos: tests
                .iter()
                .filter(|(_, o, _)| *o == Outcome::Failed)
                .map(|(name, _, todos)| {
                    let todos = todos.iter().map(|t| t.to_string()).collect();
                    (name.to_string(), todos)
                })
                .collect::<HashMap<_, _>>(),
            skips: Vec::new(),
        }
    }

    use Outcome::{Failed, Passed, Skipped};

    #[test]
    fn a_grader_stopped_by_another_exercise_is_blocked_by_it() {
        let report = report(&[
            ("mount_proc::a", Failed, &["stage01/clone_flags"]),
            ("mount_proc::b", Failed, &["stage01/clone_flags"]),
            ("clone_flags::c", Failed, &["stage01/clone_flags"]),
            ("cli::d", Passed, &[]),
        ]);
        let tests = report.of_exercise("mount_proc");
        assert_eq!(
            Status::of("stage01/mount_proc", &tests, &report, true),
            Status::Blocked(vec!["stage01/clone_flags".into()])
        );
        let tests = report.of_exercise("clone_flags");
        assert_eq!(
            Status::of("stage01/clone_flags", &tests, &report, true),
            Status::Todo
        );
    }

    #[test]
    fn failures_of_its_own_are_not_blamed_on_others() {
        let report = report(&[
            ("mount_proc::a", Failed, &[]),
            ("mount_proc::b", Failed, &["stage01/clone_flags"]),
            ("mount_proc::c", Passed, &[]),
        ]);
        let tests = report.of_exercise("mount_proc");
        assert_eq!(
            Status::of("stage01/mount_proc", &tests, &report, true),
            Status::Failing {
                failing: vec!["mount_proc::a".into()],
                blocked_by: vec!["stage01/clone_flags".into()]
            }
        );
    }

    #[test]
    fn marks_tell_done_from_not_done_from_unknown() {
        let report = report(&[
            ("a::x", Passed, &[]),
            ("a::y", Skipped, &[]),
            ("b::x", Skipped, &[]),
        ]);
        let status = |name: &str| Status::of("", &report.of_exercise(name), &report, true);
        assert_eq!(status("a").mark(), '✓');
        assert_eq!(status("b"), Status::Unknown);
        assert_eq!(status("b").mark(), '?');
        assert_eq!(status("c"), Status::NoGraders);
        assert_eq!(status("c").mark(), '✗');
        let not_run = Status::of("", &report.of_exercise("a"), &report, false);
        assert_eq!(not_run, Status::NotRun);
    }

    #[test]
    fn the_board_says_what_blocks_what_and_ends_with_the_score() {
        let report = report(&[
            ("clone_flags::a", Passed, &[]),
            ("clone_flags::b", Passed, &[]),
            ("mount_proc::c", Failed, &["stage01/mount_proc"]),
            ("cli::d", Passed, &[]),
            ("cli::e", Failed, &["stage01/mount_proc"]),
            ("cli::f", Skipped, &[]),
        ]);
        let mut report = report;
        report.skips.push(Skip {
            binary: "stage01".into(),
            test: "cli::f".into(),
            reason: "needs busybox".into(),
        });
        let all = vec![
            exercise("stage01", "clone_flags", 25),
            exercise("stage01", "mount_proc", 62),
        ];
        let stage = Stage::grade(
            "stage01",
            Some("Stage 1: a PID namespace".into()),
            all.clone(),
            &report,
            None,
        );
        assert!(!stage.all_done());
        let board = render(&[stage], &all, 21);
        let expected = "\
stage01 (book: Stage 1: a PID namespace)
   1. ✓ clone_flags             2/2
   2. ✗ mount_proc              0/1  todo!() at stage01-pidns/src/pid.rs:62
      ✗ other graders           1/3  1 stop at the todo!() of mount_proc

next: stage01/mount_proc, at stage01-pidns/src/pid.rs:62
  the hint of mount_proc
skipped: 1 grader: needs busybox
the compiler gave 21 warnings, not shown (the code a todo!() leaves unused is expected): `cargo build --workspace` shows them

stage01: 1/2 exercises done, 3/6 graders pass (1 skipped)
";
        assert_eq!(board, expected);
    }

    #[test]
    fn a_written_exercise_that_is_blocked_says_it_waits() {
        let report = report(&[
            ("clone_flags::a", Failed, &["stage01/mount_proc"]),
            ("mount_proc::b", Failed, &["stage01/mount_proc"]),
        ]);
        let mut clone_flags = exercise("stage01", "clone_flags", 25);
        clone_flags.body = "        CloneFlags::CLONE_NEWPID\n".into();
        let all = vec![clone_flags, exercise("stage01", "mount_proc", 62)];
        let stage = Stage::grade("stage01", None, all.clone(), &report, None);
        let board = render(&[stage], &all, 0);
        assert!(
            board.contains(
                "clone_flags             0/1  written; its graders stop at the todo!() of \
                 mount_proc first: do that next"
            ),
            "{board}"
        );
        assert!(board.contains("next: stage01/mount_proc"), "{board}");
    }

    #[test]
    fn a_blocked_stage_sends_the_student_to_the_blocker_in_another_stage() {
        let report = report(&[
            ("pivot_root::a", Failed, &["stage01/clone_flags"]),
            ("cli::b", Failed, &["stage01/clone_flags"]),
        ]);
        let all = vec![
            exercise("stage01", "clone_flags", 25),
            exercise("stage02", "pivot_root", 19),
        ];
        let stage = Stage::grade("stage02", None, vec![all[1].clone()], &report, None);
        let board = render(&[stage], &all, 0);
        assert!(
            board.contains("blocked: do stage01/clone_flags first"),
            "{board}"
        );
        assert!(
            board.contains("1 stop at the todo!() of stage01/clone_flags"),
            "{board}"
        );
        assert!(
            board.contains("next: stage01/clone_flags, at stage01-pidns/src/pid.rs:25"),
            "{board}"
        );
        assert!(board.ends_with("stage02: 0/1 exercises done, 0/2 graders pass\n"));
    }

    #[test]
    fn a_failing_exercise_says_how_to_see_why_and_all_done_is_all_done() {
        let failing = report(&[("mount_proc::a", Failed, &[]), ("cli::b", Passed, &[])]);
        let all = vec![exercise("stage01", "mount_proc", 62)];
        let stage = Stage::grade("stage01", None, all.clone(), &failing, None);
        let board = render(&[stage], &all, 0);
        assert!(board.contains("1 fail, e.g. mount_proc::a"), "{board}");
        assert!(
            board.contains("see why: cargo test -p keel-graders --test stage01 -- mount_proc::"),
            "{board}"
        );
        let passing = report(&[("mount_proc::a", Passed, &[]), ("cli::b", Passed, &[])]);
        let done = Stage::grade("stage01", None, all.clone(), &passing, None);
        assert!(done.all_done());
        let board = render(&[done], &all, 0);
        assert!(!board.contains("next:"), "{board}");
        assert!(board.ends_with("stage01: 1/1 exercises done, 2/2 graders pass\n"));
    }

    #[test]
    fn code_that_does_not_compile_is_not_done() {
        let all = vec![exercise("stage01", "mount_proc", 62)];
        let reason = "does not compile: see the compiler's errors above".to_owned();
        let stage = Stage::grade(
            "stage01",
            None,
            all.clone(),
            &Report::default(),
            Some(reason),
        );
        assert!(!stage.all_done());
        let board = render(&[stage], &all, 0);
        assert!(board.contains("next: stage01: does not compile"), "{board}");
    }
}

//! `cargo xtask grade [stageNN]`: builds and runs the graders, then prints the
//! scoreboard (see [`crate::scoreboard`]), in the keel workspace or in a student copy.
//!
//! The output stays short: the compiler's errors are shown, its warnings only counted
//! (a student copy has pages of them about the code its `todo!()`s leave unused), and
//! the graders' own output is read, not shown. The exit code is 0 when everything is
//! done and 1 otherwise (a failed grader, an exercise not done, code that does not
//! compile), so that scripts can wait for a stage to be done.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::exercises;
use crate::graders::{self, Graders, Report};
use crate::order;
use crate::scoreboard::{self, Stage};
use crate::workspace;

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
    let placed = order::in_book_order(exercises::find()?, workspace::root());
    let graders = Graders::here();
    let mut board = Vec::new();
    let mut warnings = HashSet::new();
    for stage in &stages {
        let ours: Vec<_> = placed
            .iter()
            .filter(|p| &p.exercise.stage == stage)
            .collect();
        let chapter = ours.iter().find_map(|p| p.chapter.clone());
        let exercises = ours.iter().map(|p| p.exercise.clone()).collect();
        let (report, not_run) = grade(&graders, stage, &mut warnings)?;
        board.push(Stage::grade(stage, chapter, exercises, &report, not_run));
    }
    let everything: Vec<_> = placed.into_iter().map(|p| p.exercise).collect();
    println!();
    print!(
        "{}",
        scoreboard::render(&board, &everything, warnings.len())
    );
    Ok(if board.iter().all(Stage::all_done) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds and runs the graders of `stage`: their report, or why they did not run.
fn grade(
    graders: &Graders,
    stage: &str,
    warnings: &mut HashSet<String>,
) -> Result<(Report, Option<String>)> {
    if !graders::exist(&graders.dir, stage) {
        let missing = format!("no graders: tests/{stage}.rs is missing");
        return Ok((Report::default(), Some(missing)));
    }
    println!("==> {stage}: building the graders");
    let build = graders.build(stage)?;
    warnings.extend(build.warnings);
    if let Some(errors) = build.errors {
        eprintln!("{}", errors.trim_end());
        let reason = "does not compile: see the compiler's errors above".to_owned();
        return Ok((Report::default(), Some(reason)));
    }
    println!("==> {stage}: running the graders");
    Ok((graders.run(stage, None, true)?, None))
}

//! Exercises: solution regions in the stage crates that a student copy replaces by
//! `todo!()` and a hint.
//!
//! An exercise is an mdBook anchor whose first line is an `// EXERCISE:` comment:
//!
//! ```text
//! // ANCHOR: clone_flags
//! // EXERCISE: return the namespaces this layer needs
//! CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS      <- the solution
//! // ANCHOR_END: clone_flags
//! ```
//!
//! Stripping keeps the three marker lines and replaces the solution by one line,
//! `todo!("stage01/clone_flags: return the namespaces this layer needs")`. Because the
//! markers are mdBook anchors, the book shows the very same region.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::workspace;

/// One `// ANCHOR: name` ... `// ANCHOR_END: name` region of a file (0-based lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub name: String,
    /// The `// ANCHOR:` line.
    pub start: usize,
    /// The `// ANCHOR_END:` line.
    pub end: usize,
    /// The hint, if the region is an exercise.
    pub hint: Option<String>,
}

impl Anchor {
    /// The lines a student copy replaces: after the `// EXERCISE:` line, before the end.
    fn solution(&self) -> std::ops::Range<usize> {
        self.start + 2..self.end
    }
}

/// An exercise found in the workspace.
#[derive(Debug, Clone)]
pub struct Exercise {
    /// `stage01`
    pub stage: String,
    /// `clone_flags`: also the module its graders live in.
    pub name: String,
    pub hint: String,
    /// The file holding it, relative to the workspace root.
    pub file: PathBuf,
    /// The 1-based line of its `// EXERCISE:` comment, where a student starts.
    pub line: usize,
    /// The lines between the `// EXERCISE:` comment and the end: the solution in the
    /// reference, the `todo!()` in a fresh student copy, the student's work later.
    pub body: String,
}

impl Exercise {
    /// `stage01/clone_flags`
    pub fn id(&self) -> String {
        format!("{}/{}", self.stage, self.name)
    }

    /// `stage01-pidns/src/pid.rs:25`
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The line a student copy has instead of the solution, unindented:
    /// `todo!("stage01/clone_flags: <hint>")`.
    pub fn stub(&self) -> String {
        todo_line("", &self.id(), &self.hint).trim().to_owned()
    }

    /// Whether the body is still the `todo!()` a student copy starts with: nothing to
    /// prove there, and nothing a grader can pass.
    pub fn is_stub(&self) -> bool {
        self.body.trim() == self.stub()
    }
}

/// The text after `// TAG:` on a marker line, trimmed.
fn marker<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let rest = line.trim().strip_prefix("//")?.trim_start();
    Some(rest.strip_prefix(tag)?.strip_prefix(':')?.trim())
}

/// Every anchor region of `text`, in the order they end.
///
/// Fails on an anchor without its end (or the reverse), and on an exercise that
/// regions cross or nest in: stripping it would cut them in half.
pub fn anchors(text: &str) -> Result<Vec<Anchor>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut anchors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = marker(line, "ANCHOR") {
            if name.is_empty() {
                bail!("line {}: ANCHOR without a name", i + 1);
            }
            if let Some((_, first)) = open.iter().find(|(open, _)| *open == name) {
                bail!(
                    "line {}: ANCHOR: {name} opened again (first on line {})",
                    i + 1,
                    first + 1
                );
            }
            open.push((name, i));
        } else if let Some(name) = marker(line, "ANCHOR_END") {
            let Some(at) = open.iter().position(|(open, _)| *open == name) else {
                bail!(
                    "line {}: ANCHOR_END: {name} without an ANCHOR: {name} before it",
                    i + 1
                );
            };
            let (name, start) = open.remove(at);
            let hint = lines
                .get(start + 1)
                .and_then(|next| marker(next, "EXERCISE"));
            anchors.push(Anchor {
                name: name.to_owned(),
                start,
                end: i,
                hint: hint.map(str::to_owned),
            });
        }
    }
    if let Some((name, start)) = open.first() {
        bail!(
            "line {}: ANCHOR: {name} has no matching ANCHOR_END: {name}",
            start + 1
        );
    }
    for exercise in anchors.iter().filter(|a| a.hint.is_some()) {
        let inside = |line: usize| exercise.solution().contains(&line);
        for other in &anchors {
            let nested = inside(other.start) && inside(other.end);
            if inside(other.start) != inside(other.end) || (nested && other.hint.is_some()) {
                bail!(
                    "line {}: anchor {} crosses or nests in exercise {} (lines {}-{}): \
                     exercises must not contain other exercises or half an anchor",
                    other.start + 1,
                    other.name,
                    exercise.name,
                    exercise.start + 1,
                    exercise.end + 1
                );
            }
        }
    }
    Ok(anchors)
}

/// The line that replaces a solution, e.g. `todo!("stage01/clone_flags: hint")`.
///
/// `todo!`'s single argument is a format string, so braces are doubled; `{:?}` then
/// escapes quotes and backslashes.
fn todo_line(indent: &str, id: &str, hint: &str) -> String {
    let message = format!("{id}: {hint}")
        .replace('{', "{{")
        .replace('}', "}}");
    format!("{indent}todo!({message:?})\n")
}

/// Strips the exercises of `text` (a source file of `stage`) for which `select(id)`
/// holds. Returns the new text and the names of the exercises stripped.
pub fn strip(
    text: &str,
    stage: &str,
    select: impl Fn(&str) -> bool,
) -> Result<(String, Vec<String>)> {
    let mut cuts: Vec<Anchor> = anchors(text)?
        .into_iter()
        .filter(|a| a.hint.is_some() && select(&format!("{stage}/{}", a.name)))
        .collect();
    cuts.sort_by_key(|a| a.start);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut next = 0;
    for cut in &cuts {
        let solution = cut.solution();
        out.extend(lines[next..solution.start].iter().copied());
        let exercise_line = lines[cut.start + 1];
        let indent = &exercise_line[..exercise_line.len() - exercise_line.trim_start().len()];
        let hint = cut.hint.as_deref().unwrap_or_default();
        out.push_str(&todo_line(indent, &format!("{stage}/{}", cut.name), hint));
        next = solution.end;
    }
    out.extend(lines[next..].iter().copied());
    Ok((out, cuts.into_iter().map(|a| a.name).collect()))
}

/// Every exercise of the workspace, in file order, as the files are on disk.
pub fn find() -> Result<Vec<Exercise>> {
    find_in(workspace::root())
}

/// Every exercise of the workspace or copy at `root`, in file order.
///
/// Fails if a file's anchors do not pair up or a stage has two exercises of one name
/// (the name is also the module of its graders, so it must be unique in the stage).
pub fn find_in(root: &Path) -> Result<Vec<Exercise>> {
    let mut found: Vec<Exercise> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for rel in workspace::stage_sources(root)? {
        let Some(stage) = workspace::stage_source(&rel) else {
            continue;
        };
        let text = fs::read_to_string(root.join(&rel))
            .with_context(|| format!("reading {}", rel.display()))?;
        for exercise in in_file(&text, stage, &rel)? {
            if let Some(first) = seen.insert(exercise.id(), rel.clone()) {
                bail!(
                    "exercise {} is defined twice: in {} and in {}",
                    exercise.id(),
                    first.display(),
                    rel.display()
                );
            }
            found.push(exercise);
        }
    }
    Ok(found)
}

/// The exercises of one source file `rel` of `stage`, whose text is `text`.
fn in_file(text: &str, stage: &str, rel: &Path) -> Result<Vec<Exercise>> {
    let anchors = anchors(text).with_context(|| {
        format!(
            "in {} (each exercise sits between its ANCHOR and ANCHOR_END lines: \
             put back any that are gone)",
            rel.display()
        )
    })?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let exercises = anchors.into_iter().filter_map(|anchor| {
        // Only an anchor with an EXERCISE line is an exercise; its solution starts
        // after that line, so an anchor with no line inside has none (no panic).
        let body = lines.get(anchor.solution())?.concat();
        Some(Exercise {
            stage: stage.to_owned(),
            line: anchor.start + 2,
            body,
            hint: anchor.hint?,
            name: anchor.name,
            file: rel.to_path_buf(),
        })
    });
    Ok(exercises.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: &str = "\
impl Layer for Pid {
    fn clone_flags(&self) -> CloneFlags {
        // ANCHOR: clone_flags
        // EXERCISE: return the \"namespaces\" {this} layer needs
        CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS
        // ANCHOR_END: clone_flags
    }
}
// ANCHOR: shown_in_the_book
fn helper() {}
// ANCHOR_END: shown_in_the_book
";

    #[test]
    fn finds_anchors_and_tells_exercises_apart() {
        let anchors = anchors(PID).unwrap();
        assert_eq!(anchors.len(), 2);
        assert_eq!(anchors[0].name, "clone_flags");
        assert_eq!((anchors[0].start, anchors[0].end), (2, 6));
        assert_eq!(
            anchors[0].hint.as_deref(),
            Some("return the \"namespaces\" {this} layer needs")
        );
        assert_eq!(anchors[1].hint, None);
    }

    #[test]
    fn an_empty_anchor_is_no_exercise_and_no_panic() {
        let text = "// ANCHOR: empty\n// ANCHOR_END: empty\n";
        let found = in_file(text, "stage01", Path::new("src/x.rs")).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn strips_the_solution_and_keeps_the_markers() {
        let (text, names) = strip(PID, "stage01", |_| true).unwrap();
        assert_eq!(names, ["clone_flags"]);
        let expected = "\
impl Layer for Pid {
    fn clone_flags(&self) -> CloneFlags {
        // ANCHOR: clone_flags
        // EXERCISE: return the \"namespaces\" {this} layer needs
        todo!(\"stage01/clone_flags: return the \\\"namespaces\\\" {{this}} layer needs\")
        // ANCHOR_END: clone_flags
    }
}
// ANCHOR: shown_in_the_book
fn helper() {}
// ANCHOR_END: shown_in_the_book
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_stripped_exercise_is_a_stub_and_the_reference_is_not() {
        let file = Path::new("stage01-pidns/src/pid.rs");
        let reference = in_file(PID, "stage01", file).unwrap();
        assert_eq!(reference.len(), 1);
        let exercise = &reference[0];
        assert_eq!(exercise.place(), "stage01-pidns/src/pid.rs:4");
        assert_eq!(
            exercise.body,
            "        CloneFlags::CLONE_NEWPID\n            | CloneFlags::CLONE_NEWNS\n"
        );
        assert!(!exercise.is_stub());
        let (stripped, _) = strip(PID, "stage01", |_| true).unwrap();
        let stub = in_file(&stripped, "stage01", file).unwrap();
        assert!(stub[0].is_stub(), "{:?}", stub[0].body);
        let (other, _) = strip(PID, "stage02", |_| true).unwrap();
        let foreign = in_file(&other, "stage01", file).unwrap();
        assert!(!foreign[0].is_stub(), "a todo!() of another exercise");
    }

    #[test]
    fn strips_only_the_selected_exercises() {
        let (text, names) = strip(PID, "stage01", |id| id == "stage01/other").unwrap();
        assert!(names.is_empty());
        assert_eq!(text, PID);
    }

    #[test]
    fn an_empty_solution_still_gets_its_todo() {
        let text = "  // ANCHOR: a\n  // EXERCISE: do it\n  // ANCHOR_END: a";
        let (out, _) = strip(text, "stage02", |_| true).unwrap();
        assert_eq!(
            out,
            "  // ANCHOR: a\n  // EXERCISE: do it\n  todo!(\"stage02/a: do it\")\n  // ANCHOR_END: a"
        );
    }

    #[test]
    fn unmatched_anchors_are_errors() {
        let open = anchors("// ANCHOR: a\nfn f() {}\n").unwrap_err();
        assert!(
            open.to_string().contains("no matching ANCHOR_END: a"),
            "{open}"
        );
        let close = anchors("fn f() {}\n// ANCHOR_END: a\n").unwrap_err();
        assert!(
            close.to_string().contains("without an ANCHOR: a"),
            "{close}"
        );
    }

    #[test]
    fn regions_crossing_an_exercise_are_errors() {
        let text =
            "// ANCHOR: a\n// EXERCISE: x\n// ANCHOR: b\n// ANCHOR_END: a\n// ANCHOR_END: b\n";
        assert!(anchors(text).is_err());
        let nested_anchor =
            "// ANCHOR: a\n// EXERCISE: x\n// ANCHOR: b\n// ANCHOR_END: b\n// ANCHOR_END: a\n";
        assert!(anchors(nested_anchor).is_ok());
    }
}

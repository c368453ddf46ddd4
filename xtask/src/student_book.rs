//! `cargo xtask book --student`: the students' book, whose listings show each exercise
//! as a student copy has it (the hint and the `todo!()`) and never its solution.
//!
//! The book includes code by anchors from the crates, so the students' book is the same
//! book built from a copy of the workspace whose exercises are stripped
//! (`target/student-book`): a listing of an exercise, of a bigger anchor around one, or
//! of a whole file, then all show the stub, by construction. Then every page and the
//! search index are read for each exercise's solution, so that a way around the
//! stripping (a chapter that pastes the code, an include from elsewhere) is caught.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::book;
use crate::copy;
use crate::exercises::{self, Exercise};
use crate::workspace;

/// Bodies shorter than this many words are too common to be recognised as solutions.
const MIN_WORDS: usize = 3;

/// Builds the students' book into `book/build-student` and checks it shows no solution.
pub fn run() -> Result<()> {
    let root = workspace::root();
    book::check_includes(&book::book_dir(root)?)?;
    let dest = root.join("book").join("build-student");
    build(&workspace::target_dir().join("student-book"), &dest)?;
    // Its own .gitignore, so that the output stays out of git (and of student copies)
    // whatever the workspace's ignores say.
    fs::write(
        dest.join(".gitignore"),
        "# Built by `cargo xtask book --student`.\n*\n",
    )?;
    let exercises = exercises::find()?;
    let shown = solutions_shown(&dest, &exercises)?;
    if !shown.is_empty() {
        let lines: Vec<String> = shown
            .iter()
            .map(|(id, page)| format!("{id}: in {}", page.display()))
            .collect();
        bail!(
            "the student book shows the solutions of exercises:\n  {}\n\
             A chapter must show an exercise only by including its anchor (or one around it).",
            lines.join("\n  ")
        );
    }
    let solved = exercises.iter().filter(|e| !e.is_stub()).count();
    println!(
        "student book written to {}: no page shows the solution of any of the {solved} \
         exercises solved here",
        dest.join("index.html").display(),
    );
    Ok(())
}

/// Strips every exercise into a copy of the workspace at `copy`, and builds the book
/// of that copy into `dest`.
pub fn build(copy: &Path, dest: &Path) -> Result<()> {
    copy::sync(copy, |_| true)
        .context("writing the stripped copy the student book is built from")?;
    book::build(&book::book_dir(copy)?, dest)
}

/// The exercises whose solution a page of the book built in `dest` shows, with the
/// page. A stub (an exercise still `todo!()`, in a student copy) has no solution.
pub fn solutions_shown(dest: &Path, exercises: &[Exercise]) -> Result<Vec<(String, PathBuf)>> {
    let solutions: Vec<(String, Vec<String>)> = exercises
        .iter()
        .filter(|e| !e.is_stub())
        .map(|e| (e.id(), words(&plain(&e.body, false))))
        .filter(|(_, words)| words.len() >= MIN_WORDS)
        .collect();
    let mut shown = Vec::new();
    for page in pages(dest)? {
        let text =
            fs::read_to_string(&page).with_context(|| format!("reading {}", page.display()))?;
        let html = page.extension().is_some_and(|ext| ext == "html");
        let page_words = words(&plain(&text, html));
        for (id, solution) in &solutions {
            if contains(&page_words, solution) {
                let rel = page.strip_prefix(dest).unwrap_or(&page).to_path_buf();
                shown.push((id.clone(), rel));
            }
        }
    }
    Ok(shown)
}

/// The files of a built book that hold its text: the pages and the search index.
fn pages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            found.extend(pages(&path)?);
        } else if name.ends_with(".html") || name.starts_with("searchindex") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The text of a page as a reader sees it: for HTML, tags dropped and entities
/// decoded; for all, escaped line ends (`\n` in a string of the search index, however
/// many backslashes) turned into spaces.
fn plain(text: &str, html: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if html && c == '<' {
            match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => rest = "",
            }
            continue;
        }
        if html && c == '&' {
            let entity = rest
                .find(';')
                .filter(|&end| end <= 8)
                .map(|end| &rest[..=end]);
            let decoded = match entity {
                Some("&lt;") => Some('<'),
                Some("&gt;") => Some('>'),
                Some("&amp;") => Some('&'),
                Some("&quot;") => Some('"'),
                Some("&#39;" | "&#x27;") => Some('\''),
                Some("&nbsp;") => Some(' '),
                _ => None,
            };
            if let (Some(decoded), Some(entity)) = (decoded, entity) {
                out.push(decoded);
                rest = &rest[entity.len()..];
                continue;
            }
        }
        if c == '\\' {
            let after = rest.trim_start_matches('\\');
            if let Some(b'n' | b't' | b'r') = after.bytes().next() {
                out.push(' ');
                rest = &after[1..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The words of `text`: its runs of letters, digits and `_`. Comparing words ignores
/// what rendering and escaping change: spaces, punctuation, quotes.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `needle` appears in `hay`, word after word.
fn contains(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::libtest::SKIP_LOG_VAR;
    use crate::order;

    fn exercise(name: &str, body: &str) -> Exercise {
        Exercise {
            stage: "stage01".into(),
            name: name.into(),
            hint: "return the namespaces".into(),
            file: "stage01-pidns/src/pid.rs".into(),
            line: 25,
            body: body.into(),
        }
    }

    const SOLUTION: &str =
        "        CloneFlags::CLONE_NEWPID\n            | CloneFlags::CLONE_NEWNS\n";

    #[test]
    fn a_solution_is_found_through_html_and_escaping() {
        let ex = exercise("clone_flags", SOLUTION);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
        write(
            "listing.html",
            "<pre><code class=\"language-rust\"><span class=\"boring\">use x;\n</span>\
             CloneFlags::CLONE_NEWPID\n    | CloneFlags::CLONE_NEWNS &amp;&amp; a &lt;b&gt;</code></pre>",
        );
        write(
            "searchindex-1234.js",
            "JSON.parse('{\"doc\":\"host\\\\nCloneFlags::CLONE_NEWPID\\\\n | CloneFlags::CLONE_NEWNS\"}')",
        );
        write(
            "stub.html",
            "<pre><code>todo!(&quot;stage01/clone_flags: return the namespaces&quot;)</code></pre>\
             <p>Ask for <code>CLONE_NEWPID</code> and for <code>CLONE_NEWNS</code>.</p>",
        );
        write(
            "style.css",
            "CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS",
        );
        let shown = solutions_shown(dir.path(), &[ex]).unwrap();
        let pages: Vec<_> = shown.iter().map(|(_, p)| p.to_str().unwrap()).collect();
        assert_eq!(pages, ["listing.html", "searchindex-1234.js"]);
    }

    #[test]
    fn stubs_and_tiny_bodies_are_not_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.html"), "Ok(()) todo!(\"x\")").unwrap();
        let stub = exercise("clone_flags", "");
        let stub = Exercise {
            body: format!("        {}\n", stub.stub()),
            ..stub
        };
        assert!(stub.is_stub());
        let tiny = exercise("tiny", "    Ok(())\n");
        assert!(
            solutions_shown(dir.path(), &[stub, tiny])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn plain_text_drops_tags_and_decodes_entities() {
        assert_eq!(
            plain("<b>a</b> &lt;&amp;&gt; &quot;q&quot; &unknown; &", true),
            "a <&> \"q\" &unknown; &"
        );
        assert_eq!(plain("a\\\\nb\\tc<d>", false), "a b c<d>");
        assert_eq!(
            words("fchdir(root).with_context(|| x)"),
            ["fchdir", "root", "with_context", "x"]
        );
    }

    /// Builds both books as `cargo xtask book` and `--student` do, and reads them: the
    /// instructors' shows the solution of every exercise the book shows, the students'
    /// shows each of them as its stub and none of their solutions.
    #[test]
    fn the_student_book_shows_stubs_where_the_instructors_shows_solutions() {
        if crate::setup::mdbook().is_none() {
            let test = "student_book::tests::the_student_book_shows_stubs_where_the_instructors_shows_solutions";
            let reason = "mdbook is not installed";
            eprintln!("SKIP: {test}: {reason}");
            if let Some(log) = std::env::var_os(SKIP_LOG_VAR) {
                use std::io::Write;
                let mut log = fs::File::options()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap();
                writeln!(log, "xtask {test}: {reason}").unwrap();
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let student = dir.path().join("student");
        build(&dir.path().join("copy"), &student).unwrap();
        let instructor = dir.path().join("instructor");
        book::build(&book::book_dir(workspace::root()).unwrap(), &instructor).unwrap();

        let exercises = exercises::find().unwrap();
        assert!(!exercises.is_empty());
        let shown_in_book: Vec<Exercise> =
            order::in_book_order(exercises.clone(), workspace::root())
                .into_iter()
                .filter(|p| p.chapter.is_some())
                .map(|p| p.exercise)
                .collect();
        assert!(!shown_in_book.is_empty(), "the book shows no exercise");

        let in_instructors: Vec<String> = solutions_shown(&instructor, &exercises)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for exercise in &shown_in_book {
            assert!(
                in_instructors.contains(&exercise.id()),
                "the instructors' book does not show the solution of {}: the check would \
                 not see it in the students' either",
                exercise.id()
            );
        }
        let in_students = solutions_shown(&student, &exercises).unwrap();
        assert!(
            in_students.is_empty(),
            "solutions in the student book: {in_students:?}"
        );

        let mut student_words = Vec::new();
        for page in pages(&student).unwrap() {
            let html = page.extension().is_some_and(|ext| ext == "html");
            student_words.extend(words(&plain(&fs::read_to_string(page).unwrap(), html)));
        }
        for exercise in &shown_in_book {
            let stub = words(&exercise.stub());
            assert!(
                contains(&student_words, &stub),
                "the student book does not show the stub of {}",
                exercise.id()
            );
        }
    }
}

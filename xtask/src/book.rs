//! `cargo xtask book`: checks the book's includes, then builds it with mdBook.
//!
//! The book shows code from the crates through `{{#include ../../stage01-pidns/src/pid.rs:clone_flags}}`.
//! mdBook only warns when such a path or anchor is gone, and the book silently loses
//! its code; here a missing one is an error, with the chapter and line to fix.
//!
//! Built in the keel workspace, this is the instructors' book: its listings show the
//! solutions of the exercises. `--student` builds the students' (see
//! [`crate::student_book`]), and so does `cargo xtask book` in a student copy, whose
//! sources are the stripped ones.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cmd;
use crate::exercises;
use crate::setup;
use crate::workspace;

/// One `{{#include PATH[:SELECTOR]}}` or `{{#rustdoc_include ...}}` of a chapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// 1-based line of the chapter.
    pub line: usize,
    /// As written, relative to the chapter.
    pub path: String,
    /// The anchor to cut, if the selector is one (not a line range like `3:10`).
    pub anchor: Option<String>,
    /// The line range to cut, if the selector is one.
    pub lines: Option<String>,
}

/// The include directives of a chapter. A directive escaped with `\` is text.
pub fn includes(markdown: &str) -> Vec<Include> {
    let mut found = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("{{#") {
            let escaped = rest[..at].ends_with('\\');
            rest = &rest[at + 3..];
            let Some(end) = rest.find("}}") else { break };
            let (directive, args) = rest[..end]
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or((&rest[..end], ""));
            rest = &rest[end + 2..];
            if escaped || !matches!(directive, "include" | "rustdoc_include") {
                continue;
            }
            let args = args.trim();
            let (path, selector) = args.split_once(':').unwrap_or((args, ""));
            let (anchor, lines) = match selector {
                "" => (None, None),
                range if is_line_range(range) => (None, Some(range.to_owned())),
                anchor => (Some(anchor.to_owned()), None),
            };
            found.push(Include {
                line: i + 1,
                path: path.to_owned(),
                anchor,
                lines,
            });
        }
    }
    found
}

/// `""`, `3`, `3:10`, `:10` or `3:`: lines rather than an anchor.
fn is_line_range(selector: &str) -> bool {
    selector
        .split(':')
        .all(|part| part.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `source` has an `ANCHOR: name` line (as mdBook reads it).
fn has_anchor(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        line.split_once("ANCHOR:").is_some_and(|(_, rest)| {
            let rest = rest.trim_start();
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            &rest[..end] == name
        })
    })
}

/// Every problem with the includes of the chapters under `src`.
pub fn problems(src: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for chapter in markdown_files(src)? {
        let text = fs::read_to_string(&chapter)?;
        let dir = chapter.parent().expect("a chapter is in a directory");
        let shown = chapter
            .strip_prefix(workspace::root())
            .unwrap_or(&chapter)
            .display();
        for include in includes(&text) {
            let at = format!("{shown}:{}", include.line);
            let target = dir.join(&include.path);
            let Ok(source) = fs::read_to_string(&target) else {
                problems.push(format!("{at}: {} is not a readable file", include.path));
                continue;
            };
            if let Some(anchor) = &include.anchor
                && !has_anchor(&source, anchor)
            {
                problems.push(format!("{at}: {} has no `ANCHOR: {anchor}`", include.path));
            }
            let has_exercise = exercises::anchors(&source)
                .is_ok_and(|anchors| anchors.iter().any(|a| a.hint.is_some()));
            if let Some(lines) = &include.lines
                && has_exercise
            {
                problems.push(format!(
                    "{at}: {}:{lines} cuts a file with exercises by line numbers, which \
                     stripping the exercises moves: the student book would show other \
                     lines; include an anchor instead",
                    include.path
                ));
            }
        }
    }
    Ok(problems)
}

/// The `.md` files under `dir`, sorted.
fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(markdown_files(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// `cargo xtask book`: checks the includes, then builds the book into `book/build`.
pub fn run() -> Result<()> {
    let book = book_dir(workspace::root())?;
    check_includes(&book)?;
    build(&book, &book.join("build"))
}

/// The book of the workspace (or copy) at `root`.
pub fn book_dir(root: &Path) -> Result<PathBuf> {
    let book = root.join("book");
    if !book.join("book.toml").is_file() {
        bail!(
            "there is no book yet: {} is missing",
            book.join("book.toml").display()
        );
    }
    Ok(book)
}

/// Fails, naming each chapter and line, if an include of `book` names what does not
/// exist or cuts a file with exercises by line numbers.
pub fn check_includes(book: &Path) -> Result<()> {
    let problems = problems(&book.join("src"))?;
    if !problems.is_empty() {
        bail!(
            "the book includes what does not exist, or what stripping moves:\n  {}",
            problems.join("\n  ")
        );
    }
    println!("every include of the book exists");
    Ok(())
}

/// Builds `book` with mdBook into `dest`; fails on any warning of mdBook's.
pub fn build(book: &Path, dest: &Path) -> Result<()> {
    let Some(mdbook) = setup::mdbook() else {
        bail!(
            "mdbook is not installed: cargo install mdbook --locked --version {}",
            setup::MDBOOK_VERSION
        );
    };
    let out = cmd::quiet(
        std::process::Command::new(mdbook)
            .arg("build")
            .arg(book)
            .arg("--dest-dir")
            .arg(dest),
    )?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{output}");
    let complaints: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    if !out.status.success() || !complaints.is_empty() {
        bail!(
            "mdbook build failed or warned:\n  {}",
            complaints.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_include_directives() {
        let md = "Intro\n\
                  ```rust\n\
                  {{#include ../../stage01-pidns/src/pid.rs:clone_flags}}\n\
                  {{#rustdoc_include ../src/a.rs:3:10}} and {{#include b.rs}}\n\
                  \\{{#include not/a/directive.rs}} {{#title Hello}}\n\
                  ```\n";
        let found = includes(md);
        let summary: Vec<_> = found
            .iter()
            .map(|i| {
                let cut = i.anchor.as_deref().or(i.lines.as_deref());
                (i.line, i.path.as_str(), i.anchor.is_some(), cut)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    3,
                    "../../stage01-pidns/src/pid.rs",
                    true,
                    Some("clone_flags")
                ),
                (4, "../src/a.rs", false, Some("3:10")),
                (4, "b.rs", false, None),
            ]
        );
    }

    #[test]
    fn line_ranges_are_not_anchors() {
        for range in ["", "3", "3:10", ":10", "3:"] {
            assert!(is_line_range(range), "{range}");
        }
        assert!(!is_line_range("clone_flags"));
    }

    #[test]
    fn a_line_range_into_a_file_with_exercises_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let exercise = "// ANCHOR: a\n// EXERCISE: do it\nx\n// ANCHOR_END: a\n";
        fs::write(dir.path().join("ex.rs"), exercise).unwrap();
        fs::write(dir.path().join("plain.rs"), "fn f() {}\n").unwrap();
        fs::write(
            src.join("chapter.md"),
            "{{#include ../ex.rs:a}}\n{{#include ../ex.rs}}\n{{#include ../plain.rs:1:2}}\n\
             {{#include ../ex.rs:2:3}}\n{{#include ../ex.rs:gone}}\n",
        )
        .unwrap();
        let problems = problems(&src).unwrap();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].ends_with("chapter.md:4: ../ex.rs:2:3 cuts a file with exercises by line numbers, which stripping the exercises moves: the student book would show other lines; include an anchor instead"), "{}", problems[0]);
        assert!(
            problems[1].ends_with("chapter.md:5: ../ex.rs has no `ANCHOR: gone`"),
            "{}",
            problems[1]
        );
    }

    #[test]
    fn finds_anchors_as_mdbook_does() {
        let source = "    // ANCHOR: clone_flags\n    // ANCHOR_END: clone_flags\n";
        assert!(has_anchor(source, "clone_flags"));
        assert!(!has_anchor(source, "clone"));
        assert!(!has_anchor(source, "flags"));
    }
}

//! The order a student meets the exercises in: the book's.
//!
//! Each stage has its chapter: the one whose listings show most of its exercises (a
//! listing shows an exercise when it includes its anchor, an anchor around it, or its
//! whole file). A stage's exercises come in the order its chapter shows them, then
//! those only other chapters show (the introduction may show one as an example), then
//! those no chapter shows, in file order. File order alone would not do:
//! `stage02-mountns/src/dev.rs` sorts before `pivot.rs`, but the chapter pivots into
//! the new root before it fills its `/dev`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::book;
use crate::exercises::{self, Exercise};

/// An exercise and the chapter that shows it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub exercise: Exercise,
    /// The title of its stage's chapter if that shows it, else of the first chapter
    /// that does, as the summary gives it.
    pub chapter: Option<String>,
}

/// The exercises of the workspace or copy at `root` in the order of its book. Without
/// a readable book they stay in file order: the order is advice, never a reason to
/// stop grading.
pub fn in_book_order(exercises: Vec<Exercise>, root: &Path) -> Vec<Placed> {
    order(exercises, root, &root.join("book").join("src"))
}

/// Where a chapter's listing shows an exercise: (chapter, line).
type Spot = (usize, usize);

/// `exercises` (files relative to `root`) in the order of the book whose sources are
/// in `book_src`.
fn order(exercises: Vec<Exercise>, root: &Path, book_src: &Path) -> Vec<Placed> {
    let chapters = chapters(book_src);
    let spotted: Vec<(Vec<Spot>, Exercise)> = exercises
        .into_iter()
        .map(|exercise| (spots(&exercise, root, &chapters), exercise))
        .collect();
    // Each stage's chapter: the one showing most of its exercises, the first on a tie.
    let mut shown: BTreeMap<(&str, usize), usize> = BTreeMap::new();
    for (spots, exercise) in &spotted {
        let mut seen: Vec<usize> = spots.iter().map(|(chapter, _)| *chapter).collect();
        seen.dedup();
        for chapter in seen {
            *shown.entry((exercise.stage.as_str(), chapter)).or_default() += 1;
        }
    }
    let mut stage_chapter: BTreeMap<String, usize> = BTreeMap::new();
    for (&(stage, chapter), &count) in &shown {
        let best = stage_chapter.get(stage).map(|c| shown[&(stage, *c)]);
        if best.is_none_or(|best| count > best) {
            stage_chapter.insert(stage.to_owned(), chapter);
        }
    }
    let mut placed: Vec<((String, usize, Spot), Placed)> = spotted
        .into_iter()
        .map(|(spots, exercise)| {
            let home = stage_chapter.get(&exercise.stage);
            let spot = spots
                .iter()
                .find(|(chapter, _)| Some(chapter) == home)
                .map(|spot| (0, *spot))
                .or_else(|| spots.first().map(|spot| (1, *spot)));
            let (rank, spot) = spot.unwrap_or((2, (0, 0)));
            let chapter = (rank < 2).then(|| chapters[spot.0].0.clone());
            let key = (exercise.stage.clone(), rank, spot);
            (key, Placed { exercise, chapter })
        })
        .collect();
    // Stable: exercises the book does not show keep their file order.
    placed.sort_by(|(a, _), (b, _)| a.cmp(b));
    placed.into_iter().map(|(_, placed)| placed).collect()
}

/// The chapters of the book in `book_src`, in the summary's order: (title, file).
fn chapters(book_src: &Path) -> Vec<(String, PathBuf)> {
    let summary = fs::read_to_string(book_src.join("SUMMARY.md")).unwrap_or_default();
    summary
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once("](")?;
            let title = &before[before.find('[')? + 1..];
            let link = &after[..after.find(')')?];
            (!link.is_empty()).then(|| (title.to_owned(), book_src.join(link)))
        })
        .collect()
}

/// Every place a chapter shows `exercise`, in the book's order.
fn spots(exercise: &Exercise, root: &Path, chapters: &[(String, PathBuf)]) -> Vec<Spot> {
    let mut found = Vec::new();
    let Ok(file) = root.join(&exercise.file).canonicalize() else {
        return found;
    };
    let text = fs::read_to_string(&file).unwrap_or_default();
    let anchors = exercises::anchors(&text).unwrap_or_default();
    let start = exercise.line.saturating_sub(2);
    let shows = |anchor: &str| {
        anchors.iter().any(|a| {
            a.name == anchor && (a.name == exercise.name || (a.start < start && start < a.end))
        })
    };
    for (index, (_, chapter)) in chapters.iter().enumerate() {
        let Ok(markdown) = fs::read_to_string(chapter) else {
            continue;
        };
        let dir = chapter.parent().unwrap_or(Path::new("."));
        for include in book::includes(&markdown) {
            let target = dir.join(&include.path).canonicalize();
            if target.is_ok_and(|target| target == file)
                && include.anchor.as_deref().is_none_or(shows)
            {
                found.push((index, include.line));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(stage: &str, name: &str, file: &str, line: usize) -> Exercise {
        Exercise {
            stage: stage.into(),
            name: name.into(),
            hint: "h".into(),
            file: file.into(),
            line,
            body: String::new(),
        }
    }

    #[test]
    fn exercises_come_in_the_order_the_chapters_show_them() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = root.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write(
            "s/src/a.rs",
            "// ANCHOR: big\n\
             fn f() {\n\
             // ANCHOR: dev\n\
             // EXERCISE: fill /dev\n\
             // ANCHOR_END: dev\n\
             }\n\
             // ANCHOR_END: big\n\
             fn g() {\n\
             // ANCHOR: unseen\n\
             // EXERCISE: nobody shows this\n\
             // ANCHOR_END: unseen\n\
             }\n",
        );
        write(
            "s/src/b.rs",
            "// ANCHOR: pivot\n// EXERCISE: pivot\n// ANCHOR_END: pivot\n",
        );
        write(
            "s/src/c.rs",
            "// ANCHOR: whole\n// EXERCISE: whole file\n// ANCHOR_END: whole\n",
        );
        write(
            "book/src/SUMMARY.md",
            "# Summary\n\n[Intro](intro.md)\n- [Draft]()\n- [Stage 2](two.md)\n\
             - [Stage 3](three.md)\n",
        );
        write("book/src/intro.md", "{{#include ../../s/src/a.rs:dev}}\n");
        write(
            "book/src/two.md",
            "{{#include ../../s/src/b.rs:pivot}}\n\
             {{#include ../../s/src/a.rs:big}}\n\
             {{#include ../../s/src/c.rs}}\n",
        );
        write(
            "book/src/three.md",
            "{{#include ../../s/src/d.rs:only_here}}\n{{#include ../../s/src/b.rs:pivot}}\n",
        );
        write(
            "s/src/d.rs",
            "// ANCHOR: only_here\n// EXERCISE: x\n// ANCHOR_END: only_here\n",
        );
        let exercises = vec![
            exercise("stage03", "only_here", "s/src/d.rs", 2),
            exercise("stage02", "dev", "s/src/a.rs", 4),
            exercise("stage02", "unseen", "s/src/a.rs", 10),
            exercise("stage02", "pivot", "s/src/b.rs", 2),
            exercise("stage02", "whole", "s/src/c.rs", 2),
            exercise("stage01", "first", "s/src/missing.rs", 2),
        ];
        let placed = order(exercises, root.path(), &root.path().join("book/src"));
        let names: Vec<_> = placed
            .iter()
            .map(|p| (p.exercise.name.as_str(), p.chapter.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("first", None),
                ("pivot", Some("Stage 2")),
                ("dev", Some("Stage 2")),
                ("whole", Some("Stage 2")),
                ("unseen", None),
                ("only_here", Some("Stage 3")),
            ]
        );
    }

    #[test]
    fn without_a_book_the_file_order_stays() {
        let root = tempfile::tempdir().unwrap();
        let exercises = vec![
            exercise("stage01", "b", "x.rs", 2),
            exercise("stage01", "a", "x.rs", 9),
        ];
        let placed = order(exercises, root.path(), &root.path().join("book/src"));
        let names: Vec<_> = placed.iter().map(|p| p.exercise.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }
}

//! Copies of the workspace with some exercises stripped: the student copy, and the
//! copies that prove each exercise is graded.
//!
//! A copy is made of the files git tracks. Like `rsync --delete`, syncing into an
//! existing copy rewrites only the files whose content or mode differ and removes
//! files the workspace no longer has, so that cargo rebuilds as little as possible.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::exercises;
use crate::order;
use crate::repo;
use crate::workspace;

/// Brings `dest` in line with the workspace, stripping the exercises whose id
/// `select` accepts. Returns the ids of the exercises stripped.
pub fn sync(dest: &Path, select: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let root = workspace::root();
    let files = workspace::tracked_files()?;
    let mut stripped = Vec::new();
    for rel in &files {
        let from = root.join(rel);
        let to = dest.join(rel);
        let meta = from.symlink_metadata()?;
        if meta.is_symlink() {
            sync_symlink(&fs::read_link(&from)?, &to)?;
            continue;
        }
        let mut content = fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        if let Some(stage) = workspace::stage_source(rel) {
            let text = String::from_utf8(content)
                .with_context(|| format!("{} is not UTF-8", rel.display()))?;
            let (text, names) = exercises::strip(&text, stage, &select)
                .with_context(|| format!("in {}", rel.display()))?;
            stripped.extend(names.iter().map(|name| format!("{stage}/{name}")));
            content = text.into_bytes();
        }
        sync_file(&content, meta.permissions().mode(), &to)?;
    }
    let keep: HashSet<PathBuf> = files.iter().map(|rel| dest.join(rel)).collect();
    remove_others(dest, &keep)?;
    Ok(stripped)
}

/// Writes a student copy into `dir`: every tracked file, every exercise stripped, as
/// the first commit of a git repository.
///
/// `dir` must be new or empty, and outside the workspace: a copy inside it would be
/// copied along the next time, and cargo would take it for part of the workspace.
pub fn student(dir: &Path) -> Result<()> {
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} is not empty: choose a new or empty directory",
            dir.display()
        );
    }
    let root = workspace::root().canonicalize()?;
    if absolute(dir)?.starts_with(&root) {
        bail!(
            "{} is inside the workspace ({}): choose a directory outside it",
            dir.display(),
            root.display()
        );
    }
    let stripped = sync(dir, |_| true)?;
    let message = format!(
        "The student copy of keel: {} exercises to do\n\n\
         Written by `cargo xtask exercises`. `git diff` shows your work since.",
        stripped.len()
    );
    repo::init(dir, &message).with_context(|| {
        format!(
            "the copy is written to {}, but it could not be made a git repository",
            dir.display()
        )
    })?;
    println!(
        "student copy written to {} (a git repository: `git diff` shows your work)",
        dir.display()
    );
    println!("{} exercises, in the order to do them:", stripped.len());
    let placed = order::in_book_order(exercises::find_in(dir)?, dir);
    let ours = placed
        .iter()
        .filter(|p| stripped.contains(&p.exercise.id()));
    for (i, placed) in ours.enumerate() {
        let exercise = &placed.exercise;
        println!("  {:>2}. {:<24} {}", i + 1, exercise.id(), exercise.place());
    }
    let first = workspace::stages()?.into_iter().next().unwrap_or_default();
    println!(
        "then, as root (the graders need it):\n  \
         cd {}\n  \
         cargo xtask grade {first}    the scoreboard of {first}\n  \
         cargo xtask book             the book as you see it: book/build/index.html",
        dir.display()
    );
    Ok(())
}

/// `path` made absolute with symlinks resolved, even if its last parts do not exist.
fn absolute(path: &Path) -> Result<PathBuf> {
    let path = std::env::current_dir()?.join(path);
    let mut existing = path.as_path();
    let mut missing = Vec::new();
    while existing.symlink_metadata().is_err() {
        missing.push(existing.file_name().unwrap_or_default());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let mut resolved = existing.canonicalize()?;
    resolved.extend(missing.iter().rev());
    Ok(resolved)
}

/// Writes `content` with `mode` to `to`, unless it is already there.
fn sync_file(content: &[u8], mode: u32, to: &Path) -> Result<()> {
    let mode = mode & 0o7777;
    let same = match to.symlink_metadata() {
        Ok(meta) if meta.is_file() => {
            meta.permissions().mode() & 0o7777 == mode
                && fs::read(to).is_ok_and(|old| old == content)
        }
        Ok(_) => {
            remove(to)?;
            false
        }
        Err(_) => false,
    };
    if !same {
        fs::create_dir_all(to.parent().expect("a file has a parent"))?;
        fs::write(to, content).with_context(|| format!("writing {}", to.display()))?;
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Makes `to` a symlink to `target`, unless it already is one.
fn sync_symlink(target: &Path, to: &Path) -> Result<()> {
    if fs::read_link(to).is_ok_and(|old| old == target) {
        return Ok(());
    }
    if to.symlink_metadata().is_ok() {
        remove(to)?;
    }
    fs::create_dir_all(to.parent().expect("a file has a parent"))?;
    symlink(target, to).with_context(|| format!("creating symlink {}", to.display()))
}

fn remove(path: &Path) -> Result<()> {
    let meta = path.symlink_metadata()?;
    if meta.is_dir() {
        fs::remove_dir_all(path)?;
    } else {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// Removes every file under `dir` that is not in `keep`, and directories left empty.
fn remove_others(dir: &Path, keep: &HashSet<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.symlink_metadata()?.is_dir() {
            remove_others(&path, keep)?;
            if fs::read_dir(&path)?.next().is_none() {
                fs::remove_dir(&path)?;
            }
        } else if !keep.contains(&path) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_file_rewrites_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b.rs");
        sync_file(b"one", 0o644, &file).unwrap();
        let written = file.metadata().unwrap().modified().unwrap();
        sync_file(b"one", 0o644, &file).unwrap();
        assert_eq!(file.metadata().unwrap().modified().unwrap(), written);
        sync_file(b"two", 0o755, &file).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o755);
    }

    /// The copy a student starts from: every file git lists, every exercise a stub at
    /// the line it names, all of it committed.
    #[test]
    fn the_student_copy_is_a_repository_with_every_exercise_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("student");
        student(&copy).unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .current_dir(&copy)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(git(&["rev-list", "--count", "HEAD"]), "1\n");
        assert_eq!(git(&["status", "--porcelain"]), "");
        let mut committed: Vec<PathBuf> = git(&["ls-files"]).lines().map(PathBuf::from).collect();
        committed.sort();
        assert_eq!(committed, workspace::tracked_files().unwrap());

        let reference = exercises::find().unwrap();
        let stripped = exercises::find_in(&copy).unwrap();
        let ids = |list: &[exercises::Exercise]| list.iter().map(|e| e.id()).collect::<Vec<_>>();
        assert_eq!(ids(&stripped), ids(&reference));
        for exercise in &stripped {
            assert!(exercise.is_stub(), "{} is not stripped", exercise.id());
            let text = fs::read_to_string(copy.join(&exercise.file)).unwrap();
            let line = text.lines().nth(exercise.line - 1).unwrap();
            assert!(
                line.contains("// EXERCISE:"),
                "{}: {line}",
                exercise.place()
            );
        }

        let again = student(&copy).unwrap_err().to_string();
        assert!(again.contains("is not empty"), "{again}");
    }

    #[test]
    fn remove_others_keeps_only_the_listed_files() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("src/kept.rs");
        let stale = dir.path().join("old/stale.rs");
        for file in [&kept, &stale] {
            sync_file(b"", 0o644, file).unwrap();
        }
        remove_others(dir.path(), &HashSet::from([kept.clone()])).unwrap();
        assert!(kept.exists());
        assert!(!dir.path().join("old").exists());
    }
}

//! The student copy as a git repository, with the copy as written as its first commit:
//! `git diff` then shows a student their own work, and the copy can itself be copied
//! (a copy of the workspace is made of the files git lists).
//!
//! The commit must work on a fresh machine, where git knows no user: the author is
//! given on the command line (`-c user.name=... -c user.email=...`), and signing,
//! which a user's configuration may ask for, is turned off for this one commit.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// Who made the first commit of a student copy.
const AUTHOR: [&str; 2] = [
    "user.name=keel exercises",
    "user.email=exercises@keel.invalid",
];

/// Makes `dir` a git repository whose first commit holds every file in it (but what
/// its `.gitignore` files exclude).
pub fn init(dir: &Path, message: &str) -> Result<()> {
    init_with_env(dir, message, &[])
}

/// [`init`], with `env` added to git's environment (the tests use it to stand for a
/// machine without any git configuration).
fn init_with_env(dir: &Path, message: &str, env: &[(&str, &OsStr)]) -> Result<()> {
    let git = |args: &[&str]| {
        let mut git = Command::new("git");
        git.current_dir(dir)
            .args(args)
            // Set when git runs us from a hook: it would point git at another repository.
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .envs(env.iter().copied());
        let out = cmd::quiet(&mut git).with_context(|| format!("in {}", dir.display()))?;
        if !out.status.success() {
            bail!(
                "`{}` failed in {}: {}",
                cmd::describe(&git),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    git(&["init", "--quiet", "--initial-branch=main"])?;
    git(&["add", "--all"])?;
    let [name, email] = AUTHOR;
    git(&[
        "-c",
        name,
        "-c",
        email,
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--quiet",
        "--no-verify",
        "--message",
        message,
    ])
    .context("committing the copy")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn git_output(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_copy_is_one_commit_on_a_machine_without_git_configuration() {
        let home = tempfile::tempdir().unwrap();
        let copy = tempfile::tempdir().unwrap();
        fs::write(copy.path().join(".gitignore"), "/target\n").unwrap();
        fs::create_dir_all(copy.path().join("src")).unwrap();
        fs::write(copy.path().join("src/pid.rs"), "todo!()\n").unwrap();
        fs::create_dir_all(copy.path().join("target")).unwrap();
        fs::write(copy.path().join("target/junk"), "").unwrap();
        // No global or system configuration, no user name or e-mail anywhere.
        let env: [(&str, &OsStr); 5] = [
            ("HOME", home.path().as_os_str()),
            ("XDG_CONFIG_HOME", home.path().as_os_str()),
            ("GIT_CONFIG_NOSYSTEM", OsStr::new("1")),
            ("GIT_CONFIG_GLOBAL", OsStr::new("/dev/null")),
            ("EMAIL", OsStr::new("")),
        ];
        init_with_env(copy.path(), "the student copy", &env).unwrap();
        let log = git_output(copy.path(), &["log", "--format=%an <%ae>: %s"]);
        assert_eq!(
            log,
            "keel exercises <exercises@keel.invalid>: the student copy\n"
        );
        let files = git_output(copy.path(), &["ls-files"]);
        assert_eq!(files, ".gitignore\nsrc/pid.rs\n");
        assert_eq!(git_output(copy.path(), &["status", "--porcelain"]), "");
        // The student's work then shows as a diff.
        fs::write(copy.path().join("src/pid.rs"), "done()\n").unwrap();
        let diff = git_output(copy.path(), &["diff", "--stat"]);
        assert!(diff.contains("src/pid.rs"), "{diff}");
    }

    #[test]
    fn a_failure_names_the_command_and_the_directory() {
        let missing = Path::new("/nonexistent/keel-student");
        let err = init(missing, "x").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("git init"), "{text}");
        assert!(text.contains("/nonexistent/keel-student"), "{text}");
    }
}

//! Skipping, loudly, what this machine cannot run.
//!
//! A grader that cannot run here (no root, no busybox) must not pass silently, nor fail
//! for a reason that has nothing to do with the student's code. It *skips*: it prints
//! `SKIP: <test>: <reason>` to stderr and returns. With `KEEL_SKIP_LOG=<file>` set, it
//! also appends `<test binary> <test>: <reason>` to that file, so that a scoreboard
//! (`cargo xtask grade`) can tell skipped graders from passed ones.
//!
//! ```text
//! #[test]
//! fn echo_dollar_dollar_prints_1() {
//!     need!(require_root());          // skips unless root
//!     let rootfs = need!(busybox());  // skips unless busybox is installed
//!     ...
//! }
//! ```

use std::io::Write;

/// Why a grader cannot run on this machine, and how to make it run.
#[derive(Debug, Clone)]
pub struct Skip(pub String);

/// Unwraps a `Result<T, Skip>`, or skips the current test (prints why and returns).
#[macro_export]
macro_rules! need {
    ($requirement:expr) => {
        match $requirement {
            Ok(value) => value,
            Err(skip) => {
                $crate::skip::report(&skip);
                return;
            }
        }
    };
}

/// Skips the current test with a reason (`format!` syntax).
#[macro_export]
macro_rules! skip {
    ($($reason:tt)+) => {{
        $crate::skip::report(&$crate::skip::Skip(format!($($reason)+)));
        return;
    }};
}

/// The stages before stage03 create namespaces that only root may create.
pub fn require_root() -> Result<(), Skip> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Skip("needs root: run the graders as root (sudo)".into()))
    }
}

/// Prints the skip, and logs it to `$KEEL_SKIP_LOG` if set.
pub fn report(skip: &Skip) {
    let test = test_name();
    eprintln!("SKIP: {test}: {}", skip.0);
    if let Some(log) = std::env::var_os("KEEL_SKIP_LOG") {
        let line = format!("{} {test}: {}\n", test_binary(), skip.0);
        // One write of one short line with O_APPEND: lines of parallel tests don't mix.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = written {
            eprintln!("cannot append to KEEL_SKIP_LOG {}: {err}", log.display());
        }
    }
}

/// The test's name: the test harness runs each test on a thread named after it.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "<unknown test>".to_owned(),
    }
}

/// The test binary's name without cargo's hash: `stage01-1a2b3c4d5e6f7a8b` is `stage01`.
fn test_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let name = exe
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem.to_owned()
        }
        _ => name,
    }
}

//! Reading what libtest (the harness behind `cargo test`) prints, and the skip log the
//! graders write.
//!
//! ```text
//! test clone_flags::echo_dollar_dollar_prints_1 ... ok
//! test cli::rejects_unknown_flags ... FAILED
//! test result: FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.12s
//! ```
//!
//! A test that cannot run on this machine returns early, so libtest counts it as passed;
//! the graders also append a line to the file named by `KEEL_SKIP_LOG`, which is how
//! we tell the two apart.

use std::path::Path;

/// Environment variable naming the file the graders append skipped tests to.
pub const SKIP_LOG_VAR: &str = "KEEL_SKIP_LOG";

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// Marked `#[ignore]`: not run at all.
    Ignored,
    /// Ran, found the machine lacking, and returned early (see the skip log).
    Skipped,
}

/// One `test NAME ... RESULT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLine {
    pub name: String,
    pub outcome: Outcome,
}

/// Parses `test NAME ... ok|FAILED|ignored`.
pub fn parse_test_line(line: &str) -> Option<TestLine> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    let outcome = match result.split([' ', ',']).next()? {
        "ok" => Outcome::Passed,
        "FAILED" => Outcome::Failed,
        "ignored" => Outcome::Ignored,
        _ => return None,
    };
    Some(TestLine {
        name: name.trim().to_owned(),
        outcome,
    })
}

/// The counts of one `test result:` line, or their sum over several.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

/// Parses `test result: ok. 3 passed; 0 failed; 1 ignored; ...`.
pub fn parse_result_line(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_verdict, fields) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    for field in fields.split("; ") {
        let Some((number, what)) = field.trim().split_once(' ') else {
            continue;
        };
        let Ok(number) = number.parse() else { continue };
        match what {
            "passed" => counts.passed = number,
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            _ => {}
        }
    }
    Some(counts)
}

/// One line of the skip log: `<test binary> <test name>: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub binary: String,
    pub test: String,
    pub reason: String,
}

/// Parses a skip log line (test names contain `::`, never `": "`).
pub fn parse_skip_line(line: &str) -> Option<Skip> {
    let (binary, rest) = line.trim().split_once(' ')?;
    let (test, reason) = rest.split_once(": ").unwrap_or((rest, ""));
    Some(Skip {
        binary: binary.to_owned(),
        test: test.trim_end_matches(':').to_owned(),
        reason: reason.to_owned(),
    })
}

/// Readies `log` for a run: its directory exists, and the last run's skips are gone.
pub fn reset_skip_log(log: &Path) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every skip recorded in `log` (none if the file does not exist).
pub fn read_skip_log(log: &Path) -> Vec<Skip> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(parse_skip_line)
        .collect()
}

/// What each failed test printed, from the `failures:` part of libtest's report:
///
/// ```text
/// failures:
///
/// ---- mount_proc::ls_proc stdout ----
/// <what the test printed, and its panic message>
///
/// failures:
///     mount_proc::ls_proc
/// ```
///
/// A section starts at the header of a test that `failed` names and ends at the next
/// such header, or at the last `failures:` line (the list of names): a test's own
/// output may hold any other line.
pub fn failure_outputs<'a>(stdout: &'a str, failed: &[&str]) -> Vec<(String, String)> {
    let lines: Vec<&str> = stdout.lines().collect();
    let header = |line: &'a str| -> Option<&'a str> {
        let name = line.strip_prefix("---- ")?.strip_suffix(" stdout ----")?;
        failed.contains(&name).then_some(name)
    };
    let last_list = lines.iter().rposition(|line| *line == "failures:");
    let mut sections: Vec<(String, String)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = header(line) {
            sections.push((name.to_owned(), String::new()));
        } else if Some(i) == last_list {
            break;
        } else if let Some((_, output)) = sections.last_mut() {
            output.push_str(line);
            output.push('\n');
        }
    }
    sections
}

/// The results of one test binary's run: its test lines, with those the skip log names
/// turned into [`Outcome::Skipped`].
pub fn results(stdout: &str, skips: &[Skip]) -> Vec<TestLine> {
    stdout
        .lines()
        .filter_map(parse_test_line)
        .map(|mut test| {
            if test.outcome == Outcome::Passed && skips.iter().any(|skip| skip.test == test.name) {
                test.outcome = Outcome::Skipped;
            }
            test
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_test_lines() {
        let line = parse_test_line("test clone_flags::echo_dollar_dollar_prints_1 ... ok");
        assert_eq!(
            line,
            Some(TestLine {
                name: "clone_flags::echo_dollar_dollar_prints_1".into(),
                outcome: Outcome::Passed
            })
        );
        let failed = parse_test_line("test cli::rejects ... FAILED").unwrap();
        assert_eq!(failed.outcome, Outcome::Failed);
        let ignored = parse_test_line("test a::b ... ignored, needs a VM").unwrap();
        assert_eq!(ignored.outcome, Outcome::Ignored);
        assert_eq!(parse_test_line("test result: ok. 1 passed; 0 failed"), None);
        assert_eq!(parse_test_line("running 3 tests"), None);
    }

    #[test]
    fn reads_result_lines() {
        let line = "test result: FAILED. 5 passed; 1 failed; 2 ignored; 0 measured; \
                    0 filtered out; finished in 0.12s";
        assert_eq!(
            parse_result_line(line),
            Some(Counts {
                passed: 5,
                failed: 1,
                ignored: 2
            })
        );
        let ok = "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(parse_result_line(ok), Some(Counts::default()));
        assert_eq!(parse_result_line("test foo ... ok"), None);
    }

    #[test]
    fn reads_skip_lines() {
        let skip = parse_skip_line("stage01 clone_flags::ps_sees_one: not root\n").unwrap();
        assert_eq!(skip.binary, "stage01");
        assert_eq!(skip.test, "clone_flags::ps_sees_one");
        assert_eq!(skip.reason, "not root");
        assert_eq!(parse_skip_line(""), None);
    }

    #[test]
    fn reads_what_each_failed_test_printed() {
        let out = "\
running 3 tests
test a::x ... FAILED
test a::y ... ok
test b::z ... FAILED

failures:

---- a::x stdout ----
thread 'a::x' panicked at tests/stage01.rs:5:9:
failures:
---- a::y stdout ----

---- b::z stdout ----
not yet implemented: stage01/a: hint

failures:
    a::x
    b::z

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
";
        let sections = failure_outputs(out, &["a::x", "b::z"]);
        assert_eq!(
            sections,
            [
                (
                    "a::x".to_owned(),
                    "thread 'a::x' panicked at tests/stage01.rs:5:9:\nfailures:\n\
                     ---- a::y stdout ----\n\n"
                        .to_owned()
                ),
                (
                    "b::z".to_owned(),
                    "not yet implemented: stage01/a: hint\n\n".to_owned()
                ),
            ]
        );
        assert!(failure_outputs("test a::x ... FAILED\n", &["a::x"]).is_empty());
    }

    #[test]
    fn skipped_tests_are_told_apart_from_passed_ones() {
        let out = "running 2 tests\ntest a::x ... ok\ntest a::y ... ok\n";
        let skips = [parse_skip_line("stage01 a::y: no busybox").unwrap()];
        let outcomes: Vec<_> = results(out, &skips).iter().map(|t| t.outcome).collect();
        assert_eq!(outcomes, [Outcome::Passed, Outcome::Skipped]);
    }
}

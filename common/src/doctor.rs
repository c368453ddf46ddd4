//! `doctor`: check what a stage needs from this machine, and say how to fix what is
//! missing. Each stage adds its own checks to the previous stage's.

/// The outcome of one check.
#[derive(Debug)]
pub enum Outcome {
    /// Fine; the text says what was found.
    Ok(String),
    /// Works, but not fully; the text says what is missing and how to get it.
    Warn(String),
    /// Missing; the text says how to fix it.
    Fail(String),
}

/// The checks of one `doctor` run, printed as they are added.
#[derive(Debug, Default)]
pub struct Report {
    failures: usize,
}

impl Report {
    /// Records and prints one check.
    pub fn check(&mut self, what: &str, outcome: Outcome) {
        let (mark, detail) = match &outcome {
            Outcome::Ok(detail) => ("ok  ", detail),
            Outcome::Warn(detail) => ("warn", detail),
            Outcome::Fail(detail) => {
                self.failures += 1;
                ("FAIL", detail)
            }
        };
        println!("  {mark}  {what}: {detail}");
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.failures
    }
}

/// Whether this process runs with root's uid (the test most stages before 03 need).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Checks that the kernel offers a namespace type (it shows as /proc/self/ns/NAME).
pub fn namespace(report: &mut Report, name: &str, what: &str) {
    let path = format!("/proc/self/ns/{name}");
    let outcome = match std::fs::read_link(&path) {
        Ok(link) => Outcome::Ok(format!(
            "supported: {what} (the host's is {})",
            link.display()
        )),
        Err(err) => Outcome::Fail(format!(
            "{path}: {err}; this kernel lacks the {name} namespace (CONFIG_{}_NS)",
            name.to_uppercase()
        )),
    };
    report.check(&format!("{name} namespace"), outcome);
}

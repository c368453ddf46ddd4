//! Nothing may leak out of a container: no mount, no process.
//!
//! **Mounts.** Every mount a container makes belongs to its own mount namespace, so the
//! host's mount table must be exactly the same after a run as before it: the same
//! mount points, filesystems, sources, options and propagation. A runtime that forgets
//! to make propagation private, or mounts something before `clone`, changes it.
//! Because the table must *never* change, graders running in parallel threads can
//! check it around each other's containers.
//!
//! **Processes.** A process the test starts inside a container carries a unique
//! [`Marker`] on its command line; afterwards no process on the host may carry it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::mountinfo;
use crate::running::host_pids;

/// The host's mount table, without mount ids: sorted lines of "what is mounted where".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountTable(Vec<String>);

impl MountTable {
    /// The mount table of the host (the graders run in the host's mount namespace).
    pub fn of_host() -> Self {
        let mut keys: Vec<String> = mountinfo::own().iter().map(|m| m.key()).collect();
        keys.sort();
        Self(keys)
    }

    /// What differs from `before`, as a readable list; empty when nothing does.
    pub fn changes_since(&self, before: &MountTable) -> String {
        let mut report = String::new();
        for line in &self.0 {
            if !before.0.contains(line) {
                let _ = writeln!(report, "  + {line}");
            }
        }
        for line in &before.0 {
            if !self.0.contains(line) {
                let _ = writeln!(report, "  - {line}");
            }
        }
        report
    }
}

/// Checks that the host's mount table is the same when it is dropped as when it was
/// started. Keep it in a named binding for the whole test:
///
/// ```text
/// let _leaks = LeakCheck::start();
/// ```
///
/// If the test already failed, the check is not made (one failure at a time).
#[derive(Debug)]
#[must_use = "the check happens when this value is dropped: bind it to `_leaks`"]
pub struct LeakCheck {
    before: MountTable,
}

impl LeakCheck {
    /// Takes the "before" snapshot.
    pub fn start() -> Self {
        Self {
            before: MountTable::of_host(),
        }
    }

    /// Panics if the host's mount table changed since [`LeakCheck::start`].
    pub fn assert_no_mount_leaked(&self) {
        let changes = MountTable::of_host().changes_since(&self.before);
        assert!(
            changes.is_empty(),
            "the host's mount table changed: a mount leaked out of the container's mount \
             namespace (is propagation private before anything is mounted?)\n{changes}"
        );
    }
}

impl Drop for LeakCheck {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_mount_leaked();
        }
    }
}

/// A unique token to put on a command line, to find the processes that carry it.
///
/// It is a number, so that it fits where a number goes: `sleep 86400.<digits>` sleeps a
/// day, and no other process on the machine has the same digits.
#[derive(Debug, Clone)]
pub struct Marker(String);

impl Marker {
    /// A new marker, unique on this machine.
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(format!(
            "86400.{:07}{nanos:09}{count:03}",
            std::process::id()
        ))
    }

    /// The marker itself.
    pub fn token(&self) -> &str {
        &self.0
    }

    /// A shell command that sleeps a day, marked: `sleep 86400.<digits>`.
    pub fn sleep(&self) -> String {
        format!("sleep {}", self.0)
    }

    /// Host PIDs of the live processes whose command line carries the marker.
    pub fn processes(&self) -> Vec<i32> {
        host_pids()
            .into_iter()
            .filter(|pid| {
                // Arguments are separated by NUL bytes; a zombie's cmdline is empty.
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|cmdline| contains(&cmdline, self.0.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Panics if any process carries the marker (after killing them, so that one
    /// failed test does not leave a day-long `sleep` behind).
    pub fn assert_none_left(&self) {
        let left = self.processes();
        for pid in &left {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        assert!(
            left.is_empty(),
            "processes started in the container are still alive after it exited \
             (host PIDs {left:?}): the container's processes must die with its PID 1"
        );
    }
}

impl Default for Marker {
    fn default() -> Self {
        Self::new()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

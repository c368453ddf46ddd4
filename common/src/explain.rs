//! `--explain`: print every step as it happens, in the words of the book.
//!
//! Each line names the side that acts (parent or child), the system call with its
//! arguments and result, and one line of *why*:
//!
//! ```text
//! [explain parent] clone(CLONE_NEWNS|CLONE_NEWPID) -> 4242: the child starts in new namespaces
//! ```
//!
//! It is a global switch on purpose: explaining is a property of the whole run, and
//! threading a flag through every function would hide the steps it is meant to show.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Turns explaining on or off for the whole process (and the child it clones).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether `--explain` was given.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Marks this process as the child, so that its lines say so.
pub fn mark_child() {
    IN_CHILD.store(true, Ordering::Relaxed);
}

/// Prints one step: `call` is what was done (a syscall with its arguments and result),
/// `why` is the reason, in one line.
pub fn step(call: impl Display, why: impl Display) {
    if enabled() {
        let side = if IN_CHILD.load(Ordering::Relaxed) {
            "child"
        } else {
            "parent"
        };
        // One write(2) per line: the parent and the child both explain, at the same
        // time, on the same terminal, and `eprintln!` writes a line in pieces, which
        // then interleave mid-line.
        let line = format!("[explain {side}] {call}: {why}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }
}

/// Any set of flags (`CloneFlags`, `MsFlags`, ...) spelled the way the man pages do:
/// `CLONE_NEWNS|CLONE_NEWPID`.
pub fn flags<F: bitflags::Flags>(flags: &F) -> String {
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    if names.is_empty() {
        "0".to_owned()
    } else {
        names.join("|")
    }
}

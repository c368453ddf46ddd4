//! Sharing the terminal with an interactive container.
//!
//! When the runtime runs in the foreground of a terminal, the container's shell must
//! own that terminal: receive Ctrl-C itself, and run its own job control. A shell that
//! finds itself in a process group that is not the terminal's foreground fails with
//! "Cannot set tty process group". So, as a shell does for each job, the child gets a
//! process group of its own and is made the terminal's foreground; when it exits, the
//! runtime takes the terminal back.

use std::io::stdin;

use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::{Pid, getpgrp, isatty, setpgid, tcgetpgrp, tcsetpgrp};

use crate::explain;

/// Whether our stdin is a terminal whose foreground process group is ours.
pub fn in_foreground() -> bool {
    isatty(stdin()).unwrap_or(false) && tcgetpgrp(stdin()).ok() == Some(getpgrp())
}

/// In the child: a process group of its own, made the terminal's foreground.
pub fn give_to_child() {
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    take_terminal();
    explain::step(
        "setpgid(0, 0); tcsetpgrp(0, getpgrp())",
        "the container's shell owns the terminal: Ctrl-C and job control are its own",
    );
}

/// In the parent, after the child is gone: the terminal comes back to the runtime.
pub fn take_back() {
    take_terminal();
}

/// `tcsetpgrp` from a background process group raises SIGTTOU, which would stop us;
/// with SIGTTOU ignored for the moment the kernel lets the call through.
fn take_terminal() {
    // SAFETY: only the default and ignore dispositions are set, no handler runs.
    unsafe {
        let _ = signal(Signal::SIGTTOU, SigHandler::SigIgn);
        let _ = tcsetpgrp(stdin(), getpgrp());
        let _ = signal(Signal::SIGTTOU, SigHandler::SigDfl);
    }
}

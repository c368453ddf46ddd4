//! The caller's terminal, seen from the runtime (`-t`).
//!
//! With `-t` the container has a terminal of its own (see [`crate::pty`]) and the
//! runtime sits between it and the caller's, like an ssh client: it puts the caller's
//! terminal in *raw* mode, so that every key (Ctrl-C, Ctrl-Z, arrows) goes through as
//! a byte and the container's terminal interprets it, and it passes the window size
//! on. When it exits, by any path it can see, it puts the caller's terminal back as it
//! was: a terminal left raw echoes nothing and ignores Enter.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{getpgrp, isatty, tcgetpgrp};

use crate::explain;

/// Whether `fd` is a terminal whose foreground process group is ours: only then may
/// we change its modes (from the background, `tcsetattr` would stop us with SIGTTOU).
pub fn in_foreground(fd: BorrowedFd<'_>) -> bool {
    isatty(fd).unwrap_or(false) && tcgetpgrp(fd).ok() == Some(getpgrp())
}

// ANCHOR: raw_mode
/// The caller's terminal in raw mode; its former modes come back when this is dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode, if stdin is a terminal we own.
    pub fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        if !in_foreground(stdin.as_fd()) {
            return None;
        }
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).ok()?;
        explain::step(
            "tcsetattr(0, TCSADRAIN, cfmakeraw(...))",
            "the caller's terminal passes every key through; the container's terminal interprets them",
        );
        Some(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
        explain::step(
            "tcsetattr(0, TCSADRAIN, saved)",
            "the caller's terminal as it was",
        );
    }
}
// ANCHOR_END: raw_mode

/// The window size of the terminal `fd`, if it is one.
pub fn get_window_size(fd: BorrowedFd<'_>) -> Option<libc::winsize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we pass.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::TIOCGWINSZ,
            &mut size,
        )
    };
    (rc == 0).then_some(size)
}

/// Sets the window size of the terminal `fd`; the kernel sends SIGWINCH to its
/// foreground process group when the size changes.
pub fn set_window_size(fd: BorrowedFd<'_>, size: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads the winsize we pass.
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::TIOCSWINSZ, size) };
}

/// The caller's window size: its stdin's, or its stdout's when stdin is not a terminal.
pub fn caller_window_size() -> Option<libc::winsize> {
    get_window_size(std::io::stdin().as_fd()).or_else(|| get_window_size(std::io::stdout().as_fd()))
}

/// The caller's window size, passed on to the container's terminal `master`.
pub fn pass_window_size(master: BorrowedFd<'_>) {
    if let Some(size) = caller_window_size() {
        set_window_size(master, &size);
        explain::step(
            format_args!("ioctl(master, TIOCSWINSZ, {}x{})", size.ws_col, size.ws_row),
            "the container's terminal takes the caller's window size",
        );
    }
}

//! Exit codes, with docker's convention, so that scripts can tell who failed:
//! the runtime itself (125), the command that could not be executed (126) or found
//! (127), or the command, with its own code or `128 + N` when signal N killed it.

use nix::sys::signal::Signal;

// ANCHOR: exit_codes
/// The runtime failed: bad input, a missing facility, a layer's error.
pub const RUNTIME_FAILED: i32 = 125;
/// The command exists but cannot be executed (permissions, not a program).
pub const CANNOT_EXECUTE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// The shell's convention for a process killed by `signal`: `128 + N`.
pub fn killed_by(signal: Signal) -> i32 {
    128 + signal as i32
}
// ANCHOR_END: exit_codes

/// An error that knows its exit code. Errors without one mean [`RUNTIME_FAILED`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code the runtime should end with.
    pub code: i32,
    /// What went wrong and how to fix it.
    pub message: String,
}

/// The exit code that `err` stands for.
pub fn code_of(err: &anyhow::Error) -> i32 {
    err.downcast_ref::<Failure>()
        .map_or(RUNTIME_FAILED, |failure| failure.code)
}

//! The parent as a supervisor: it forwards signals to the container and waits.
//!
//! The runtime blocks the signals it cares about and takes them one at a time with
//! `sigwait`. Nothing can interrupt it halfway, so cleanup always runs; and what the
//! user sends to the runtime (Ctrl-C, `kill`, a terminal resize) reaches the command.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::explain;
use crate::runner::exit_code;

/// The signals passed on to the container, as `docker run` does.
pub const FORWARDED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
];

/// Holds the signals blocked while the container runs.
#[derive(Debug)]
pub struct Supervisor {
    watched: SigSet,
    original: SigSet,
}

impl Supervisor {
    /// Blocks the forwarded signals and SIGCHLD, remembering the mask to restore.
    pub fn block() -> Result<Self> {
        let mut watched = SigSet::empty();
        for signal in FORWARDED {
            watched.add(signal);
        }
        watched.add(Signal::SIGCHLD);
        let mut original = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut original))
            .context("blocking signals to forward them")?;
        Ok(Self { watched, original })
    }

    /// In the child: the command must start with the signal mask the runtime had.
    pub fn restore_in_child(&self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.original), None);
    }

    // ANCHOR: forward
    /// Forwards every watched signal to `pid` until it exits; returns its exit code.
    pub fn forward_until_exit(&self, pid: Pid) -> Result<i32> {
        loop {
            let signal = self.watched.wait().context("sigwait")?;
            if signal == Signal::SIGCHLD {
                // Signals merge: one SIGCHLD may stand for several events, so ask.
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)).context("waitpid")? {
                    WaitStatus::StillAlive => continue,
                    status => {
                        if let Some(code) = exit_code(status) {
                            explain::step(
                                format_args!("waitpid({pid}) -> {status:?}"),
                                "the container's PID 1 is gone, and with it every process of its PID namespace",
                            );
                            return Ok(code);
                        }
                    }
                }
            } else {
                explain::step(
                    format_args!("kill({pid}, {signal})"),
                    "forward the signal the runtime received to the container",
                );
                // The child may have exited already; SIGCHLD will tell us.
                let _ = kill(pid, signal);
            }
        }
    }
    // ANCHOR_END: forward
}

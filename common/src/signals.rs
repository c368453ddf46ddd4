//! The parent as a supervisor: it forwards signals to the container and waits.
//!
//! The runtime blocks the signals it cares about and reads them one at a time from a
//! `signalfd`. Nothing can interrupt it halfway, so cleanup always runs; and what the
//! user sends to the runtime (Ctrl-C, `kill`, a terminal resize) reaches the command.
//! With `-t` the same loop also relays the container's terminal (see [`crate::relay`]):
//! one `poll` waits for a signal, a key, or the container's output, whichever comes.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::explain;
use crate::relay::Relay;
use crate::runner::exit_code;

/// The signals passed on to the container, as `docker run` does: everything a process
/// is usually sent. Each is blocked, so none can kill the runtime before its cleanup
/// (SIGUSR1 and SIGUSR2 would: their default action is to terminate).
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Blocks the forwarded signals and SIGCHLD, which are then read (from a `signalfd`,
/// or `sigwait`) instead of delivered; returns them, and the mask before.
pub fn block_forwarded() -> nix::Result<(SigSet, SigSet)> {
    let mut watched = SigSet::empty();
    for signal in FORWARDED {
        watched.add(signal);
    }
    watched.add(Signal::SIGCHLD);
    let mut original = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut original))?;
    Ok((watched, original))
}

/// Holds the signals blocked while the container runs.
#[derive(Debug)]
pub struct Supervisor {
    watched: SigSet,
    original: SigSet,
}

impl Supervisor {
    /// Blocks the forwarded signals and SIGCHLD, remembering the mask to restore.
    pub fn block() -> Result<Self> {
        let (watched, original) = block_forwarded().context("blocking signals to forward them")?;
        Ok(Self { watched, original })
    }

    /// In the child: the command must start with the signal mask the runtime had.
    pub fn restore_in_child(&self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.original), None);
    }

    // ANCHOR: forward
    /// Forwards every watched signal to `pid` until it exits, relaying its terminal
    /// if it has one; returns its exit code.
    pub fn supervise(&self, pid: Pid, terminal: Option<OwnedFd>, stdin: bool) -> Result<i32> {
        // Non-blocking: each round reads every signal pending, not only the first.
        let signals = SignalFd::with_flags(
            &self.watched,
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
        .context("signalfd for the watched signals")?;
        let mut relay = terminal
            .map(|master| Relay::new(master, stdin))
            .transpose()?;
        loop {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let mut ends = Vec::new();
            if let Some(relay) = &relay {
                let (more, which) = relay.poll_fds();
                fds.extend(more);
                ends = which;
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                other => other.context("poll")?,
            };
            let ready: Vec<PollFlags> = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            // Signals first, all of them: a resize that came before a key is applied
            // before it, even when another signal came with it (the kernel hands out
            // the lowest-numbered first, and SIGCHLD is lower than SIGWINCH).
            if !ready[0].is_empty()
                && let Some(code) = self.handle_signals(&signals, pid, relay.as_ref())?
            {
                if let Some(relay) = &mut relay {
                    relay.drain();
                }
                return Ok(code);
            }
            if let Some(relay) = &mut relay {
                relay.handle(&ends, &ready[1..])?;
            }
        }
    }

    /// Takes every pending signal, and returns the container's exit code once it has
    /// exited.
    fn handle_signals(
        &self,
        signals: &SignalFd,
        pid: Pid,
        relay: Option<&Relay>,
    ) -> Result<Option<i32>> {
        while let Some(info) = signals.read_signal().context("reading the signalfd")? {
            let signal = Signal::try_from(info.ssi_signo as i32).context("an unknown signal")?;
            if let Some(code) = self.handle_signal(signal, pid, relay)? {
                return Ok(Some(code));
            }
        }
        Ok(None)
    }

    /// Takes one signal: SIGCHLD may mean the container exited (its code is returned),
    /// a resize goes to the container's terminal, anything else to the container.
    fn handle_signal(
        &self,
        signal: Signal,
        pid: Pid,
        relay: Option<&Relay>,
    ) -> Result<Option<i32>> {
        match signal {
            // Signals merge: one SIGCHLD may stand for several events, so ask.
            Signal::SIGCHLD => match waitpid(pid, Some(WaitPidFlag::WNOHANG)).context("waitpid")? {
                WaitStatus::StillAlive => Ok(None),
                status => {
                    let code = exit_code(status);
                    if code.is_some() {
                        explain::step(
                            format_args!("waitpid({pid}) -> {status:?}"),
                            "the container's PID 1 is gone, and with it every process of its PID namespace",
                        );
                    }
                    Ok(code)
                }
            },
            // With a terminal of its own the container learns of a resize from it.
            Signal::SIGWINCH if relay.is_some() => {
                if let Some(relay) = relay {
                    relay.resized();
                }
                Ok(None)
            }
            signal => {
                explain::step(
                    format_args!("kill({pid}, {signal})"),
                    "forward the signal the runtime received to the container",
                );
                // The child may have exited already; SIGCHLD will tell us.
                let _ = kill(pid, signal);
                Ok(None)
            }
        }
    }
    // ANCHOR_END: forward
}

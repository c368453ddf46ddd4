//! `--init`: a small init of ours as the container's PID 1.
//!
//! PID 1 of a PID namespace has duties no ordinary program expects:
//!
//! - orphans are re-parented to it, and it must reap them (`wait`), or they stay
//!   zombies until the container ends;
//! - the kernel gives it only the signals it has a handler for: `kill -TERM` does not
//!   stop a `sleep` that is PID 1, and Ctrl-C does not stop a program that never
//!   installed a handler;
//! - when it exits, the kernel kills every other process of the namespace.
//!
//! And the runtime has one wish of its own: the container must not outlive it. The
//! child is created with a parent-death signal (`PR_SET_PDEATHSIG`, SIGKILL), but that
//! is a setting of the process, and a command that is PID 1 may clear it
//! (`prctl(PR_SET_PDEATHSIG, 0)`): a SIGKILLed runtime then leaves it running. With
//! `--init`, PID 1 is this loop instead, forked from the runtime: it keeps its death
//! signal, and container code cannot reach it to change that: PID 1 ignores every
//! signal sent from inside its namespace that it does not handle, SIGKILL included,
//! and it is not "dumpable", so that under a user namespace (stage 3) nothing in the
//! container may ptrace it: its memory belongs to the host's user namespace, where
//! the container holds no CAP_SYS_PTRACE. (Root's container with no user namespace
//! holds that capability, and may trace anything.) When the runtime dies, so does
//! this init, and with it the whole namespace.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, setpgid, tcsetpgrp};

use crate::exit::Failure;
use crate::explain;
use crate::layer::Process;
use crate::sync::ChildEnd;

// ANCHOR: init
/// Becomes the init: forks the command, then forwards signals to it and reaps every
/// child until the command exits, and exits with its code. Returns only if the
/// command could not be started.
pub fn run(process: &Process, channel: &ChildEnd) -> Failure {
    // Not dumpable: under a user namespace, no process of the container may ptrace us
    // or read our memory.
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::prctl::set_name(c"keel-init");
    // The runtime's signals: the same ones reach the command through the init.
    let (watched, original) = match crate::signals::block_forwarded() {
        Ok(masks) => masks,
        Err(errno) => return failed("blocking signals in the init", errno),
    };
    // SAFETY: this process is single-threaded; the child only execs or exits.
    let command = match unsafe { fork() } {
        Err(errno) => return failed("fork of the command", errno),
        Ok(ForkResult::Child) => {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&original), None);
            if process.terminal {
                foreground();
            }
            return crate::exec::exec(process);
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    // Only the command's execve may close the channel now: that is what tells the
    // parent that the command runs.
    channel.close();
    explain::step(
        format_args!("fork() -> {command}"),
        "PID 1 is keel's init: it reaps orphans, forwards signals, and dies with the runtime",
    );
    let code = supervise(command, &watched).unwrap_or(crate::exit::RUNTIME_FAILED);
    std::process::exit(code)
}
// ANCHOR_END: init

/// The init's loop: returns the command's exit code once it has exited.
fn supervise(command: Pid, watched: &SigSet) -> Result<i32> {
    loop {
        let signal = watched.wait().context("sigwait")?;
        if signal != Signal::SIGCHLD {
            let _ = kill(command, signal);
            continue;
        }
        // Reap every child that exited: the command, and orphans re-parented to us.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(command) => {
                    if let Some(code) = crate::runner::exit_code(status) {
                        return Ok(code);
                    }
                }
                Ok(_) => continue,
            }
        }
    }
}

/// In the command, with a terminal: a process group of its own, made the terminal's
/// foreground, so that Ctrl-C reaches the command and not the init.
fn foreground() {
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // SAFETY: only the ignore and default dispositions are set, no handler runs.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGTTOU, nix::sys::signal::SigHandler::SigIgn);
        let _ = tcsetpgrp(std::io::stdin(), getpid());
        let _ = nix::sys::signal::signal(Signal::SIGTTOU, nix::sys::signal::SigHandler::SigDfl);
    }
}

fn failed(what: &str, errno: nix::Error) -> Failure {
    Failure {
        code: crate::exit::RUNTIME_FAILED,
        message: format!("--init: {what}: {}", errno.desc()),
    }
}

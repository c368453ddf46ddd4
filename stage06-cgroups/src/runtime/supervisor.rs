//! `run -d`: a supervisor keeps the container, so that keel itself can exit.
//!
//! ```text
//!  keel run -d ──fork──► supervisor (setsid, stdin /dev/null)
//!     │                    ├─fork──► logger: container's pipes ─► container.log
//!     │                    └─ the runner, as a foreground run: clone, ..., waitpid
//!     │◄── "started" ──────┘  (or the error, with its exit code)
//!  prints the id, exits 0      records the exit code, then exits itself
//! ```
//!
//! The supervisor is the container's parent: it alone can `waitpid` for the exit
//! code, and the container's parent-death signal ties the container to it. If it is
//! SIGKILLed, the container dies with it, and the state it leaves says `running`
//! for a supervisor that is gone: `ps` shows that as `exited (unknown)`, and `rm -f`
//! removes what is left by the container's id.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use common::Process;
use common::exit::Failure;
use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe2, setsid};

use common::state::Owner;

use super::state::{self, State};
use crate::Args;

/// The first (and only) message from the supervisor: "started", or `CODE:MESSAGE`.
const STARTED: &str = "started";

/// The supervisor's end of the channel to the `run -d` that forked it.
#[derive(Debug)]
pub struct Notify(Option<OwnedFd>);

impl Notify {
    /// Tells `run -d` the container started; it then exits.
    pub fn started(&mut self) {
        self.send(STARTED);
    }

    /// Tells `run -d` why the container could not start.
    pub fn failed(&mut self, code: i32, message: &str) {
        self.send(&format!("{code}:{message}"));
    }

    fn send(&mut self, text: &str) {
        if let Some(fd) = self.0.take() {
            let mut bytes = text.as_bytes().to_vec();
            bytes.push(0);
            let _ = nix::unistd::write(&fd, &bytes);
        }
    }
}

// ANCHOR: detach
/// `run -d`: forks the supervisor, waits until the container started (or failed),
/// prints its id.
pub fn detach(state: State, mut process: Process, args: &Args) -> Result<i32> {
    // No one will type into a detached container: a shell on its terminal waits.
    process.interactive = false;
    let (read, write) = pipe2(OFlag::O_CLOEXEC).context("pipe to the supervisor")?;
    common::explain::step(
        "fork(); setsid()",
        "the supervisor: the container's parent, which outlives this command and records the exit code",
    );
    // SAFETY: single-threaded here; the child runs the supervisor and exits.
    match unsafe { fork() }.context("fork of the supervisor")? {
        ForkResult::Child => {
            drop(read);
            let code = supervise(state, process, args, Notify(Some(write)));
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(write);
            let message = read_message(read);
            match message.as_deref() {
                Some(STARTED) => {
                    println!("{}", state.id);
                    Ok(0)
                }
                Some(failure) => {
                    let _ = waitpid(child, None);
                    // It never started, whether the supervisor failed before the
                    // container (a fork, a dup2) or the container's start did.
                    let _ = state::remove(&state.id);
                    let (code, message) = failure.split_once(':').unwrap_or(("125", failure));
                    Err(Failure {
                        code: code.parse().unwrap_or(common::exit::RUNTIME_FAILED),
                        message: message.to_owned(),
                    }
                    .into())
                }
                None => {
                    let _ = waitpid(child, None);
                    let _ = state::remove(&state.id);
                    anyhow::bail!(
                        "the supervisor of {} died before the container started (see `dmesg` \
                         for a kill by the OOM killer)",
                        state.name
                    )
                }
            }
        }
    }
}
// ANCHOR_END: detach

/// Reads up to the NUL that ends the message, or end-of-file (`None` if empty).
fn read_message(read: OwnedFd) -> Option<String> {
    let mut file = std::fs::File::from(read);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if bytes.contains(&0) {
                    break;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    (end > 0).then(|| String::from_utf8_lossy(&bytes[..end]).into_owned())
}

// ANCHOR: supervise
/// The supervisor's life: a session of its own, the logger, the container.
fn supervise(mut state: State, process: Process, args: &Args, mut notify: Notify) -> i32 {
    // No terminal: nothing of the caller's session reaches the container, and its
    // hang-up does not end the container.
    let _ = setsid();
    let result = (|| -> Result<i32> {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null")?;
        nix::unistd::dup2_stdin(&null).context("dup2(/dev/null, 0)")?;
        let log = state::log_path(&state.id)?;
        let (out_read, out_write) = pipe2(OFlag::O_CLOEXEC).context("pipe for stdout")?;
        let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC).context("pipe for stderr")?;
        // SAFETY: single-threaded; the logger only copies and exits.
        let logger = match unsafe { fork() }.context("fork of the logger")? {
            ForkResult::Child => {
                // Nothing of the caller's: not its stdout (a pipe read to its end
                // would wait for us), not the channel to `run -d`.
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
                drop((out_write, err_write, null));
                // What else is open (the channel, the caller's fds) we never use
                // again, and `exit` below drops nothing.
                let _ = common::fds::close_all_but(&[out_read.as_raw_fd(), err_read.as_raw_fd()]);
                let code = match super::logs::copy_lines(out_read, err_read, &log) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                std::process::exit(code)
            }
            ForkResult::Parent { child } => child,
        };
        drop(out_read);
        drop(err_read);
        // From here on our stdout and stderr (and so the container's) are the log's.
        nix::unistd::dup2_stdout(&out_write).context("dup2 onto stdout")?;
        nix::unistd::dup2_stderr(&err_write).context("dup2 onto stderr")?;
        drop(out_write);
        drop(err_write);
        state.supervisor = Some(Owner::current()?);
        state.save()?;
        let code = super::run_recorded(state.clone(), process, args, Some(&mut notify));
        // Our end of the pipes closes: the logger reads what is left, then ends.
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
        let _ = waitpid(logger, None);
        code
    })();
    match result {
        Ok(code) => {
            if state.remove {
                let _ = state::remove(&state.id);
            }
            code
        }
        Err(err) => {
            let code = common::exit::code_of(&err);
            notify.failed(code, &format!("{err:#}"));
            code
        }
    }
}
// ANCHOR_END: supervise

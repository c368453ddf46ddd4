//! Relaying the container's terminal (`-t`) to the caller's stdin and stdout.
//!
//! The runtime holds the master side of the container's pseudo-terminal. What the
//! caller types (with `-i`) is written to it, as if typed on the container's
//! keyboard; what the container prints comes out of it and goes to the caller's
//! stdout. Both directions go through one non-blocking loop, so that a container that
//! does not read its input can never stop its output from being shown.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags};
use nix::sys::termios::{SpecialCharacterIndices, tcgetattr};

use crate::explain;
use crate::terminal::{RawMode, pass_window_size};

/// Which end a poll entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The container's terminal.
    Master,
    /// The caller's stdin.
    Stdin,
}

/// The state of the relay between the caller and the container's terminal.
#[derive(Debug)]
pub struct Relay {
    master: OwnedFd,
    /// The container's output can still be read (until every slave fd is closed).
    output_open: bool,
    /// The caller's stdin is still relayed (`-i`, until end-of-file).
    input_open: bool,
    /// Bytes read from stdin that the terminal did not take yet.
    pending: Vec<u8>,
    stdin: std::io::Stdin,
    /// The caller's terminal, raw while we relay; restored when dropped.
    _raw: Option<RawMode>,
}

const CHUNK: usize = 64 * 1024;

impl Relay {
    /// Starts relaying `master`; `stdin` says whether the caller's input goes in.
    pub fn new(master: OwnedFd, stdin: bool) -> Result<Self> {
        let flags = fcntl(master.as_fd(), FcntlArg::F_GETFL).context("F_GETFL")?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(master.as_fd(), FcntlArg::F_SETFL(flags)).context("F_SETFL O_NONBLOCK")?;
        // The size at the start is the child's to set (before the command runs);
        // the relay passes on each change.
        let raw = if stdin { RawMode::enter() } else { None };
        Ok(Self {
            master,
            output_open: true,
            input_open: stdin,
            pending: Vec::new(),
            stdin: std::io::stdin(),
            _raw: raw,
        })
    }

    /// What to wait for: output from the terminal, room in it for pending input, and
    /// more input only once the pending bytes are in.
    pub fn poll_fds(&self) -> (Vec<PollFd<'_>>, Vec<End>) {
        let mut fds = Vec::new();
        let mut ends = Vec::new();
        let mut master_events = PollFlags::empty();
        if self.output_open {
            master_events |= PollFlags::POLLIN;
        }
        if !self.pending.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        if !master_events.is_empty() {
            fds.push(PollFd::new(self.master.as_fd(), master_events));
            ends.push(End::Master);
        }
        if self.input_open && self.pending.is_empty() {
            fds.push(PollFd::new(self.stdin.as_fd(), PollFlags::POLLIN));
            ends.push(End::Stdin);
        }
        (fds, ends)
    }

    /// Moves bytes for every end that `poll` found ready.
    pub fn handle(&mut self, ends: &[End], ready: &[PollFlags]) -> Result<()> {
        for (end, flags) in ends.iter().zip(ready) {
            if flags.is_empty() {
                continue;
            }
            match end {
                End::Master => {
                    if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                    {
                        self.copy_output();
                    }
                    if flags.contains(PollFlags::POLLOUT) {
                        self.write_pending();
                    }
                }
                End::Stdin => self.read_input(),
            }
        }
        Ok(())
    }

    /// The caller's window changed size: so does the container's terminal.
    pub fn resized(&self) {
        pass_window_size(self.master.as_fd());
    }

    /// The container is gone: show what it printed last.
    pub fn drain(&mut self) {
        while self.output_open && self.copy_output() {}
    }

    /// Copies one chunk of output to stdout; `false` when there is nothing more now.
    fn copy_output(&mut self) -> bool {
        let mut buf = [0u8; CHUNK];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                // EIO: every slave fd is closed, the container's processes are gone.
                self.output_open = false;
                false
            }
            Ok(n) => {
                let mut stdout = std::io::stdout().lock();
                // A caller that stopped reading (`| head`) loses the rest, as with docker.
                let _ = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush());
                true
            }
            Err(_) => false,
        }
    }

    /// Reads what the caller typed; at end-of-file, types the terminal's EOF character
    /// (Ctrl-D), which is how a terminal says "no more input".
    fn read_input(&mut self) {
        let mut buf = [0u8; CHUNK];
        match nix::unistd::read(&self.stdin, &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                self.input_open = false;
                let eof = tcgetattr(self.master.as_fd())
                    .map(|t| t.control_chars[SpecialCharacterIndices::VEOF as usize])
                    .unwrap_or(4);
                self.pending.push(eof);
                explain::step(
                    format_args!("write(master, {eof:#04x})"),
                    "stdin ended: type the terminal's end-of-file character",
                );
                self.write_pending();
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.write_pending();
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.input_open = false,
        }
    }

    /// Writes as much pending input as the terminal takes now.
    fn write_pending(&mut self) {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    // The terminal is gone: nobody will read this input.
                    self.pending.clear();
                    self.input_open = false;
                    return;
                }
            }
        }
    }
}

//! Running a stage on a terminal, as a person at a keyboard does.
//!
//! The harness opens a pseudo-terminal and starts a session on it, as a login does: a
//! session leader (standing for the caller's shell) whose controlling terminal is the
//! slave side, and the runtime as its foreground job, with stdin, stdout and stderr on
//! the terminal. The test holds the master side: it reads
//! what the terminal shows, types keys, resizes the window, and reads the terminal's
//! modes (termios) before and after.
//!
//! ```text
//! let mut term = stage.run().args(["-t"]).cmd(["tty"]).on_terminal(Size::new(30, 100));
//! term.expect("/dev/pts/0");
//! term.wait().expect_code(0);
//! ```

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{OpenptyResult, Winsize, openpty};
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{Termios, tcgetattr};
use nix::unistd::{Pid, pipe2};

use crate::runtime::{Held, Invocation, Output};

/// A terminal window's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

impl Size {
    pub fn new(rows: u16, cols: u16) -> Self {
        Self { rows, cols }
    }

    fn winsize(self) -> Winsize {
        Winsize {
            ws_row: self.rows,
            ws_col: self.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }
}

/// A runtime started on a terminal of the test's.
#[derive(Debug)]
pub struct Terminal {
    /// The session leader, which stands for the caller's shell: it holds the terminal,
    /// runs the runtime as its foreground job, and stays until the test is done with
    /// the terminal (when a session leader exits, its terminal is hung up).
    leader: Child,
    /// The runtime, a child of the leader.
    runtime: Pid,
    /// Readable once the runtime has exited: `poll` waits for output or the exit.
    pidfd: OwnedFd,
    /// The runtime's wait status, written by the leader once the runtime has exited.
    status: OwnedFd,
    /// Closing it lets the leader exit.
    hold: Option<OwnedFd>,
    master: OwnedFd,
    /// The test's own copy of the slave side: to read its modes, and what is waiting in
    /// its input.
    slave: OwnedFd,
    /// The terminal's modes before the runtime started.
    initial: Termios,
    /// Everything the terminal has shown so far.
    shown: Vec<u8>,
    description: String,
    deadline: Instant,
    _held: Held,
}

impl Invocation {
    /// Starts the runtime on a new terminal of `size`, as the foreground job of a
    /// session, the way a shell starts a command.
    pub fn on_terminal(self, size: Size) -> Terminal {
        let description = self.to_string();
        let deadline = Instant::now() + self.timeout_duration();
        let OpenptyResult { master, slave } =
            openpty(Some(&size.winsize()), None).expect("openpty for the test's terminal");
        let initial = tcgetattr(slave.as_fd()).expect("tcgetattr on the test's terminal");
        let (pid_read, pid_write) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let (hold_read, hold_write) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let (mut command, held) = self.command();
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the slave"));
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        let fds = [
            pid_write.as_raw_fd(),
            status_write.as_raw_fd(),
            hold_read.as_raw_fd(),
        ];
        // SAFETY: between fork and exec only async-signal-safe calls (setsid, ioctl,
        // fork, setpgid, tcsetpgrp, signal, write, waitpid, read, _exit).
        unsafe {
            command.pre_exec(move || session_leader(fds));
        }
        let leader = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {description}: {err}"));
        drop((pid_write, status_write, hold_read));
        let mut pid = [0u8; 4];
        read_exact(&pid_read, &mut pid);
        let runtime = Pid::from_raw(i32::from_ne_bytes(pid));
        // SAFETY: pidfd_open of a live process (the leader reaps it only after we read
        // its status, and we hold the leader).
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, runtime.as_raw(), 0) };
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the kernel just gave us this fd.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        Terminal {
            leader,
            runtime,
            pidfd,
            status: status_read,
            hold: Some(hold_write),
            master,
            slave,
            initial,
            shown: Vec::new(),
            description,
            deadline,
            _held: held,
        }
    }
}

/// In the forked child, before exec: become a session leader on the terminal (our
/// stdin), fork the runtime into a process group of its own made the terminal's
/// foreground (and return, to exec it), and as the leader, report the runtime's PID
/// and wait status, then wait until the test closes `hold`.
fn session_leader([pid_write, status_write, hold_read]: [i32; 3]) -> std::io::Result<()> {
    // SAFETY: (for the whole function) async-signal-safe calls on fds we own.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let runtime = libc::fork();
        if runtime < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if runtime == 0 {
            libc::setpgid(0, 0);
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, libc::getpid());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            return Ok(());
        }
        // The leader never execs: it must not keep fds that only exec would close (std
        // reads end-of-file on one of them to learn that the exec succeeded).
        let keep =
            [pid_write, status_write, hold_read].map(|fd| libc::fcntl(fd, libc::F_DUPFD, KEPT));
        libc::close_range(3, KEPT as u32 - 1, 0);
        libc::close_range(KEPT as u32 + 3, u32::MAX, 0);
        let [pid_write, status_write, hold_read] = keep;
        let pid = runtime.to_ne_bytes();
        libc::write(pid_write, pid.as_ptr().cast(), pid.len());
        let mut status = 0;
        while libc::waitpid(runtime, &mut status, 0) < 0 {}
        let bytes = status.to_ne_bytes();
        libc::write(status_write, bytes.as_ptr().cast(), bytes.len());
        let mut byte = 0u8;
        libc::read(hold_read, (&mut byte as *mut u8).cast(), 1);
        libc::_exit(0);
    }
}

/// Where the session leader moves the fds it keeps before closing all the others.
const KEPT: i32 = 1000;

fn read_exact(fd: &OwnedFd, buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::read(fd, &mut buf[done..]) {
            Ok(0) => panic!("the terminal's session leader ended early"),
            Ok(n) => done += n,
            Err(nix::Error::EINTR) => continue,
            Err(err) => panic!("reading from the session leader: {err}"),
        }
    }
}

impl Terminal {
    /// The runtime's PID.
    pub fn pid(&self) -> Pid {
        self.runtime
    }

    /// Reads until the terminal has shown `text` (since the start); panics at the
    /// deadline, showing what it did show.
    pub fn expect(&mut self, text: &str) {
        while !self.shown_text().contains(text) {
            // Once the runtime is gone and its last output read, nothing more comes.
            if self.exited() && !self.read_ready() {
                panic!(
                    "{}: the runtime exited before the terminal showed {text:?}; it showed:\n{}",
                    self.description,
                    self.shown_text()
                );
            }
            if !self.read_some() {
                panic!(
                    "{}: the terminal never showed {text:?}; it showed:\n{}",
                    self.description,
                    self.shown_text()
                );
            }
        }
    }

    /// What the terminal has shown so far, as text.
    pub fn shown_text(&self) -> String {
        String::from_utf8_lossy(&self.shown).into_owned()
    }

    /// Types `bytes` (`\r` is Enter, `\x03` is Ctrl-C).
    pub fn send(&mut self, bytes: &[u8]) {
        nix::unistd::write(&self.master, bytes).expect("writing to the terminal");
    }

    /// Changes the window size: the kernel sends SIGWINCH to the foreground job.
    ///
    /// Through the slave side: resized through the master, the kernel signals before it
    /// stores the new size, under a lock that a reader of the slave's size does not
    /// take, so the job may still read the old size when its SIGWINCH arrives.
    pub fn resize(&mut self, size: Size) {
        let winsize = size.winsize();
        // SAFETY: TIOCSWINSZ reads the winsize we pass.
        let rc = unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
        assert_eq!(rc, 0, "TIOCSWINSZ on the test's terminal");
    }

    /// The terminal's modes before the runtime was started.
    pub fn initial_termios(&self) -> &Termios {
        &self.initial
    }

    /// The terminal's modes, as the runtime's caller sees them.
    pub fn termios(&self) -> Termios {
        tcgetattr(self.slave.as_fd()).expect("tcgetattr on the test's terminal")
    }

    /// Bytes waiting in the terminal's *input*: what a program reading it (the caller's
    /// shell, once the runtime exits) would get as if typed. Text pushed with TIOCSTI
    /// lands here. In canonical mode only whole lines are readable.
    pub fn pending_input(&self) -> Vec<u8> {
        let mut fds = [PollFd::new(self.slave.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => {}
            _ => return Vec::new(),
        }
        let mut buf = vec![0u8; 4096];
        match nix::unistd::read(&self.slave, &mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Sends `signal` to the runtime.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal)
            .unwrap_or_else(|err| panic!("{}: kill({signal}): {err}", self.description));
    }

    /// [`wait`](Self::wait), and the terminal's modes once the runtime has exited.
    pub fn wait_with_termios(mut self) -> (Output, Termios) {
        let out = self.finish();
        (out, self.termios())
    }

    /// Waits for the runtime to exit (within the deadline), reading what the terminal
    /// still shows, and returns its exit code with everything shown as stdout.
    pub fn wait(mut self) -> Output {
        self.finish()
    }

    fn finish(&mut self) -> Output {
        loop {
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            if matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                // What the runtime wrote just before exiting is already in the buffer.
                while self.read_ready() {}
                let mut status = [0u8; 4];
                read_exact(&self.status, &mut status);
                let status = ExitStatus::from_raw(i32::from_ne_bytes(status));
                return Output::new(self.description.clone(), status, &self.shown, b"");
            }
            if !self.read_some() {
                let _ = kill(self.runtime, Signal::SIGKILL);
                panic!(
                    "{}: still running at the deadline; the terminal showed:\n{}",
                    self.description,
                    self.shown_text()
                );
            }
        }
    }

    /// Waits for output or for the runtime's exit, and reads what is there; `false`
    /// once the deadline has passed.
    fn read_some(&mut self) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(self.master.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
        ];
        if matches!(poll(&mut fds, timeout), Ok(n) if n > 0) {
            self.read_ready();
        }
        true
    }

    /// Whether the runtime has exited (its pidfd is readable).
    fn exited(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Reads what the terminal has to show right now; `false` if nothing.
    fn read_ready(&mut self) -> bool {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            return false;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(n) if n > 0 => {
                self.shown.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            let _ = kill(self.runtime, Signal::SIGKILL);
        }
        // The leader reaps the runtime, then exits once `hold` is closed.
        self.hold = None;
        let _ = self.leader.wait();
    }
}

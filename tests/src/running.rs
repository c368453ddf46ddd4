//! A container that is still running: read its output line by line, send it signals,
//! then wait for it, never past a deadline.
//!
//! Nothing here sleeps to "give the container time": the test waits for what it needs
//! (a line on stdout, the process's exit) and gives up at the deadline.
//!
//! ```text
//! let mut running = stage01().run().sh("trap 'exit 42' TERM; echo ready; read x").spawn();
//! assert_eq!(running.read_line(), "ready");
//! running.signal(Signal::SIGTERM);
//! running.wait().expect_code(42);
//! ```

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::probe::namespace_inode;
use crate::runtime::{Held, Output, write_all};

/// After the runtime exits, its output pipes close as soon as every process of the
/// container is gone. A pipe still open this long after means one outlived it.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// A running stage binary, with its stdin, stdout and stderr.
#[derive(Debug)]
pub struct Running {
    child: Child,
    description: String,
    deadline: Instant,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    read: Vec<String>,
    stderr: Receiver<String>,
    /// The lines of stderr already read by the test.
    read_stderr: Vec<String>,
    finished: bool,
    _held: Held,
}

impl Running {
    pub(crate) fn new(
        mut child: Child,
        description: String,
        deadline: Instant,
        held: Held,
    ) -> Self {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Self {
            child,
            description,
            deadline,
            stdin,
            lines: read_lines(stdout),
            read: Vec::new(),
            stderr: read_lines(stderr),
            read_stderr: Vec::new(),
            finished: false,
            _held: held,
        }
    }

    /// The runtime's PID (on the host).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The host PID of the container's first process: the runtime's child that lives in
    /// a PID namespace other than the host's (a runtime may have helpers that do not).
    pub fn container_pid(&self) -> Pid {
        let host = namespace_inode(Path::new("/proc/self"), "pid");
        let children: Vec<Pid> = children_of(self.pid())
            .into_iter()
            .filter(|pid| {
                let proc_dir = PathBuf::from(format!("/proc/{pid}"));
                namespace_inode(&proc_dir, "pid") != host
            })
            .collect();
        match children[..] {
            [pid] => pid,
            _ => panic!(
                "{}: expected the runtime to have one child in a new PID namespace (the \
                 container), found {children:?}",
                self.description
            ),
        }
    }

    /// The next line of stdout, without its newline. Panics if none comes before the
    /// deadline, or if stdout ends.
    pub fn read_line(&mut self) -> String {
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.read.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{}: no line on stdout before the deadline",
                    self.description
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let output = self.finish();
                panic!("stdout ended while a line was expected\n{output}")
            }
        }
    }

    /// The next line of stderr (the runtime's messages, such as the port it picked for
    /// `-p ...:0:...`). Panics if none comes before the deadline, or if stderr ends.
    pub fn read_stderr_line(&mut self) -> String {
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        match self.stderr.recv_timeout(timeout) {
            Ok(line) => {
                self.read_stderr.push(line.clone());
                line
            }
            Err(_) => {
                let output = self.finish();
                panic!("no line on stderr while one was expected\n{output}")
            }
        }
    }

    /// Writes to the runtime's stdin.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        if let Some(stdin) = &mut self.stdin {
            write_all(stdin, bytes);
        }
    }

    /// Closes the runtime's stdin: the container reads end-of-file.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `signal` to the runtime.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal)
            .unwrap_or_else(|err| panic!("{}: kill({signal}): {err}", self.description));
    }

    /// Waits for the end (within the deadline) and returns the exit code and the whole
    /// output (lines already read included).
    pub fn wait(mut self) -> Output {
        self.finish()
    }

    fn finish(&mut self) -> Output {
        let status = match wait_until(&mut self.child, self.deadline) {
            Some(status) => status,
            None => {
                self.kill();
                panic!(
                    "{} did not exit within its deadline: a hung container is a failure",
                    self.description
                );
            }
        };
        self.finished = true;
        self.stdin = None;
        let grace = Instant::now() + PIPE_GRACE;
        let mut stdout = std::mem::take(&mut self.read);
        loop {
            match self
                .lines
                .recv_timeout(grace.saturating_duration_since(Instant::now()))
            {
                Ok(line) => stdout.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: stdout is still open after the runtime exited: a process of the \
                     container outlived it",
                    self.description
                ),
            }
        }
        let mut stderr = std::mem::take(&mut self.read_stderr);
        loop {
            match self
                .stderr
                .recv_timeout(grace.saturating_duration_since(Instant::now()))
            {
                Ok(line) => stderr.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: stderr is still open after the runtime exited: a process of the \
                     container outlived it",
                    self.description
                ),
            }
        }
        let mut stderr = stderr.join("\n");
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        let mut stdout = stdout.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        Output::new(
            self.description.clone(),
            status,
            stdout.as_bytes(),
            stderr.as_bytes(),
        )
    }

    fn kill(&mut self) {
        // The container's PID 1 dies with the runtime (the runtime sets its parent-death
        // signal); killing the runtime is how a user would stop it too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.finished = true;
    }
}

impl Drop for Running {
    /// A test that fails halfway must not leave its container running.
    fn drop(&mut self) {
        if !self.finished {
            self.kill();
        }
    }
}

/// Waits for `child` to exit, until `deadline`; `None` if it is still running then.
///
/// A pidfd (`pidfd_open(2)`) becomes readable when the process exits, so `poll` with a
/// timeout waits exactly as long as needed. The child is reaped (`wait`) only after
/// that, so its PID cannot be reused while we hold it.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let pidfd = pidfd_open(child.id()).unwrap_or_else(|err| panic!("pidfd_open: {err}"));
    loop {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut pollfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
        match ready {
            1 => return Some(child.wait().expect("wait for an exited child")),
            0 if Instant::now() >= deadline => return None,
            0 => continue,
            _ => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    panic!("poll(pidfd): {err}");
                }
            }
        }
    }
}

/// Waits until the process `pid` (any process, not only a child) has exited, for at
/// most `timeout`; `false` if it is still alive then. Nothing sleeps: a pidfd becomes
/// readable when its process exits.
pub fn wait_for_exit(pid: Pid, timeout: Duration) -> bool {
    let Ok(pidfd) = pidfd_open(pid.as_raw() as u32) else {
        // ESRCH: it is already gone.
        return true;
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut pollfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        match unsafe { libc::poll(&mut pollfd, 1, millis) } {
            1 => return true,
            0 if Instant::now() >= deadline => return false,
            0 => continue,
            _ => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    panic!("poll(pidfd of {pid}): {err}");
                }
            }
        }
    }
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd, and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The PIDs of every process on the host: the numbered directories of the host's
/// `/proc` (none if it cannot be read).
pub fn host_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The host PIDs whose parent is `parent` (from the 4th field of `/proc/PID/stat`).
pub fn children_of(parent: Pid) -> Vec<Pid> {
    host_pids()
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
            let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after_comm.split_whitespace().nth(1) == Some(&parent.as_raw().to_string())
        })
        .map(Pid::from_raw)
        .collect()
}

/// Sends each line of `stream` on a channel, from a thread; the channel closes at EOF.
fn read_lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while let Ok(1..) = reader.read_until(b'\n', &mut line) {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if sender
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
            line.clear();
        }
    });
    receiver
}

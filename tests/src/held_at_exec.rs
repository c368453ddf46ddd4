//! A runtime's child held at the door of `execve`: it has joined the container, but it
//! still runs the runtime's code, with the runtime's memory and fds. In real life an
//! attack on that moment (runc's CVE-2016-9962) is a race the attacker may win once in
//! many tries; under `ptrace` a grader stops the child there every time, attacks at
//! leisure from inside the container, then lets it go on.
//!
//! The runtime starts traced (`PTRACE_TRACEME`), with every process it forks traced
//! too (`PTRACE_O_TRACEFORK`); the forked ones stop at each system call, until the one
//! the grader picks enters `execve`. Only this thread's tracees are waited for
//! (`__WNOTHREAD`): the other graders running in this process keep their children.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::runtime::{Held, Invocation, Output};

/// How long the runtime has to reach the held `execve`, and then to finish.
const DEADLINE: Duration = Duration::from_secs(30);

/// The runtime, one of whose children is stopped on entry to `execve`.
#[derive(Debug)]
pub struct HeldAtExec {
    runtime: Child,
    description: String,
    held: Pid,
    _held_files: Held,
}

impl Invocation {
    /// Starts the runtime traced, and returns once a child of it for which `pick`
    /// holds (given its host PID) enters `execve`. Panics if the runtime exits first.
    pub fn hold_child_at_exec(self, pick: impl Fn(Pid) -> bool) -> HeldAtExec {
        let description = self.to_string();
        let (mut command, held_files) = self.command();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: ptrace(PTRACE_TRACEME) is one system call, async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                ptrace::traceme().map_err(std::io::Error::from)
            });
        }
        let runtime = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {description}: {err}"));
        let main = Pid::from_raw(runtime.id() as i32);
        // Its execve stops it with SIGTRAP before its first instruction.
        match wait_for(main) {
            WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
            other => panic!("{description}: expected a stop after exec, got {other:?}"),
        }
        ptrace::setoptions(
            main,
            Options::PTRACE_O_TRACEFORK
                | Options::PTRACE_O_TRACEVFORK
                | Options::PTRACE_O_TRACECLONE
                | Options::PTRACE_O_TRACESYSGOOD
                | Options::PTRACE_O_EXITKILL,
        )
        .expect("PTRACE_SETOPTIONS");
        ptrace::cont(main, None).expect("PTRACE_CONT");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = next_stop(deadline, &description);
            match status {
                // A forked process or a thread: its first stop. Stop it at every
                // system call from now on; its parent goes on.
                WaitStatus::PtraceEvent(pid, _, _) => resume(pid, main, None),
                WaitStatus::Stopped(pid, Signal::SIGSTOP) if pid != main => {
                    ptrace::syscall(pid, None).expect("PTRACE_SYSCALL");
                }
                WaitStatus::PtraceSyscall(pid) => {
                    if enters_execve(pid) && pick(pid) {
                        return HeldAtExec {
                            runtime,
                            description,
                            held: pid,
                            _held_files: held_files,
                        };
                    }
                    ptrace::syscall(pid, None).expect("PTRACE_SYSCALL");
                }
                // The runtime's own re-exec (a sealed copy of itself) stops it with
                // SIGTRAP; any other signal is delivered.
                WaitStatus::Stopped(pid, Signal::SIGTRAP) => resume(pid, main, None),
                WaitStatus::Stopped(pid, signal) => resume(pid, main, Some(signal)),
                WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) if pid == main => {
                    let output = collect(runtime, description.clone(), status);
                    panic!("the runtime ended before a child of it entered execve\n{output}")
                }
                _ => {}
            }
        }
    }
}

impl HeldAtExec {
    /// The held child's host PID.
    pub fn pid(&self) -> Pid {
        self.held
    }

    /// Lets the held child (and every other traced process) go on untraced, and
    /// waits for the runtime's end.
    pub fn release(self) -> Output {
        let main = Pid::from_raw(self.runtime.id() as i32);
        ptrace::detach(self.held, None).expect("PTRACE_DETACH of the held child");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = next_stop(deadline, &self.description);
            match status {
                WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) if pid == main => {
                    return collect(self.runtime, self.description, status);
                }
                WaitStatus::Stopped(pid, Signal::SIGTRAP | Signal::SIGSTOP)
                | WaitStatus::PtraceEvent(pid, _, _)
                | WaitStatus::PtraceSyscall(pid) => {
                    let _ = ptrace::detach(pid, None);
                }
                WaitStatus::Stopped(pid, signal) => {
                    let _ = ptrace::detach(pid, Some(signal));
                }
                _ => {}
            }
        }
    }
}

/// Resumes `pid`: the runtime itself runs freely, its descendants stop at system calls.
fn resume(pid: Pid, main: Pid, signal: Option<Signal>) {
    let resumed = if pid == main {
        ptrace::cont(pid, signal)
    } else {
        ptrace::syscall(pid, signal)
    };
    // ESRCH: it was killed meanwhile; its end is reported next.
    if let Err(err) = resumed
        && err != Errno::ESRCH
    {
        panic!("resuming {pid}: {err}");
    }
}

/// Whether `pid`, stopped at a system call, is entering (not leaving) `execve`: on
/// entry the kernel has not written a result yet, and `rax` holds `-ENOSYS`.
#[cfg(target_arch = "x86_64")]
fn enters_execve(pid: Pid) -> bool {
    let Ok(regs) = ptrace::getregs(pid) else {
        return false;
    };
    regs.orig_rax == libc::SYS_execve as u64 && regs.rax as i64 == -(libc::ENOSYS as i64)
}

/// The next stop or end of one of this thread's tracees, polled up to `deadline`.
fn next_stop(deadline: Instant, description: &str) -> WaitStatus {
    let flags = WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD | WaitPidFlag::WNOHANG;
    loop {
        match waitpid(None::<Pid>, Some(flags)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(status) => return status,
            Err(err) => panic!("{description}: waitpid: {err}"),
        }
        assert!(
            Instant::now() < deadline,
            "{description}: no end by the deadline"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits for `pid`'s next stop (it is this thread's own child).
fn wait_for(pid: Pid) -> WaitStatus {
    waitpid(pid, Some(WaitPidFlag::__WALL)).expect("waitpid for the traced runtime")
}

/// The runtime's output, once it has been reaped (as `status`).
fn collect(mut runtime: Child, description: String, status: WaitStatus) -> Output {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = runtime.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    if let Some(mut err) = runtime.stderr.take() {
        let _ = err.read_to_end(&mut stderr);
    }
    let raw = match status {
        WaitStatus::Exited(_, code) => code << 8,
        WaitStatus::Signaled(_, signal, _) => signal as i32,
        _ => 0,
    };
    let status = std::os::unix::process::ExitStatusExt::from_raw(raw);
    Output::new(description, status, &stdout, &stderr)
}

//! `keel-probe tiocsti TEXT | orphan | clear-pdeathsig MARKER`: what a container can do
//! to its caller's terminal, to zombies, and to its own death.

use std::io::Write;

use serde_json::{Value, json};

/// `ioctl(0, TIOCSTI, c)` for each byte of `text`: push it into the *input* of the
/// terminal on stdin, as if typed there. The kernel allows it on one's controlling
/// terminal (or with CAP_SYS_ADMIN in the host's user namespace).
pub fn tiocsti(text: &str) -> Value {
    let text = text.replace("\\n", "\n");
    let mut pushed = 0;
    for byte in text.bytes() {
        // SAFETY: TIOCSTI reads one byte from the pointer.
        let rc = unsafe { libc::ioctl(0, libc::TIOCSTI, &byte as *const u8) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            return json!({
                "call": "ioctl(0, TIOCSTI)", "ok": false, "pushed": pushed,
                "errno": err.raw_os_error(), "error": err.to_string(),
            });
        }
        pushed += 1;
    }
    json!({ "call": "ioctl(0, TIOCSTI)", "ok": true, "pushed": pushed, "errno": null, "error": null })
}

/// Makes an orphan and reports whether someone reaps it: a child forks a grandchild
/// and exits at once, so the grandchild is re-parented to PID 1 of the namespace (or
/// a subreaper). Once the grandchild has exited (seen through a pidfd, no guessing),
/// `/proc/PID` disappears only when its new parent reaps it. The probe waits for that
/// for at most 5 seconds (it never reaps the orphan itself).
pub fn orphan() -> Value {
    // `pipe` carries the orphan's PID to us; `release` lets it exit (end-of-file once
    // its parent is gone).
    let (mut pipe, mut release) = ([0; 2], [0; 2]);
    // SAFETY: valid arrays of two ints.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) != 0 || libc::pipe(release.as_mut_ptr()) != 0 } {
        return json!({ "error": "pipe" });
    }
    // SAFETY: the probe is single-threaded; the children only call async-signal-safe
    // functions and _exit.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        let grandchild = unsafe { libc::fork() };
        if grandchild == 0 {
            // The grandchild waits until its parent is gone, then exits.
            let mut byte = 0u8;
            // SAFETY: a read of one byte into a valid buffer; EOF when the pipe closes.
            unsafe {
                libc::close(release[1]);
                libc::read(release[0], (&mut byte as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        let pid = grandchild.to_ne_bytes();
        // SAFETY: write the grandchild's pid, then exit: the orphan is made.
        unsafe {
            libc::write(pipe[1], pid.as_ptr().cast(), pid.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end. `release[1]` stays open until we have
    // seen who adopted the orphan: with it closed, the orphan could exit, and be
    // reaped, before we look.
    unsafe {
        libc::close(pipe[1]);
    }
    let mut pid = [0u8; 4];
    // SAFETY: a valid buffer of 4 bytes.
    unsafe { libc::read(pipe[0], pid.as_mut_ptr().cast(), pid.len()) };
    let orphan = i32::from_ne_bytes(pid);
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    // SAFETY: pidfd_open of a pid of our namespace; -1 if it is already gone.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, orphan, 0) } as i32;
    // SAFETY: our copies of the read ends are no longer needed.
    unsafe {
        libc::close(pipe[0]);
        libc::close(release[0]);
    }
    // Who adopted it (field 4 of /proc/PID/stat), read before it may exit.
    let parent = std::fs::read_to_string(format!("/proc/{orphan}/stat"))
        .ok()
        .and_then(|stat| {
            Some(
                stat.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .to_owned(),
            )
        });
    // SAFETY: closing our last write end: the orphan reads end-of-file and exits.
    unsafe {
        libc::close(release[1]);
    }
    if pidfd >= 0 {
        let mut fds = [libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd; the pidfd becomes readable when the process exits.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 10_000) };
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut state = None;
    while std::time::Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{orphan}/stat")) {
            Err(_) => {
                state = None;
                break;
            }
            Ok(stat) => {
                state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned));
                std::thread::yield_now();
            }
        }
    }
    json!({ "orphan": orphan, "adopted_by": parent, "reaped": state.is_none(), "state": state })
}

/// Clears the parent-death signal, says `ready`, and waits forever: a PID 1 that means
/// to outlive its runtime.
pub fn clear_pdeathsig() -> ! {
    // SAFETY: PR_SET_PDEATHSIG with 0 clears it.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    let _ = writeln!(std::io::stdout(), "{}", json!({ "cleared": rc == 0 }));
    let _ = std::io::stdout().flush();
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

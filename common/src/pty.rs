//! `-t`: the container's own terminal, made in the child.
//!
//! Without `-t` the container has no controlling terminal at all (the child starts
//! with `setsid()`), even when its stdin is the caller's terminal: a terminal is a
//! two-way channel, and `ioctl(TIOCSTI)` on one's controlling terminal pushes bytes
//! into its *input*, as if typed. A container that shared the caller's terminal could
//! type commands into the caller's shell, which runs them on the host once the
//! container exits (CVE-2017-5226, bubblewrap's, and the reason for its `--new-session`).
//!
//! With `-t` the child opens a new pseudo-terminal in the container's own devpts
//! (`/dev/ptmx` is the container's after `pivot_root`): the *slave* side becomes the
//! container's controlling terminal and its stdin, stdout and stderr; the *master*
//! side goes to the runtime, which relays it to the caller's terminal. Anything the
//! container types with TIOCSTI lands in its own input, nowhere else.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::pty::unlockpt;
use nix::sys::stat::Mode;

use crate::explain;
use crate::sync::ChildEnd;
use crate::terminal::{caller_window_size, set_window_size};

// ANCHOR: attach
/// Opens a pseudo-terminal, makes its slave side our controlling terminal and our
/// stdin, stdout and stderr, and hands the master side to the parent.
pub fn attach(channel: &ChildEnd) -> Result<()> {
    attach_with(channel, true)
}

/// [`attach`]; `console`: bind the terminal on an empty `/dev/console` too (not for
/// a process joined to a running container, whose `/dev/console` is not its own).
pub fn attach_with(channel: &ChildEnd, console: bool) -> Result<()> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening /dev/ptmx for the container's terminal")?;
    // SAFETY: `master` is a pty master we own; PtyMaster takes it over and closes it.
    let master = unsafe { nix::pty::PtyMaster::from_owned_fd(master) };
    unlockpt(&master).context("unlockpt")?;
    let slave = open_peer(&master)?;
    explain::step(
        "open(\"/dev/ptmx\"); ioctl(TIOCGPTPEER)",
        "a new pseudo-terminal in the container's own /dev/pts",
    );
    // The caller's terminal is still our stdin or stdout: start with its size, so
    // that the command never sees a 0x0 window.
    if let Some(size) = caller_window_size() {
        set_window_size(slave.as_fd(), &size);
    }
    // SAFETY: TIOCSCTTY takes an int argument; we are a session leader (setsid).
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(rc).context("ioctl(TIOCSCTTY): making it our terminal")?;
    if console {
        bind_console(&slave)?;
    }
    channel.send_terminal(&master.into())?;
    nix::unistd::dup2_stdin(&slave).context("dup2 onto stdin")?;
    nix::unistd::dup2_stdout(&slave).context("dup2 onto stdout")?;
    nix::unistd::dup2_stderr(&slave).context("dup2 onto stderr")?;
    explain::step(
        "ioctl(slave, TIOCSCTTY); dup2(slave, 0..2); sendmsg(master, SCM_RIGHTS)",
        "the slave is the container's controlling terminal and stdio; the runtime gets the master",
    );
    Ok(())
}
// ANCHOR_END: attach

/// `ioctl(master, TIOCGPTPEER)` (Linux 4.13): opens the slave that belongs to this
/// master without looking up `/dev/pts/N` by name, so no path can be swapped under us.
fn open_peer(master: &nix::pty::PtyMaster) -> Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd, or -1.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = nix::errno::Errno::result(fd).context("ioctl(TIOCGPTPEER): opening the slave")?;
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A layer that built `/dev` (stage 2) left an empty file `/dev/console` for the
/// terminal: bind the slave there, as a console is what `-t` gives (docker, runc).
fn bind_console(slave: &OwnedFd) -> Result<()> {
    let console = Path::new("/dev/console");
    let Ok(target) = open(
        console,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(());
    };
    let meta = File::from(target);
    if !meta.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
        // Stage 1 shares the host's /dev: its console is not ours to cover.
        return Ok(());
    }
    let source = format!("/proc/self/fd/{}", slave.as_raw_fd());
    let target = format!("/proc/self/fd/{}", meta.as_raw_fd());
    mount(
        Some(source.as_str()),
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context("bind-mounting the terminal on /dev/console")?;
    explain::step(
        "mount(slave, \"/dev/console\", NULL, MS_BIND)",
        "the container's console is its own terminal",
    );
    Ok(())
}

//! An interactive bash on a pseudo-terminal, typed into as a person would.
//!
//! Each shell is the session leader of a terminal of its own, with job control, as a
//! login gives. The harness holds the terminal's master side: it types a line, then
//! reads what the terminal shows until the shell prompts again. To see the prompts
//! without guessing from the text, each prompt starts with an OSC sequence, which a
//! terminal does not display: bash's come from `PS1` and `PS2`, and those of the
//! shells that a transcript starts inside (`unshare ... sh`, which is dash) from the
//! file that `ENV` names. The marker says which shell prompted (the first or one
//! started inside it) and whether it wants a new command or the rest of one.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};

/// The terminal's size: 120 columns, a common width, and wide enough for the book's
/// tables without wrapping what readline echoes more than it must.
pub const COLUMNS: u16 = 120;
const ROWS: u16 = 50;

/// What starts each prompt: `ESC ] 7777 ; keel ; KIND BEL`.
const MARKER: &[u8] = b"\x1b]7777;keel;";

/// Which prompt the terminal showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    /// A shell started inside the first one (dash, from `ENV`).
    pub nested: bool,
    /// `PS2`: the command goes on.
    pub continuation: bool,
}

/// The environment of the prompts, for a shell's `Command`.
pub fn prompt_env(env_file: &Path) -> Vec<(OsString, OsString)> {
    let ps = |kind: &str, text: &str| format!("\\[\x1b]7777;keel;{kind}\x07\\]{text}");
    [
        ("PS1", ps("1", "\\$ ").into()),
        ("PS2", ps("2", "> ").into()),
        ("ENV", env_file.as_os_str().to_owned()),
    ]
    .into_iter()
    .map(|(k, v): (&str, OsString)| (k.into(), v))
    .collect()
}

/// The file `ENV` names: dash reads it when it starts interactive, and prompts as
/// bash does, `# ` for root (of its user namespace) and `$ ` for others. Builtins
/// only: a process it started would take a PID, and the book's PIDs would move.
pub const ENV_FILE: &str =
    "while read -r key uid rest; do [ \"$key\" = Uid: ] && break; done < /proc/self/status
if [ \"$uid\" = 0 ]; then PS1='\x1b]7777;keel;n1\x07# '; else PS1='\x1b]7777;keel;n1\x07$ '; fi
PS2='\x1b]7777;keel;n2\x07> '
";

/// Who a shell runs as.
#[derive(Debug, Clone)]
pub struct Login {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// A running shell.
#[derive(Debug)]
pub struct Shell {
    pub login: Login,
    child: Child,
    master: std::fs::File,
    /// Bytes read and not yet handed out.
    pending: Vec<u8>,
    /// The prompt the shell showed last (its marker and text), which the next command
    /// is typed after.
    pub prompt: Vec<u8>,
    /// Whether that prompt was a nested shell's.
    pub nested: bool,
}

impl Shell {
    /// Starts `bash --norc --noprofile -i` as `login` in `dir`, with `env` only.
    pub fn start(
        login: Login,
        dir: &Path,
        env: &[(OsString, OsString)],
        deadline: Instant,
    ) -> Result<Self> {
        let size = Winsize {
            ws_row: ROWS,
            ws_col: COLUMNS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).context("openpty")?;
        // Neither end may leak into the shell as more than its stdio.
        fcntl(&pty.master, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        fcntl(&pty.slave, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let slave = pty.slave;
        let stdio = |fd: &OwnedFd| -> Result<Stdio> { Ok(Stdio::from(fd.try_clone()?)) };
        let mut command = Command::new("bash");
        command
            .args(["--norc", "--noprofile", "-i"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(stdio(&slave)?)
            .stdout(stdio(&slave)?)
            .stderr(stdio(&slave)?);
        let (uid, gid, groups) = (login.uid, login.gid, login.groups.clone());
        let change = !nix::unistd::geteuid().is_root() || uid != 0;
        // SAFETY: between fork and exec only async-signal-safe calls are made.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // A login's shell has no fd but its terminal: none of the harness's
                // own may reach the transcripts (they would show in /proc/self/fd).
                if libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // No allocation here (the parent has threads): the list was made before.
                if change
                    && (libc::setgroups(groups.len(), groups.as_ptr()) < 0
                        || libc::setgid(gid) < 0
                        || libc::setuid(uid) < 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting bash as {}", login.name))?;
        drop(slave);
        let mut shell = Self {
            login,
            child,
            master: std::fs::File::from(pty.master),
            pending: Vec::new(),
            prompt: Vec::new(),
            nested: false,
        };
        let mut shown = Vec::new();
        let prompt = shell.read_prompt(&mut shown, deadline)?;
        if prompt.continuation || prompt.nested || !shown.is_empty() {
            bail!(
                "bash as {} started with {:?} instead of a prompt",
                shell.login.name,
                String::from_utf8_lossy(&shown)
            );
        }
        Ok(shell)
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.master.write_all(&bytes).context("typing")?;
        Ok(())
    }

    /// Reads until the next prompt. What the terminal showed before it is appended to
    /// `shown`; the prompt (marker and text) becomes [`Shell::prompt`].
    pub fn read_prompt(&mut self, shown: &mut Vec<u8>, deadline: Instant) -> Result<Prompt> {
        loop {
            if let Some((at, kind_len)) = find_marker(&self.pending) {
                // The marker, its kind, the BEL, and two characters of prompt text.
                let end = at + MARKER.len() + kind_len + 1 + 2;
                if self.pending.len() >= end {
                    let kind = &self.pending[at + MARKER.len()..at + MARKER.len() + kind_len];
                    let prompt = Prompt {
                        nested: kind.starts_with(b"n"),
                        continuation: kind.ends_with(b"2"),
                    };
                    shown.extend_from_slice(&self.pending[..at]);
                    self.prompt = self.pending[at..end].to_vec();
                    self.pending.drain(..end);
                    self.nested = prompt.nested;
                    return Ok(prompt);
                }
            }
            if !self.read_more(deadline)? {
                shown.append(&mut self.pending);
                bail!("no prompt before the deadline");
            }
        }
    }

    /// Reads what is there, waiting until `deadline` for at least one byte. False when
    /// the deadline passed or the terminal closed.
    pub fn read_more(&mut self, deadline: Instant) -> Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            return Ok(false);
        }
        let mut buf = [0u8; 65536];
        match self.master.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            // EIO: every process of the terminal has closed it.
            Err(err) if err.raw_os_error() == Some(libc::EIO) => Ok(false),
            Err(err) => Err(err).context("reading the terminal"),
        }
    }

    /// Moves what was read past the last prompt into `shown` (a background job's
    /// output, which the terminal shows after that prompt).
    pub fn take_pending(&mut self, shown: &mut Vec<u8>) {
        shown.append(&mut self.pending);
    }

    /// The shell's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Hangs up: the shell and its jobs get SIGHUP; whatever survives is killed by the
    /// harness's clean-up.
    pub fn close(mut self) {
        drop(self.master);
        let _ = self.child.try_wait();
    }
}

/// The first marker in `bytes`: its offset and the length of its kind.
fn find_marker(bytes: &[u8]) -> Option<(usize, usize)> {
    let at = bytes.windows(MARKER.len()).position(|w| w == MARKER)?;
    let rest = &bytes[at + MARKER.len()..];
    let kind_len = rest.iter().position(|&b| b == 0x07).unwrap_or(usize::MAX);
    if kind_len == usize::MAX {
        // Incomplete: wait for more. Report a length that asks for more bytes.
        return Some((at, rest.len() + 1));
    }
    Some((at, kind_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_markers() {
        assert_eq!(find_marker(b"out\r\n\x1b]7777;keel;n1\x07# "), Some((5, 2)));
        assert_eq!(find_marker(b"no marker"), None);
    }
}

//! A detached container's output, kept as docker's `json-file` driver keeps it: one
//! JSON object per line, `{"log":"...","stream":"stdout","time":"..."}`.
//!
//! The container's stdout and stderr are two pipes; a small process of the
//! supervisor's, the logger, reads both and appends each line to `container.log`
//! with its stream and the time it came. `logs` writes each line back to the stream
//! it came from; `logs -f` then watches the file (inotify) and the supervisor (a
//! pidfd) and ends once the container is gone and every line is shown.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};

use super::pidfd::PidFd;
use super::state;
use super::time::rfc3339_now;

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

// ANCHOR: logger
/// The logger's loop: copies lines from `stdout` and `stderr` (the read ends of the
/// container's pipes) into `log` until both are closed, that is, until the container
/// and the supervisor are gone.
pub fn copy_lines(stdout: OwnedFd, stderr: OwnedFd, log: &Path) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut streams = [
        (Some(File::from(stdout)), "stdout", Vec::new()),
        (Some(File::from(stderr)), "stderr", Vec::new()),
    ];
    while streams.iter().any(|(f, ..)| f.is_some()) {
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut which = Vec::new();
        for (i, (f, ..)) in streams.iter().enumerate() {
            if let Some(f) = f {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            other => other.context("poll on the container's output")?,
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for (i, ready) in which.into_iter().zip(ready) {
            if !ready {
                continue;
            }
            let (f, stream, pending) = &mut streams[i];
            let mut buf = [0u8; 16 * 1024];
            let n = match f.as_mut().map(|f| f.read(&mut buf)) {
                Some(Ok(n)) => n,
                Some(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                _ => 0,
            };
            if n == 0 {
                *f = None; // closed: what is left is a last line without its newline
                if !pending.is_empty() {
                    write_entry(&mut file, stream, &std::mem::take(pending))?;
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                write_entry(&mut file, stream, &line)?;
            }
        }
    }
    Ok(())
}
// ANCHOR_END: logger

/// Appends one line, in one `write`: a reader never sees half of it.
fn write_entry(file: &mut File, stream: &str, line: &[u8]) -> Result<()> {
    let entry = Entry {
        log: String::from_utf8_lossy(line).into_owned(),
        stream: stream.to_owned(),
        time: rfc3339_now(),
    };
    let mut json = serde_json::to_vec(&entry).context("serializing a log line")?;
    json.push(b'\n');
    file.write_all(&json).context("writing the container's log")
}

/// `logs [-f] NAME`.
pub fn logs(what: &str, follow: bool) -> Result<i32> {
    let found = state::find(what)?;
    let path = state::log_path(&found.id)?;
    if !found.detached {
        anyhow::bail!(
            "{what} ran in the foreground: its output went to the terminal, not to a log \
             (run it with -d to keep one)"
        );
    }
    let mut file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut pending = Vec::new();
    show(&mut file, &mut pending)?;
    if !follow {
        return Ok(0);
    }
    let supervisor = match found.supervisor {
        Some(s) => PidFd::open(&s)?,
        None => None,
    };
    let Some(supervisor) = supervisor else {
        return Ok(0); // nothing will be written any more
    };
    let inotify =
        Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).context("inotify_init1")?;
    inotify
        .add_watch(&path, AddWatchFlags::IN_MODIFY)
        .with_context(|| format!("inotify_add_watch({})", path.display()))?;
    // Anything written between the first read and the watch.
    show(&mut file, &mut pending)?;
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(supervisor.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            other => other.context("poll")?,
        };
        let gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        let _ = inotify.read_events();
        show(&mut file, &mut pending)?;
        if gone {
            // The supervisor waited for the logger: the log is whole.
            return Ok(0);
        }
    }
}

/// Shows the lines of `file` from where it stands; keeps an incomplete one pending.
fn show(file: &mut File, pending: &mut Vec<u8>) -> Result<()> {
    let mut more = Vec::new();
    file.read_to_end(&mut more).context("reading the log")?;
    pending.extend_from_slice(&more);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let Ok(entry) = serde_json::from_slice::<Entry>(&line) else {
            continue; // not ours: skipped rather than shown as JSON
        };
        let out: &mut dyn Write = if entry.stream == "stderr" {
            &mut stderr
        } else {
            &mut stdout
        };
        // A reader that went away (`| head`) ends the copy, as with docker.
        if out
            .write_all(entry.log.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

//! Running other programs: loudly (output goes to the terminal), streaming (we also
//! read stdout line by line), reading (stdout line by line, stderr kept, nothing shown)
//! or quietly (output kept for when something fails).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{Context, Result, bail};

/// The command line as a person would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|arg| arg.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `cmd` with the terminal as its stdio, and fails if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd`, printing its stdout as it comes and handing each line to `on_line`;
/// stderr goes straight to the terminal.
pub fn stream(cmd: &mut Command, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut reader = BufReader::new(stdout);
    let mut bytes = Vec::new();
    while reader.read_until(b'\n', &mut bytes)? > 0 {
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim_end_matches(['\n', '\r']);
        println!("{line}");
        on_line(line);
        bytes.clear();
    }
    Ok(child.wait()?)
}

/// Runs `cmd` without showing anything, handing each line of its stdout to `on_line`
/// as it comes (e.g. to show progress) and keeping its stderr, which is returned.
pub fn read_lines(
    cmd: &mut Command,
    mut on_line: impl FnMut(&str),
) -> Result<(ExitStatus, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Drained on its own thread: a full stderr pipe would block the child, and with it
    // the stdout we are reading.
    let errors = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut bytes = Vec::new();
    while reader.read_until(b'\n', &mut bytes)? > 0 {
        let line = String::from_utf8_lossy(&bytes);
        on_line(line.trim_end_matches(['\n', '\r']));
        bytes.clear();
    }
    let status = child.wait()?;
    let stderr = errors.join().unwrap_or_default();
    Ok((status, stderr))
}

/// Runs `cmd` without showing anything, keeping its output.
pub fn quiet(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{}`", describe(cmd)))
}

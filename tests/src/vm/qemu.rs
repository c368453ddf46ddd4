//! Booting the guest in qemu, with a deadline, and reading its report.
//!
//! The guest has two serial ports, both written to files: `ttyS0` is the console
//! (the kernel's messages, `/init`'s errors), `ttyS1` carries the report `/init`
//! writes in raw mode (`status N`, `stdout LEN` + bytes, `stderr LEN` + bytes, `end`).
//! Files rather than pipes: qemu never blocks on a reader, and nothing is lost when
//! it is killed.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::kernel::Kernel;

/// What `/init` prints on the console just before it starts the script.
const SCRIPT_STARTS: &str = "keel-vm: running the script";

/// The qemu binary of Debian's `qemu-system-x86`.
pub const QEMU: &str = "qemu-system-x86_64";

/// A guest that ran to its end.
pub struct Boot {
    /// The script's exit status, stdout and stderr, if the guest wrote its report.
    pub report: Result<Report, String>,
    /// The console: the kernel's messages and `/init`'s.
    pub console: String,
    /// From qemu's start until the console said the script starts, if it did.
    pub boot: Option<Duration>,
    /// From qemu's start until its exit.
    pub total: Duration,
}

/// What `/init` reported about the script.
pub struct Report {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Boots `kernel` with `initramfs` and waits for the guest to power off, or kills qemu
/// at `deadline`. `dir` receives the serial ports' files.
pub fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    dir: &Path,
    deadline: Duration,
) -> Result<Boot, String> {
    let console = dir.join("console");
    let report = dir.join("report");
    let qemu_stderr = dir.join("qemu-stderr");
    let mut command = Command::new(QEMU);
    command
        // Emulated: KVM is not available on the machines this runs on.
        .args(["-accel", "tcg", "-m", "1024", "-smp", "2"])
        // No default devices (VGA, floppy, network card...): less to emulate and probe.
        .args(["-nodefaults", "-nic", "none", "-no-reboot"])
        .args(["-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", report.display()))
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initramfs)
        // panic=-1: a guest that fails reboots at once, which -no-reboot makes an exit.
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&qemu_stderr)
                .map_err(|err| format!("{}: {err}", qemu_stderr.display()))?,
        );
    // SAFETY: prctl is an async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            // qemu must not outlive a test process that is killed (a harness's timeout).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut qemu = command
        .spawn()
        .map_err(|err| format!("cannot run {QEMU}: {err}"))?;

    let mut boot = None;
    let status = loop {
        if let Some(status) = qemu
            .try_wait()
            .map_err(|err| format!("waiting for qemu: {err}"))?
        {
            break status;
        }
        if boot.is_none() && read_lossy(&console).contains(SCRIPT_STARTS) {
            boot = Some(started.elapsed());
        }
        if started.elapsed() > deadline {
            // Child::kill sends SIGKILL to qemu's own PID.
            let _ = qemu.kill();
            let _ = qemu.wait();
            return Err(format!(
                "the VM did not power off within {deadline:?}: qemu killed\n{}",
                tail(&read_lossy(&console), 40)
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let total = started.elapsed();
    let console = read_lossy(&console);
    let report = match std::fs::read(&report) {
        Ok(bytes) => parse(&bytes),
        Err(err) => Err(format!("no report: {err}")),
    }
    .map_err(|err| {
        format!(
            "{err} (qemu exited: {status}; its stderr: {})",
            read_lossy(&qemu_stderr).trim()
        )
    });
    Ok(Boot {
        report,
        console,
        boot,
        total,
    })
}

/// Parses `/init`'s report.
fn parse(bytes: &[u8]) -> Result<Report, String> {
    let mut rest = bytes;
    let status = field(&mut rest, "status")?;
    let status = i32::try_from(status).map_err(|_| format!("bad status {status}"))?;
    let stdout = section(&mut rest, "stdout")?;
    let stderr = section(&mut rest, "stderr")?;
    if rest != b"end\n" {
        return Err("the report does not end with `end`: cut short?".into());
    }
    Ok(Report {
        status,
        stdout,
        stderr,
    })
}

/// Reads a line `NAME NUMBER\n` off the front of `rest`.
fn field(rest: &mut &[u8], name: &str) -> Result<u64, String> {
    let newline = rest
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| format!("the report has no `{name}` line"))?;
    let line = String::from_utf8_lossy(&rest[..newline]).into_owned();
    *rest = &rest[newline + 1..];
    line.strip_prefix(name)
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| format!("the report has `{line}` where `{name} N` belongs"))
}

/// Reads `NAME LENGTH\n` and then LENGTH bytes off the front of `rest`.
fn section(rest: &mut &[u8], name: &str) -> Result<Vec<u8>, String> {
    let length = field(rest, name)?;
    let length = usize::try_from(length).map_err(|_| format!("{name}: bad length"))?;
    if rest.len() < length {
        return Err(format!("the report's {name} is cut short"));
    }
    let (bytes, after) = rest.split_at(length);
    *rest = after;
    Ok(bytes.to_vec())
}

/// A file's text (the console has `\r\n` line ends); empty if unreadable.
fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\r', ""))
        .unwrap_or_default()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "--- console (last {} lines) ---\n{}",
        all.len() - start,
        all[start..].join("\n")
    )
}

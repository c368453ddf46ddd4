//! `keel-subreaper PROGRAM ARGS...`: runs PROGRAM as a child subreaper, and says what
//! it left behind.
//!
//! A process that exits before its children leaves them to the nearest ancestor that
//! is a "child subreaper" (`PR_SET_CHILD_SUBREAPER`), or to init, which reaps them
//! soon after: from outside, a runtime that does not wait for its child looks the same
//! as one that does, a moment later. As PROGRAM's subreaper, this helper receives
//! every such orphan *before* it can wait for PROGRAM itself (the kernel re-parents
//! the children of an exiting process first). So once PROGRAM is reaped, any other
//! child of this helper, alive or a zombie, is one that PROGRAM left behind.
//!
//! The last line on stderr is `keel-subreaper: ` and a JSON list of those orphans
//! (`pid`, `state`, `cmdline`); they are killed and reaped. The exit code is
//! PROGRAM's (128 + N if signal N killed it). It is a process of its own so that the
//! graders' test process never becomes anyone's subreaper.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

use keel_graders::running::children_of;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde_json::{Value, json};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: keel-subreaper PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("keel-subreaper: prctl(PR_SET_CHILD_SUBREAPER): {err}");
        return ExitCode::from(2);
    }
    let status = match Command::new(program).args(rest).status() {
        Ok(status) => status,
        Err(err) => {
            eprintln!("keel-subreaper: cannot run {}: {err}", program.display());
            return ExitCode::from(2);
        }
    };
    let orphans: Vec<Value> = children_of(Pid::this())
        .into_iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?")
                .to_owned();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let _ = kill(pid, Signal::SIGKILL);
            json!({ "pid": pid.as_raw(), "state": state, "cmdline": cmdline.trim_end() })
        })
        .collect();
    // Reap them all (and anything they left in turn): ECHILD once none is left.
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
    eprintln!("keel-subreaper: {}", Value::from(orphans));
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(2);
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

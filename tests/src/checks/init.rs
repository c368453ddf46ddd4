//! `--init`: PID 1 is keel's small init. It reaps orphans, passes signals on, and the
//! container cannot outlive the runtime even if the command clears its own
//! parent-death signal.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::leaks::Marker;
use crate::probe::{CallReport, OrphanReport};
use crate::running::wait_for_exit;
use crate::runtime::Runtime;

/// `--init`: the command is PID 2, PID 1 is `keel-init`.
pub fn pid_1_is_keels_init(runtime: &Runtime) {
    let out = runtime
        .run()
        .arg("--init")
        .sh("echo $$; cat /proc/1/comm")
        .output();
    out.expect_success();
    assert_eq!(out.lines(), ["2", "keel-init"], "{out}");
}

/// `--init`: an orphan (re-parented to PID 1) is reaped once it exits.
pub fn orphans_are_reaped(runtime: &Runtime) {
    let report: OrphanReport = runtime
        .run()
        .arg("--init")
        .probe(["orphan"])
        .output()
        .json();
    assert_eq!(report.adopted_by.as_deref(), Some("1"), "{report:?}");
    assert!(
        report.reaped,
        "the orphan stayed a zombie ({:?}): PID 1 must reap what it adopts",
        report.state
    );
}

/// `--init`: signals sent to the runtime reach the command, even one that installs no
/// handler (as PID 1 it would ignore SIGTERM).
pub fn a_signal_reaches_a_command_without_handlers(runtime: &Runtime) {
    let marker = Marker::new();
    let script = format!("echo ready; exec {}", marker.sleep());
    let running = runtime.run().arg("--init").sh(&script).spawn_ready();
    running.signal(Signal::SIGTERM);
    running.wait().expect_code(128 + Signal::SIGTERM as i32);
    marker.assert_none_left();
}

/// `--init`: the exit code of the command is the runtime's, and a command that cannot
/// be found is 127 with a message, as without `--init`.
pub fn exit_codes_pass_through(runtime: &Runtime) {
    runtime
        .run()
        .arg("--init")
        .sh("exit 7")
        .output()
        .expect_code(7);
    let out = runtime
        .run()
        .arg("--init")
        .cmd(["no-such-command"])
        .output();
    out.expect_code(127);
    assert!(out.stderr.contains("no-such-command"), "{out}");
}

/// `--init`: a command that clears its parent-death signal still dies when the
/// runtime is killed with SIGKILL: the init keeps its own, and takes the namespace with
/// it.
pub fn container_dies_with_a_killed_runtime(runtime: &Runtime) {
    let marker = Marker::new();
    let mut running = runtime
        .run()
        .arg("--init")
        .probe(["clear-pdeathsig", marker.token()])
        .spawn();
    assert_eq!(running.read_line(), r#"{"cleared":true}"#);
    // The runtime and the init carry the marker on their command lines too.
    let command: Vec<i32> = marker
        .processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "keel-probe")
        })
        .collect();
    assert_eq!(
        command.len(),
        1,
        "the probe should be running once: {command:?}"
    );
    running.signal(Signal::SIGKILL);
    let gone = wait_for_exit(Pid::from_raw(command[0]), Duration::from_secs(10));
    let _ = running.wait();
    marker.assert_none_left();
    assert!(
        gone,
        "the command outlived the runtime after clearing its parent-death signal"
    );
}

/// `--init` in a user namespace: the command runs as the same host uid as the init, so
/// it could ptrace it (and clear its death signal, or take its fds) if the init were
/// dumpable. It is not: the attach fails with EPERM, since the init's memory belongs
/// to the host's user namespace, where the container has no CAP_SYS_PTRACE.
pub fn the_command_cannot_ptrace_the_init(runtime: &Runtime) {
    let out = runtime.run().arg("--init").probe(["ptrace-init"]).output();
    out.expect_success();
    let report: CallReport = out.json();
    assert!(
        !report.ok && report.errno == Some(libc::EPERM),
        "the command took hold of keel's init: {report:?}\n{out}"
    );
}

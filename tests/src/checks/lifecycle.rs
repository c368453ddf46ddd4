//! The container's life: signals reach it, its processes die with it, and nothing the
//! runtime had open gets in.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::leaks::Marker;
use crate::probe::ProbeReport;
use crate::running::wait_for_exit;
use crate::runtime::{Invocation, Output, Runtime};
use crate::workspace;

/// A signal sent to the runtime reaches the container: the container's shell traps it
/// and exits with 42, which becomes the runtime's exit code.
///
/// The shell announces `ready` only once its trap is set, and then waits on stdin
/// (kept open), so the signal cannot arrive too early or after the end.
pub fn signal_is_forwarded(runtime: &Runtime, signal: Signal) {
    let name = signal.as_str().trim_start_matches("SIG");
    let script = format!("trap 'exit 42' {name}; echo ready; read line");
    let running = runtime.run().sh(&script).spawn_ready();
    running.signal(signal);
    let out = running.wait();
    assert_eq!(
        out.code, 42,
        "the container did not run its {name} trap: the runtime should forward {name} to it\n{out}"
    );
}

/// SIGUSR1 and SIGUSR2, which kill a process that neither blocks nor handles them, are
/// forwarded too: a runtime they killed would skip its cleanup (a run directory, a
/// lease, a veth left behind) and leave the container without its supervisor.
pub fn user_signals_are_forwarded(runtime: &Runtime) {
    signal_is_forwarded(runtime, Signal::SIGUSR1);
    signal_is_forwarded(runtime, Signal::SIGUSR2);
}

/// When the container's PID 1 is killed by signal N, the runtime exits with 128 + N.
pub fn killed_container_exits_128_plus_n(runtime: &Runtime) {
    let running = runtime.run().sh("echo ready; read line").spawn_ready();
    // PID 1 of a namespace ignores signals it has no handler for, except SIGKILL from
    // an ancestor namespace: the host.
    let container = running.container_pid();
    nix::sys::signal::kill(container, Signal::SIGKILL).expect("kill the container's PID 1");
    running.wait().expect_code(128 + Signal::SIGKILL as i32);
}

/// A process the container started in the background is gone once the runtime has
/// exited: when PID 1 of a namespace exits, the kernel kills every other process in it.
///
/// While the container runs, the marked processes are counted first (the shell and its
/// background `sleep`), so that the final "none left" cannot pass vacuously.
pub fn background_processes_die_with_the_container(runtime: &Runtime) {
    let marker = Marker::new();
    let script = format!(
        "{} >/dev/null 2>&1 & echo started; read line; exit 0",
        marker.sleep()
    );
    let mut running = runtime.run().sh(&script).spawn();
    assert_eq!(running.read_line(), "started");
    let alive = marker.processes();
    assert!(
        alive.len() >= 2,
        "expected the container's shell and its background sleep to be running, found \
         host PIDs {alive:?}"
    );
    running.close_stdin();
    running.wait().expect_success();
    marker.assert_none_left();
}

/// A file the runtime inherited on fd 5 is not open in the container: no fd above 2.
/// (runc's CVE-2024-21626 leaked a host directory fd, and with it the host's root.)
pub fn inherited_fds_are_closed(runtime: &Runtime) {
    let mut secret = tempfile::Builder::new()
        .prefix("keel-inherited-")
        .tempfile_in(workspace::graders_dir())
        .expect("temporary file");
    writeln!(secret, "a file of the host").expect("write the temporary file");
    let name = secret
        .path()
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let file = secret.reopen().expect("reopen the temporary file");

    let report: ProbeReport = runtime
        .run()
        .inherit_fd(5, file)
        .probe([] as [&str; 0])
        .output()
        .json();
    let leaked: Vec<_> = report
        .fds
        .iter()
        .filter(|fd| fd.fd > 2 || fd.target.contains(&name))
        .collect();
    assert!(
        leaked.is_empty(),
        "fds above stderr reached the container: {leaked:?} (close or mark close-on-exec \
         every inherited fd before execve)"
    );
}

/// When the runtime itself is killed (SIGKILL: it can run no cleanup), its container
/// dies with it: the runtime arms the parent-death signal (`PR_SET_PDEATHSIG`) in the
/// child, and the kernel kills the container when the runtime goes.
///
/// The kernel *clears* that setting whenever the child's effective uid or gid changes
/// (prctl(2)), as when it becomes container root with `setresuid` under a map where
/// container root is not the caller's own id: the runtime must arm it again after.
pub fn container_dies_when_the_runtime_is_killed(runtime: &Runtime, options: &[String]) {
    let marker = Marker::new();
    let script = format!("echo ready; exec {}", marker.sleep());
    let running = runtime.run().args(options).sh(&script).spawn_ready();
    let container = running.container_pid();
    running.signal(Signal::SIGKILL);
    // The kernel sends the parent-death signal as the runtime exits: at once.
    let died = wait_for_exit(container, Duration::from_secs(3));
    let survivors = marker.processes();
    for pid in &survivors {
        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    assert!(
        died && survivors.is_empty(),
        "the container (host PID {container}) outlived its runtime, killed by SIGKILL \
         (still alive: {survivors:?}): arm PR_SET_PDEATHSIG in the child, and arm it again \
         after any change of its uid or gid (setresuid/setresgid clear it)"
    );
    running.wait().expect_code(128 + Signal::SIGKILL as i32);
}

/// The orphans that `keel-subreaper` (see `tests/bin/subreaper.rs`) reports on the
/// last line of stderr; panics if it reported nothing.
pub fn orphans(out: &Output) -> Vec<serde_json::Value> {
    let line = out
        .stderr
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("keel-subreaper: "))
        .unwrap_or_else(|| panic!("keel-subreaper did not report\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|err| panic!("keel-subreaper's report: {err}\n{out}"))
}

/// A run refused after `clone` (exit `code`: the child's setup failed, or a parent
/// phase did) leaves no child of the runtime, alive or a zombie: the runtime kills and
/// reaps it before it exits. Run under `subreaper` (the `keel-subreaper` binary), to
/// which the kernel hands whatever the runtime left; a child left to init would be
/// gone a moment later, and nothing else would show it.
pub fn refused_run_leaves_no_child(
    runtime: &Runtime,
    subreaper: &Path,
    invocation: impl FnOnce(&Runtime) -> Invocation,
    code: i32,
) {
    let wrapped = runtime.clone().wrapped_in(subreaper, [] as [&str; 0]);
    let out = invocation(&wrapped).output();
    out.expect_code(code);
    let left = orphans(&out);
    assert!(
        left.is_empty(),
        "the runtime exited while a child of its own still existed: {}. After a \
         failure, kill the child and reap it (waitpid) before exiting: a child left \
         waiting, or a zombie, outlives the runtime\n{out}",
        serde_json::Value::from(left.clone())
    );
}

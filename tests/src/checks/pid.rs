//! The PID namespace, seen from inside: the container's first process is PID 1, and
//! it sees only its own processes.

use crate::mountinfo;
use crate::probe::{self, host_namespaces};
use crate::runtime::Runtime;

/// `sh -c 'echo $$'` prints 1: the shell is the first process of a new PID namespace.
pub fn echo_dollar_dollar_prints_1(runtime: &Runtime) {
    let out = runtime.run().sh("echo $$").output();
    out.expect_success();
    assert_eq!(
        out.stdout.trim(),
        "1",
        "the container's shell should be PID 1 (is CLONE_NEWPID among the clone flags?)\n{out}"
    );
}

/// The probe is PID 1, and its parent is outside its namespace (shown as 0).
pub fn probe_is_pid_1(runtime: &Runtime) {
    let report = probe::report(runtime);
    assert_eq!(report.pid, 1, "the probe should be PID 1 in its namespace");
    assert_eq!(
        report.ppid, 0,
        "PID 1's parent is in the parent namespace, where the child cannot see it: getppid() is 0"
    );
}

/// The probe's PID namespace is not the host's (compared by inode number).
pub fn pid_namespace_differs_from_the_hosts(runtime: &Runtime) {
    let report = probe::report(runtime);
    assert_ne!(
        report.namespace("pid"),
        host_namespaces()["pid"],
        "the container is in the host's PID namespace: is CLONE_NEWPID among the clone flags?"
    );
}

/// `ps` (given as `ps_command`, whose output's numbers are PIDs) lists one process:
/// itself, PID 1.
pub fn ps_lists_only_the_containers_processes(runtime: &Runtime, ps_command: &[&str]) {
    let out = runtime.run().cmd(ps_command).output();
    out.expect_success();
    let pids: Vec<&str> = numbers(&out.stdout);
    assert_eq!(
        pids,
        ["1"],
        "ps should see only itself, as PID 1: the host's processes must be invisible\n{out}"
    );
}

/// `ls /proc` shows one process directory, `1`: /proc was mounted anew, inside.
pub fn proc_lists_only_the_containers_pids(runtime: &Runtime) {
    let out = runtime.run().cmd(["ls", "/proc"]).output();
    out.expect_success();
    let pids = numbers(&out.stdout);
    assert_eq!(
        pids,
        ["1"],
        "/proc shows processes of another PID namespace: /proc must be mounted anew \
         inside the container (a proc mount shows the PID namespace it was mounted in)\n{out}"
    );
}

/// `/proc/self/status` says `Pid: 1` and `NSpid: 1`: seen through the container's own
/// /proc, the process has one PID, 1. Through the host's /proc it would say
/// `NSpid: <host pid> 1`.
pub fn proc_self_status_says_pid_1(runtime: &Runtime) {
    let out = runtime.run().cmd(["cat", "/proc/self/status"]).output();
    out.expect_success();
    let field = |name: &str| {
        out.stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        field("Pid:"),
        ["1"],
        "/proc/self/status should say Pid: 1\n{out}"
    );
    assert_eq!(
        field("NSpid:"),
        ["1"],
        "NSpid lists the PID in every namespace that the /proc mount can see: more than one \
         means this /proc belongs to the host's PID namespace\n{out}"
    );
}

/// The container's `/proc` is a proc of its own, mounted `nosuid,nodev,noexec` (as
/// its mountinfo line says): nothing under /proc is a program, a device or setuid.
pub fn proc_is_mounted_nosuid_nodev_noexec(runtime: &Runtime) {
    let mounts = probe::report(runtime).mounts();
    let proc = mountinfo::find(&mounts, "/proc").expect("the container has a /proc mount");
    assert_eq!(proc.fs_type, "proc", "/proc: {}", proc.key());
    let options: Vec<&str> = proc.options.split(',').collect();
    let missing: Vec<&str> = ["nosuid", "nodev", "noexec"]
        .into_iter()
        .filter(|flag| !options.contains(flag))
        .collect();
    assert!(
        missing.is_empty(),
        "/proc is mounted without {missing:?}: mount it with MS_NOSUID|MS_NODEV|MS_NOEXEC\n{}",
        proc.key()
    );
}

/// The words of `text` that are numbers (PIDs in `ps` or `ls /proc` output).
fn numbers(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|word| word.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

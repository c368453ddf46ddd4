//! The command line every stage shares: exit codes, environment, working directory,
//! hostname, `--explain`, `doctor`, and what happens without root.

use std::collections::BTreeMap;

use nix::unistd::Pid;

use crate::leaks::Marker;
use crate::probe::{self, host_namespaces};
use crate::runtime::{Invocation, Output, Runtime};

/// The runtime failed (docker's convention).
pub const RUNTIME_FAILED: i32 = 125;
/// The command exists but cannot be executed.
pub const CANNOT_EXECUTE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// The hostname a container gets when `--hostname` is not given.
pub const DEFAULT_HOSTNAME: &str = "keel";

/// The runtime exits with the command's own exit code.
pub fn exit_code_is_the_commands(runtime: &Runtime) {
    runtime.run().sh("exit 7").output().expect_code(7);
    runtime.run().cmd(["true"]).output().expect_code(0);
}

/// A path that does not exist: 127, with a message on stderr.
pub fn missing_program_exits_127(runtime: &Runtime) {
    let out = runtime.run().cmd(["/nonexistent"]).output();
    out.expect_code(NOT_FOUND);
    assert!(
        out.stderr.contains("/nonexistent"),
        "stderr should name what was not found\n{out}"
    );
}

/// A name that is nowhere in the container's `PATH`: 127.
pub fn unknown_command_exits_127(runtime: &Runtime) {
    let out = runtime.run().cmd(["keel-no-such-command"]).output();
    out.expect_code(NOT_FOUND);
    assert!(
        out.stderr.contains("keel-no-such-command"),
        "stderr should name what was not found\n{out}"
    );
}

/// A file that is not executable (`/etc/passwd`): 126.
pub fn non_executable_file_exits_126(runtime: &Runtime) {
    let out = runtime.run().cmd(["/etc/passwd"]).output();
    out.expect_code(CANNOT_EXECUTE);
}

/// What the runtime reads on stdin, the command reads.
pub fn stdin_reaches_the_command(runtime: &Runtime) {
    let out = runtime.run().stdin("hello\nworld\n").cmd(["cat"]).output();
    out.expect_success();
    assert_eq!(out.lines(), ["hello", "world"], "\n{out}");
}

/// An option the runtime does not know is the runtime's failure: 125.
pub fn unknown_option_exits_125(runtime: &Runtime) {
    let out = runtime.run().arg("--no-such-option").cmd(["true"]).output();
    out.expect_code(RUNTIME_FAILED);
}

/// With no `--hostname`, the container is called `keel`; `$HOSTNAME` says so too; and
/// the runtime's own UTS namespace keeps its name.
pub fn default_hostname_is_keel(runtime: &Runtime) {
    let invocation = runtime.run().sh(&waiting("uname -n; echo \"$HOSTNAME\""));
    expect_hostname_inside_only(
        invocation,
        &[DEFAULT_HOSTNAME, DEFAULT_HOSTNAME],
        "uname -n and $HOSTNAME should both be the default hostname",
    );
}

/// `--hostname NAME` names the container, and only the container: the host keeps its own.
pub fn hostname_option_sets_the_hostname(runtime: &Runtime) {
    let invocation = runtime
        .run()
        .args(["--hostname", "graded-box"])
        .sh(&waiting("uname -n"));
    expect_hostname_inside_only(invocation, &["graded-box"], "uname -n inside");
}

/// Container root may rename the container with `hostname`; the host keeps its name.
pub fn hostname_command_renames_the_container_only(runtime: &Runtime) {
    let invocation = runtime
        .run()
        .sh(&waiting("hostname renamed-inside && uname -n"));
    expect_hostname_inside_only(
        invocation,
        &["renamed-inside"],
        "container root may rename its own UTS namespace",
    );
}

/// The hostname of the UTS namespace the graders start a runtime in: whatever the
/// runtime renames outside a namespace of its own becomes visible, and the machine's
/// hostname is never touched.
const GUARD_HOSTNAME: &str = "keel-graders-uts";

/// `script`, then a wait for stdin's end: the runtime stays alive while the test looks
/// at its UTS namespace.
fn waiting(script: &str) -> String {
    format!("{script}; read -r line || true")
}

/// Runs `invocation` (a [`waiting`] script that prints `expected`, one per line) in a
/// UTS namespace of the graders' own, and checks what it printed (`why` says why) and
/// that neither that namespace, where the runtime runs, nor the machine was renamed.
fn expect_hostname_inside_only(invocation: Invocation, expected: &[&str], why: &str) {
    let before = host_hostname();
    let mut running = invocation.in_own_uts_namespace(GUARD_HOSTNAME).spawn();
    let printed: Vec<String> = expected.iter().map(|_| running.read_line()).collect();
    let runtimes = hostname_of(running.pid());
    running.close_stdin();
    let out = running.wait();
    out.expect_success();
    assert_eq!(printed, expected, "{why}\n{out}");
    assert_eq!(
        runtimes, GUARD_HOSTNAME,
        "the hostname of the UTS namespace the runtime runs in changed: sethostname must \
         happen in the container's own UTS namespace (CLONE_NEWUTS), or it renames the \
         host\n{out}"
    );
    assert_eq!(
        host_hostname(),
        before,
        "the host's hostname changed: sethostname must happen in the container's own UTS \
         namespace"
    );
}

/// The hostname of the UTS namespace of process `pid`, read by a thread that joins
/// that namespace (a thread's namespaces are its own; the test's stay as they are).
pub fn hostname_of(pid: Pid) -> String {
    let namespace = std::fs::File::open(format!("/proc/{pid}/ns/uts"))
        .unwrap_or_else(|err| panic!("open /proc/{pid}/ns/uts: {err}"));
    std::thread::spawn(move || {
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWUTS)
            .unwrap_or_else(|err| panic!("setns(/proc/{pid}/ns/uts): {err}"));
        let name = nix::unistd::gethostname().expect("gethostname");
        name.to_string_lossy().into_owned()
    })
    .join()
    .expect("the thread that reads the hostname")
}

/// The UTS and IPC namespaces are the container's own.
pub fn uts_and_ipc_namespaces_differ_from_the_hosts(runtime: &Runtime) {
    let report = probe::report(runtime);
    let host = host_namespaces();
    for (name, flag) in [("uts", "CLONE_NEWUTS"), ("ipc", "CLONE_NEWIPC")] {
        assert_ne!(
            report.namespace(name),
            host[name],
            "the container shares the host's {name} namespace: is {flag} among the clone flags?"
        );
    }
}

/// The container's environment is clean: PATH, HOME=/root, HOSTNAME (and TERM if the
/// host has one), nothing else of the host's.
pub fn environment_is_clean(runtime: &Runtime) {
    let out = runtime
        .run()
        .env("KEEL_HOST_ONLY", "must-not-leak")
        .env("TERM", "keel-term")
        .cmd(["env"])
        .output();
    out.expect_success();
    let env = parse_env(&out);
    let unexpected: Vec<&String> = env
        .keys()
        .filter(|key| !["PATH", "HOME", "HOSTNAME", "TERM"].contains(&key.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the host's variables leaked into the container: {unexpected:?}\n{out}"
    );
    assert!(env.contains_key("PATH"), "PATH must be set\n{out}");
    assert_eq!(
        env.get("HOME").map(String::as_str),
        Some("/root"),
        "HOME\n{out}"
    );
    assert_eq!(
        env.get("HOSTNAME").map(String::as_str),
        Some(DEFAULT_HOSTNAME),
        "HOSTNAME\n{out}"
    );
    assert_eq!(
        env.get("TERM").map(String::as_str),
        Some("keel-term"),
        "the host's TERM should be passed on, so that programs can drive the terminal\n{out}"
    );
}

/// `-e KEY=VAL` sets variables in the container (an empty value too).
pub fn env_option_sets_variables(runtime: &Runtime) {
    let out = runtime
        .run()
        .args(["-e", "GREETING=hello world", "-e", "EMPTY="])
        .cmd(["env"])
        .output();
    out.expect_success();
    let env = parse_env(&out);
    assert_eq!(
        env.get("GREETING").map(String::as_str),
        Some("hello world"),
        "\n{out}"
    );
    assert_eq!(env.get("EMPTY").map(String::as_str), Some(""), "\n{out}");
}

/// `-w DIR` starts the command in DIR.
pub fn workdir_option_sets_the_directory(runtime: &Runtime) {
    let out = runtime.run().args(["-w", "/etc"]).cmd(["pwd"]).output();
    out.expect_success();
    assert_eq!(out.stdout.trim(), "/etc", "\n{out}");
}

/// `--explain` shows the `clone` call with its flags, `CLONE_NEWPID` among them.
pub fn explain_shows_the_clone_call(runtime: &Runtime) {
    let out = runtime.run().arg("--explain").cmd(["true"]).output();
    out.expect_success();
    assert!(
        out.stderr
            .lines()
            .any(|line| line.contains("clone(") && line.contains("CLONE_NEWPID")),
        "--explain should print the clone call with CLONE_NEWPID\n{out}"
    );
}

/// `doctor` finds everything it needs on this machine (run as root).
pub fn doctor_succeeds_as_root(runtime: &Runtime) {
    runtime.doctor().output().expect_success();
}

/// Without root, the namespaces cannot be created: 125, and the message says what to do
/// (use sudo, or the rootless stage03).
pub fn non_root_exits_125_and_says_why(runtime: &Runtime) {
    let out = runtime.run().as_nobody().cmd(["true"]).output();
    out.expect_code(RUNTIME_FAILED);
    let prefix = format!("{}: ", runtime.name());
    assert!(
        out.stderr.lines().any(|line| line.starts_with(&prefix)),
        "the error should start with {prefix:?}\n{out}"
    );
    for word in ["sudo", "stage03"] {
        assert!(
            out.stderr.contains(word),
            "the error should tell a non-root user about {word:?}\n{out}"
        );
    }
}

/// Checks a failure of the runtime itself: 125, a message that starts with the stage's
/// name and mentions each of `words`.
pub fn expect_runtime_failure(runtime: &Runtime, out: &Output, words: &[&str]) {
    out.expect_code(RUNTIME_FAILED);
    let prefix = format!("{}: ", runtime.name());
    assert!(
        out.stderr.lines().any(|line| line.starts_with(&prefix)),
        "the error should start with {prefix:?}\n{out}"
    );
    for word in words {
        assert!(
            out.stderr.contains(word),
            "the error should name the problem ({word:?})\n{out}"
        );
    }
}

/// A first word that is no command of the container but one letter from a
/// subcommand (`rnu -- true`, `doctr`): the runtime's failure (125), with "did you
/// mean". After `run` or `--` the word is the command, as with docker: 127, no guess.
/// Nothing is left behind (the marker is on the runtime's command line).
pub fn misspelled_subcommand_exits_125_with_a_suggestion(runtime: &Runtime) {
    let marker = Marker::new();
    for (line, meant) in [
        (&["rnu", "--", "true"][..], "run"),
        (&["doctr"][..], "doctor"),
    ] {
        let out = runtime
            .command_line()
            .args(line)
            .arg(marker.token())
            .output();
        expect_runtime_failure(
            runtime,
            &out,
            &[line[0], &format!("did you mean `{meant}`?")],
        );
        marker.assert_none_left();
    }
    for invocation in [
        runtime.command_line().args(["run", "rnu", marker.token()]),
        runtime.command_line().args(["--", "rnu", marker.token()]),
    ] {
        let out = invocation.output();
        out.expect_code(NOT_FOUND);
        assert!(
            !out.stderr.contains("did you mean"),
            "after `run` or `--`, the first word is the command: no guess\n{out}"
        );
        marker.assert_none_left();
    }
}

/// The host's hostname, as the graders' process sees it.
pub fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `env`'s output as a map.
fn parse_env(out: &Output) -> BTreeMap<String, String> {
    out.stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

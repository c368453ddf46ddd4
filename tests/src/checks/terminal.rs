//! A session of the container's own, and a terminal of its own with `-t`.
//!
//! Every grader here runs the stage on a pseudo-terminal of the test's, as a person at
//! a keyboard runs it (see [`crate::terminal`]): the runtime is the foreground job of
//! that terminal, which stands for the caller's.

use nix::sys::signal::Signal;

use crate::probe::{ProbeReport, TiocstiReport};
use crate::runtime::{Output, Runtime};
use crate::terminal::{Size, Terminal};

/// The size of the test's terminal.
const SIZE: Size = Size {
    rows: 30,
    cols: 100,
};

/// `EPERM`.
const EPERM: i32 = 1;

/// The probe's report among the lines a terminal showed (stderr shows there too).
fn probe_json<T: serde::de::DeserializeOwned>(out: &Output) -> T {
    out.expect_success();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(line.trim())
        .unwrap_or_else(|err| panic!("no report of the probe ({err})\n{out}"))
}

/// Without `-t`, the container has no controlling terminal, even when its stdin is the
/// caller's terminal: it runs in a session of its own (`setsid`).
pub fn container_has_no_controlling_terminal(runtime: &Runtime) {
    let mut term = runtime.run().probe([] as [&str; 0]).on_terminal(SIZE);
    term.expect("}");
    let out = term.wait();
    let report: ProbeReport = probe_json(&out);
    assert_eq!(
        report.tty_nr,
        Some(0),
        "the container's PID 1 has a controlling terminal (tty_nr {:?}): it must start a \
         session of its own with setsid(), or TIOCSTI can type into the caller's shell",
        report.tty_nr
    );
    assert_eq!(
        report.session,
        Some(report.pid as i32),
        "the container's PID 1 should lead its own session"
    );
}

/// Without `-t`, `ioctl(0, TIOCSTI)` from the container cannot push keystrokes into
/// the caller's terminal: refused with EPERM, and nothing waits in its input.
/// (A container of root without a user namespace that holds CAP_SYS_ADMIN on the host,
/// as stages 1 and 2's do, passes TIOCSTI's check anyway: this grader is for rootless
/// containers, and for stage 6's, whose root no longer holds it.)
pub fn tiocsti_cannot_type_into_the_callers_terminal(runtime: &Runtime) {
    let mut term = runtime
        .run()
        .probe(["tiocsti", "echo PWNED\\n"])
        .on_terminal(SIZE);
    term.expect("}");
    let pending = term.pending_input();
    let out = term.wait();
    let report: TiocstiReport = probe_json(&out);
    assert!(
        !report.ok && report.pushed == 0 && report.errno == Some(EPERM),
        "TIOCSTI from the container into the caller's terminal should fail with EPERM: \
         {report:?}\n{out}"
    );
    assert!(
        pending.is_empty(),
        "the caller's terminal has input it never typed: {:?}",
        String::from_utf8_lossy(&pending)
    );
}

/// With `-t`, TIOCSTI works (it is the container's own terminal), and still nothing
/// reaches the caller's.
pub fn tiocsti_with_a_terminal_stays_in_the_container(runtime: &Runtime) {
    let mut term = runtime
        .run()
        .arg("-t")
        .probe(["tiocsti", "echo PWNED\\n"])
        .on_terminal(SIZE);
    term.expect("}");
    let pending = term.pending_input();
    let out = term.wait();
    let report: TiocstiReport = probe_json(&out);
    assert!(
        report.ok,
        "TIOCSTI on the container's own terminal should work: {report:?}"
    );
    assert!(
        pending.is_empty(),
        "the caller's terminal has input it never typed: {:?}",
        String::from_utf8_lossy(&pending)
    );
}

/// `-t`: `tty` names a terminal (of the container's own devpts, `/dev/pts/0`, where
/// the stage has one: `pts0`), and `stty size` shows the caller's window size.
pub fn tty_gives_a_terminal_of_the_callers_size(runtime: &Runtime, pts0: bool) {
    let mut term = runtime
        .run()
        .arg("-t")
        .sh("tty; stty size")
        .on_terminal(SIZE);
    term.expect("30 100");
    let out = term.wait();
    out.expect_success();
    let tty = out
        .lines()
        .first()
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    assert!(
        tty.starts_with("/dev/pts/"),
        "`tty` should name a pseudo-terminal\n{out}"
    );
    if pts0 {
        assert_eq!(
            tty, "/dev/pts/0",
            "the terminal should come from the container's own devpts, numbered from 0\n{out}"
        );
    }
}

/// `-t` with stage 2's `/dev`: `/dev/console` is the container's terminal.
pub fn console_is_the_containers_terminal(runtime: &Runtime) {
    let mut term = runtime
        .run()
        .arg("-t")
        .sh("ls /dev; stat -L -c 'dev %t:%T' /dev/console /dev/pts/0")
        .on_terminal(SIZE);
    term.expect("dev ");
    let out = term.wait();
    out.expect_success();
    assert!(
        out.words().contains(&"console"),
        "`ls /dev` shows no console with -t\n{out}"
    );
    let devices: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("dev "))
        .collect();
    assert!(
        devices.len() == 2 && devices[0].trim() == devices[1].trim(),
        "/dev/console should be the container's terminal /dev/pts/0\n{out}"
    );
}

/// `-t -i`: the container's window follows a resize of the caller's.
pub fn window_size_follows_a_resize(runtime: &Runtime) {
    let mut term = runtime
        .run()
        .args(["-t", "-i"])
        .sh("stty size; read line; stty size")
        .on_terminal(SIZE);
    term.expect("30 100");
    term.resize(Size::new(40, 120));
    term.send(b"\r");
    term.expect("40 120");
    term.wait().expect_success();
}

/// `-t -i` on an interactive shell: Ctrl-C interrupts the command it runs, and the
/// shell survives and goes on.
pub fn ctrl_c_interrupts_the_command_not_the_shell(runtime: &Runtime) {
    let mut term = runtime
        .run()
        .args(["-t", "-i"])
        .cmd(["sh"])
        .on_terminal(SIZE);
    // Arithmetic in the commands: the terminal echoes what is typed, so only the
    // result proves that a command ran. The job prints once it runs, and a job of a
    // shell with job control makes itself the terminal's foreground before it runs.
    term.send(b"sh -c 'echo run$((1+1)); exec sleep 1000'\r");
    term.expect("run2");
    term.send(b"\x03");
    term.send(b"echo status $? alive $((40+2))\r");
    term.expect("alive 42");
    term.send(b"exit 3\r");
    let out = term.wait();
    out.expect_code(3);
    assert!(
        out.stdout.contains("status 130"),
        "the interrupted job should end with 130 (killed by SIGINT)\n{out}"
    );
}

/// With no command and a terminal on stdin, `-t -i` is implied: a shell with job
/// control, as `docker run -it` gives.
pub fn no_command_on_a_terminal_gives_a_shell_with_job_control(runtime: &Runtime) {
    let mut term = runtime.run().on_terminal(SIZE);
    term.send(b"echo sum $((2+3)); tty\r");
    term.expect("sum 5");
    term.send(b"exit\r");
    let out = term.wait();
    out.expect_success();
    assert!(
        !out.stdout.contains("job control turned off") && !out.stdout.contains("not a tty"),
        "the shell should have a terminal with job control\n{out}"
    );
}

/// `-t -i`: the caller's terminal goes raw while the container runs, and comes back
/// exactly as it was when the container exits.
pub fn termios_are_restored_on_exit(runtime: &Runtime) {
    let mut term = raw_while_running(runtime, &["-t", "-i"], "read line");
    let before = term.initial_termios().clone();
    term.send(b"\r");
    let (out, after) = term.wait_with_termios();
    out.expect_success();
    assert_eq!(
        after, before,
        "the caller's terminal modes changed after the run\n{out}"
    );
}

/// `-t -i --init`: the runtime killed by `signal` (SIGTERM, SIGINT, SIGHUP) forwards it,
/// the command dies, and the caller's terminal is restored.
pub fn termios_are_restored_after_a_signal(runtime: &Runtime, signal: Signal) {
    let term = raw_while_running(runtime, &["-t", "-i", "--init"], "exec sleep 1000");
    let before = term.initial_termios().clone();
    term.signal(signal);
    let (out, after) = term.wait_with_termios();
    out.expect_code(128 + signal as i32);
    assert_eq!(
        after, before,
        "the caller's terminal modes changed after {signal} to the runtime"
    );
}

/// Starts a container with `options` that says `ready` and then runs `then`, and
/// checks that the caller's terminal is raw once it runs.
fn raw_while_running(runtime: &Runtime, options: &[&str], then: &str) -> Terminal {
    let mut term = runtime
        .run()
        .args(options)
        .sh(&format!("echo re$((0))ady; {then}"))
        .on_terminal(SIZE);
    term.expect("re0ady");
    assert_ne!(
        &term.termios(),
        term.initial_termios(),
        "with -t -i, the caller's terminal should be raw while the container runs"
    );
    term
}

/// `-i` without `-t`: stdin passes through.
pub fn stdin_passes_through_with_i(runtime: &Runtime) {
    let out = runtime.run().arg("-i").cmd(["cat"]).stdin("hi\n").output();
    out.expect_success();
    assert_eq!(out.stdout, "hi\n", "{out}");
}

/// `-t -i` with stdin a pipe: the input reaches the command through the container's
/// terminal, and its end arrives as end-of-file, so the command ends. (`tr` makes the
/// command's output tell apart from the terminal's echo of the input.)
pub fn end_of_input_reaches_the_terminal(runtime: &Runtime) {
    let out = runtime
        .run()
        .args(["-t", "-i"])
        .cmd(["tr", "a-z", "A-Z"])
        .stdin("hi\n")
        .output();
    out.expect_success();
    assert!(out.stdout.contains("HI"), "{out}");
}

//! Root's `--userns auto` and the files of subordinate ids.
//!
//! newuidmap and newgidmap decide which ids a user may map from /etc/subuid and
//! /etc/subgid. A runtime that adds its own range to them must read them as those
//! helpers do (bytes, shadow's number formats), refuse to hand out ids next to a line
//! it cannot read, lock them as shadow's tools do, write them 0644, and add nothing a
//! map could not use. And each `--userns auto` container gets ids of its own: a slice
//! of keel's range, given back when it ends, even when its runtime is killed.
//!
//! The graders of the files run the stage in a private `/etc` (an overlay of the
//! host's, in a mount namespace of its own; see `keel_graders::private_etc`): the
//! host's /etc/subuid is never in those states, and never changed. The graders of the
//! slices run on the host's files, under the graders' lock.

use keel_graders::Running;
use keel_graders::private_etc::PrivateEtc;

use super::*;

/// `keel run --rootfs <busybox> --userns auto -- <command>`, for a script.
fn auto_command(command: &str) -> String {
    let rootfs = users::accessible_busybox().expect("busybox is installed");
    format!(
        "{} run --rootfs {} --userns auto -- {command}",
        binary().display(),
        rootfs.display()
    )
}

/// A private /etc, its users waiting on the graders' lock of the subid files: no other
/// grader hands out slices meanwhile (slices of a private keel range are recorded in
/// the host's /run/keel too).
fn private_etc() -> Result<(PrivateEtc, users::SubidLock), Skip> {
    users::require_root()?;
    users::accessible_busybox()?;
    let etc = PrivateEtc::new()?;
    Ok((etc, users::SubidLock::acquire()))
}

/// Every line of `bytes` that is keel's.
fn keel_lines(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"keel:"))
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect()
}

/// `keel:START:COUNT` as numbers; panics on anything else.
fn keel_numbers(line: &str) -> (u64, u64) {
    let parts: Vec<&str> = line.split(':').collect();
    match parts.as_slice() {
        ["keel", start, count] => (
            start.parse().unwrap_or_else(|_| panic!("{line:?}")),
            count.parse().unwrap_or_else(|_| panic!("{line:?}")),
        ),
        _ => panic!("not a well-formed keel line: {line:?}"),
    }
}

/// The first host id of the one line of a `uid_map` of `--userns auto`.
fn host_start(line: &str) -> u64 {
    match map_lines(Some(line)).as_slice() {
        [[0, host, 65536]] => *host,
        other => panic!("--userns auto maps 0..65535 to a slice of 65536 ids: {other:?}"),
    }
}

#[test]
fn userns_auto_reads_a_non_utf8_line_of_another_user_and_keeps_clear_of_it() {
    let (etc, _lock) = need!(private_etc());
    let _leaks = LeakCheck::start();
    let text: &[u8] = b"keel-graders-a:100000:65536\nkeel-graders-\xff:165536:65536\n";
    let etc = etc.file("subuid", Some(text)).file("subgid", Some(text));
    let out = etc.run(&auto_command("cat /proc/self/uid_map"));
    out.expect_success();
    let start = host_start(out.stdout.trim());
    assert!(
        start >= 231072,
        "container root is host uid {start}, inside the range of the user whose name is \
         not UTF-8 (165536-231071): read the file as bytes, as newuidmap does\n{out}"
    );
    let subuid = etc.saved("subuid").expect("/etc/subuid is still there");
    assert!(
        subuid.starts_with(text),
        "every line must be kept byte for byte: {:?}",
        String::from_utf8_lossy(&subuid)
    );
    let keel = keel_lines(&subuid);
    assert_eq!(keel.len(), 1, "one keel line: {keel:?}");
    let (keel_start, _) = keel_numbers(&keel[0]);
    assert!(
        keel_start >= 231072,
        "keel's range overlaps another: {keel:?}"
    );
}

#[test]
fn userns_auto_reads_numbers_as_newuidmap_does() {
    let (etc, _lock) = need!(private_etc());
    let _leaks = LeakCheck::start();
    // 100000:65536 in hex, then 165536:65536 in octal with leading whitespace:
    // strtoul(..., 0) reads both, and so does newuidmap.
    let text: &[u8] = b"keel-graders-hex:0x186a0:0x10000\nkeel-graders-oct:0503240: 0200000\n";
    let etc = etc.file("subuid", Some(text)).file("subgid", Some(text));
    let out = etc.run(&auto_command("cat /proc/self/uid_map"));
    out.expect_success();
    let start = host_start(out.stdout.trim());
    assert!(
        start >= 231072,
        "container root is host uid {start}, inside ranges written as 0x186a0:0x10000 \
         and 0503240: 0200000 (100000-231071), which newuidmap reads as numbers\n{out}"
    );
}

#[test]
fn userns_auto_refuses_to_hand_out_ids_next_to_a_line_it_cannot_read() {
    let (etc, _lock) = need!(private_etc());
    let _leaks = LeakCheck::start();
    let text: &[u8] = b"keel-graders-a:100000:65536\nkeel-graders-b:1x:65536\n";
    let etc = etc.file("subuid", Some(text)).file("subgid", Some(b""));
    let out = etc.run(&auto_command("true"));
    out.expect_code(cli_checks::RUNTIME_FAILED);
    assert!(
        out.stderr.contains("/etc/subuid line 2") && out.stderr.contains("keel-graders-b:1x"),
        "the error should name the line keel cannot read, and where it is\n{out}"
    );
    assert_eq!(
        etc.saved("subuid").as_deref(),
        Some(text),
        "/etc/subuid changed"
    );
    assert_eq!(
        etc.saved("subgid").as_deref(),
        Some(&b""[..]),
        "/etc/subgid changed"
    );
}

#[test]
fn userns_auto_adds_no_range_past_the_last_id() {
    let (etc, _lock) = need!(private_etc());
    let _leaks = LeakCheck::start();
    // Taken up to 4294950000: a keel range after it would run past 4294967295, and
    // the kernel would refuse every map of it.
    let text: &[u8] = b"keel-graders-all:100000:4294850000\n";
    let etc = etc.file("subuid", Some(text)).file("subgid", Some(text));
    let out = etc.run(&auto_command("true"));
    out.expect_code(cli_checks::RUNTIME_FAILED);
    assert!(
        out.stderr.contains("4294967295"),
        "the error should say that no room is left below the last id\n{out}"
    );
    assert_eq!(
        etc.saved("subuid").as_deref(),
        Some(text),
        "a range no map can use was appended to /etc/subuid: every later run would fail"
    );
    assert_eq!(etc.saved("subgid").as_deref(), Some(text));
}

#[test]
fn a_missing_subgid_is_created_0644_under_umask_000() {
    let (etc, _lock) = need!(private_etc());
    let _leaks = LeakCheck::start();
    let etc = etc
        .file("subuid", Some(b"keel-graders-a:100000:65536\n"))
        .file("subgid", None);
    let out = etc.run(&format!("umask 000; {}", auto_command("true")));
    out.expect_success();
    assert_eq!(
        etc.saved_mode("subgid"),
        Some(0o644),
        "/etc/subgid must be created 0644 whatever the umask: writable by others, any \
         user could give itself host root (user:0:1)\n{out}"
    );
    let subgid = etc.saved("subgid").unwrap_or_default();
    assert_eq!(keel_lines(&subgid).len(), 1, "{subgid:?}");
}

#[test]
fn concurrent_first_runs_add_exactly_one_keel_line() {
    let (etc, _lock) = need!(private_etc());
    let _leaks = LeakCheck::start();
    // A site with many users: each run takes a while to read the files, as it would
    // there, and the runs have time to meet.
    let mut text = b"keel-graders-a:100000:65536\n".to_vec();
    for i in 1..=20000 {
        text.extend_from_slice(format!("keel-graders-fill-{i}:{i}:1\n").as_bytes());
    }
    let text = &text[..];
    let etc = etc.file("subuid", Some(text)).file("subgid", Some(text));
    // Eight runs, held at a barrier until all exist: each reads one newline from a
    // FIFO (opened read-write, so that nobody blocks opening it), and the script
    // writes all eight at once.
    let runs = 8;
    let script = format!(
        "mkfifo \"$OUT/go\" && exec 3<>\"$OUT/go\" || exit 99\n\
         i=0\n\
         while [ $i -lt {runs} ]; do\n\
           ( read _ <&3; {command} 3<&-; echo $? > \"$OUT/code.$i\" ) &\n\
           i=$((i + 1))\n\
         done\n\
         printf '{newlines}' >&3\n\
         wait",
        command = auto_command("true"),
        newlines = "\\n".repeat(runs)
    );
    let out = etc.run(&script);
    out.expect_success();
    for i in 0..runs {
        let code = std::fs::read_to_string(etc.out().join(format!("code.{i}")))
            .unwrap_or_else(|err| panic!("run {i} left no exit code: {err}\n{out}"));
        assert_eq!(code.trim(), "0", "run {i} failed\n{out}");
    }
    for name in ["subuid", "subgid"] {
        let bytes = etc.saved(name).unwrap_or_default();
        let keel = keel_lines(&bytes);
        assert_eq!(
            keel.len(),
            1,
            "/etc/{name} should hold exactly one keel line after {runs} first runs at \
             once (lock the files as shadow's tools do): {keel:?}"
        );
        let (start, count) = keel_numbers(&keel[0]);
        assert!(start >= 165536 && count >= 65536, "{keel:?}");
        assert!(
            bytes.starts_with(text) && bytes.ends_with(b"\n"),
            "the file should be the old lines plus one: {:?}",
            String::from_utf8_lossy(&bytes[text.len().min(bytes.len())..])
        );
        assert_eq!(
            bytes.len(),
            text.len() + keel[0].len() + 1,
            "no other line may be added or damaged: {:?}",
            String::from_utf8_lossy(&bytes[text.len().min(bytes.len())..])
        );
    }
}

/// The stage as root in the busybox rootfs, with `--userns auto`, on the host's files.
/// Skips when the machine already has a keel range of fewer than `slices` slices of
/// 65536 ids (an administrator's choice: containers take turns); a range the stage
/// adds itself must hold them.
fn auto_on_the_host(slices: u64) -> Result<(Runtime, users::KeelRangeGuard), Skip> {
    let stage = root_busybox()?;
    let guard = users::KeelRangeGuard::acquire();
    if guard.had_keel_range() {
        let keel = keel_range(users::SUBUID);
        if u64::from(keel.count) / 65536 < slices {
            return Err(Skip(format!(
                "this machine's keel range in {} ({}:{}) has fewer than {slices} slices \
                 of 65536 ids",
                users::SUBUID,
                keel.start,
                keel.count
            )));
        }
    }
    Ok((stage, guard))
}

/// A container that prints its uid_map line and waits for its stdin to close; returns
/// it and the first host uid of its slice.
fn holding(stage: &Runtime, options: &[&str], script: &str) -> (Running, u64) {
    let mut running = stage
        .run()
        .args(["--userns", "auto"])
        .args(options)
        .sh(&format!(
            "head -n1 /proc/self/uid_map; {script}; echo ready; read line || true"
        ))
        .spawn();
    let start = host_start(&running.read_line());
    assert_eq!(running.read_line(), "ready");
    (running, start)
}

/// The first host uid of a container run to its end.
fn one_run(stage: &Runtime) -> u64 {
    let out = stage
        .run()
        .args(["--userns", "auto"])
        .cmd(["head", "-n1", "/proc/self/uid_map"])
        .output();
    out.expect_success();
    host_start(out.stdout.trim())
}

#[test]
fn two_userns_auto_containers_at_once_cannot_touch_each_others_files() {
    let (stage, _guard) = need!(auto_on_the_host(2));
    let _leaks = LeakCheck::start();
    let dir = users::dir_owned_by(0, 0, 0o777);
    let vol = volume(dir.path(), "/root", "");
    let (first, a) = holding(&stage, &["-v", &vol], "echo mine > /root/a");
    let out = stage
        .run()
        .args(["--userns", "auto", "-v", &vol])
        .sh("head -n1 /proc/self/uid_map; echo theirs >> /root/a && echo wrote || echo refused")
        .output();
    let mut running = first;
    running.close_stdin();
    running.wait().expect_success();
    out.expect_success();
    let b = host_start(out.lines()[0]);
    assert!(
        a.abs_diff(b) >= 65536,
        "two --userns auto containers at once got host ids {a}.. and {b}..: each needs a \
         slice of its own\n{out}"
    );
    assert_eq!(
        out.lines().last().copied(),
        Some("refused"),
        "a container wrote to a file of another one that runs at the same time\n{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a")).unwrap_or_default(),
        "mine\n"
    );
}

#[test]
fn a_slice_is_handed_out_again_once_its_container_ends() {
    let (stage, _guard) = need!(auto_on_the_host(3));
    let _leaks = LeakCheck::start();
    let (first, a) = holding(&stage, &[], "true");
    let b = one_run(&stage);
    let c = one_run(&stage);
    let mut running = first;
    running.close_stdin();
    running.wait().expect_success();
    assert_ne!(
        a, b,
        "the first container still runs: its slice is not free"
    );
    assert_eq!(
        c, b,
        "the second container ended: its slice should be the next one handed out, not a \
         new one (release it in the layer's cleanup)"
    );
}

#[test]
fn the_slice_of_a_runtime_killed_by_sigkill_is_handed_out_again() {
    let (stage, _guard) = need!(auto_on_the_host(3));
    let _leaks = LeakCheck::start();
    let (first, a) = holding(&stage, &[], "true");
    let (killed, b) = holding(&stage, &[], "true");
    let container = killed.container_pid();
    killed.signal(nix::sys::signal::Signal::SIGKILL);
    let out = killed.wait();
    out.expect_code(128 + nix::sys::signal::Signal::SIGKILL as i32);
    assert!(
        keel_graders::running::wait_for_exit(container, std::time::Duration::from_secs(3)),
        "the container outlived its runtime"
    );
    let c = one_run(&stage);
    let mut running = first;
    running.close_stdin();
    running.wait().expect_success();
    assert_ne!(a, b, "two containers at once share a slice");
    assert_eq!(
        c, b,
        "the runtime holding {b}.. was killed, so nothing gave its slice back: the next \
         allocation should find its owner dead (PID and start time) and reuse the slice"
    );
}

//! The pseudo filesystems: `/sys` read-only, `/tmp` a writable one of the container's
//! own, and the files of `/proc` that say too much about the host masked.

use std::path::Path;

use crate::mountinfo;
use crate::probe;
use crate::runtime::Runtime;

/// runc's masked files: a container reads nothing from them.
pub const MASKED_FILES: [&str; 5] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/latency_stats",
    "/proc/sched_debug",
];

/// Each of `files` that exists on the host reads empty in the container.
pub fn masked_files_read_empty(runtime: &Runtime, files: &[&str]) {
    let present: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| Path::new(f).exists())
        .collect();
    // `head -c 1` reads one byte at most: an unmasked /proc/kcore is huge.
    let script = present
        .iter()
        .map(|f| format!("echo {f} $(head -c 1 {f} 2>/dev/null | wc -c)"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = runtime.run().sh(&script).output();
    out.expect_success();
    for file in present {
        assert!(
            out.lines().contains(&format!("{file} 0").as_str()),
            "{file} should read empty (masked by binding /dev/null over it)\n{out}"
        );
    }
}

/// `/sys` is a sysfs, mounted read-only.
pub fn sys_is_read_only(runtime: &Runtime) {
    let mounts = probe::report(runtime).mounts();
    let sys = mountinfo::find(&mounts, "/sys").expect("the container has /sys");
    assert_eq!(sys.fs_type, "sysfs", "/sys: {}", sys.key());
    assert!(sys.is_read_only(), "/sys must be read-only: {}", sys.key());
}

/// The container can write `/tmp/NAME` and read it back.
pub fn tmp_is_writable(runtime: &Runtime, name: &str) {
    let out = runtime
        .run()
        .sh(&format!("echo written > /tmp/{name} && cat /tmp/{name}"))
        .output();
    out.expect_success();
    assert_eq!(out.stdout.trim(), "written", "\n{out}");
}

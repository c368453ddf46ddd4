//! The pseudo filesystems: `/sys` read-only, `/tmp` a writable one of the container's
//! own, and the files of `/proc` that say too much about the host masked.

use std::path::Path;

use crate::mountinfo;
use crate::probe::{self, PathsReport};
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

/// runc's masked paths (`maskedPaths` of `runc spec`), all of them: what a container
/// must not see of the kernel's files.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Every path of [`MASKED_PATHS`] that exists in the container is covered, in the
/// container's own mount table: a file by a bind of `/dev/null` (the same filesystem
/// and root as the container's `/dev/null`), a directory by an empty, read-only tmpfs
/// of its own. Judged from inside, so a path this host lacks tells nothing either way;
/// returns how many paths were judged (the caller skips if none).
pub fn masked_paths_are_covered(runtime: &Runtime) -> usize {
    let report: PathsReport = runtime
        .run()
        .probe(std::iter::once("paths").chain(MASKED_PATHS))
        .output()
        .json();
    let mounts = report.mounts();
    let null = mountinfo::find(&mounts, "/dev/null").expect("the container has /dev/null");
    let present: Vec<_> = report.paths.iter().filter(|p| p.exists).collect();
    let bare: Vec<String> = present
        .iter()
        .filter_map(|seen| {
            let cover = mountinfo::find(&mounts, &seen.path);
            let covered = cover.is_some_and(|m| {
                if seen.dir {
                    m.fs_type == "tmpfs" && m.root == "/" && m.is_read_only()
                } else {
                    m.device == null.device && m.root == null.root
                }
            });
            let empty = !seen.dir || seen.entries == Some(0);
            (!covered || !empty).then(|| {
                let what = cover.map_or("no mount of its own".to_owned(), |m| m.key());
                match seen.entries {
                    Some(n) => format!("{} (a directory of {n} entries): {what}", seen.path),
                    None => format!("{}: {what}", seen.path),
                }
            })
        })
        .collect();
    assert!(
        bare.is_empty(),
        "masked paths that the container can see: cover each file with a bind of \
         /dev/null and each directory with an empty read-only tmpfs\n{}",
        bare.join("\n")
    );
    present.len()
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

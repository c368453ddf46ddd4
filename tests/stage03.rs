//! Graders of stage 3 (`stage03-userns`): stage 2 without root. A user namespace makes
//! an ordinary user root inside the container, and only there.
//!
//! The graders run the stage as real ordinary users that they create (as root, see
//! `keel_graders::users`) and remove afterwards:
//!
//! - `keel-grader`, with a range in `/etc/subuid` and `/etc/subgid`: the stage maps
//!   `0 <uid> 1` and `1 <start> 65536` through newuidmap and newgidmap;
//! - `keel-grader-nosub`, without: the stage writes the one line `0 <uid> 1` itself.
//!
//! Root graders check that root keeps stage 2's behaviour unless it asks for
//! `--userns=auto`. Creating users needs root: as any other user every grader here is
//! skipped.
//!
//! The containers run in a copy of the busybox rootfs that every user can reach (the
//! probe is `/bin/keel-probe` there), or in the default rootfs of the host's programs.
//! Every grader also checks that the host's mount table is unchanged afterwards.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keel_graders::checks::rootfs as rootfs_checks;
use keel_graders::checks::{cli as cli_checks, dev, lifecycle, pid, pseudofs};
use keel_graders::mountinfo;
use keel_graders::probe::{self, CallReport, ProbeReport, ReadReport, host_namespaces};
use keel_graders::rootfs;
use keel_graders::runtime::ProbeAt;
use keel_graders::users::{self, TestUser};
use keel_graders::{LeakCheck, Marker, Output, Runtime, Skip, need};

const NAME: &str = "stage03-userns";

/// `EPERM`: what the kernel answers a capability that only the host's root has.
const EPERM: i32 = 1;

/// `ENOSYS`: what the kernel answers a call it was built without.
const ENOSYS: i32 = 38;

/// The twin binary, copied where the test users can execute it.
fn binary() -> PathBuf {
    users::accessible_copy(Path::new(env!("CARGO_BIN_EXE_keel-stage03")))
}

/// The stage in the rootfs at `rootfs`, with the probe at `/bin/keel-probe`.
fn in_rootfs(rootfs: &Path) -> Runtime {
    Runtime::new(NAME, binary())
        .with_options([Path::new("--rootfs"), rootfs])
        .with_probe_at(ProbeAt::Inside(rootfs::PROBE.into()))
}

/// The stage run by `user` in the shared busybox rootfs (owned by root: read-only to
/// the container, whose root is not the host's).
fn busybox_as(user: &TestUser) -> Result<Runtime, Skip> {
    Ok(in_rootfs(users::accessible_busybox()?).as_user(user.run_as()))
}

/// The stage run by `user` with its default rootfs (the host's programs).
fn host_rootfs_as(user: &TestUser) -> Runtime {
    Runtime::new(NAME, binary()).as_user(user.run_as())
}

/// The user with subordinate ids, and the stage run by it in the busybox rootfs.
fn with_ranges() -> Result<(&'static TestUser, Runtime), Skip> {
    let user = users::with_ranges()?;
    Ok((user, busybox_as(user)?))
}

/// The user without subordinate ids, and the stage run by it in the busybox rootfs.
fn without_ranges() -> Result<(&'static TestUser, Runtime), Skip> {
    let user = users::without_ranges()?;
    Ok((user, busybox_as(user)?))
}

/// The stage run by `user` in a copy of the busybox rootfs that belongs to the user
/// (so that volumes' mount points can be made in it). Keep the directory alive.
fn private_as(user: &TestUser) -> Result<(Runtime, tempfile::TempDir), Skip> {
    let rootfs = users::private_rootfs(user)?;
    Ok((in_rootfs(rootfs.path()).as_user(user.run_as()), rootfs))
}

/// The stage run by root in the busybox rootfs.
fn root_busybox() -> Result<Runtime, Skip> {
    users::require_root()?;
    Ok(in_rootfs(users::accessible_busybox()?))
}

/// The probe's report, with runtime options.
fn probe_report_with<S: AsRef<OsStr>>(stage: &Runtime, options: &[S]) -> ProbeReport {
    stage
        .run()
        .args(options)
        .probe([] as [&str; 0])
        .output()
        .json()
}

/// What the probe's privileged `call` (`setgroups`, `init-module`, ...) got.
fn probe_call(stage: &Runtime, options: &[String], call: &[&str]) -> CallReport {
    stage.run().args(options).probe(call).output().json()
}

/// The lines of a `uid_map` or `gid_map` as numbers.
fn map_lines(text: Option<&str>) -> Vec<[u64; 3]> {
    text.unwrap_or_default()
        .lines()
        .map(|line| {
            let numbers: Vec<u64> = line
                .split_whitespace()
                .map(|n| n.parse().expect("a map holds numbers"))
                .collect();
            numbers
                .try_into()
                .unwrap_or_else(|n| panic!("a map line has three numbers: {n:?}"))
        })
        .collect()
}

/// The map the stage should write for `id` and `ranges`: root is `id`, and container ids
/// from 1 up are the subordinate ranges, one after the other.
fn expected_map(id: u32, ranges: &[users::SubRange]) -> Vec<[u64; 3]> {
    let mut lines = vec![[0, u64::from(id), 1]];
    let mut next = 1;
    for range in ranges {
        lines.push([next, u64::from(range.start), u64::from(range.count)]);
        next += u64::from(range.count);
    }
    lines
}

/// The owner `uid:gid` of a host path.
fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|err| panic!("stat {}: {err}", path.display()));
    (meta.uid(), meta.gid())
}

/// Checks that the host's `path` belongs to `user`, its uid and gid; `why` says why.
fn assert_owned_by_user(path: &Path, user: &TestUser, why: &str) {
    assert_eq!(
        owner(path),
        (user.uid, user.gid),
        "{why} ({}:{})",
        user.uid,
        user.gid
    );
}

/// `-v HOST:CTR[:ro]`.
fn volume(host: &Path, target: &str, suffix: &str) -> String {
    format!("{}:{target}{suffix}", host.display())
}

/// Runs `script` in a container of `user` whose `/root` is a new host directory of the
/// user's (mode 0700); returns the directory, to look at its files, and the output.
fn in_users_own_root(
    user: &TestUser,
    stage: &Runtime,
    script: &str,
) -> (tempfile::TempDir, Output) {
    let dir = users::dir_owned_by(user.uid, user.gid, 0o700);
    let out = stage
        .run()
        .args(["-v", &volume(dir.path(), "/root", "")])
        .sh(script)
        .output();
    (dir, out)
}

/// Runtime options that map ids: `[(flag, line)]` as `flag line flag line ...`.
fn maps(lines: &[(&str, String)]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|(flag, line)| [(*flag).to_owned(), line.clone()])
        .collect()
}

/// Root's `keel` range in `path` (`/etc/subuid` or `/etc/subgid`), which
/// `--userns=auto` adds on first use.
fn keel_range(path: &str) -> users::SubRange {
    users::read_ranges(path)
        .into_iter()
        .find(|r| r.owner == users::KEEL_OWNER)
        .unwrap_or_else(|| panic!("--userns=auto should have added a keel range to {path}"))
}

/// Whether `host` is the first id of a whole slice of 65536 ids of `keel`.
fn in_a_slice(host: u64, keel: &users::SubRange) -> bool {
    let offset = host.checked_sub(u64::from(keel.start));
    offset.is_some_and(|o| o % 65536 == 0 && o + 65536 <= u64::from(keel.count))
}

/// Runs `true` with `--userns=auto`, which must succeed.
fn run_true_with_userns_auto(stage: &Runtime) {
    stage
        .run()
        .args(["--userns", "auto"])
        .cmd(["true"])
        .output()
        .expect_success();
}

/// The stage's notice that only root is mapped.
fn single_map_notice(uid: u32) -> String {
    format!("{NAME}: notice: only root is mapped (0 -> {uid}) because")
}

// Graders kept in files of their own (tests/stage03/), one module each.
#[path = "stage03/groups.rs"]
mod groups;
#[path = "stage03/hardening.rs"]
mod hardening;
#[path = "stage03/subid.rs"]
mod subid;

/// Exercise: write the maps directly into /proc/PID/uid_map and gid_map, after denying
/// setgroups. What an ordinary user without subordinate ids gets, and what root gets
/// with `--userns=auto`.
mod write_maps {
    use super::*;

    #[test]
    fn id_prints_uid_0() {
        let (user, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().cmd(["id"]).output();
        out.expect_success();
        assert!(
            out.stdout.starts_with("uid=0(root) gid=0(root)"),
            "inside the container, {} should be root (uid 0, gid 0): are the maps written \
             before the child goes on?\n{out}",
            user.name
        );
    }

    #[test]
    fn uid_map_is_the_one_line_0_uid_1() {
        let (user, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_eq!(
            map_lines(report.uid_map.as_deref()),
            [[0, u64::from(user.uid), 1]],
            "/proc/self/uid_map of a user without subordinate ids should read `0 {} 1`: \
             container root is the user itself, and no other id is mapped\n{:?}",
            user.uid,
            report.uid_map
        );
        assert_eq!(
            map_lines(report.gid_map.as_deref()),
            [[0, u64::from(user.gid), 1]],
            "/proc/self/gid_map should read `0 {} 1`\n{:?}",
            user.gid,
            report.gid_map
        );
        assert_eq!(report.uid, Some(0), "the probe should run as uid 0");
    }

    #[test]
    fn proc_self_setgroups_reads_deny() {
        let (_, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().cmd(["cat", "/proc/self/setgroups"]).output();
        out.expect_success();
        assert_eq!(
            out.stdout.trim(),
            "deny",
            "an ordinary user may write a gid_map only after writing `deny` to \
             /proc/PID/setgroups\n{out}"
        );
    }

    #[test]
    fn setgroups_fails_with_eperm() {
        let (_, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let report = probe_call(&stage, &[], &["setgroups"]);
        assert!(
            !report.ok && report.errno == Some(EPERM),
            "with only root mapped, setgroups(2) must fail with EPERM (setgroups is \
             denied), or container root could drop a group that keeps the user out of \
             files: {report:?}"
        );
    }

    #[test]
    fn notice_says_only_root_is_mapped() {
        let (user, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().cmd(["true"]).output();
        out.expect_success();
        assert!(
            out.stderr.contains(&single_map_notice(user.uid)),
            "the stage should say on stderr that only root is mapped, and why\n{out}"
        );
    }

    #[test]
    fn user_namespace_differs_from_the_hosts() {
        let (_, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_ne!(
            report.namespace("user"),
            host_namespaces()["user"],
            "the container is in the host's user namespace: is CLONE_NEWUSER among the \
             clone flags?"
        );
    }

    #[test]
    fn file_made_by_container_root_belongs_to_the_user() {
        let (user, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let (dir, out) = in_users_own_root(user, &stage, "echo made inside > /root/made");
        out.expect_success();
        assert_owned_by_user(
            &dir.path().join("made"),
            user,
            "a file made by container root belongs, on the host, to the user",
        );
    }

    #[test]
    fn chown_to_an_unmapped_id_fails() {
        let (user, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        let (dir, out) =
            in_users_own_root(user, &stage, "touch /root/file && chown 1:1 /root/file");
        assert_ne!(
            out.code, 0,
            "with only root mapped, uid 1 does not exist: chown 1:1 must fail\n{out}"
        );
        assert_eq!(
            owner(&dir.path().join("file")),
            (user.uid, user.gid),
            "the file should still belong to the user\n{out}"
        );
    }

    #[test]
    fn user_with_ranges_but_no_newuidmap_on_path_gets_the_one_line() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .env("PATH", "/nonexistent")
            .cmd(["cat", "/proc/self/uid_map", "/proc/self/setgroups"])
            .output();
        out.expect_success();
        let lines: Vec<&str> = out.lines();
        assert_eq!(
            lines.len(),
            2,
            "without newuidmap only one map line can be written, then setgroups reads deny\n{out}"
        );
        assert_eq!(
            map_lines(Some(lines[0])),
            [[0, u64::from(user.uid), 1]],
            "\n{out}"
        );
        assert_eq!(lines[1], "deny", "\n{out}");
        assert!(
            out.stderr.contains(&single_map_notice(user.uid)) && out.stderr.contains("PATH"),
            "the notice should say that newuidmap is not on PATH\n{out}"
        );
    }

    #[test]
    fn root_with_userns_auto_maps_root_to_a_slice_of_the_keel_range() {
        let stage = need!(root_busybox());
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let report = probe_report_with(&stage, &["--userns", "auto"]);
        let (uids, gids) = (keel_range(users::SUBUID), keel_range(users::SUBGID));
        for (map, keel, path) in [
            (&report.uid_map, &uids, users::SUBUID),
            (&report.gid_map, &gids, users::SUBGID),
        ] {
            let lines = map_lines(map.as_deref());
            assert!(
                matches!(lines.as_slice(), [[0, host, 65536]] if in_a_slice(*host, keel)),
                "with --userns=auto, container ids 0-65535 are a slice of 65536 ids of the \
                 keel range in {path} ({keel:?})\n{map:?}"
            );
        }
        assert_eq!(report.uid, Some(0));
        assert_ne!(
            report.namespace("user"),
            host_namespaces()["user"],
            "--userns=auto needs a user namespace"
        );
    }
}

/// Exercise: have the setuid helpers newuidmap and newgidmap write the maps. What an
/// ordinary user with subordinate ids gets: root, and 65536 more ids.
mod call_newuidmap {
    use super::*;

    #[test]
    fn uid_map_maps_root_to_the_user_and_1_up_to_its_range() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        let expected = expected_map(user.uid, &user.subuids);
        assert_eq!(
            map_lines(report.uid_map.as_deref()),
            expected,
            "/proc/self/uid_map should map container root to the user ({}) and container \
             uids from 1 up to its range in /etc/subuid ({:?})\n{:?}",
            user.uid,
            user.subuids,
            report.uid_map
        );
    }

    #[test]
    fn gid_map_maps_root_to_the_users_group_and_1_up_to_its_range() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_eq!(
            map_lines(report.gid_map.as_deref()),
            expected_map(user.gid, &user.subgids),
            "/proc/self/gid_map should map gid 0 to the user's group ({}) and gids from 1 \
             up to its range in /etc/subgid ({:?})\n{:?}",
            user.gid,
            user.subgids,
            report.gid_map
        );
    }

    #[test]
    fn id_prints_uid_0_and_only_group_0() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().sh("id -u; id -g; id -G").output();
        out.expect_success();
        assert_eq!(
            out.lines(),
            ["0", "0", "0"],
            "container root should be uid 0, gid 0, and in no other group (the host's \
             groups would show as 65534)\n{out}"
        );
    }

    #[test]
    fn setgroups_is_denied_before_the_helpers_run() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().cmd(["cat", "/proc/self/setgroups"]).output();
        out.expect_success();
        assert_eq!(
            out.stdout.trim(),
            "deny",
            "newgidmap leaves setgroups at allow when the map uses /etc/subgid: write \
             deny to /proc/PID/setgroups first, or container root can leave a group that \
             keeps the user out of files\n{out}"
        );
        let report = probe_call(&stage, &[], &["setgroups"]);
        assert!(
            !report.ok && report.errno == Some(EPERM),
            "setgroups(2) inside must fail with EPERM: {report:?}"
        );
    }

    #[test]
    fn no_notice_when_every_id_is_mapped() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().cmd(["true"]).output();
        out.expect_success();
        assert!(
            !out.stderr.contains("notice"),
            "a user with subordinate ids and newuidmap gets the full maps: no notice\n{out}"
        );
    }

    #[test]
    fn chown_1_1_inside_is_the_first_subordinate_id_on_the_host() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let (dir, out) = in_users_own_root(
            user,
            &stage,
            "touch /root/one /root/thousand && chown 1:1 /root/one && chown 1000:1000 /root/thousand",
        );
        out.expect_success();
        let (uid_start, gid_start) = (user.subuid().start, user.subgid().start);
        assert_eq!(
            owner(&dir.path().join("one")),
            (uid_start, gid_start),
            "container id 1 is the first subordinate id on the host"
        );
        assert_eq!(
            owner(&dir.path().join("thousand")),
            (uid_start + 999, gid_start + 999),
            "container id 1000 is subordinate id start + 999 on the host"
        );
    }

    #[test]
    fn explain_shows_the_newuidmap_and_newgidmap_command_lines() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().arg("--explain").cmd(["true"]).output();
        out.expect_success();
        let args = |id: u32, ranges: &[users::SubRange]| {
            expected_map(id, ranges)
                .iter()
                .flatten()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (helper, args) in [
            ("newuidmap", args(user.uid, &user.subuids)),
            ("newgidmap", args(user.gid, &user.subgids)),
        ] {
            assert!(
                out.stderr.lines().any(|line| {
                    line.split_once(&format!("{helper} "))
                        .and_then(|(_, rest)| rest.split_once(' '))
                        .is_some_and(|(pid, rest)| {
                            pid.parse::<u32>().is_ok() && rest.starts_with(&args)
                        })
                }),
                "--explain should show `{helper} PID {args}`\n{out}"
            );
        }
    }

    #[test]
    fn uidmap_within_the_users_ranges_is_written_as_asked() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let (uids, gids) = (user.subuid(), user.subgid());
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", format!("1:{}:500", uids.start + 1000)),
            ("--gidmap", format!("0:{}:1", user.gid)),
            ("--gidmap", format!("1:{}:500", gids.start + 1000)),
        ]);
        let report = probe_report_with(&stage, &options);
        assert_eq!(
            map_lines(report.uid_map.as_deref()),
            [
                [0, u64::from(user.uid), 1],
                [1, u64::from(uids.start) + 1000, 500]
            ],
            "--uidmap lines should be written as given\n{:?}",
            report.uid_map
        );
        assert_eq!(
            map_lines(report.gid_map.as_deref()),
            [
                [0, u64::from(user.gid), 1],
                [1, u64::from(gids.start) + 1000, 500]
            ],
            "--gidmap lines should be written as given\n{:?}",
            report.gid_map
        );
    }

    #[test]
    fn user_namespace_differs_from_the_hosts() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_ne!(report.namespace("user"), host_namespaces()["user"]);
    }
}

/// Everything of stages 1 and 2, now run by an ordinary user: PID 1, a fresh /proc,
/// pivot_root into a rootfs, /dev, /sys, the hostname.
mod rootless {
    use super::*;

    #[test]
    fn echo_dollar_dollar_prints_1() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pid::echo_dollar_dollar_prints_1(&stage);
    }

    #[test]
    fn probe_is_pid_1_with_no_visible_parent() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pid::probe_is_pid_1(&stage);
    }

    #[test]
    fn ps_lists_only_the_containers_processes() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pid::ps_lists_only_the_containers_processes(&stage, &["ps", "-o", "pid"]);
    }

    #[test]
    fn ls_proc_shows_only_the_containers_pids() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pid::proc_lists_only_the_containers_pids(&stage);
    }

    #[test]
    fn proc_self_status_says_pid_1() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pid::proc_self_status_says_pid_1(&stage);
    }

    #[test]
    fn ls_root_shows_the_users_own_rootfs() {
        let user = need!(users::with_ranges());
        let (stage, rootfs) = need!(private_as(user));
        let _leaks = LeakCheck::start();
        rootfs_checks::ls_root_shows_the_rootfs(&stage);
        rootfs_checks::root_mount_is_the_rootfs_directory(&stage, rootfs.path());
    }

    #[test]
    fn chroot_breakout_does_not_reach_the_host() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        // Where the user could see it: in the directory every user may enter.
        let marker = rootfs_checks::host_marker(users::shared_dir());
        rootfs_checks::chroot_breakout_does_not_reach_the_host(&stage, marker.path());
    }

    #[test]
    fn old_root_is_detached() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        rootfs_checks::old_root_is_detached(&stage, &[]);
    }

    #[test]
    fn ls_dev_shows_the_standard_devices() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        dev::ls_dev_shows_the_standard_devices(&stage);
    }

    #[test]
    fn dev_null_and_dev_zero_work() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .sh("echo hello > /dev/null && head -c 4 /dev/zero | od -An -tx1")
            .output();
        out.expect_success();
        assert_eq!(out.words(), ["00"; 4], "\n{out}");
    }

    #[test]
    fn sys_is_read_only() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pseudofs::sys_is_read_only(&stage);
    }

    #[test]
    fn tmp_is_writable() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        pseudofs::tmp_is_writable(&stage, "file");
    }

    #[test]
    fn masked_proc_files_read_empty() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        // /proc/kcore, /proc/keys and /proc/timer_list.
        pseudofs::masked_files_read_empty(&stage, &pseudofs::MASKED_FILES[..3]);
    }

    #[test]
    fn masked_paths_are_covered_in_the_containers_mount_table() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        if pseudofs::masked_paths_are_covered(&stage) == 0 {
            keel_graders::skip!("none of runc's masked paths exists on this kernel");
        }
    }

    #[test]
    fn dev_ptmx_allocates_terminals_in_the_containers_devpts() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        dev::ptmx_allocates_in_the_containers_devpts(&stage, None);
    }

    #[test]
    fn an_ordinary_user_of_the_container_can_open_a_terminal() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        // nobody (65534) is one of the user's subordinate ids inside.
        dev::ptmx_allocates_in_the_containers_devpts(&stage, Some(65534));
    }

    #[test]
    fn hostname_is_keel() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::default_hostname_is_keel(&stage);
    }

    #[test]
    fn hostname_option_sets_the_hostname_inside_only() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::hostname_option_sets_the_hostname(&stage);
    }

    #[test]
    fn hostname_command_inside_leaves_the_hosts_hostname_unchanged() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::hostname_command_renames_the_container_only(&stage);
    }

    #[test]
    fn uts_and_ipc_namespaces_differ_from_the_hosts() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::uts_and_ipc_namespaces_differ_from_the_hosts(&stage);
    }

    #[test]
    fn default_rootfs_runs_the_hosts_programs() {
        let user = need!(users::with_ranges());
        let stage = host_rootfs_as(user);
        let _leaks = LeakCheck::start();
        rootfs_checks::usr_bin_is_the_hosts(&stage);
        pid::echo_dollar_dollar_prints_1(&stage);
    }

    #[test]
    fn default_rootfs_usr_is_read_only() {
        let user = need!(users::with_ranges());
        let stage = host_rootfs_as(user);
        let _leaks = LeakCheck::start();
        rootfs_checks::usr_is_read_only(&stage);
    }
}

/// The command line and the container's life, as in stages 1 and 2, run by an
/// ordinary user.
mod cli {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn exit_code_is_the_commands() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::exit_code_is_the_commands(&stage);
    }

    #[test]
    fn missing_program_exits_127() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::missing_program_exits_127(&stage);
    }

    #[test]
    fn non_executable_file_exits_126() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::non_executable_file_exits_126(&stage);
    }

    #[test]
    fn unknown_option_exits_125() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::unknown_option_exits_125(&stage);
    }

    #[test]
    fn stdin_reaches_the_command() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::stdin_reaches_the_command(&stage);
    }

    #[test]
    fn sigterm_is_forwarded_to_the_container() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGTERM);
    }

    #[test]
    fn sigint_is_forwarded_to_the_container() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGINT);
    }

    #[test]
    fn sigusr1_and_sigusr2_are_forwarded_to_the_container() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::user_signals_are_forwarded(&stage);
    }

    #[test]
    fn killed_container_exits_128_plus_signal() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::killed_container_exits_128_plus_n(&stage);
    }

    #[test]
    fn environment_is_clean() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::environment_is_clean(&stage);
    }

    #[test]
    fn env_option_sets_variables() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::env_option_sets_variables(&stage);
    }

    #[test]
    fn workdir_option_sets_the_directory() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        cli_checks::workdir_option_sets_the_directory(&stage);
    }

    #[test]
    fn explain_shows_clone_with_clone_newuser() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage.run().arg("--explain").cmd(["true"]).output();
        out.expect_success();
        assert!(
            out.stderr.lines().any(|line| line.contains("clone(")
                && line.contains("CLONE_NEWUSER")
                && line.contains("CLONE_NEWPID")),
            "--explain should print the clone call with CLONE_NEWUSER and CLONE_NEWPID\n{out}"
        );
    }

    #[test]
    fn inherited_fds_are_not_visible_inside() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::inherited_fds_are_closed(&stage);
    }

    #[test]
    fn background_processes_are_gone_after_exit() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::background_processes_die_with_the_container(&stage);
    }

    #[test]
    fn container_dies_when_the_runtime_is_killed() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        lifecycle::container_dies_when_the_runtime_is_killed(&stage, &[]);
    }

    #[test]
    fn misspelled_subcommand_exits_125_with_a_suggestion() {
        let user = need!(users::with_ranges());
        let stage = host_rootfs_as(user);
        let _leaks = LeakCheck::start();
        cli_checks::misspelled_subcommand_exits_125_with_a_suggestion(&stage);
    }

    #[test]
    fn container_dies_when_the_runtime_is_killed_with_root_on_a_subordinate_id() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        // Container root is not the user itself here: setresuid(0) in the child
        // changes its host uid.
        let (uids, gids) = (user.subuid(), user.subgid());
        let options = maps(&[
            ("--uidmap", format!("0:{}:{}", uids.start, uids.count)),
            ("--gidmap", format!("0:{}:{}", gids.start, gids.count)),
        ]);
        lifecycle::container_dies_when_the_runtime_is_killed(&stage, &options);
    }
}

/// Whose files are whose: container root's files are the user's on the host, and the
/// host's files stay the host's.
mod ownership {
    use super::*;

    #[test]
    fn file_made_by_container_root_is_owned_by_the_user_on_the_host() {
        let user = need!(users::with_ranges());
        let (stage, rootfs) = need!(private_as(user));
        let _leaks = LeakCheck::start();
        let out = stage.run().sh("echo made inside > /root/made").output();
        out.expect_success();
        assert_owned_by_user(
            &rootfs.path().join("root/made"),
            user,
            "container root is, on the host, the user",
        );
    }

    #[test]
    fn host_files_appear_as_nobody_and_stay_unwritable() {
        let (_, stage) = need!(with_ranges());
        let rootfs = need!(users::accessible_busybox());
        let _leaks = LeakCheck::start();
        let passwd = rootfs.join("etc/passwd");
        let before = std::fs::read(&passwd).expect("read the rootfs's /etc/passwd");
        let out = stage
            .run()
            .sh("stat -c '%u:%g' /etc/passwd; echo intruder >> /etc/passwd; touch /etc/new")
            .output();
        assert_eq!(
            out.lines().first().copied(),
            Some("65534:65534"),
            "files of host root, which no map line names, show as 65534 (nobody)\n{out}"
        );
        assert_ne!(
            out.code, 0,
            "container root must not write files of unmapped owners\n{out}"
        );
        assert_eq!(
            std::fs::read(&passwd).expect("read /etc/passwd again"),
            before,
            "the container changed a file of the host's root"
        );
        assert!(
            !rootfs.join("etc/new").exists(),
            "the container made a file in a directory of the host's root"
        );
    }

    #[test]
    fn hosts_etc_shadow_bound_read_only_is_not_readable() {
        let user = need!(users::with_ranges());
        let (stage, _rootfs) = need!(private_as(user));
        let _leaks = LeakCheck::start();
        let report: ReadReport = stage
            .run()
            .args(["-v", "/etc/shadow:/shadow:ro"])
            .probe(["read", "/shadow"])
            .output()
            .json();
        assert!(
            !report.ok,
            "container root read the host's /etc/shadow: it must be an ordinary user on \
             the host, without CAP_DAC_OVERRIDE over host files"
        );
    }

    #[test]
    fn another_users_private_file_is_not_readable() {
        let user = need!(users::with_ranges());
        let other = need!(users::without_ranges());
        let (stage, _rootfs) = need!(private_as(user));
        let _leaks = LeakCheck::start();
        let dir = users::dir_owned_by(other.uid, other.gid, 0o755);
        for (name, mode) in [("private", 0o600), ("public", 0o644)] {
            let path = dir.path().join(name);
            std::fs::write(&path, "belongs to another user\n").expect("write a file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .expect("chmod the file");
            nix::unistd::chown(
                &path,
                Some(nix::unistd::Uid::from_raw(other.uid)),
                Some(nix::unistd::Gid::from_raw(other.gid)),
            )
            .expect("chown the file");
        }
        let volume = volume(dir.path(), "/other", "");
        let read = |path: &str| -> ReadReport {
            stage
                .run()
                .args(["-v", &volume])
                .probe(["read", path])
                .output()
                .json()
        };
        assert!(
            read("/other/public").ok,
            "the other user's public file should be readable (the volume works)"
        );
        assert!(
            !read("/other/private").ok,
            "container root read {}'s 0600 file: it must not be root on the host",
            other.name
        );
        let out = stage
            .run()
            .args(["-v", &volume])
            .cmd(["chmod", "666", "/other/private"])
            .output();
        assert_ne!(out.code, 0, "chmod of another user's file must fail\n{out}");
        let mode = std::fs::metadata(dir.path().join("private"))
            .expect("stat the private file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private file's mode changed\n{out}"
        );
    }
}

/// Capabilities exist only inside: container root has them all in its user namespace,
/// and none that the host checks.
mod privileges {
    use super::*;

    #[test]
    fn cap_eff_is_full_inside() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("read cap_last_cap")
            .trim()
            .parse()
            .expect("cap_last_cap is a number");
        let full = (1u64 << (last + 1)) - 1;
        let eff = report
            .capabilities
            .get("CapEff")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        assert_eq!(
            eff,
            Some(full),
            "container root should have every capability in its user namespace \
             (CapEff {full:016x}): {:?}",
            report.capabilities
        );
    }

    #[test]
    fn container_root_is_the_user_on_the_host() {
        let (user, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let mut running = stage
            .run()
            .sh("echo ready; read line; exit 0")
            .spawn_ready();
        let container = running.container_pid();
        let status = std::fs::read_to_string(format!("/proc/{container}/status"))
            .expect("read the container's status from the host");
        running.close_stdin();
        running.wait().expect_success();
        let ids = |key: &str| -> Vec<String> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            ids("Uid:"),
            vec![user.uid.to_string(); 4],
            "seen from the host, the container's root is {} (uid {})",
            user.name,
            user.uid
        );
        assert_eq!(ids("Gid:"), vec![user.gid.to_string(); 4]);
    }

    #[test]
    fn loading_a_kernel_module_fails_with_eperm() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let report = probe_call(&stage, &[], &["init-module"]);
        if report.errno == Some(ENOSYS) {
            keel_graders::skip!(
                "this kernel cannot load modules at all (built without CONFIG_MODULES: \
                 init_module returns ENOSYS); `mknod_of_a_device_fails_with_eperm` checks \
                 another capability of the host's root"
            );
        }
        assert!(
            !report.ok && report.errno == Some(EPERM),
            "init_module needs CAP_SYS_MODULE in the host's user namespace: {report:?}"
        );
    }

    #[test]
    fn mknod_of_a_device_fails_with_eperm() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .cmd(["mknod", "/tmp/null", "c", "1", "3"])
            .output();
        assert_ne!(
            out.code, 0,
            "making a device node needs CAP_MKNOD in the host's user namespace\n{out}"
        );
        assert!(
            out.stderr.contains("Operation not permitted"),
            "mknod should fail with EPERM\n{out}"
        );
    }

    #[test]
    fn setting_the_clock_fails_with_eperm() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        let report = probe_call(&stage, &[], &["settime"]);
        assert!(
            !report.ok && report.errno == Some(EPERM),
            "settimeofday needs CAP_SYS_TIME in the host's user namespace: {report:?}"
        );
    }

    #[test]
    fn mounting_the_hosts_disk_fails_with_eperm() {
        let user = need!(users::with_ranges());
        let (stage, _rootfs) = need!(private_as(user));
        let own = mountinfo::own();
        let Some(root) = mountinfo::find(&own, "/") else {
            keel_graders::skip!("the host has no / in its mount table");
        };
        let is_block = std::fs::metadata(&root.source).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_block_device()
        });
        if !is_block {
            keel_graders::skip!("the host's root ({}) is not on a block device", root.source);
        }
        let leaks = LeakCheck::start();
        let options = ["-v".to_owned(), format!("{}:/disk", root.source)];
        let report = probe_call(
            &stage,
            &options,
            &["mount", "/disk", "/root", &root.fs_type],
        );
        assert!(
            !report.ok && report.errno == Some(EPERM),
            "mounting {} ({}) needs CAP_SYS_ADMIN in the host's user namespace: {report:?}",
            root.source,
            root.fs_type
        );
        leaks.assert_no_mount_leaked();
    }

    #[test]
    fn mount_over_usr_stays_in_the_container() {
        let user = need!(users::with_ranges());
        let stage = host_rootfs_as(user);
        let leaks = LeakCheck::start();
        let file = format!("/usr/keel-graders-{}", std::process::id());
        let out = stage
            .run()
            // After the mount /usr/bin is empty: only the shell's builtins are left.
            .sh(&format!(
                "mount -t tmpfs tmpfs /usr && echo {file} > {file} && read line < {file} && echo $line"
            ))
            .output();
        let created = Path::new(&file).exists();
        let _ = std::fs::remove_file(&file);
        assert!(!created, "the container's mount reached the host's /usr");
        out.expect_success();
        assert_eq!(
            out.stdout.trim(),
            file,
            "container root may mount a tmpfs over /usr in its own mount namespace\n{out}"
        );
        leaks.assert_no_mount_leaked();
    }

    #[test]
    fn root_owned_host_directory_refuses_writes_despite_capabilities() {
        let user = need!(users::with_ranges());
        let (stage, _rootfs) = need!(private_as(user));
        let _leaks = LeakCheck::start();
        let dir = users::dir_owned_by(0, 0, 0o755);
        let out = stage
            .run()
            .args(["-v", &volume(dir.path(), "/data", "")])
            .sh("touch /data/file; chmod 777 /data; chown 0:0 /data; echo done")
            .output();
        assert_eq!(out.stdout.trim(), "done", "\n{out}");
        assert!(
            !dir.path().join("file").exists(),
            "container root wrote into a directory of the host's root\n{out}"
        );
        let mode = std::fs::metadata(dir.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o7777,
            0o755,
            "container root changed the mode of a directory of the host's root\n{out}"
        );
        assert_eq!(owner(dir.path()), (0, 0));
    }
}

/// Root: without `--userns`, stage 2's behaviour; with `--userns=auto`, an
/// unprivileged range of its own.
mod root {
    use super::*;

    #[test]
    fn without_userns_root_stays_in_the_hosts_user_namespace() {
        let stage = need!(root_busybox());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_eq!(
            report.namespace("user"),
            host_namespaces()["user"],
            "root needs no user namespace: without --userns it should keep stage 2's \
             behaviour"
        );
        let own = std::fs::read_to_string("/proc/self/uid_map").ok();
        assert_eq!(
            map_lines(report.uid_map.as_deref()),
            map_lines(own.as_deref()),
            "root's uid_map in the container should be the host's own"
        );
    }

    #[test]
    fn userns_host_stays_in_the_hosts_user_namespace() {
        let stage = need!(root_busybox());
        let _leaks = LeakCheck::start();
        let report = probe_report_with(&stage, &["--userns", "host"]);
        assert_eq!(report.namespace("user"), host_namespaces()["user"]);
    }

    #[test]
    fn userns_auto_adds_a_keel_range_on_first_use() {
        let stage = need!(root_busybox());
        let guard = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let before = users::read_ranges(users::SUBUID);
        run_true_with_userns_auto(&stage);
        let first = users::subid_files();
        run_true_with_userns_auto(&stage);
        assert_eq!(
            users::subid_files(),
            first,
            "a second run should reuse the keel range, not add another"
        );
        for path in [users::SUBUID, users::SUBGID] {
            let ranges = users::read_ranges(path);
            let keel: Vec<&users::SubRange> = ranges
                .iter()
                .filter(|r| r.owner == users::KEEL_OWNER)
                .collect();
            assert_eq!(
                keel.len(),
                1,
                "{path} should hold one keel range: {ranges:?}"
            );
            let keel = keel[0];
            assert!(
                keel.count >= 65536,
                "the keel range should hold 65536 ids: {keel:?}"
            );
            let clash = ranges.iter().find(|r| {
                r.owner != users::KEEL_OWNER && r.overlaps(u64::from(keel.start), keel.last())
            });
            assert!(
                clash.is_none(),
                "the keel range {keel:?} overlaps {clash:?} in {path}: container root would \
                 share host ids with that user's containers"
            );
            assert!(
                keel.start >= 100_000 || guard.had_keel_range(),
                "a new keel range should be above the ids of ordinary users: {keel:?}"
            );
        }
        if guard.had_keel_range() {
            assert_eq!(
                users::read_ranges(users::SUBUID),
                before,
                "an existing keel range must be reused as it is"
            );
        }
    }

    #[test]
    fn userns_auto_keeps_a_last_line_without_newline_intact() {
        let stage = need!(root_busybox());
        let mut guard = users::KeelRangeGuard::acquire();
        if guard.had_keel_range() {
            keel_graders::skip!("/etc/subuid already has a keel range: nothing would be added");
        }
        guard.restore_on_drop();
        let _leaks = LeakCheck::start();
        // A file edited by hand may end without a newline. The line is an owner of
        // no account, far from every range, so that no test's maps depend on it.
        let last = "keel-graders-no-newline:500000000:1";
        for path in [users::SUBUID, users::SUBGID] {
            let mut text = std::fs::read_to_string(path).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(last);
            // In one rename, as every edit of these files: other tests' newuidmap may
            // be reading them right now.
            users::replace_file(path, text.as_bytes())
                .unwrap_or_else(|err| panic!("write {path}: {err}"));
        }
        run_true_with_userns_auto(&stage);
        for path in [users::SUBUID, users::SUBGID] {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            assert!(
                text.lines().any(|line| line == last),
                "adding the keel range to {path} damaged its last line, which had no \
                 newline ({last:?}): start the new line on a line of its own\n{text}"
            );
            assert!(
                text.lines().any(|line| line.starts_with("keel:")),
                "{path} should hold a keel line of its own\n{text}"
            );
        }
    }

    #[test]
    fn userns_auto_files_belong_to_the_containers_slice_on_the_host() {
        let stage = need!(root_busybox());
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let dir = users::dir_owned_by(0, 0, 0o777);
        let out = stage
            .run()
            .args(["--userns", "auto", "-v", &volume(dir.path(), "/root", "")])
            .sh("head -n1 /proc/self/uid_map; head -n1 /proc/self/gid_map; \
                 touch /root/made && touch /root/by-1 && chown 1:1 /root/by-1")
            .output();
        out.expect_success();
        let host = |line: &str| map_lines(Some(line))[0][1];
        let (uid, gid) = (host(out.lines()[0]), host(out.lines()[1]));
        assert!(in_a_slice(uid, &keel_range(users::SUBUID)), "{uid}\n{out}");
        assert!(in_a_slice(gid, &keel_range(users::SUBGID)), "{gid}\n{out}");
        let owner = |name| {
            let (u, g) = owner(&dir.path().join(name));
            (u64::from(u), u64::from(g))
        };
        assert_eq!(
            owner("made"),
            (uid, gid),
            "with --userns=auto, container root is the first id of its slice on the host"
        );
        assert_eq!(owner("by-1"), (uid + 1, gid + 1));
    }

    #[test]
    fn userns_auto_container_dies_when_the_runtime_is_killed() {
        let stage = need!(root_busybox());
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let auto = ["--userns".to_owned(), "auto".to_owned()];
        lifecycle::container_dies_when_the_runtime_is_killed(&stage, &auto);
    }

    #[test]
    fn without_userns_container_dies_when_the_runtime_is_killed() {
        let stage = need!(root_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::container_dies_when_the_runtime_is_killed(&stage, &[]);
    }

    #[test]
    fn userns_auto_root_cannot_read_the_hosts_etc_shadow() {
        let stage = need!(root_busybox());
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .args(["--userns", "auto", "-v", "/etc/shadow:/etc/group:ro"])
            .sh("cat /etc/group >/dev/null && echo read || echo refused")
            .output();
        out.expect_success();
        assert_eq!(
            out.stdout.trim(),
            "refused",
            "with --userns=auto, container root is an unprivileged host id: the host's \
             /etc/shadow must stay unreadable\n{out}"
        );
    }

    #[test]
    fn userns_auto_root_cannot_set_the_clock_or_make_devices() {
        let stage = need!(root_busybox());
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        let auto = ["--userns".to_owned(), "auto".to_owned()];
        let report = probe_call(&stage, &auto, &["settime"]);
        assert!(
            !report.ok && report.errno == Some(EPERM),
            "with --userns=auto, container root has no capability of the host: {report:?}"
        );
        let out = stage
            .run()
            .args(&auto)
            .cmd(["mknod", "/tmp/null", "c", "1", "3"])
            .output();
        assert!(
            out.code != 0 && out.stderr.contains("Operation not permitted"),
            "with --userns=auto, mknod of a device must fail with EPERM\n{out}"
        );
    }
}

/// Bad input is the runtime's failure (125), says what is wrong, and leaves nothing
/// behind: no process, no mount, no change to /etc/subuid or /etc/subgid.
mod bad_input {
    use super::*;

    /// Runs `stage` with `options` (and `env`), expects a refusal naming `words`, and
    /// checks that nothing was left behind.
    fn refused(
        stage: &Runtime,
        options: &[String],
        env: &[(&str, &str)],
        words: &[&str],
    ) -> Output {
        let out = refused_somehow(stage, options, env);
        cli_checks::expect_runtime_failure(stage, &out, words);
        out
    }

    /// Runs `stage` with `options` (and `env`), expects exit code 125, and checks that
    /// nothing was left behind.
    fn refused_somehow(stage: &Runtime, options: &[String], env: &[(&str, &str)]) -> Output {
        let _files = users::SubidLock::acquire();
        let before = users::subid_files();
        let leaks = LeakCheck::start();
        // The marker is on the runtime's command line, so its cloned child, if one
        // was left waiting, carries it too.
        let marker = Marker::new();
        let mut invocation = stage.run().args(options);
        for (key, value) in env {
            invocation = invocation.env(key, value);
        }
        let out = invocation.cmd(["true", marker.token()]).output();
        out.expect_code(cli_checks::RUNTIME_FAILED);
        marker.assert_none_left();
        leaks.assert_no_mount_leaked();
        assert_eq!(
            users::subid_files(),
            before,
            "/etc/subuid or /etc/subgid changed\n{out}"
        );
        out
    }

    #[test]
    fn uidmap_outside_the_users_ranges_exits_125_naming_the_allowed_ranges() {
        let (user, stage) = need!(with_ranges());
        let range = user.subuid();
        let beyond = range.last() + 1;
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", format!("1:{beyond}:10")),
        ]);
        let allowed = format!("{}-{}", range.start, range.last());
        refused(
            &stage,
            &options,
            &[],
            &[&beyond.to_string(), &allowed, &user.uid.to_string()],
        );
    }

    #[test]
    fn uidmap_of_host_root_exits_125() {
        let (user, stage) = need!(with_ranges());
        let options = maps(&[("--uidmap", "0:0:1".to_owned())]);
        let out = refused(&stage, &options, &[], &["--uidmap"]);
        assert!(
            out.stderr.contains(&user.name),
            "the error should say whose ids may be mapped\n{out}"
        );
    }

    #[test]
    fn user_without_ranges_asking_for_subordinate_ids_exits_125() {
        let (user, stage) = need!(without_ranges());
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", "1:100000:65536".to_owned()),
        ]);
        refused(&stage, &options, &[], &["100000", &user.uid.to_string()]);
    }

    #[test]
    fn overlapping_container_ids_exit_125() {
        let (user, stage) = need!(with_ranges());
        let start = user.subuid().start;
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", format!("0:{start}:10")),
        ]);
        refused(&stage, &options, &[], &["overlap"]);
    }

    #[test]
    fn overlapping_host_ids_exit_125() {
        let (user, stage) = need!(with_ranges());
        let start = user.subuid().start;
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", format!("1:{start}:10")),
            ("--uidmap", format!("100:{}:10", start + 5)),
        ]);
        refused(&stage, &options, &[], &["overlap"]);
    }

    #[test]
    fn malformed_uidmap_exits_125() {
        let (user, stage) = need!(with_ranges());
        let spec = format!("0:{}", user.uid);
        let options = maps(&[("--uidmap", spec.clone())]);
        // An option's value that does not parse is refused like an unknown option:
        // 125, with the value and the syntax expected.
        let out = refused_somehow(&stage, &options, &[]);
        assert!(
            out.stderr.contains(&spec) && out.stderr.contains("CONTAINER:HOST:COUNT"),
            "the error should quote the value and say what is expected\n{out}"
        );
    }

    #[test]
    fn subordinate_maps_without_newuidmap_exit_125_naming_uidmap() {
        let (user, stage) = need!(with_ranges());
        let (uids, gids) = (user.subuid(), user.subgid());
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", format!("1:{}:{}", uids.start, uids.count)),
            ("--gidmap", format!("0:{}:1", user.gid)),
            ("--gidmap", format!("1:{}:{}", gids.start, gids.count)),
        ]);
        refused(&stage, &options, &[("PATH", "/nonexistent")], &["uidmap"]);
    }

    #[test]
    fn failing_newuidmap_exits_125_and_leaves_nothing_behind() {
        let (_, stage) = need!(with_ranges());
        // A newuidmap that refuses, first on PATH: the child already exists when it
        // runs, and must not be left waiting.
        let fakes = tempfile::Builder::new()
            .prefix("fake-helpers-")
            .tempdir_in(users::shared_dir())
            .expect("temporary directory");
        std::fs::set_permissions(fakes.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        for helper in ["newuidmap", "newgidmap"] {
            users::write_script(
                &fakes.path().join(helper),
                &format!("#!/bin/sh\necho \"{helper}: refused by the graders\" >&2\nexit 1\n"),
            );
        }
        let path = format!("{}:/usr/bin:/bin", fakes.path().display());
        refused(
            &stage,
            &[],
            &[("PATH", &path)],
            &["newuidmap", "refused by the graders"],
        );
    }

    /// Fake newuidmap and newgidmap, first on a PATH that the test returns, that
    /// write their command lines to the returned log and refuse. The directory holds
    /// them; keep it alive.
    fn recording_helpers(user: &TestUser) -> (tempfile::TempDir, String, PathBuf) {
        let dir = users::dir_owned_by(user.uid, user.gid, 0o755);
        let log = dir.path().join("calls");
        for helper in ["newuidmap", "newgidmap"] {
            users::write_script(
                &dir.path().join(helper),
                &format!(
                    "#!/bin/sh\necho \"{helper} $*\" >> {}\necho \"{helper}: refused by the \
                     graders\" >&2\nexit 1\n",
                    log.display()
                ),
            );
        }
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        (dir, path, log)
    }

    #[test]
    fn uidmap_outside_the_users_ranges_is_refused_before_any_helper_runs() {
        let (user, stage) = need!(with_ranges());
        let (_dir, path, log) = recording_helpers(user);
        // The fakes are the helpers keel runs: a run that needs them calls them.
        refused(&stage, &[], &[("PATH", &path)], &["refused by the graders"]);
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            calls.lines().any(|call| call.starts_with("newuidmap ")),
            "the recording newuidmap should have been called: {calls:?}"
        );
        std::fs::remove_file(&log).expect("empty the log");
        let beyond = user.subuid().last() + 1;
        let options = maps(&[
            ("--uidmap", format!("0:{}:1", user.uid)),
            ("--uidmap", format!("1:{beyond}:10")),
        ]);
        let out = refused(&stage, &options, &[("PATH", &path)], &[&beyond.to_string()]);
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            calls.is_empty(),
            "a map outside the user's ranges must be refused by keel itself, before any \
             helper runs; these ran: {calls:?}\n{out}"
        );
    }

    #[test]
    fn a_failing_helper_leaves_no_child_behind() {
        let (user, stage) = need!(with_ranges());
        let (_dir, path, _log) = recording_helpers(user);
        let subreaper = users::accessible_copy(Path::new(env!("CARGO_BIN_EXE_keel-subreaper")));
        let _leaks = LeakCheck::start();
        lifecycle::refused_run_leaves_no_child(
            &stage,
            &subreaper,
            |stage| stage.run().env("PATH", &path).cmd(["true"]),
            cli_checks::RUNTIME_FAILED,
        );
    }

    /// Refused in `prepare`, before `clone`: `--explain` shows no clone.
    fn refused_before_clone(stage: &Runtime, words: &[&str]) {
        let out = refused(stage, &["--explain".to_owned()], &[], words);
        assert!(
            !out.stderr.contains("clone("),
            "the rootfs should be refused in the parent, before clone\n{out}"
        );
    }

    #[test]
    fn rootfs_below_a_directory_the_user_may_not_enter_exits_125_before_clone() {
        let (user, _) = need!(with_ranges());
        let closed = users::dir_owned_by(0, 0, 0o700);
        let rootfs = closed.path().join("rootfs");
        std::fs::create_dir(&rootfs).expect("mkdir");
        let stage = in_rootfs(&rootfs).as_user(user.run_as());
        let blocker = closed.path().display().to_string();
        refused_before_clone(&stage, &[&blocker, "permission denied", "mode 0700"]);
    }

    #[test]
    fn rootfs_the_user_may_not_enter_exits_125_before_clone() {
        let (user, _) = need!(with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        nix::unistd::chown(
            rootfs.path(),
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .expect("chown the rootfs to root");
        std::fs::set_permissions(rootfs.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod 0700 the rootfs");
        let stage = in_rootfs(rootfs.path()).as_user(user.run_as());
        let dir = rootfs.path().display().to_string();
        refused_before_clone(&stage, &[&dir, "permission denied", "mode 0700", "chown"]);
    }

    #[test]
    fn userns_auto_as_a_user_exits_125() {
        let (_, stage) = need!(with_ranges());
        let options = ["--userns".to_owned(), "auto".to_owned()];
        refused(&stage, &options, &[], &["--userns=auto"]);
    }
}

/// `doctor`, run by the users: what the machine offers them, and each fix.
mod doctor {
    use super::*;

    /// The lines of the doctor's report that are about `what`.
    fn lines_about<'a>(out: &'a Output, what: &str) -> Vec<&'a str> {
        out.stdout
            .lines()
            .filter(|line| line.contains(&format!("{what}:")))
            .collect()
    }

    #[test]
    fn doctor_as_a_user_with_ranges_exits_0_and_reports_the_ranges() {
        let user = need!(users::with_ranges());
        let stage = host_rootfs_as(user);
        let out = stage.doctor().output();
        out.expect_success();
        for (file, range) in [
            (users::SUBUID, user.subuid()),
            (users::SUBGID, user.subgid()),
        ] {
            let shown = format!("{}:{}", range.start, range.count);
            assert!(
                lines_about(&out, file)
                    .iter()
                    .any(|line| line.trim_start().starts_with("ok") && line.contains(&shown)),
                "doctor should report {}'s range {shown} in {file} as ok\n{out}",
                user.name
            );
        }
    }

    #[test]
    fn doctor_as_a_user_without_ranges_warns_with_a_usermod_fix() {
        let user = need!(users::without_ranges());
        let stage = host_rootfs_as(user);
        let out = stage.doctor().output();
        out.expect_success();
        let lines = lines_about(&out, users::SUBUID);
        assert!(
            lines.iter().any(|line| {
                line.trim_start().starts_with("warn")
                    && line.contains("usermod --add-subuids")
                    && line.contains(&user.name)
            }),
            "doctor should warn that {} has no subordinate ids, with the usermod command \
             that gives them\n{out}",
            user.name
        );
    }

    #[test]
    fn doctor_suggests_a_range_no_other_user_has() {
        let user = need!(users::without_ranges());
        let stage = host_rootfs_as(user);
        // The files must not change between doctor's look and ours.
        let _files = users::SubidLock::acquire();
        let out = stage.doctor().output();
        out.expect_success();
        let lines = lines_about(&out, users::SUBUID);
        let suggested = lines
            .iter()
            .find_map(|line| line.split_once("--add-subuids "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|range| range.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        let Some((first, last)) = suggested else {
            panic!("doctor should suggest `usermod --add-subuids FIRST-LAST`\n{out}");
        };
        let taken: Vec<users::SubRange> = users::read_ranges(users::SUBUID)
            .into_iter()
            .filter(|r| r.overlaps(first, last))
            .collect();
        assert!(
            taken.is_empty(),
            "doctor suggests giving {} the ids {first}-{last}, which {taken:?} already \
             have in {}: following the fix, two users would share host ids (and doctor \
             would then fail its own overlap check); suggest a free range\n{out}",
            user.name,
            users::SUBUID
        );
    }

    #[test]
    fn doctor_without_newuidmap_says_to_install_uidmap() {
        let user = need!(users::with_ranges());
        let stage = host_rootfs_as(user);
        let out = stage.doctor().env("PATH", "/nonexistent").output();
        let lines = lines_about(&out, "newuidmap");
        assert!(
            lines
                .iter()
                .any(|line| !line.trim_start().starts_with("ok") && line.contains("uidmap")),
            "doctor should say that newuidmap is missing, and to install uidmap\n{out}"
        );
    }

    #[test]
    fn doctor_checks_that_a_user_namespace_can_be_created() {
        let user = need!(users::without_ranges());
        let stage = host_rootfs_as(user);
        let out = stage.doctor().output();
        out.expect_success();
        assert!(
            lines_about(&out, "creating a user namespace")
                .iter()
                .any(|line| line.trim_start().starts_with("ok")),
            "doctor should try to create a user namespace, and say it works\n{out}"
        );
    }
}

//! Graders of stage 2 (`stage02-mountns`): stage 1 plus a root filesystem of its own,
//! with fresh /proc, /dev, /sys and /tmp, masked paths, and volumes.
//!
//! Most graders run the container in the busybox rootfs built from the host's
//! `busybox-static` (skipped if it is not installed), where the probe is
//! `/bin/keel-probe`. The `host_rootfs` graders run the default rootfs, which borrows
//! the host's programs. Everything needs root.
//!
//! Every grader also checks that the host's mount table is unchanged afterwards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keel_graders::checks::rootfs as rootfs_checks;
use keel_graders::checks::{cli as cli_checks, dev, lifecycle, pid, pseudofs};
use keel_graders::mountinfo::{self, Mount};
use keel_graders::probe::{self, ReadReport, host_namespaces};
use keel_graders::rootfs;
use keel_graders::runtime::ProbeAt;
use keel_graders::{LeakCheck, Runtime, Skip, need, require_root, workspace};

const NAME: &str = "stage02-mountns";

/// `nobody`, an ordinary user inside the container.
const NOBODY: u32 = 65534;

/// The stage with its default rootfs: a tmpfs that borrows the host's /usr, /bin, /lib.
fn stage02() -> Result<Runtime, Skip> {
    require_root()?;
    Ok(Runtime::new(NAME, env!("CARGO_BIN_EXE_keel-stage02")))
}

/// The stage in the shared busybox rootfs (which no test may modify).
fn stage02_busybox() -> Result<Runtime, Skip> {
    require_root()?;
    let rootfs = rootfs::busybox()?;
    Ok(in_rootfs(rootfs))
}

/// The stage in the rootfs at `rootfs`, with the probe at `/bin/keel-probe`.
fn in_rootfs(rootfs: &Path) -> Runtime {
    Runtime::new(NAME, env!("CARGO_BIN_EXE_keel-stage02"))
        .with_options([Path::new("--rootfs"), rootfs])
        .with_probe_at(ProbeAt::Inside(rootfs::PROBE.into()))
}

// Graders kept in files of their own (tests/stage02/), one module each.
#[path = "stage02/hardening.rs"]
mod hardening;
#[path = "stage02/rootfs_input.rs"]
mod rootfs_input;
#[path = "stage02/rootfs_races.rs"]
mod rootfs_races;

/// Exercise: `pivot_root` into the rootfs and detach the old root. A `chroot` would
/// pass the first look (`ls /`), and fail the breakout.
mod pivot_root {
    use super::*;

    #[test]
    fn ls_root_shows_the_rootfs() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        rootfs_checks::ls_root_shows_the_rootfs(&stage);
    }

    #[test]
    fn host_file_outside_the_rootfs_is_unreachable() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let marker = rootfs_checks::host_marker(&workspace::graders_dir());
        let report: ReadReport = stage
            .run()
            .probe(["read".as_ref(), marker.path()])
            .output()
            .json();
        assert!(
            !report.ok,
            "the container could read {}, a file of the host outside its rootfs",
            marker.path().display()
        );
    }

    #[test]
    fn old_root_is_detached() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        rootfs_checks::old_root_is_detached(&stage, &[]);
    }

    #[test]
    fn root_mount_is_the_rootfs_directory() {
        let stage = need!(stage02_busybox());
        let rootfs = need!(rootfs::busybox());
        let _leaks = LeakCheck::start();
        rootfs_checks::root_mount_is_the_rootfs_directory(&stage, rootfs);
    }

    #[test]
    fn chroot_breakout_does_not_reach_the_host() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let marker = rootfs_checks::host_marker(&workspace::graders_dir());
        let report = rootfs_checks::chroot_breakout_does_not_reach_the_host(&stage, marker.path());
        if report.ok {
            assert_eq!(
                report.root,
                rootfs::top_level(),
                "after the breakout, `/` should still be the rootfs"
            );
        }
    }

    #[test]
    fn mount_namespace_differs_from_the_hosts() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_ne!(report.namespace("mnt"), host_namespaces()["mnt"]);
    }

    #[test]
    fn hosts_mount_table_is_unchanged() {
        let stage = need!(stage02_busybox());
        let leaks = LeakCheck::start();
        stage.run().cmd(["true"]).output().expect_success();
        leaks.assert_no_mount_leaked();
    }
}

/// Exercise: populate /dev. A container gets a small tmpfs /dev with a handful of safe
/// devices bound from the host, a private devpts, and the usual symlinks; never the
/// host's whole /dev (disks, /dev/mem, /dev/kmsg).
mod populate_dev {
    use super::*;

    #[test]
    fn ls_dev_shows_the_standard_devices() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        dev::ls_dev_shows_the_standard_devices(&stage);
    }

    #[test]
    fn device_nodes_are_the_real_devices() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let devices = ["null", "zero", "full", "random", "urandom", "tty"];
        let paths: Vec<String> = devices.iter().map(|d| format!("/dev/{d}")).collect();
        let out = stage
            .run()
            .cmd(
                ["stat", "-L", "-c", "%n %t:%T"]
                    .into_iter()
                    .map(String::from)
                    .chain(paths.clone()),
            )
            .output();
        out.expect_success();
        for path in &paths {
            let host = nix::sys::stat::stat(path.as_str()).expect("stat the host's device");
            let (major, minor) = (
                nix::sys::stat::major(host.st_rdev),
                nix::sys::stat::minor(host.st_rdev),
            );
            let expected = format!("{path} {major:x}:{minor:x}");
            assert!(
                out.lines().contains(&expected.as_str()),
                "{path} should be the device {major}:{minor}, as on the host\n{out}"
            );
        }
    }

    #[test]
    fn dev_null_swallows_writes() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .sh("echo hello > /dev/null && wc -c < /dev/null")
            .output();
        out.expect_success();
        assert_eq!(out.stdout.trim(), "0", "\n{out}");
    }

    #[test]
    fn dev_zero_reads_zeros() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let out = stage.run().sh("head -c 8 /dev/zero | od -An -tx1").output();
        out.expect_success();
        assert_eq!(out.words(), ["00"; 8], "\n{out}");
    }

    #[test]
    fn dev_is_a_tmpfs_not_the_hosts_dev() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let mounts = probe::report(&stage).mounts();
        let dev = mountinfo::find(&mounts, "/dev").expect("the container has a /dev mount");
        assert_eq!(
            dev.fs_type,
            "tmpfs",
            "/dev should be a tmpfs: {}",
            dev.key()
        );
    }

    #[test]
    fn dev_pts_is_a_new_devpts_instance() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let mounts = probe::report(&stage).mounts();
        let pts = mountinfo::find(&mounts, "/dev/pts").expect("the container has /dev/pts");
        assert_eq!(pts.fs_type, "devpts", "/dev/pts: {}", pts.key());
        let host_instances: Vec<Mount> = mountinfo::own()
            .into_iter()
            .filter(|m| m.fs_type == "devpts")
            .collect();
        assert!(
            host_instances.iter().all(|host| host.device != pts.device),
            "/dev/pts is the host's devpts ({}): mount a new instance (-o newinstance), \
             or the container sees and opens the host's terminals",
            pts.device
        );
        assert_eq!(
            rootfs_checks::listing(&stage, "/dev/pts"),
            BTreeSet::from(["ptmx".to_owned()]),
            "a new devpts holds only ptmx until a terminal is opened"
        );
    }

    #[test]
    fn dev_ptmx_allocates_terminals_in_the_containers_devpts() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        dev::ptmx_allocates_in_the_containers_devpts(&stage, None);
    }

    #[test]
    fn an_ordinary_user_of_the_container_can_open_a_terminal() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        dev::ptmx_allocates_in_the_containers_devpts(&stage, Some(NOBODY));
    }

    #[test]
    fn dev_fd_and_std_links_point_into_proc_self_fd() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .sh("for link in fd stdin stdout stderr; do readlink /dev/$link; done")
            .output();
        out.expect_success();
        assert_eq!(
            out.lines(),
            [
                "/proc/self/fd",
                "/proc/self/fd/0",
                "/proc/self/fd/1",
                "/proc/self/fd/2"
            ],
            "\n{out}"
        );
    }

    #[test]
    fn dev_shm_is_a_writable_tmpfs() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let mounts = probe::report(&stage).mounts();
        let shm = mountinfo::find(&mounts, "/dev/shm").expect("the container has /dev/shm");
        assert_eq!(shm.fs_type, "tmpfs", "/dev/shm: {}", shm.key());
        let out = stage
            .run()
            .sh("echo shared > /dev/shm/x && cat /dev/shm/x")
            .output();
        out.expect_success();
        assert_eq!(out.stdout.trim(), "shared", "\n{out}");
    }

    #[test]
    fn dev_mqueue_is_an_mqueue_filesystem() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let mounts = probe::report(&stage).mounts();
        let mqueue =
            mountinfo::find(&mounts, "/dev/mqueue").expect("the container has /dev/mqueue");
        assert_eq!(mqueue.fs_type, "mqueue", "/dev/mqueue: {}", mqueue.key());
    }
}

/// /proc, /sys and /tmp: fresh, read-only where the host must be protected, masked
/// where the kernel says too much.
mod pseudo_filesystems {
    use super::*;

    /// runc's masked directories: a container sees them empty.
    const MASKED_DIRS: [&str; 3] = ["/proc/scsi", "/sys/firmware", "/proc/acpi"];
    /// runc's read-only paths.
    const READ_ONLY: [&str; 5] = [
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/irq",
        "/proc/bus",
        "/proc/fs",
    ];

    #[test]
    fn ls_proc_shows_only_the_containers_pids() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pid::proc_lists_only_the_containers_pids(&stage);
    }

    #[test]
    fn proc_self_status_says_pid_1() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pid::proc_self_status_says_pid_1(&stage);
    }

    #[test]
    fn sys_is_read_only() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pseudofs::sys_is_read_only(&stage);
    }

    #[test]
    fn tmp_is_a_writable_tmpfs_of_its_own() {
        let stage = need!(stage02_busybox());
        let rootfs = need!(rootfs::busybox());
        let _leaks = LeakCheck::start();
        let mounts = probe::report(&stage).mounts();
        let tmp = mountinfo::find(&mounts, "/tmp").expect("the container has /tmp");
        assert_eq!(tmp.fs_type, "tmpfs", "/tmp: {}", tmp.key());
        let name = format!("keel-tmp-{}", std::process::id());
        pseudofs::tmp_is_writable(&stage, &name);
        assert!(
            !rootfs.join("tmp").join(&name).exists(),
            "the file landed in the rootfs's tmp directory: /tmp should be a tmpfs"
        );
    }

    #[test]
    fn masked_files_read_empty() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pseudofs::masked_files_read_empty(&stage, &pseudofs::MASKED_FILES);
    }

    #[test]
    fn masked_paths_are_covered_in_the_containers_mount_table() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        if pseudofs::masked_paths_are_covered(&stage) == 0 {
            keel_graders::skip!("none of runc's masked paths exists on this kernel");
        }
    }

    #[test]
    fn proc_is_mounted_nosuid_nodev_noexec() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pid::proc_is_mounted_nosuid_nodev_noexec(&stage);
    }

    #[test]
    fn masked_directories_are_empty() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        for dir in MASKED_DIRS.into_iter().filter(|d| Path::new(d).exists()) {
            let out = stage.run().sh(&format!("ls -A {dir} 2>/dev/null")).output();
            assert!(
                out.stdout.trim().is_empty(),
                "{dir} should be empty (masked by a read-only tmpfs)\n{out}"
            );
        }
    }

    #[test]
    fn proc_sys_and_friends_are_read_only() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let mounts = probe::report(&stage).mounts();
        for path in READ_ONLY.into_iter().filter(|p| Path::new(p).exists()) {
            let mount = mountinfo::find(&mounts, path);
            assert!(
                mount.is_some_and(Mount::is_read_only),
                "{path} should be a read-only (bind) mount, found {:?}",
                mount.map(Mount::key)
            );
        }
    }

    #[test]
    fn writing_proc_sys_fails() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        // Safe even if it worked: the hostname belongs to the container's UTS namespace.
        let out = stage
            .run()
            .sh("echo changed > /proc/sys/kernel/hostname; uname -n")
            .output();
        assert_eq!(
            out.stdout.trim(),
            cli_checks::DEFAULT_HOSTNAME,
            "/proc/sys must be read-only inside the container\n{out}"
        );
    }
}

/// The default rootfs: the host's programs, read-only, on a tmpfs root.
mod host_rootfs {
    use super::*;

    #[test]
    fn ls_usr_bin_lists_the_hosts_programs() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        rootfs_checks::usr_bin_is_the_hosts(&stage);
    }

    #[test]
    fn echo_dollar_dollar_prints_1() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        pid::echo_dollar_dollar_prints_1(&stage);
    }

    #[test]
    fn ps_lists_only_the_containers_processes() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        if !Path::new("/bin/ps").exists() {
            keel_graders::skip!("/bin/ps is missing: apt-get install procps");
        }
        pid::ps_lists_only_the_containers_processes(&stage, &["ps", "-A", "-o", "pid="]);
    }

    #[test]
    fn hostname_is_keel() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        cli_checks::default_hostname_is_keel(&stage);
    }

    #[test]
    fn usr_is_read_only() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        rootfs_checks::usr_is_read_only(&stage);
    }
}

/// `-v HOST:CTR[:ro]`: host directories inside the container, and mount targets that
/// try to lead out of the rootfs.
mod volumes {
    use super::*;

    /// A host directory holding a file `in`, to bind into the container.
    fn host_dir() -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("keel-volume-")
            .tempdir_in(workspace::graders_dir())
            .expect("temporary directory");
        std::fs::write(dir.path().join("in"), "from the host\n").expect("write a file");
        dir
    }

    fn volume(host: &Path, target: &str, suffix: &str) -> String {
        format!("{}:{target}{suffix}", host.display())
    }

    /// The stage in a private copy of the busybox rootfs: a runtime may create the
    /// volume's mount point in the rootfs, which must not change the shared one.
    fn stage02_private() -> Result<(Runtime, tempfile::TempDir), Skip> {
        require_root()?;
        let rootfs = rootfs::private_copy()?;
        Ok((in_rootfs(rootfs.path()), rootfs))
    }

    #[test]
    fn volume_is_visible_and_writable() {
        let (stage, _rootfs) = need!(stage02_private());
        let _leaks = LeakCheck::start();
        let dir = host_dir();
        let out = stage
            .run()
            .args(["-v", &volume(dir.path(), "/data", "")])
            .sh("cat /data/in && echo from the container > /data/out")
            .output();
        out.expect_success();
        assert_eq!(out.stdout.trim(), "from the host", "\n{out}");
        let written = std::fs::read_to_string(dir.path().join("out")).unwrap_or_default();
        assert_eq!(
            written.trim(),
            "from the container",
            "the host should see the write"
        );
    }

    #[test]
    fn read_only_volume_rejects_writes() {
        let (stage, _rootfs) = need!(stage02_private());
        let _leaks = LeakCheck::start();
        let dir = host_dir();
        let out = stage
            .run()
            .args(["-v", &volume(dir.path(), "/data", ":ro")])
            .sh("cat /data/in && echo from the container > /data/out")
            .output();
        assert_eq!(
            out.stdout.trim(),
            "from the host",
            "the volume is readable\n{out}"
        );
        assert_ne!(out.code, 0, "writing to a :ro volume should fail\n{out}");
        assert!(
            !dir.path().join("out").exists(),
            "the container wrote into a read-only volume"
        );
    }

    #[test]
    fn read_only_volume_is_read_only_below_its_own_mounts_too() {
        let (stage, _rootfs) = need!(stage02_private());
        let _leaks = LeakCheck::start();
        // The host's /dev has mounts of its own below it: /dev/shm is a tmpfs.
        let name = format!("keel-ro-{}", std::process::id());
        let host_file = Path::new("/dev/shm").join(&name);
        let out = stage
            .run()
            .args(["-v", "/dev:/hostdev:ro"])
            .sh(&format!("touch /hostdev/shm/{name}"))
            .output();
        let leaked = host_file.exists();
        let _ = std::fs::remove_file(&host_file);
        assert!(
            !leaked,
            "a :ro volume let the container write into a mount below it\n{out}"
        );
        assert_ne!(out.code, 0, "writing below a :ro volume should fail\n{out}");
    }

    /// A rootfs whose `/escape` is a symlink (`link_to`) out of it, and the host
    /// directory it points to, that a careless runtime would mount over.
    fn escape_attempt(link_to: impl Fn(&Path) -> PathBuf) {
        let (stage, rootfs) = need!(stage02_private());
        let _leaks = LeakCheck::start();
        let victim = tempfile::Builder::new()
            .prefix("keel-victim-")
            .tempdir_in(workspace::graders_dir())
            .expect("temporary directory");
        std::os::unix::fs::symlink(link_to(victim.path()), rootfs.path().join("escape"))
            .expect("create the symlink");
        let source = host_dir();

        let out = stage
            .run()
            .args(["-v", &volume(source.path(), "/escape", "")])
            .sh("echo landed > /escape/file")
            .output();

        let victim_entries: Vec<_> = std::fs::read_dir(victim.path())
            .expect("read the victim directory")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(
            victim_entries.is_empty(),
            "the container wrote into {} on the host through the symlink: {victim_entries:?}",
            victim.path().display()
        );
        if out.code != cli_checks::RUNTIME_FAILED {
            // Not refused: then the bind must be where the container finds /escape,
            // resolved inside the rootfs, and not on the host's path.
            assert!(
                source.path().join("file").exists(),
                "the container's /escape does not lead to the volume: the bind went \
                 somewhere outside the rootfs (resolve the target inside the rootfs, \
                 e.g. openat2 with RESOLVE_IN_ROOT)\n{out}"
            );
        }
    }

    #[test]
    fn absolute_symlink_target_does_not_escape_the_rootfs() {
        escape_attempt(|victim| victim.to_path_buf());
    }

    #[test]
    fn relative_symlink_target_does_not_escape_the_rootfs() {
        escape_attempt(|victim| {
            let up = "../".repeat(victim.components().count() + 4);
            PathBuf::from(up).join(victim.strip_prefix("/").expect("absolute"))
        });
    }
}

/// Bad input is the runtime's failure (125), says what is wrong, and leaves nothing
/// behind (the leak check).
mod bad_input {
    use super::*;

    #[test]
    fn missing_rootfs_exits_125_and_says_how_to_make_one() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .args(["--rootfs", "/nonexistent"])
            .cmd(["true"])
            .output();
        // The book's way (chapter 2), not `busybox --install`, which links to where
        // busybox is on the host.
        cli_checks::expect_runtime_failure(
            &stage,
            &out,
            &[
                "/nonexistent",
                "no such directory",
                "A root filesystem from busybox",
                "cp /bin/busybox",
            ],
        );
        assert!(
            !out.stderr.contains("--install"),
            "the error should not suggest busybox --install\n{out}"
        );
    }

    #[test]
    fn rootfs_whose_proc_is_a_symlink_exits_125() {
        need!(require_root());
        let rootfs = need!(rootfs::private_copy());
        let stage = in_rootfs(rootfs.path());
        let _leaks = LeakCheck::start();
        let proc = rootfs.path().join("proc");
        std::fs::remove_dir(&proc).expect("remove the rootfs's /proc");
        std::os::unix::fs::symlink("/", &proc).expect("make /proc a symlink to /");
        let out = stage.run().cmd(["true"]).output();
        cli_checks::expect_runtime_failure(&stage, &out, &["/proc", "symlink"]);
    }

    #[test]
    fn missing_volume_source_exits_125() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        let out = stage
            .run()
            .args(["-v", "/nonexistent-keel-volume:/x"])
            .cmd(["true"])
            .output();
        cli_checks::expect_runtime_failure(&stage, &out, &["/nonexistent-keel-volume"]);
    }

    #[test]
    fn volume_without_a_target_exits_125() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        let out = stage.run().args(["-v", "relative"]).cmd(["true"]).output();
        cli_checks::expect_runtime_failure(&stage, &out, &["relative"]);
    }
}

/// The command line and the container's life, as in stage 1, now in a rootfs.
mod cli {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn exit_code_is_the_commands() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::exit_code_is_the_commands(&stage);
    }

    #[test]
    fn missing_program_exits_127() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::missing_program_exits_127(&stage);
    }

    #[test]
    fn unknown_command_exits_127() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::unknown_command_exits_127(&stage);
    }

    #[test]
    fn non_executable_file_exits_126() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::non_executable_file_exits_126(&stage);
    }

    #[test]
    fn unknown_option_exits_125() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        cli_checks::unknown_option_exits_125(&stage);
    }

    #[test]
    fn sigterm_is_forwarded_to_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGTERM);
    }

    #[test]
    fn sigint_is_forwarded_to_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGINT);
    }

    #[test]
    fn sighup_is_forwarded_to_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGHUP);
    }

    #[test]
    fn sigquit_is_forwarded_to_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGQUIT);
    }

    #[test]
    fn sigwinch_is_forwarded_to_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, Signal::SIGWINCH);
    }

    #[test]
    fn sigusr1_and_sigusr2_are_forwarded_to_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::user_signals_are_forwarded(&stage);
    }

    #[test]
    fn stdin_reaches_the_command() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::stdin_reaches_the_command(&stage);
    }

    #[test]
    fn killed_container_exits_128_plus_signal() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::killed_container_exits_128_plus_n(&stage);
    }

    #[test]
    fn echo_dollar_dollar_prints_1() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pid::echo_dollar_dollar_prints_1(&stage);
    }

    #[test]
    fn probe_is_pid_1_with_no_visible_parent() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        pid::probe_is_pid_1(&stage);
    }

    #[test]
    fn hostname_option_sets_the_hostname_inside_only() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::hostname_option_sets_the_hostname(&stage);
    }

    #[test]
    fn uts_and_ipc_namespaces_differ_from_the_hosts() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::uts_and_ipc_namespaces_differ_from_the_hosts(&stage);
    }

    #[test]
    fn environment_is_clean() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::environment_is_clean(&stage);
    }

    #[test]
    fn env_option_sets_variables() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::env_option_sets_variables(&stage);
    }

    #[test]
    fn workdir_option_sets_the_directory() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::workdir_option_sets_the_directory(&stage);
    }

    #[test]
    fn explain_shows_the_clone_call() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        cli_checks::explain_shows_the_clone_call(&stage);
    }

    #[test]
    fn explain_shows_pivot_root() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let out = stage.run().arg("--explain").cmd(["true"]).output();
        out.expect_success();
        assert!(
            out.stderr.lines().any(|line| line.contains("pivot_root(")),
            "--explain should show the pivot_root call\n{out}"
        );
    }

    #[test]
    fn doctor_succeeds_as_root() {
        let stage = need!(stage02());
        cli_checks::doctor_succeeds_as_root(&stage);
    }

    #[test]
    fn non_root_exits_125_and_suggests_sudo_or_stage03() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        cli_checks::non_root_exits_125_and_says_why(&stage);
    }

    #[test]
    fn inherited_fds_are_not_visible_inside() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::inherited_fds_are_closed(&stage);
    }

    #[test]
    fn processes_are_killed_when_pid_1_exits() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::background_processes_die_with_the_container(&stage);
    }

    #[test]
    fn container_dies_when_the_runtime_is_killed() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        lifecycle::container_dies_when_the_runtime_is_killed(&stage, &[]);
    }

    #[test]
    fn a_refused_run_leaves_no_child_behind() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        let subreaper = Path::new(env!("CARGO_BIN_EXE_keel-subreaper"));
        lifecycle::refused_run_leaves_no_child(
            &stage,
            subreaper,
            |stage| stage.run().args(["-w", "/nonexistent"]).cmd(["true"]),
            cli_checks::RUNTIME_FAILED,
        );
        lifecycle::refused_run_leaves_no_child(
            &stage,
            subreaper,
            |stage| stage.run().cmd(["keel-no-such-command"]),
            cli_checks::NOT_FOUND,
        );
    }

    #[test]
    fn misspelled_subcommand_exits_125_with_a_suggestion() {
        let stage = need!(stage02());
        let _leaks = LeakCheck::start();
        cli_checks::misspelled_subcommand_exits_125_with_a_suggestion(&stage);
    }
}

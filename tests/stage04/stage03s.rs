//! Stage 3's graders, on stage 4. A stage is the one before plus one feature, so what
//! stage 3 promises stage 4 keeps, with its network on: the default, slirp4netns where
//! it can work. The network layer changes what some of them see (`/sys` is now a sysfs
//! of the container's own network namespace; a run has helpers and a run directory to
//! clean up), and every one of these ends with the `Net` check that nothing is left.

use super::*;
use keel_graders::checks::{
    cli as cli_checks, dev, init, lifecycle, pid, pseudofs, rootfs as rootfs_checks, sealed,
    terminal, workdir,
};

/// What stage 4 binds into the container, besides what stage 3 mounts.
const ETC_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// One grader per shared check, each on the rootless stage 4 of the test user with
/// subordinate ids: `name => |stage| check(stage)`.
macro_rules! graders {
    ($($name:ident => |$stage:ident| $check:expr;)*) => {$(
        #[test]
        fn $name() {
            let net = need!(rootless());
            let _leaks = LeakCheck::start();
            let $stage = &net.stage;
            $check;
        }
    )*};
}

graders! {
    probe_is_pid_1 => |stage| pid::probe_is_pid_1(stage);
    ps_lists_only_the_containers_processes =>
        |stage| pid::ps_lists_only_the_containers_processes(stage, &["ps", "-o", "pid"]);
    proc_is_mounted_nosuid_nodev_noexec => |stage| pid::proc_is_mounted_nosuid_nodev_noexec(stage);
    ls_root_shows_the_rootfs => |stage| rootfs_checks::ls_root_shows_the_rootfs(stage);
    old_root_is_detached => |stage| rootfs_checks::old_root_is_detached(stage, &ETC_FILES);
    ls_dev_shows_the_standard_devices => |stage| dev::ls_dev_shows_the_standard_devices(stage);
    ptmx_allocates_in_the_containers_devpts =>
        |stage| dev::ptmx_allocates_in_the_containers_devpts(stage, None);
    sys_is_read_only => |stage| pseudofs::sys_is_read_only(stage);
    masked_proc_files_read_empty =>
        |stage| pseudofs::masked_files_read_empty(stage, &pseudofs::MASKED_FILES[..3]);
    default_hostname_is_keel => |stage| cli_checks::default_hostname_is_keel(stage);
    uts_and_ipc_namespaces_differ_from_the_hosts =>
        |stage| cli_checks::uts_and_ipc_namespaces_differ_from_the_hosts(stage);
    exit_code_is_the_commands => |stage| cli_checks::exit_code_is_the_commands(stage);
    missing_program_exits_127 => |stage| cli_checks::missing_program_exits_127(stage);
    non_executable_file_exits_126 => |stage| cli_checks::non_executable_file_exits_126(stage);
    unknown_option_exits_125 => |stage| cli_checks::unknown_option_exits_125(stage);
    stdin_reaches_the_command => |stage| cli_checks::stdin_reaches_the_command(stage);
    environment_is_clean => |stage| cli_checks::environment_is_clean(stage);
    env_option_sets_variables => |stage| cli_checks::env_option_sets_variables(stage);
    workdir_option_sets_the_directory => |stage| cli_checks::workdir_option_sets_the_directory(stage);
    sigterm_is_forwarded => |stage| lifecycle::signal_is_forwarded(stage, Signal::SIGTERM);
    sigusr1_and_sigusr2_are_forwarded => |stage| lifecycle::user_signals_are_forwarded(stage);
    killed_container_exits_128_plus_signal =>
        |stage| lifecycle::killed_container_exits_128_plus_n(stage);
    inherited_fds_are_closed => |stage| lifecycle::inherited_fds_are_closed(stage);
    background_processes_die_with_the_container =>
        |stage| lifecycle::background_processes_die_with_the_container(stage);
    pid_1_is_keels_init => |stage| init::pid_1_is_keels_init(stage);
    orphans_are_reaped => |stage| init::orphans_are_reaped(stage);
    the_command_cannot_ptrace_the_init => |stage| init::the_command_cannot_ptrace_the_init(stage);
    container_has_no_controlling_terminal =>
        |stage| terminal::container_has_no_controlling_terminal(stage);
    tiocsti_cannot_type_into_the_callers_terminal =>
        |stage| terminal::tiocsti_cannot_type_into_the_callers_terminal(stage);
    tty_is_pts_0_of_the_containers_devpts =>
        |stage| terminal::tty_gives_a_terminal_of_the_callers_size(stage, true);
    termios_are_restored_on_exit => |stage| terminal::termios_are_restored_on_exit(stage);
    end_of_input_reaches_the_terminal => |stage| terminal::end_of_input_reaches_the_terminal(stage);
    missing_workdir_is_refused => |stage| workdir::missing_workdir_is_refused(stage);
}

/// `-w /proc/self/fd/N`, N a directory of the host the caller left open.
#[test]
fn workdir_through_an_inherited_fd_is_refused() {
    let user = need!(users::with_ranges());
    let net = need!(Net::as_user(user));
    let host = users::dir_owned_by(user.uid, user.gid, 0o755);
    std::fs::write(host.path().join("secret"), "host\n").expect("write a host file");
    let _leaks = LeakCheck::start();
    workdir::workdir_through_an_inherited_fd_is_refused(&net.stage, host.path());
}

/// A container that runs `chroot ..` repeatedly stays in its root.
#[test]
fn chroot_breakout_does_not_reach_the_host() {
    let net = need!(rootless());
    let marker = rootfs_checks::host_marker(users::shared_dir());
    let _leaks = LeakCheck::start();
    rootfs_checks::chroot_breakout_does_not_reach_the_host(&net.stage, marker.path());
}

/// A runtime killed by SIGKILL takes its container with it (also the init's, under
/// `--init`); its run directory is left, and the next run removes it.
#[test]
fn container_dies_when_the_runtime_is_killed() {
    let net = need!(rootless());
    let _leaks = LeakCheck::start();
    lifecycle::container_dies_when_the_runtime_is_killed(&net.stage, &[]);
    init::container_dies_with_a_killed_runtime(&net.stage);
    // Each run removes what the killed ones before it left: one is left here.
    assert_eq!(net.run_dirs().len(), 1, "the last killed run's directory");
    // A run that keeps a run directory (slirp4netns's socket) sweeps the old ones.
    net.stage
        .run()
        .args(["--network", "slirp4netns"])
        .cmd(["true"])
        .output()
        .expect_success();
}

/// The runtime's binary out of the container's reach (CVE-2019-5736).
mod sealed_exe {
    use super::*;
    use keel_graders::attacker;

    /// The user's own binary (as `cargo run` builds it): the runtime runs from a
    /// read-only view of it.
    #[test]
    fn runtime_runs_from_a_read_only_view() {
        let user = need!(users::with_ranges());
        let busybox = need!(users::accessible_busybox());
        let (_dir, binary) = users::binary_owned_by(&binary(), user.uid, user.gid);
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), busybox])
            .with_options(["--network", "none"])
            .as_user(user.run_as());
        let _leaks = LeakCheck::start();
        sealed::runtime_runs_from_a_read_only_view(&stage, &binary);
    }

    /// Root's binary, run by a user: no copy, and the attack is refused all the same.
    #[test]
    fn roots_binary_run_by_a_user_is_out_of_reach_uncopied() {
        let user = need!(users::with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        let (_dir, binary) = users::binary_owned_by(&binary(), 0, 0);
        need!(attacker::arm(rootfs.path(), &binary));
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), rootfs.path()])
            .with_options(["--network", "none"])
            .as_user(user.run_as());
        let _leaks = LeakCheck::start();
        sealed::roots_binary_run_by_a_user_is_not_copied(&stage, &binary);
    }
}

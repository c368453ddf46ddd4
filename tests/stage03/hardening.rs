//! Defences of the runner, graded rootless: the runtime's binary out of reach
//! (CVE-2019-5736; `cargo run` by a user runs a binary the user owns, which container
//! root, mapped to that user, could write), no way into the caller's terminal
//! (CVE-2017-5226), `--init`, and `-w` resolved inside the root (CVE-2024-21626).

use super::*;
use keel_graders::attacker;
use keel_graders::checks::{init, sealed, terminal, workdir};
use nix::sys::signal::Signal;

/// A copy of the stage's binary owned by `uid:gid` (see [`users::binary_owned_by`]).
fn binary_owned_by(uid: u32, gid: u32) -> (tempfile::TempDir, PathBuf) {
    users::binary_owned_by(Path::new(env!("CARGO_BIN_EXE_keel-stage03")), uid, gid)
}

mod sealed_exe {
    use super::*;

    /// The user's own binary: the runtime re-executes through a read-only mount of it.
    #[test]
    fn runtime_runs_from_a_read_only_view() {
        let (user, _) = need!(with_ranges());
        let busybox = need!(users::accessible_busybox());
        let (_dir, binary) = binary_owned_by(user.uid, user.gid);
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), busybox])
            .as_user(user.run_as());
        let _leaks = LeakCheck::start();
        sealed::runtime_runs_from_a_read_only_view(&stage, &binary);
    }

    /// The user's own binary, gone from its path (a new build replaced it): no view
    /// can be mounted, and the runtime copies itself.
    #[test]
    fn a_binary_gone_from_its_path_runs_from_a_sealed_memfd() {
        let (user, _) = need!(with_ranges());
        let busybox = need!(users::accessible_busybox());
        let (_dir, binary) = binary_owned_by(user.uid, user.gid);
        let (program, args) = sealed::deleted_binary_wrapper();
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), busybox])
            .as_user(user.run_as())
            .wrapped_in(program, args);
        let _leaks = LeakCheck::start();
        sealed::runtime_runs_from_a_sealed_copy(&stage);
    }

    /// Root's binary, run by a user: no copy, and the attack is refused all the same.
    #[test]
    fn roots_binary_run_by_a_user_is_out_of_reach_uncopied() {
        let (user, _) = need!(with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        let (_dir, binary) = binary_owned_by(0, 0);
        need!(attacker::arm(rootfs.path(), &binary));
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), rootfs.path()])
            .as_user(user.run_as());
        let _leaks = LeakCheck::start();
        sealed::roots_binary_run_by_a_user_is_not_copied(&stage, &binary);
    }

    /// The user's own binary (as `cargo run` builds it), run by the user: container
    /// root is that user, so the file would be writable to it.
    #[test]
    fn proc_self_exe_cannot_overwrite_the_users_runtime() {
        let (user, _) = need!(with_ranges());
        let rootfs = need!(users::private_rootfs(user));
        let (_dir, binary) = binary_owned_by(user.uid, user.gid);
        need!(attacker::arm(rootfs.path(), &binary));
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), rootfs.path()])
            .as_user(user.run_as());
        let _leaks = LeakCheck::start();
        sealed::runtime_binary_is_out_of_reach(&stage, &binary);
    }

    #[test]
    fn proc_self_exe_is_not_roots_runtime_with_userns_auto() {
        need!(users::require_root());
        let rootfs = need!(rootfs::private_copy());
        let (_dir, binary) = binary_owned_by(0, 0);
        need!(attacker::arm(rootfs.path(), &binary));
        let stage = Runtime::new(NAME, &binary).with_options([
            Path::new("--rootfs"),
            rootfs.path(),
            Path::new("--userns"),
            Path::new("auto"),
        ]);
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        sealed::runtime_binary_is_out_of_reach(&stage, &binary);
    }
}

mod session {
    use super::*;

    #[test]
    fn container_has_no_controlling_terminal() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::container_has_no_controlling_terminal(&stage);
    }

    #[test]
    fn tiocsti_cannot_type_into_the_callers_terminal() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::tiocsti_cannot_type_into_the_callers_terminal(&stage);
    }

    #[test]
    fn tiocsti_cannot_type_into_the_callers_terminal_without_ranges() {
        let (_, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        terminal::tiocsti_cannot_type_into_the_callers_terminal(&stage);
    }

    #[test]
    fn tiocsti_cannot_type_into_roots_terminal_with_userns_auto() {
        let stage = need!(root_busybox()).with_options(["--userns", "auto"]);
        let _subid = users::KeelRangeGuard::acquire();
        let _leaks = LeakCheck::start();
        terminal::tiocsti_cannot_type_into_the_callers_terminal(&stage);
    }

    #[test]
    fn tiocsti_with_a_terminal_stays_in_the_container() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::tiocsti_with_a_terminal_stays_in_the_container(&stage);
    }

    #[test]
    fn tty_is_pts_0_of_the_containers_devpts() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::tty_gives_a_terminal_of_the_callers_size(&stage, true);
    }

    #[test]
    fn console_is_the_containers_terminal() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::console_is_the_containers_terminal(&stage);
    }

    #[test]
    fn window_size_follows_a_resize() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::window_size_follows_a_resize(&stage);
    }

    #[test]
    fn ctrl_c_interrupts_the_command_not_the_shell() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::ctrl_c_interrupts_the_command_not_the_shell(&stage);
    }

    #[test]
    fn no_command_on_a_terminal_gives_a_shell_with_job_control() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::no_command_on_a_terminal_gives_a_shell_with_job_control(&stage);
    }

    #[test]
    fn end_of_input_reaches_the_terminal() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::end_of_input_reaches_the_terminal(&stage);
    }

    #[test]
    fn termios_are_restored_on_exit_and_after_signals() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        terminal::termios_are_restored_on_exit(&stage);
        for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            terminal::termios_are_restored_after_a_signal(&stage, signal);
        }
    }
}

mod init_process {
    use super::*;

    #[test]
    fn pid_1_is_keels_init() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        init::pid_1_is_keels_init(&stage);
    }

    #[test]
    fn orphans_are_reaped() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        init::orphans_are_reaped(&stage);
    }

    #[test]
    fn container_dies_with_a_killed_runtime() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        init::container_dies_with_a_killed_runtime(&stage);
    }

    #[test]
    fn a_signal_reaches_a_command_without_handlers() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        init::a_signal_reaches_a_command_without_handlers(&stage);
    }

    #[test]
    fn the_command_cannot_ptrace_the_init() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        init::the_command_cannot_ptrace_the_init(&stage);
    }

    #[test]
    fn container_dies_with_a_killed_runtime_without_ranges() {
        let (_, stage) = need!(without_ranges());
        let _leaks = LeakCheck::start();
        init::container_dies_with_a_killed_runtime(&stage);
    }
}

mod working_directory {
    use super::*;

    #[test]
    fn workdir_through_an_inherited_fd_is_refused() {
        let (user, stage) = need!(with_ranges());
        let host = users::dir_owned_by(user.uid, user.gid, 0o755);
        std::fs::write(host.path().join("secret"), "host\n").expect("write a host file");
        let _leaks = LeakCheck::start();
        workdir::workdir_through_an_inherited_fd_is_refused(&stage, host.path());
    }

    #[test]
    fn missing_workdir_is_refused() {
        let (_, stage) = need!(with_ranges());
        let _leaks = LeakCheck::start();
        workdir::missing_workdir_is_refused(&stage);
    }

    #[test]
    fn workdir_through_a_climbing_symlink_stays_inside() {
        let (user, _) = need!(with_ranges());
        let (stage, rootfs) = need!(private_as(user));
        std::os::unix::fs::symlink("../../../../etc", rootfs.path().join("up"))
            .expect("symlink in the rootfs");
        let passwd = std::fs::read_to_string(rootfs.path().join("etc/passwd")).expect("passwd");
        let _leaks = LeakCheck::start();
        workdir::workdir_through_a_climbing_symlink_stays_inside(&stage, &passwd);
    }
}

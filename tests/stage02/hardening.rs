//! Defences of the runner, graded with stage 2's root of its own: the runtime's binary
//! out of reach (CVE-2019-5736), a session and a terminal of the container's own
//! (CVE-2017-5226), `--init`, and `-w` resolved inside the root (CVE-2024-21626).

use super::*;
use keel_graders::checks::{init, sealed, terminal, workdir};
use keel_graders::{attacker, runtime::install_executable};
use nix::sys::signal::Signal;

/// A copy of the stage's binary that this test alone runs (the attack, if it worked,
/// would overwrite it), in a new directory.
fn own_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let copy = install_executable(Path::new(env!("CARGO_BIN_EXE_keel-stage02")), dir.path());
    (dir, copy)
}

mod sealed_exe {
    use super::*;

    #[test]
    fn runtime_runs_from_a_sealed_memfd() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        sealed::runtime_runs_from_a_sealed_copy(&stage);
    }

    /// `#!/proc/self/exe` in a rootfs whose dynamic loader is the attacker's: the
    /// container must not reach the host's binary, nor change it once the runtime dies.
    #[test]
    fn proc_self_exe_cannot_overwrite_the_runtime() {
        need!(require_root());
        let rootfs = need!(rootfs::private_copy());
        let (_dir, binary) = own_binary();
        need!(attacker::arm(rootfs.path(), &binary));
        let stage =
            Runtime::new(NAME, &binary).with_options([Path::new("--rootfs"), rootfs.path()]);
        let _leaks = LeakCheck::start();
        sealed::runtime_binary_is_out_of_reach(&stage, &binary);
    }

    /// Installed on a read-only mount, the binary is out of reach without a copy.
    #[test]
    fn a_binary_on_a_read_only_mount_needs_no_copy() {
        need!(require_root());
        let rootfs = need!(rootfs::private_copy());
        let (_dir, binary) = own_binary();
        need!(attacker::arm(rootfs.path(), &binary));
        let (program, args) = sealed::read_only_wrapper();
        let stage = Runtime::new(NAME, &binary)
            .with_options([Path::new("--rootfs"), rootfs.path()])
            .wrapped_in(program, args);
        let _leaks = LeakCheck::start();
        sealed::binary_on_a_read_only_mount_is_not_copied(&stage, &binary);
    }
}

mod session {
    use super::*;

    #[test]
    fn container_has_no_controlling_terminal() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::container_has_no_controlling_terminal(&stage);
    }

    #[test]
    fn tty_is_pts_0_of_the_containers_devpts() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::tty_gives_a_terminal_of_the_callers_size(&stage, true);
    }

    #[test]
    fn console_is_the_containers_terminal() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::console_is_the_containers_terminal(&stage);
    }

    #[test]
    fn tiocsti_with_a_terminal_stays_in_the_container() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::tiocsti_with_a_terminal_stays_in_the_container(&stage);
    }

    #[test]
    fn window_size_follows_a_resize() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::window_size_follows_a_resize(&stage);
    }

    #[test]
    fn ctrl_c_interrupts_the_command_not_the_shell() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::ctrl_c_interrupts_the_command_not_the_shell(&stage);
    }

    #[test]
    fn no_command_on_a_terminal_gives_a_shell_with_job_control() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::no_command_on_a_terminal_gives_a_shell_with_job_control(&stage);
    }

    #[test]
    fn termios_are_restored_on_exit_and_after_signals() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::termios_are_restored_on_exit(&stage);
        for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            terminal::termios_are_restored_after_a_signal(&stage, signal);
        }
    }

    #[test]
    fn end_of_input_reaches_the_terminal() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        terminal::end_of_input_reaches_the_terminal(&stage);
    }
}

mod init_process {
    use super::*;

    #[test]
    fn pid_1_is_keels_init() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        init::pid_1_is_keels_init(&stage);
    }

    #[test]
    fn orphans_are_reaped() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        init::orphans_are_reaped(&stage);
    }

    #[test]
    fn container_dies_with_a_killed_runtime() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        init::container_dies_with_a_killed_runtime(&stage);
    }

    #[test]
    fn a_signal_reaches_a_command_without_handlers() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        init::a_signal_reaches_a_command_without_handlers(&stage);
    }
}

mod working_directory {
    use super::*;

    #[test]
    fn workdir_through_an_inherited_fd_is_refused() {
        let stage = need!(stage02_busybox());
        let host = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(host.path().join("secret"), "host\n").expect("write a host file");
        let _leaks = LeakCheck::start();
        workdir::workdir_through_an_inherited_fd_is_refused(&stage, host.path());
    }

    #[test]
    fn workdir_through_a_climbing_symlink_stays_inside() {
        need!(require_root());
        let rootfs = need!(rootfs::private_copy());
        std::os::unix::fs::symlink("../../../../etc", rootfs.path().join("up"))
            .expect("symlink in the rootfs");
        let passwd = std::fs::read_to_string(rootfs.path().join("etc/passwd")).expect("passwd");
        let stage = in_rootfs(rootfs.path());
        let _leaks = LeakCheck::start();
        workdir::workdir_through_a_climbing_symlink_stays_inside(&stage, &passwd);
    }

    /// `openat2(RESOLVE_IN_ROOT)` answers `EAGAIN` to a `..` while anything is renamed
    /// anywhere on the machine, and asks to be tried again: a busy machine must not
    /// make `-w` (or any path in the rootfs) fail.
    #[test]
    fn workdir_through_a_climbing_symlink_holds_while_the_machine_renames() {
        need!(require_root());
        let rootfs = need!(rootfs::private_copy());
        std::os::unix::fs::symlink("../../../../etc", rootfs.path().join("up"))
            .expect("symlink in the rootfs");
        let passwd = std::fs::read_to_string(rootfs.path().join("etc/passwd")).expect("passwd");
        let stage = in_rootfs(rootfs.path());
        let churn = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (churn.path().join("a"), churn.path().join("b"));
        std::fs::create_dir(&a)
            .and_then(|()| std::fs::create_dir(&b))
            .expect("mkdir");
        std::fs::write(a.join("f"), "").expect("a file to move");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::rename(a.join("f"), b.join("f"));
                    let _ = std::fs::rename(b.join("f"), a.join("f"));
                }
            })
        };
        let _leaks = LeakCheck::start();
        for _ in 0..30 {
            workdir::workdir_through_a_climbing_symlink_stays_inside(&stage, &passwd);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().expect("the renaming thread");
    }

    #[test]
    fn missing_workdir_is_refused() {
        let stage = need!(stage02_busybox());
        let _leaks = LeakCheck::start();
        workdir::missing_workdir_is_refused(&stage);
    }
}

//! Defences every later stage inherits from the runner, each against a class of
//! attack that real runtimes have had CVEs for: the runtime's binary out of reach
//! (CVE-2019-5736), a session and a terminal of the container's own (CVE-2017-5226),
//! `--init`, and `-w` checked.

use super::*;
use keel_graders::checks::{init, sealed, terminal, workdir};
use nix::sys::signal::Signal;

/// The runtime runs from a sealed copy of itself (stage 1 has no rootfs of its own
/// for an attacker to arm: see stage02's grader for the attack itself).
mod sealed_exe {
    use super::*;

    #[test]
    fn runtime_runs_from_a_sealed_memfd() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        sealed::runtime_runs_from_a_sealed_copy(&stage);
    }
}

mod session {
    use super::*;

    #[test]
    fn container_has_no_controlling_terminal() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::container_has_no_controlling_terminal(&stage);
    }

    #[test]
    fn tty_gives_a_terminal_of_the_callers_size() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::tty_gives_a_terminal_of_the_callers_size(&stage, false);
    }

    #[test]
    fn window_size_follows_a_resize() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::window_size_follows_a_resize(&stage);
    }

    #[test]
    fn ctrl_c_interrupts_the_command_not_the_shell() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::ctrl_c_interrupts_the_command_not_the_shell(&stage);
    }

    #[test]
    fn no_command_on_a_terminal_gives_a_shell_with_job_control() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::no_command_on_a_terminal_gives_a_shell_with_job_control(&stage);
    }

    #[test]
    fn termios_are_restored_on_exit() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::termios_are_restored_on_exit(&stage);
    }

    #[test]
    fn termios_are_restored_after_sigterm_sigint_sighup() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            terminal::termios_are_restored_after_a_signal(&stage, signal);
        }
    }

    #[test]
    fn stdin_passes_through_with_i() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::stdin_passes_through_with_i(&stage);
    }

    #[test]
    fn end_of_input_reaches_the_terminal() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        terminal::end_of_input_reaches_the_terminal(&stage);
    }
}

mod init_process {
    use super::*;

    #[test]
    fn pid_1_is_keels_init() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        init::pid_1_is_keels_init(&stage);
    }

    #[test]
    fn orphans_are_reaped() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        init::orphans_are_reaped(&stage);
    }

    #[test]
    fn a_signal_reaches_a_command_without_handlers() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        init::a_signal_reaches_a_command_without_handlers(&stage);
    }

    #[test]
    fn exit_codes_pass_through() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        init::exit_codes_pass_through(&stage);
    }

    #[test]
    fn container_dies_with_a_killed_runtime() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        init::container_dies_with_a_killed_runtime(&stage);
    }
}

mod working_directory {
    use super::*;

    #[test]
    fn missing_workdir_is_refused() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        workdir::missing_workdir_is_refused(&stage);
    }
}

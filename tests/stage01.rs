//! Graders of stage 1 (`stage01-pidns`): a process that is PID 1 of its own PID
//! namespace, with its own /proc, hostname and IPC.
//!
//! Stage 1 has no root filesystem of its own: the container runs the host's programs
//! (`sh`, `ps`, `ls`) and the probe at its path on the host. It needs root; as any other
//! user every grader here is skipped.
//!
//! Every grader also checks that the host's mount table is unchanged afterwards.

use std::path::Path;

use keel_graders::checks::{cli as cli_checks, lifecycle, pid};
use keel_graders::{LeakCheck, Runtime, Skip, need, require_root};

/// The stage under test, as its twin binary built from the same library.
fn stage01() -> Result<Runtime, Skip> {
    require_root()?;
    Ok(Runtime::new(
        "stage01-pidns",
        env!("CARGO_BIN_EXE_keel-stage01"),
    ))
}

// Graders kept in files of their own (tests/stage01/), one module each.
#[path = "stage01/hardening.rs"]
mod hardening;

/// Exercise: the clone flags of the PID layer. Wrong flags, and the container is just
/// another process of the host.
mod clone_flags {
    use super::*;

    #[test]
    fn echo_dollar_dollar_prints_1() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        pid::echo_dollar_dollar_prints_1(&stage);
    }

    #[test]
    fn probe_is_pid_1_with_no_visible_parent() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        pid::probe_is_pid_1(&stage);
    }

    #[test]
    fn pid_namespace_differs_from_the_hosts() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        pid::pid_namespace_differs_from_the_hosts(&stage);
    }

    #[test]
    fn ps_lists_only_the_containers_processes() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        if Path::new("/bin/ps").exists() {
            pid::ps_lists_only_the_containers_processes(&stage, &["ps", "-A", "-o", "pid="]);
        } else {
            // Without procps, `ls /proc` shows the same thing: the PIDs one can see.
            pid::proc_lists_only_the_containers_pids(&stage);
        }
    }
}

/// Exercise: mounting a fresh /proc. A PID namespace alone is not enough: `ps` and
/// `ls /proc` read /proc, and the host's /proc shows the host's processes.
mod mount_proc {
    use super::*;
    use keel_graders::probe::{self, host_namespaces};

    #[test]
    fn ls_proc_shows_only_the_containers_pids() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        pid::proc_lists_only_the_containers_pids(&stage);
    }

    #[test]
    fn proc_self_status_says_pid_1() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        pid::proc_self_status_says_pid_1(&stage);
    }

    #[test]
    fn mount_namespace_differs_from_the_hosts() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        let report = probe::report(&stage);
        assert_ne!(
            report.namespace("mnt"),
            host_namespaces()["mnt"],
            "/proc must be mounted in a new mount namespace (CLONE_NEWNS), or the host's \
             /proc is replaced"
        );
    }

    #[test]
    fn proc_is_mounted_nosuid_nodev_noexec() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        pid::proc_is_mounted_nosuid_nodev_noexec(&stage);
    }

    #[test]
    fn hosts_proc_is_unchanged_afterwards() {
        let stage = need!(stage01());
        let leaks = LeakCheck::start();
        stage.run().cmd(["ls", "/proc"]).output().expect_success();
        leaks.assert_no_mount_leaked();
        // The host's /proc still belongs to the host's PID namespace.
        let own_pid = std::process::id().to_string();
        let self_link = std::fs::read_link("/proc/self").expect("readlink /proc/self");
        assert_eq!(
            self_link.to_string_lossy(),
            own_pid,
            "the host's /proc/self no longer points to the graders' own PID: the host's \
             /proc was replaced by the container's"
        );
    }
}

/// The command line: exit codes, hostname, environment, `--explain`, `doctor`, root.
mod cli {
    use super::*;

    #[test]
    fn exit_code_is_the_commands() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::exit_code_is_the_commands(&stage);
    }

    #[test]
    fn missing_program_exits_127() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::missing_program_exits_127(&stage);
    }

    #[test]
    fn unknown_command_exits_127() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::unknown_command_exits_127(&stage);
    }

    #[test]
    fn non_executable_file_exits_126() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::non_executable_file_exits_126(&stage);
    }

    #[test]
    fn unknown_option_exits_125() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::unknown_option_exits_125(&stage);
    }

    #[test]
    fn sigterm_is_forwarded_to_the_container() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, nix::sys::signal::Signal::SIGTERM);
    }

    #[test]
    fn sigint_is_forwarded_to_the_container() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, nix::sys::signal::Signal::SIGINT);
    }

    #[test]
    fn sighup_is_forwarded_to_the_container() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, nix::sys::signal::Signal::SIGHUP);
    }

    #[test]
    fn sigquit_is_forwarded_to_the_container() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, nix::sys::signal::Signal::SIGQUIT);
    }

    #[test]
    fn sigwinch_is_forwarded_to_the_container() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::signal_is_forwarded(&stage, nix::sys::signal::Signal::SIGWINCH);
    }

    #[test]
    fn sigusr1_and_sigusr2_are_forwarded_to_the_container() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::user_signals_are_forwarded(&stage);
    }

    #[test]
    fn stdin_reaches_the_command() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::stdin_reaches_the_command(&stage);
    }

    #[test]
    fn killed_container_exits_128_plus_signal() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::killed_container_exits_128_plus_n(&stage);
    }

    #[test]
    fn default_hostname_is_keel() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::default_hostname_is_keel(&stage);
    }

    #[test]
    fn hostname_option_sets_the_hostname_inside_only() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::hostname_option_sets_the_hostname(&stage);
    }

    #[test]
    fn uts_and_ipc_namespaces_differ_from_the_hosts() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::uts_and_ipc_namespaces_differ_from_the_hosts(&stage);
    }

    #[test]
    fn environment_is_clean() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::environment_is_clean(&stage);
    }

    #[test]
    fn env_option_sets_variables() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::env_option_sets_variables(&stage);
    }

    #[test]
    fn workdir_option_sets_the_directory() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::workdir_option_sets_the_directory(&stage);
    }

    #[test]
    fn explain_shows_the_clone_call() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::explain_shows_the_clone_call(&stage);
    }

    #[test]
    fn doctor_succeeds_as_root() {
        let stage = need!(stage01());
        cli_checks::doctor_succeeds_as_root(&stage);
    }

    #[test]
    fn non_root_exits_125_and_suggests_sudo_or_stage03() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::non_root_exits_125_and_says_why(&stage);
    }

    #[test]
    fn inherited_fds_are_not_visible_inside() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::inherited_fds_are_closed(&stage);
    }

    #[test]
    fn background_processes_are_gone_after_exit() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::background_processes_die_with_the_container(&stage);
    }

    #[test]
    fn container_dies_when_the_runtime_is_killed() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::container_dies_when_the_runtime_is_killed(&stage, &[]);
    }

    #[test]
    fn a_refused_run_leaves_no_child_behind() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        lifecycle::refused_run_leaves_no_child(
            &stage,
            Path::new(env!("CARGO_BIN_EXE_keel-subreaper")),
            |stage| stage.run().args(["-w", "/nonexistent"]).cmd(["true"]),
            cli_checks::RUNTIME_FAILED,
        );
    }

    #[test]
    fn misspelled_subcommand_exits_125_with_a_suggestion() {
        let stage = need!(stage01());
        let _leaks = LeakCheck::start();
        cli_checks::misspelled_subcommand_exits_125_with_a_suggestion(&stage);
    }
}

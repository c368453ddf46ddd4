//! The graders' harness: what every stage's graders share.
//!
//! The graders (`tests/stageNN.rs`) check properties a student can *see*: `echo $$`
//! prints 1, `ls /dev` shows the usual devices, a host file outside the rootfs cannot
//! be read. This library gives them the pieces to do so:
//!
//! - [`attacker`]: the attacker's side of CVE-2019-5736, a fixture built with `cc`;
//! - [`runtime`]: run a stage binary with a command, and get its output and exit code
//!   (always within a deadline: a hung container is a failed test, not a hung suite);
//! - [`running`]: a container still running, to read its output and send it signals;
//! - [`probe`]: the static `keel-probe` program, built once, and the JSON it reports;
//! - [`rootfs`]: a busybox root filesystem, built from the host's `busybox-static`;
//! - [`held_at_exec`]: a runtime's child stopped (under ptrace) on entry to `execve`,
//!   to attack the moment when it has joined the container but is not the command yet;
//! - [`leaks`]: the host's mount table must not change, and no process may be left;
//! - [`mountinfo`]: reading `/proc/*/mountinfo`;
//! - [`net`]: the container's network as the probe sees it, a server on the host's
//!   loopback, free ports, processes a run left (stage04);
//! - [`oci`]: OCI image layouts built from the entries a test names (stage05);
//! - [`registry`]: a real registry on loopback, and images pushed to it (stage05);
//! - [`skip`]: skipping, loudly, what this machine cannot run;
//! - [`terminal`]: running a stage on a pseudo-terminal, as from a keyboard;
//! - [`users`]: the ordinary users the rootless graders (stage03) run as, created and
//!   removed by the graders, and copies of the fixtures that those users can reach;
//! - [`groups`]: a group of the machine, made by a grader and removed after it;
//! - [`private_etc`]: root's runs in a mount namespace whose `/etc` is an overlay of
//!   the host's, for graders of `/etc/subuid` in states no machine should be in;
//! - [`vm`]: a virtual machine with a pure cgroup v2, for the graders of cgroups
//!   (stage06): a script, and the host binaries it runs, in Debian's kernel under qemu;
//! - [`workspace`]: where the workspace and the graders' build directories are;
//! - [`checks`]: graders that every stage passes the same way (exit codes, signals, the
//!   rootfs, ...).

pub mod attacker;
pub mod checks;
pub mod groups;
#[cfg(target_arch = "x86_64")]
pub mod held_at_exec;
pub mod leaks;
pub mod mountinfo;
pub mod net;
pub mod oci;
pub mod private_etc;
pub mod probe;
pub mod registry;
pub mod rootfs;
pub mod running;
pub mod runtime;
pub mod skip;
pub mod terminal;
pub mod users;
pub mod vm;
pub mod workspace;

pub use leaks::{LeakCheck, Marker};
pub use probe::{BreakoutReport, CallReport, ProbeReport, ReadReport};
pub use running::Running;
pub use runtime::{Invocation, Output, RunAs, Runtime};
pub use skip::{Skip, require_root};

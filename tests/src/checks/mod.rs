//! Graders that every stage passes in the same way.
//!
//! Stage N is stage N-1 plus one feature, so what stage01 promises, stage02 must still
//! keep: `echo $$` still prints 1, exit codes still follow docker's convention, signals
//! are still forwarded; and what stage02 promises of the rootfs, stage03 keeps for an
//! ordinary user. Each check here takes the [`Runtime`](crate::Runtime) to grade (and
//! whatever else differs between the stages), and each stage's test file calls it from
//! a test named for what it shows.
//!
//! - [`cli`]: exit codes, environment, working directory, hostname, `--explain`, `doctor`;
//! - [`lifecycle`]: signals, the container's processes, inherited fds;
//! - [`pid`]: the PID namespace seen from inside;
//! - [`rootfs`]: `ls /`, `pivot_root` and the old root, the chroot breakout, the default
//!   rootfs of the host's programs (stage02 and later);
//! - [`dev`]: the devices of `/dev` (stage02 and later);
//! - [`pseudofs`]: `/sys`, `/tmp` and the masked files of `/proc` (stage02 and later);
//! - [`sealed`]: the runtime's binary is out of the container's reach (CVE-2019-5736);
//! - [`terminal`]: a session of the container's own, and its own terminal with `-t`;
//! - [`init`]: `--init` reaps orphans and does not outlive the runtime;
//! - [`workdir`]: `-w` is resolved inside the container's root (CVE-2024-21626).

pub mod cli;
pub mod dev;
pub mod init;
pub mod lifecycle;
pub mod pid;
pub mod pseudofs;
pub mod rootfs;
pub mod sealed;
pub mod terminal;
pub mod workdir;

//! `/dev`: a small set of safe devices bound from the host, never the host's whole
//! `/dev` (disks, `/dev/mem`, `/dev/kmsg`), and terminals of the container's own.

use std::collections::BTreeSet;

use crate::checks::rootfs::listing;
use crate::mountinfo;
use crate::probe::PtmxReport;
use crate::runtime::Runtime;

/// What `ls /dev` shows in a container without a terminal (with one, `console` too).
pub const STANDARD_DEVICES: [&str; 14] = [
    "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
    "tty", "urandom", "zero",
];

/// `ls /dev` shows exactly the standard devices (and `console`, if there is a
/// terminal).
pub fn ls_dev_shows_the_standard_devices(runtime: &Runtime) {
    let mut seen = listing(runtime, "/dev");
    seen.remove("console");
    let expected: BTreeSet<String> = STANDARD_DEVICES.into_iter().map(str::to_owned).collect();
    assert_eq!(
        seen, expected,
        "`ls /dev` should show exactly the standard devices, and console with a tty \
         (bound from the host: a user namespace may not mknod)"
    );
}

/// Opening `/dev/ptmx` in the container (as `uid`, or as container root) allocates a
/// terminal in the container's own devpts: the slave the kernel hands back
/// (`TIOCGPTPEER`) lives on the filesystem mounted at `/dev/pts`, which is none of the
/// host's devpts instances, and `/dev/pts/<TIOCGPTN>` is that very terminal.
pub fn ptmx_allocates_in_the_containers_devpts(runtime: &Runtime, uid: Option<u32>) {
    let who = uid.map_or("container root".to_owned(), |uid| format!("uid {uid}"));
    let mut args = vec!["ptmx".to_owned()];
    args.extend(uid.map(|uid| uid.to_string()));
    let report: PtmxReport = runtime.run().probe(&args).output().json();
    assert!(
        report.ok,
        "{who} could not open a terminal through /dev/ptmx ({:?}): it should be the \
         container's devpts's ptmx, open to every user (ptmxmode=0666)",
        report.error
    );
    let index = report.index.expect("the probe reports TIOCGPTN");
    assert!(
        report.peer_dev.is_some() && report.peer_dev == report.pts_dev,
        "the terminal that /dev/ptmx allocated (on {:?}) is not in the container's \
         /dev/pts (on {:?}): /dev/ptmx must lead to the ptmx of that devpts (a symlink to \
         pts/ptmx)\n{report:?}",
        report.peer_dev,
        report.pts_dev
    );
    let host: Vec<String> = mountinfo::own()
        .into_iter()
        .filter(|m| m.fs_type == "devpts")
        .map(|m| m.device)
        .collect();
    assert!(
        report
            .peer_dev
            .as_ref()
            .is_some_and(|dev| !host.contains(dev)),
        "the terminal was allocated in one of the host's devpts instances ({host:?}): the \
         container needs one of its own (newinstance)\n{report:?}"
    );
    assert_eq!(
        report.node_rdev, report.peer_rdev,
        "/dev/pts/{index} should be the terminal just allocated\n{report:?}"
    );
    assert_eq!(
        report.ptsname.as_deref(),
        Some(format!("/dev/pts/{index}").as_str()),
        "ptsname\n{report:?}"
    );
}

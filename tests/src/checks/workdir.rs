//! `-w DIR` is resolved inside the container's root (CVE-2024-21626).

use std::fs::File;
use std::path::Path;

use crate::runtime::Runtime;

/// The fd number the caller leaves open.
const FD: i32 = 7;

/// `-w /proc/self/fd/7`, with fd 7 an open directory of the host left by the caller:
/// refused (125), and the command never runs in the host's directory.
///
/// `host_dir` must hold a file named `secret` that the container must never list.
pub fn workdir_through_an_inherited_fd_is_refused(runtime: &Runtime, host_dir: &Path) {
    let dir = File::open(host_dir).expect("open the host directory");
    let out = runtime
        .run()
        .args(["-w", &format!("/proc/self/fd/{FD}")])
        .inherit_fd(FD, dir)
        .sh("ls -a; pwd")
        .output();
    assert!(
        !out.stdout.contains("secret"),
        "the container's working directory is a directory of the host, reached through \
         an inherited fd\n{out}"
    );
    out.expect_code(125);
    assert!(
        out.stderr.contains("-w /proc/self/fd/7"),
        "the error should name -w\n{out}"
    );
}

/// `-w` through a symlink of the rootfs that climbs out (`/up -> ../../../../etc`)
/// lands in the container's own `/etc`.
pub fn workdir_through_a_climbing_symlink_stays_inside(runtime: &Runtime, expected_passwd: &str) {
    let out = runtime
        .run()
        .args(["-w", "/up"])
        .sh("pwd; cat passwd")
        .output();
    out.expect_success();
    let (pwd, passwd) = out.stdout.split_once('\n').unwrap_or_default();
    assert_eq!(pwd, "/etc", "{out}");
    assert_eq!(
        passwd, expected_passwd,
        "not the container's /etc/passwd\n{out}"
    );
}

/// A `-w` that does not exist is refused (125), naming it: keel does not create it in
/// a rootfs that is the user's directory.
pub fn missing_workdir_is_refused(runtime: &Runtime) {
    let out = runtime
        .run()
        .args(["-w", "/no/such/dir"])
        .cmd(["true"])
        .output();
    out.expect_code(125);
    assert!(out.stderr.contains("-w /no/such/dir"), "{out}");
}

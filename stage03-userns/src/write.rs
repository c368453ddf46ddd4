//! Writing the maps, from the parent, while the child waits.
//!
//! The kernel accepts a map only from a process that holds the ids it names in the
//! *parent* namespace: the child could write the one line of its own uid (`unshare -r`
//! does), but never the subordinate ranges, and the setuid helpers that may write those
//! work from outside. So the parent writes every map (or has the helpers write them)
//! between `clone` and releasing the child: one handshake for every case.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use common::explain;
use nix::unistd::Pid;

use crate::idmap::IdMap;

/// Writes `uid` and `gid` into /proc/PID/{uid,gid}_map itself.
///
/// An unprivileged process may write a gid_map only after "deny" is in
/// /proc/PID/setgroups: otherwise container root could call setgroups(2) to *drop* a
/// group the user was put in to be kept out of files (`chmod 705` for "everyone but
/// that group").
pub fn write_directly(pid: Pid, uid: &IdMap, gid: &IdMap, deny_setgroups: bool) -> Result<()> {
    // ANCHOR: write_maps
    // EXERCISE: write "deny" to /proc/PID/setgroups (when deny_setgroups), then the uid map to /proc/PID/uid_map and the gid map to /proc/PID/gid_map, each with write_proc
    let proc = Path::new("/proc").join(pid.as_raw().to_string());
    if deny_setgroups {
        write_proc(
            &proc.join("setgroups"),
            "deny",
            "an unprivileged gid_map needs setgroups denied first",
        )?;
    }
    write_proc(
        &proc.join("uid_map"),
        &uid.to_proc_text(),
        "which host uids the container's uids stand for",
    )?;
    write_proc(
        &proc.join("gid_map"),
        &gid.to_proc_text(),
        "which host gids the container's gids stand for",
    )
    // ANCHOR_END: write_maps
}

// ANCHOR: write_proc
/// One write, in one `write(2)` call: the kernel takes a map whole or not at all.
fn write_proc(path: &Path, text: &str, why: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("write {} {:?}", path.display(), text))?;
    explain::step(
        format_args!("write {} {:?}", path.display(), text.trim_end()),
        why,
    );
    Ok(())
}
// ANCHOR_END: write_proc

/// Has the setuid helpers write the maps: they check /etc/subuid and /etc/subgid, so
/// that a user maps only the ids the administrator gave them.
///
/// newgidmap denies setgroups only for a map of the caller's own gid alone; with
/// subordinate gids it leaves it at "allow", and container root could then drop a
/// group that keeps the user out of files, as above. So the parent denies it first: it
/// may, since its user owns the child's user namespace.
pub fn write_with_helpers(
    pid: Pid,
    uid: &IdMap,
    gid: &IdMap,
    newuidmap: &Path,
    newgidmap: &Path,
) -> Result<()> {
    // ANCHOR: call_newuidmap
    // EXERCISE: write "deny" to /proc/PID/setgroups with write_proc (newgidmap would leave it at "allow"), then start newuidmap PID <uid map as arguments> and newgidmap PID <gid map as arguments> with start_helper (IdMap::to_args gives the arguments), then finish both
    write_proc(
        &Path::new("/proc")
            .join(pid.as_raw().to_string())
            .join("setgroups"),
        "deny",
        "keep the user's groups in force: container root may not drop one that denies access",
    )?;
    // The two helpers are independent: run them side by side, then wait for both.
    let uids = start_helper(newuidmap, pid, uid)?;
    let gids = start_helper(newgidmap, pid, gid)?;
    let (uids, gids) = (uids.finish(), gids.finish());
    uids.and(gids)
    // ANCHOR_END: call_newuidmap
}

// ANCHOR: start_helper
/// A helper that is running.
struct Helper {
    child: Child,
    shown: String,
}

/// Starts `helper PID CTR HOST COUNT...`.
fn start_helper(helper: &Path, pid: Pid, map: &IdMap) -> Result<Helper> {
    let shown = format!("{} {} {}", helper.display(), pid, map.to_args().join(" "));
    let child = Command::new(helper)
        .arg(pid.as_raw().to_string())
        .args(map.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {shown}"))?;
    Ok(Helper { child, shown })
}

impl Helper {
    /// Waits for the helper and turns its failure into a clear error.
    fn finish(self) -> Result<()> {
        let output = self
            .child
            .wait_with_output()
            .with_context(|| format!("waiting for {}", self.shown))?;
        if !output.status.success() {
            bail!(
                "{} failed ({}): {}",
                self.shown,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        explain::step(
            &self.shown,
            "the setuid helper checks /etc/subuid (or subgid) and writes the map for us",
        );
        Ok(())
    }
}
// ANCHOR_END: start_helper

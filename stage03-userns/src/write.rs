//! Writing the maps, from the parent, while the child waits.
//!
//! The kernel accepts a map only from a process that holds the ids it names in the
//! *parent* namespace: the child could write the one line of its own uid (`unshare -r`
//! does), but never the subordinate ranges, and the setuid helpers that may write those
//! work from outside. So the parent writes every map (or has the helpers write them)
//! between `clone` and releasing the child: one handshake for every case.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

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
    // EXERCISE: write "deny" to /proc/PID/setgroups with write_proc (newgidmap would leave it at "allow"), then start newuidmap PID <uid map as arguments> and newgidmap PID <gid map as arguments> one after the other (Helper::start; IdMap::to_args gives the arguments), wait for both (Helper::finish), fail if either failed, and explain what ran
    write_proc(
        &Path::new("/proc")
            .join(pid.as_raw().to_string())
            .join("setgroups"),
        "deny",
        "keep the user's groups in force: container root may not drop one that denies access",
    )?;
    // The two helpers are independent: start both, then wait for both.
    let uids = Helper::start(newuidmap, pid, uid)?;
    let gids = Helper::start(newgidmap, pid, gid);
    let uids = uids.finish();
    let gids = gids.and_then(Helper::finish);
    // Explained once both are done, in the same order every time.
    for ran in [uids?, gids?] {
        explain::step(
            ran,
            "the setuid helper checks /etc/subuid (or subgid) and writes the map for us",
        );
    }
    Ok(())
    // ANCHOR_END: call_newuidmap
}

// ANCHOR: start_helper
/// A helper started: `helper PID CTR HOST COUNT...`.
struct Helper {
    child: std::process::Child,
    /// Its command line, for messages.
    shown: String,
}

impl Helper {
    /// Starts the helper. std's spawn is a `vfork`: it returns as soon as the helper's
    /// `execve` has begun, so a second helper started right after runs beside the
    /// first.
    fn start(helper: &Path, pid: Pid, map: &IdMap) -> Result<Self> {
        let shown = format!("{} {} {}", helper.display(), pid, map.to_args().join(" "));
        let child = Command::new(helper)
            .arg(pid.as_raw().to_string())
            .args(map.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {shown}"))?;
        Ok(Self { child, shown })
    }

    /// Waits for the helper's end, and turns its failure into a clear error; returns
    /// the command line it ran.
    fn finish(self) -> Result<String> {
        let Self { child, shown } = self;
        let output = child
            .wait_with_output()
            .with_context(|| format!("waiting for {shown}"))?;
        if !output.status.success() {
            bail!(
                "{shown} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(shown)
    }
}
// ANCHOR_END: start_helper

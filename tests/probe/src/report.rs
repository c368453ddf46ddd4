//! `keel-probe`: the report of what this process sees.
//!
//! Every field comes from a file the kernel generates for the reading process
//! (`/proc/self/...`, `/sys/class/net`), so the report shows the container's view,
//! whatever the runtime claims. A field that cannot be read is `null` (or empty), never
//! a crash: a half-built container is exactly what the probe must be able to describe.

use std::collections::BTreeMap;
use std::fs;

use serde_json::{Value, json};

/// The namespaces the probe reports, by the names of `/proc/self/ns/*`.
const NAMESPACES: [&str; 7] = ["pid", "mnt", "uts", "ipc", "net", "user", "cgroup"];

/// The capability sets the probe reports, by their names in `/proc/self/status`.
const CAPABILITIES: [&str; 3] = ["CapEff", "CapPrm", "CapBnd"];

/// Everything the probe sees, as one JSON object.
pub fn report() -> Value {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    json!({
        "pid": std::process::id(),
        "ppid": std::os::unix::process::parent_id(),
        "uid": first_id(&status, "Uid:"),
        "gid": first_id(&status, "Gid:"),
        "hostname": read_trimmed("/proc/sys/kernel/hostname"),
        "uid_map": fs::read_to_string("/proc/self/uid_map").ok(),
        "gid_map": fs::read_to_string("/proc/self/gid_map").ok(),
        "namespaces": namespaces(),
        "mountinfo": lines("/proc/self/mountinfo"),
        "cgroup": lines("/proc/self/cgroup"),
        "interfaces": interfaces(),
        "capabilities": capabilities(&status),
        "cwd": std::env::current_dir().ok().map(|dir| dir.display().to_string()),
        "fds": open_fds(),
        "session": session(),
        "tty_nr": stat_field(7),
    })
}

/// The inode number of each namespace: `readlink /proc/self/ns/pid` is `pid:[4026531836]`.
/// Two processes are in the same namespace exactly when these numbers are equal.
fn namespaces() -> BTreeMap<&'static str, u64> {
    NAMESPACES
        .iter()
        .filter_map(|name| {
            let link = fs::read_link(format!("/proc/self/ns/{name}")).ok()?;
            let link = link.to_string_lossy();
            let inode = link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()?;
            Some((*name, inode))
        })
        .collect()
}

/// The first (real) id of a `Uid:` or `Gid:` line of `/proc/self/status`.
fn first_id(status: &str, key: &str) -> Option<u32> {
    status_field(status, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `CapEff`, `CapPrm` and `CapBnd`, as the hex strings the kernel prints.
fn capabilities(status: &str) -> BTreeMap<&'static str, String> {
    CAPABILITIES
        .iter()
        .filter_map(|name| {
            let value = status_field(status, &format!("{name}:"))?;
            Some((*name, value.trim().to_owned()))
        })
        .collect()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| line.strip_prefix(key))
}

/// Network interfaces, from `/sys/class/net`, or from `/proc/net/dev` when `/sys` is
/// not mounted (both show the reader's network namespace).
fn interfaces() -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir("/sys/class/net") {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => lines("/proc/net/dev")
            .iter()
            .filter_map(|line| Some(line.split_once(':')?.0.trim().to_owned()))
            .collect(),
    };
    names.sort();
    names
}

/// The open file descriptors, each with what it points to. The directory handle used
/// to list `/proc/self/fd` is itself an open fd while listing: it is left out. (It reads
/// `/proc/<pid>/fd`, with the PID as the /proc mount numbers it, which is not our own
/// PID when /proc belongs to another PID namespace: hence the pattern.)
fn open_fds() -> Vec<Value> {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<(u32, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .filter(|(_, target)| !is_fd_listing(target))
        .collect();
    fds.sort();
    fds.into_iter()
        .map(|(fd, target)| json!({ "fd": fd, "target": target }))
        .collect()
}

/// Whether `target` is `/proc/<digits>/fd`.
fn is_fd_listing(target: &str) -> bool {
    target
        .strip_prefix("/proc/")
        .and_then(|rest| rest.strip_suffix("/fd"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// The session id: the PID of the session leader (`getsid(0)`).
fn session() -> Option<i32> {
    // SAFETY: getsid has no memory arguments.
    let sid = unsafe { libc::getsid(0) };
    (sid >= 0).then_some(sid)
}

/// Field `n` (1-based, as in proc(5)) of `/proc/self/stat`: 7 is `tty_nr`, the
/// controlling terminal's device number, 0 for none.
fn stat_field(n: usize) -> Option<i64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

fn lines(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

//! What container root may still do: its capabilities.
//!
//! Root's power is about forty separate *capabilities* (capabilities(7)):
//! `CAP_SYS_ADMIN` mounts filesystems, `CAP_SYS_PTRACE` inspects any process,
//! `CAP_SYS_MODULE` loads code into the kernel, `CAP_MKNOD` makes device nodes. The
//! programs of a container need few of them: to change a file's owner, to bind a low
//! port, to change their uid. Just before `execve`, every other one leaves the
//! *bounding set*, the limit that no later `execve` can cross: not a setuid program's,
//! not that of a file with capabilities of its own. The inheritable and ambient sets
//! are emptied too: runc's CVE-2022-24769 was inheritable capabilities that reached
//! the programs of a container's non-root users.
//!
//! Without a user namespace (root's containers) this is what stands between container
//! root and the host: with `CAP_SYS_ADMIN` it could mount a cgroup v1 hierarchy and
//! set a `release_agent`, a program the host's kernel then runs as root
//! (CVE-2022-0492); with `CAP_MKNOD`, make a node for the host's disk in its `/dev`
//! and read it. In a user namespace, capabilities act only on what the namespace owns;
//! dropping them is one more wall.

use std::collections::{BTreeSet, HashSet};

use anyhow::{Result, bail};
use caps::{CapSet, Capability};

use crate::explain;

// ANCHOR: default
/// What a container keeps unless told otherwise: docker's default set, but for
/// `MKNOD`. docker can afford that one because its device cgroup denies the nodes it
/// would make; keel sets up no device cgroup. (podman also drops `NET_RAW` and
/// `AUDIT_WRITE`, and lets ping use ICMP echo sockets instead of raw ones; busybox's
/// ping, the offline image's, only knows raw sockets.)
pub const DEFAULT: [Capability; 13] = [
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETUID,
    Capability::CAP_SYS_CHROOT,
];
// ANCHOR_END: default

/// A capability as `--cap-add` takes it: `NET_ADMIN`, `net_admin` or `CAP_NET_ADMIN`;
/// `None` for `ALL`.
pub fn parse(name: &str) -> Result<Option<Capability>> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    match full.parse() {
        Ok(capability) => Ok(Some(capability)),
        Err(_) => bail!(
            "{name}: no such capability: give a name of capabilities(7), such as \
             NET_ADMIN or SYS_PTRACE, or ALL"
        ),
    }
}

/// The set a container keeps, as docker computes it: with `--cap-add ALL` every
/// capability but those dropped; with `--cap-drop ALL` only those added; otherwise the
/// defaults, plus those added, minus those dropped. A name that is no capability is an
/// error that names its flag.
pub fn kept(add: &[String], drop: &[String]) -> Result<Vec<Capability>> {
    let add = parse_all("--cap-add", add)?;
    let drop = parse_all("--cap-drop", drop)?;
    let named = |list: &[Option<Capability>]| list.iter().flatten().copied().collect();
    let mut kept: HashSet<Capability> = if add.contains(&None) {
        caps::all()
    } else if drop.contains(&None) {
        named(&add)
    } else {
        DEFAULT
            .iter()
            .chain(add.iter().flatten())
            .copied()
            .collect()
    };
    if !drop.contains(&None) || add.contains(&None) {
        for capability in drop.iter().flatten() {
            kept.remove(capability);
        }
    }
    let mut kept: Vec<Capability> = kept.into_iter().collect();
    kept.sort_by_key(Capability::index);
    Ok(kept)
}

fn parse_all(flag: &str, names: &[String]) -> Result<Vec<Option<Capability>>> {
    names
        .iter()
        .map(|name| parse(name).map_err(|err| anyhow::anyhow!("{flag} {err:#}")))
        .collect()
}

// ANCHOR: keep_only
/// Leaves only `keep` in this process's bounding set, and empties its inheritable and
/// ambient sets. Called last before `execve`, while we still hold `CAP_SETPCAP`; what
/// is effective now stays so until then (the runtime's own work is done). At `execve`
/// a root command gets the bounding set, and a non-root one nothing.
pub fn keep_only(keep: &[Capability]) -> Result<(), String> {
    let kept: BTreeSet<u8> = keep.iter().map(|c| c.index()).collect();
    // Every capability this kernel knows, also those newer than this program: numbers
    // go up from 0, and the first the kernel does not know is refused with EINVAL.
    let mut dropped = 0;
    for number in 0..=u8::MAX {
        if kept.contains(&number) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let rc =
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(number), 0, 0, 0) };
        match nix::errno::Errno::result(rc) {
            Ok(_) => dropped += 1,
            Err(nix::errno::Errno::EINVAL) => break,
            Err(errno) => {
                return Err(format!(
                    "prctl(PR_CAPBSET_DROP, {number}): {}",
                    errno.desc()
                ));
            }
        }
    }
    caps::clear(None, CapSet::Inheritable)
        .and_then(|()| caps::clear(None, CapSet::Ambient))
        .map_err(|err| format!("emptying the inheritable and ambient capabilities: {err}"))?;
    if explain::enabled() {
        explain::step(
            format_args!("prctl(PR_CAPBSET_DROP) x{dropped}"),
            format_args!("container root keeps only {}", names(keep)),
        );
    }
    Ok(())
}
// ANCHOR_END: keep_only

/// `CHOWN, KILL, ...`, or `nothing`.
pub fn names(set: &[Capability]) -> String {
    if set.is_empty() {
        return "nothing".to_owned();
    }
    set.iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn names_read_like_docker() {
        assert_eq!(parse("net_admin").unwrap(), Some(Capability::CAP_NET_ADMIN));
        assert_eq!(
            parse("CAP_SYS_PTRACE").unwrap(),
            Some(Capability::CAP_SYS_PTRACE)
        );
        assert_eq!(parse("all").unwrap(), None);
        for bad in ["", "CAP_", "NOPE", "cap_nope", "SYS ADMIN"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_and_drop_as_docker_does() {
        assert_eq!(kept(&[], &[]).unwrap().len(), DEFAULT.len());
        let with = kept(&s(&["NET_ADMIN"]), &s(&["CHOWN"])).unwrap();
        assert!(with.contains(&Capability::CAP_NET_ADMIN));
        assert!(!with.contains(&Capability::CAP_CHOWN));
        assert_eq!(kept(&[], &s(&["ALL"])).unwrap(), vec![]);
        assert_eq!(
            kept(&s(&["KILL"]), &s(&["ALL"])).unwrap(),
            vec![Capability::CAP_KILL]
        );
        let all_but = kept(&s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert!(!all_but.contains(&Capability::CAP_SYS_ADMIN));
        assert!(all_but.contains(&Capability::CAP_SYS_PTRACE));
    }
}

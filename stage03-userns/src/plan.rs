//! Which maps to write, and who writes them.
//!
//! | who runs keel | has subordinate ids and newuidmap | maps | written by |
//! |---|---|---|---|
//! | a user | yes | `0 uid 1` + `1 start count` | newuidmap / newgidmap |
//! | a user | no  | `0 uid 1` only | the parent, into /proc/PID/uid_map |
//! | root | `--userns=auto` | `0 start 65536` from a `keel` entry | the parent |
//! | root | (default) | no user namespace at all, as in stage 2 | — |
//!
//! `--uidmap`/`--gidmap` replace the maps; every host id they name must be the user's
//! own id or one of its subordinate ids.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::idmap::{IdMap, IdRange};
use crate::subid::{self, SubRange};

/// How the maps get written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// The parent writes /proc/PID/{uid,gid}_map itself: root may write any map, and
    /// a user may write the one line that maps its own id.
    Direct {
        /// Write "deny" to /proc/PID/setgroups first (required before an
        /// unprivileged gid_map).
        deny_setgroups: bool,
    },
    /// The setuid helpers write them, after checking /etc/subuid and /etc/subgid.
    Helpers {
        /// Path of newuidmap.
        newuidmap: PathBuf,
        /// Path of newgidmap.
        newgidmap: PathBuf,
    },
}

/// The maps of one container, and how they get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The uid map.
    pub uid: IdMap,
    /// The gid map.
    pub gid: IdMap,
    /// Who writes them.
    pub writer: Writer,
    /// A line for the user when the maps are less than they could be.
    pub notice: Option<String>,
}

/// Who is running keel, and what the machine offers them.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Effective uid and gid.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// The user's name (for /etc/subuid lookups and messages).
    pub user: String,
    /// Their subordinate uid ranges.
    pub subuids: Vec<SubRange>,
    /// Their subordinate gid ranges.
    pub subgids: Vec<SubRange>,
    /// newuidmap and newgidmap, when both are on PATH.
    pub helpers: Option<(PathBuf, PathBuf)>,
    /// The first host id after every range of every user: where a new range fits.
    pub free: u32,
}

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `--uidmap` lines.
    pub uidmap: Vec<IdRange>,
    /// `--gidmap` lines.
    pub gidmap: Vec<IdRange>,
    /// `--userns=auto` (root only): an unprivileged range for container root.
    pub auto: bool,
}

/// Decides the maps for an ordinary user. (Root is [`for_root`].)
pub fn for_user(facts: &Facts, request: &Request) -> Result<Plan> {
    if request.auto {
        bail!("--userns=auto is for root; an ordinary user gets its subordinate ids by default");
    }
    if !request.uidmap.is_empty() || !request.gidmap.is_empty() {
        return requested(facts, request);
    }
    // ANCHOR: default_maps
    let root = |id| IdRange {
        container: 0,
        host: id,
        count: 1,
    };
    let rest = |ranges: &[SubRange]| {
        let mut next = 1;
        ranges
            .iter()
            .map(move |r| {
                let line = IdRange {
                    container: next,
                    host: r.start,
                    count: r.count,
                };
                next += r.count;
                line
            })
            .collect::<Vec<_>>()
    };
    match (
        &facts.helpers,
        facts.subuids.is_empty() || facts.subgids.is_empty(),
    ) {
        (Some((newuidmap, newgidmap)), false) => Ok(Plan {
            uid: IdMap([vec![root(facts.uid)], rest(&facts.subuids)].concat()),
            gid: IdMap([vec![root(facts.gid)], rest(&facts.subgids)].concat()),
            writer: Writer::Helpers {
                newuidmap: newuidmap.clone(),
                newgidmap: newgidmap.clone(),
            },
            notice: None,
        }),
        (helpers, no_ranges) => Ok(Plan {
            uid: IdMap(vec![root(facts.uid)]),
            gid: IdMap(vec![root(facts.gid)]),
            writer: Writer::Direct {
                deny_setgroups: true,
            },
            notice: Some(single_map_notice(facts, helpers.is_none(), no_ranges)),
        }),
    }
    // ANCHOR_END: default_maps
}

// ANCHOR: for_root
/// Decides the maps for root: none unless asked, since root needs no user namespace
/// to create the others; with `--userns=auto`, an unprivileged range of its own.
pub fn for_root(
    request: &Request,
    auto_range: impl FnOnce() -> Result<(SubRange, SubRange)>,
) -> Result<Option<Plan>> {
    let direct = Writer::Direct {
        deny_setgroups: false,
    };
    if request.auto {
        if !request.uidmap.is_empty() || !request.gidmap.is_empty() {
            bail!(
                "--userns=auto chooses the maps itself: drop --uidmap/--gidmap, or drop --userns=auto"
            );
        }
        let (uids, gids) = auto_range()?;
        let whole = |r: &SubRange| {
            IdMap(vec![IdRange {
                container: 0,
                host: r.start,
                count: r.count,
            }])
        };
        return Ok(Some(Plan {
            uid: whole(&uids),
            gid: whole(&gids),
            writer: direct,
            notice: None,
        }));
    }
    if request.uidmap.is_empty() && request.gidmap.is_empty() {
        return Ok(None);
    }
    let (uid, gid) = pair(request);
    check_maps(&uid, &gid)?;
    Ok(Some(Plan {
        uid,
        gid,
        writer: direct,
        notice: None,
    }))
}
// ANCHOR_END: for_root

// ANCHOR: requested
/// `--uidmap`/`--gidmap` given by an ordinary user: every host id must be theirs.
fn requested(facts: &Facts, request: &Request) -> Result<Plan> {
    let (uid, gid) = pair(request);
    check_maps(&uid, &gid)?;
    allowed(
        &uid,
        facts.uid,
        &facts.subuids,
        "uid",
        subid::SUBUID,
        &facts.user,
    )?;
    allowed(
        &gid,
        facts.gid,
        &facts.subgids,
        "gid",
        subid::SUBGID,
        &facts.user,
    )?;
    let writer = if uid.is_only(facts.uid) && gid.is_only(facts.gid) {
        Writer::Direct {
            deny_setgroups: true,
        }
    } else {
        match &facts.helpers {
            Some((newuidmap, newgidmap)) => Writer::Helpers {
                newuidmap: newuidmap.clone(),
                newgidmap: newgidmap.clone(),
            },
            None => bail!(
                "these maps name subordinate ids, which only newuidmap and newgidmap may \
                 write, and they are not on PATH: install them (apt-get install uidmap)"
            ),
        }
    };
    Ok(Plan {
        uid,
        gid,
        writer,
        notice: None,
    })
}
// ANCHOR_END: requested

/// podman's rule: a map given alone serves for both uids and gids.
fn pair(request: &Request) -> (IdMap, IdMap) {
    let uid = if request.uidmap.is_empty() {
        &request.gidmap
    } else {
        &request.uidmap
    };
    let gid = if request.gidmap.is_empty() {
        &request.uidmap
    } else {
        &request.gidmap
    };
    (IdMap(uid.clone()), IdMap(gid.clone()))
}

fn check_maps(uid: &IdMap, gid: &IdMap) -> Result<()> {
    for (map, what, flag) in [(uid, "uid", "--uidmap"), (gid, "gid", "--gidmap")] {
        map.check(what)?;
        if !map.0.iter().any(|r| r.container == 0) {
            bail!("{flag}: container {what} 0 (root) must be mapped, e.g. {flag} 0:<host id>:1");
        }
    }
    Ok(())
}

fn allowed(
    map: &IdMap,
    own: u32,
    ranges: &[SubRange],
    what: &str,
    file: &str,
    user: &str,
) -> Result<()> {
    for line in &map.0 {
        let ok =
            line.host_within(own, 1) || ranges.iter().any(|r| line.host_within(r.start, r.count));
        if !ok {
            let yours = std::iter::once(format!("{own} (yours)"))
                .chain(ranges.iter().map(|r| {
                    format!(
                        "{}-{}",
                        r.start,
                        u64::from(r.start) + u64::from(r.count) - 1
                    )
                }))
                .collect::<Vec<_>>()
                .join(", ");
            bail!(
                "--{what}map \"{}:{}:{}\": host {what}s {}-{} are not {user}'s to map; \
                 allowed: {yours} (from {file})",
                line.container,
                line.host,
                line.count,
                line.host,
                u64::from(line.host) + u64::from(line.count) - 1
            );
        }
    }
    Ok(())
}

fn single_map_notice(facts: &Facts, no_helpers: bool, no_ranges: bool) -> String {
    let install = "sudo apt-get install uidmap";
    let add_range = subid::usermod_fix(&facts.user, facts.free);
    let (why, fix) = match (no_helpers, no_ranges) {
        (true, true) => (
            format!(
                "newuidmap is not installed and {} has no subordinate ids",
                facts.user
            ),
            format!("{install} && {add_range}"),
        ),
        (true, false) => (
            "newuidmap/newgidmap are not on PATH".to_owned(),
            install.to_owned(),
        ),
        _ => (
            format!(
                "{} has no range in {} and {}",
                facts.user,
                subid::SUBUID,
                subid::SUBGID
            ),
            add_range,
        ),
    };
    format!(
        "only root is mapped (0 -> {}) because {why}; for users 1-65536 too: {fix}",
        facts.uid
    )
}

//! Which maps to write, and who writes them.
//!
//! | who runs keel | has subordinate ids and newuidmap | maps | written by |
//! |---|---|---|---|
//! | a user | yes | `0 uid 1` + `1 start count` | newuidmap / newgidmap |
//! | a user | no  | `0 uid 1` only | the parent, into /proc/PID/uid_map |
//! | root | `--userns=auto` | `0 start 65536`, a slice of the `keel` entry | the parent |
//! | root | (default) | no user namespace at all, as in stage 2 | — |
//!
//! `--uidmap`/`--gidmap` replace the maps; every host id they name must be the user's
//! own id or one of its subordinate ids.
//!
//! A user's ranges are mapped one after the other, from container id 1 on, as far as a
//! map can hold them: ids end at 4294967294 (inside and outside), a map has at most 340
//! lines, and its lines may not overlap. What does not fit is left out, and a notice
//! says so: a container with fewer ids is more use than no container.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::idmap::{self, IdMap, IdRange, MAX_LINES};
use crate::slices::{SLICE, Slice};
use crate::subid::{self, ID_LIMIT, SubRange};

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
    /// With `--userns=auto`: the slice of keel's range these maps use, given back in
    /// the layer's cleanup.
    pub slice: Option<Slice>,
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
    /// Where a new range of 65536 ids fits in both files (for the fix in a notice), or
    /// why none can be suggested.
    pub free: Result<u32, String>,
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
    match (
        &facts.helpers,
        facts.subuids.is_empty() || facts.subgids.is_empty(),
    ) {
        (Some((newuidmap, newgidmap)), false) => {
            let (uid, uids_left) = with_ranges(root(facts.uid), &facts.subuids);
            let (gid, gids_left) = with_ranges(root(facts.gid), &facts.subgids);
            let left: Vec<String> = uids_left.into_iter().chain(gids_left).collect();
            Ok(Plan {
                uid,
                gid,
                writer: Writer::Helpers {
                    newuidmap: newuidmap.clone(),
                    newgidmap: newgidmap.clone(),
                },
                notice: (!left.is_empty()).then(|| left_out_notice(&left)),
                slice: None,
            })
        }
        (helpers, no_ranges) => Ok(Plan {
            uid: IdMap(vec![root(facts.uid)]),
            gid: IdMap(vec![root(facts.gid)]),
            writer: Writer::Direct {
                deny_setgroups: true,
            },
            notice: Some(single_map_notice(facts, helpers.is_none(), no_ranges)),
            slice: None,
        }),
    }
    // ANCHOR_END: default_maps
}

// ANCHOR: with_ranges
/// The map of a user: `root` (its own id as container root), then its subordinate
/// ranges from container id 1 on, as far as a map can hold them. Also returns what was
/// left out, and why.
fn with_ranges(root: IdRange, ranges: &[SubRange]) -> (IdMap, Vec<String>) {
    let mut lines = vec![root];
    let mut left_out = Vec::new();
    let mut next: u64 = 1;
    for range in ranges {
        let Some((host, count)) = range.mappable() else {
            left_out.push(format!("{range} (past the last id)"));
            continue;
        };
        // Container ids end at the limit too.
        let count = u64::from(count).min(ID_LIMIT - next);
        let line = IdRange {
            container: u32::try_from(next).unwrap_or(u32::MAX),
            host,
            count: u32::try_from(count).unwrap_or(0),
        };
        if line.count == 0 || lines.len() == MAX_LINES {
            left_out.push(format!("{range} (the map is full)"));
        } else if let Some(clash) = lines
            .iter()
            .find(|l| idmap::overlaps(l.host, l.count, line.host, line.count))
        {
            left_out.push(format!("{range} (its ids overlap \"{clash}\")"));
        } else {
            if u64::from(line.count) < range.count {
                left_out.push(format!("{range} (cut to {} ids)", line.count));
            }
            next += u64::from(line.count);
            lines.push(line);
        }
    }
    (IdMap(lines), left_out)
}
// ANCHOR_END: with_ranges

fn left_out_notice(left: &[String]) -> String {
    format!(
        "not every subordinate id is mapped ({}): a map names ids up to {}, in at most \
         {MAX_LINES} lines that do not overlap",
        left.join(", "),
        ID_LIMIT - 1
    )
}

// ANCHOR: for_root
/// Decides the maps for root: none unless asked, since root needs no user namespace
/// to create the others; with `--userns=auto`, a slice of keel's range of its own.
pub fn for_root(
    request: &Request,
    auto_slice: impl FnOnce() -> Result<Slice>,
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
        let slice = auto_slice()?;
        let whole = |host| {
            IdMap(vec![IdRange {
                container: 0,
                host,
                count: SLICE,
            }])
        };
        return Ok(Some(Plan {
            uid: whole(slice.uid),
            gid: whole(slice.gid),
            writer: direct,
            notice: None,
            slice: Some(slice),
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
        slice: None,
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
        slice: None,
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
        let ok = line.host_within(own.into(), 1)
            || ranges.iter().any(|r| line.host_within(r.start, r.count));
        if !ok {
            let yours = std::iter::once(format!("{own} (yours)"))
                .chain(
                    ranges
                        .iter()
                        .filter(|r| r.count > 0)
                        .map(|r| format!("{}-{}", r.start, r.end() - 1)),
                )
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
    let add_range = match &facts.free {
        Ok(start) => subid::usermod_fix(&facts.user, *start),
        Err(why) => format!(
            "give {} a range of 65536 ids; none can be suggested: {why}",
            facts.user
        ),
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, count: u64) -> SubRange {
        SubRange {
            owner: b"alice".to_vec(),
            start,
            count,
        }
    }

    fn facts(subuids: Vec<SubRange>) -> Facts {
        Facts {
            uid: 1000,
            gid: 1000,
            user: "alice".into(),
            subgids: subuids.clone(),
            subuids,
            helpers: Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into())),
            free: Ok(100000),
        }
    }

    fn lines(map: &IdMap) -> Vec<(u32, u32, u32)> {
        map.0
            .iter()
            .map(|r| (r.container, r.host, r.count))
            .collect()
    }

    #[test]
    fn ranges_follow_root_from_container_id_1() {
        let plan = for_user(
            &facts(vec![range(100000, 65536), range(300000, 1000)]),
            &Request::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&plan.uid),
            [(0, 1000, 1), (1, 100000, 65536), (65537, 300000, 1000)]
        );
        assert!(plan.notice.is_none());
        assert!(plan.uid.check("uid").is_ok());
    }

    #[test]
    fn ranges_that_sum_past_the_last_id_are_cut_not_overflowed() {
        // Host ids that do not overlap cannot sum past the last id: counts that do
        // belong to overlapping ranges, or to ranges that run past the end.
        let plan = for_user(
            &facts(vec![
                range(100000, 3_000_000_000),
                range(200000, 3_000_000_000),
                range(4_000_000_000, 300_000_000),
            ]),
            &Request::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&plan.uid),
            [
                (0, 1000, 1),
                (1, 100000, 3_000_000_000),
                (3_000_000_001, 4_000_000_000, 294_967_295)
            ]
        );
        assert!(plan.uid.check("uid").is_ok());
        let notice = plan.notice.unwrap();
        assert!(
            notice.contains("alice:200000:3000000000 (its ids overlap \"1 100000 3000000000\")"),
            "{notice}"
        );
        assert!(notice.contains("cut to 294967295 ids"), "{notice}");
    }

    #[test]
    fn ranges_past_the_last_id_or_overlapping_are_left_out() {
        let plan = for_user(
            &facts(vec![
                range(u64::MAX, u64::MAX),
                range(100000, 65536),
                range(100000, 10),
                range(900, 200),
            ]),
            &Request::default(),
        )
        .unwrap();
        assert_eq!(lines(&plan.uid), [(0, 1000, 1), (1, 100000, 65536)]);
        assert!(plan.uid.check("uid").is_ok());
        let notice = plan.notice.unwrap();
        assert!(notice.contains("past the last id"), "{notice}");
        assert!(notice.contains("overlap \"0 1000 1\""), "{notice}");
    }

    #[test]
    fn a_map_stops_at_340_lines() {
        let many: Vec<SubRange> = (0..400).map(|i| range(100000 + i * 10, 10)).collect();
        let plan = for_user(&facts(many), &Request::default()).unwrap();
        assert_eq!(plan.uid.0.len(), MAX_LINES);
        assert!(plan.uid.check("uid").is_ok());
        assert!(plan.notice.unwrap().contains("(the map is full)"));
    }

    #[test]
    fn userns_auto_maps_root_to_its_slice_and_keeps_it_for_cleanup() {
        let request = Request {
            auto: true,
            ..Request::default()
        };
        let slice = Slice {
            uid: 231072,
            gid: 296608,
            owner: common::state::Owner {
                pid: 1,
                start_time: 2,
            },
        };
        let plan = for_root(&request, || Ok(slice.clone())).unwrap().unwrap();
        assert_eq!(lines(&plan.uid), [(0, 231072, SLICE)]);
        assert_eq!(lines(&plan.gid), [(0, 296608, SLICE)]);
        assert_eq!(plan.slice, Some(slice));
    }

    #[test]
    fn userns_auto_with_maps_is_refused_before_any_slice_is_taken() {
        let request = Request {
            auto: true,
            uidmap: vec!["0:100000:1".parse().unwrap()],
            ..Request::default()
        };
        let result = for_root(&request, || panic!("no slice may be taken"));
        assert!(result.is_err());
    }
}

//! `--userns auto`: a slice of keel's range for each container, as podman's
//! `--userns=auto` gives each container ids of its own.
//!
//! Root's containers get unprivileged host ids from the `keel` entry of /etc/subuid and
//! /etc/subgid, added on first use with room for [`SLICES`] slices of 65536 ids (about
//! 67 million ids, from the first free id up). Each container takes a slice that no
//! running container holds, and gives it back when it ends. Two containers at once
//! therefore never share a host id: neither can write the other's files, signal its
//! processes or join its namespaces.
//!
//! An older `keel` entry of 65536 ids (one slice) is used as it is: the administrator
//! may have chosen it, and files on volumes already belong to its ids. Containers then
//! take turns, and the error says how to give keel more.
//!
//! Who holds which slice is written in `/run/keel/userns-slices` (a tmpfs: it empties
//! at boot, when no container runs), changed under an `flock` of
//! `/run/keel/userns-slices.lock`:
//!
//! ```text
//! 165536 165536 4242 9170035    first uid, first gid, the runtime's PID and start time
//! ```
//!
//! The start time (field 22 of `/proc/PID/stat`) is there because PIDs are reused: a
//! record counts only while a process with that PID *and* that start time exists. A
//! runtime killed by SIGKILL cannot give its slice back; the next allocation finds the
//! record's owner dead and hands the slice out again.

use std::path::PathBuf;

use anyhow::{Result, bail};
use common::explain;
use common::records::RecordFile;
use common::state::Owner;

use crate::subid::{self, FULL_RANGE, SubRange};

/// The owner of keel's entry in /etc/subuid and /etc/subgid.
pub const KEEL_OWNER: &str = "keel";

/// The ids of one container: 0..65535 inside.
pub const SLICE: u32 = FULL_RANGE;

/// How many slices a new `keel` entry holds: 1024 containers at once, in 2^26 ids.
pub const SLICES: u32 = 1024;

/// Who holds which slice: this file in root's runtime directory, `/run/keel`.
pub const STATE: &str = "userns-slices";

/// The host ids of one container: [`SLICE`] uids and gids from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// First host uid.
    pub uid: u32,
    /// First host gid.
    pub gid: u32,
    /// The runtime that holds it.
    pub owner: Owner,
}

// ANCHOR: allocate
/// A slice of keel's range for a new container, held by this process until
/// [`release`]d. Adds keel's range to /etc/subuid and /etc/subgid on first use.
pub fn allocate() -> Result<Slice> {
    let [uids, gids] = subid::edit::ensure(&subid::Files::system(), KEEL_OWNER, SLICE * SLICES)?;
    State::system()?.allocate(&uids, &gids, Owner::current()?)
}

/// Gives `slice` back (the layer's cleanup, on every path).
pub fn release(slice: &Slice) -> Result<()> {
    State::system()?.release(slice)
}
// ANCHOR_END: allocate

/// The record of who holds which slice: a file, and a lock file beside it.
#[derive(Debug, Clone)]
pub struct State {
    file: RecordFile,
}

impl State {
    /// [`STATE`] in root's runtime directory.
    pub fn system() -> Result<Self> {
        Ok(Self::at(common::state::runtime_dir()?.join(STATE)))
    }

    /// A record at `path` (tests use their own).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            file: RecordFile::at(path),
        }
    }

    // ANCHOR: state_allocate
    /// The first slice of `uids` and `gids` that no live record holds, recorded for
    /// `owner`. Records of dead owners are dropped on the way.
    pub fn allocate(&self, uids: &[SubRange], gids: &[SubRange], owner: Owner) -> Result<Slice> {
        let _lock = self.file.lock()?;
        let live: Vec<Slice> = self
            .read()?
            .into_iter()
            .filter(|r| r.owner.is_alive())
            .collect();
        let (uid_slices, gid_slices) = (slices_of(uids), slices_of(gids));
        let free = uid_slices.iter().zip(&gid_slices).find(|(uid, gid)| {
            !live
                .iter()
                .any(|r| overlap(r.uid, **uid) || overlap(r.gid, **gid))
        });
        let Some((&uid, &gid)) = free else {
            let holders: Vec<String> = live.iter().map(|r| r.owner.pid.to_string()).collect();
            bail!(
                "--userns auto: all {} slices of {SLICE} ids in keel's range are in use (by \
                 the runtimes of PIDs {}): wait for one of those containers to end, or give \
                 keel a larger range in {} and {} (a line keel:START:COUNT, with COUNT a \
                 multiple of {SLICE}, where no one else's ids are)",
                uid_slices.len().min(gid_slices.len()),
                holders.join(", "),
                subid::SUBUID,
                subid::SUBGID
            );
        };
        let slice = Slice { uid, gid, owner };
        let mut records = live;
        records.push(slice.clone());
        self.write(&records)?;
        explain::step(
            format_args!(
                "record \"{uid} {gid} {owner}\" in {}",
                self.file.path().display()
            ),
            "this container's own slice of keel's range: no other container has these ids",
        );
        Ok(slice)
    }
    // ANCHOR_END: state_allocate

    /// Removes the record of `slice` (and any record whose owner is dead).
    pub fn release(&self, slice: &Slice) -> Result<()> {
        let _lock = self.file.lock()?;
        let kept: Vec<Slice> = self
            .read()?
            .into_iter()
            .filter(|r| r != slice && r.owner.is_alive())
            .collect();
        self.write(&kept)?;
        explain::step(
            format_args!(
                "remove \"{} {} {}\" from {}",
                slice.uid,
                slice.gid,
                slice.owner,
                self.file.path().display()
            ),
            "the container is gone: its slice is free for the next one",
        );
        Ok(())
    }

    fn read(&self) -> Result<Vec<Slice>> {
        self.file.read(
            parse_record,
            "if no --userns auto container runs, remove the file",
        )
    }

    fn write(&self, records: &[Slice]) -> Result<()> {
        self.file.write(
            records
                .iter()
                .map(|r| format!("{} {} {} {}", r.uid, r.gid, r.owner.pid, r.owner.start_time)),
        )
    }
}

fn parse_record(line: &str) -> Option<Slice> {
    let fields: Vec<&str> = line.split(' ').collect();
    let [uid, gid, pid, start_time] = fields.as_slice() else {
        return None;
    };
    Some(Slice {
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        owner: Owner::parse(pid, start_time)?,
    })
}

/// The first ids of the whole slices in `ranges`, in order (the part of a range past
/// the last id a map may name does not count; overlapping lines count once).
fn slices_of(ranges: &[SubRange]) -> Vec<u32> {
    let mut starts: Vec<u32> = Vec::new();
    // The same starts, sorted: an earlier slice overlaps `first` only if it starts
    // less than SLICE ids before or after it, one look-up away (a range over the
    // whole id space is 65535 slices).
    let mut taken = std::collections::BTreeSet::new();
    for (start, count) in ranges.iter().filter_map(SubRange::mappable) {
        for k in 0..count / SLICE {
            let first = start + k * SLICE;
            let near = first.saturating_sub(SLICE - 1)..=first.saturating_add(SLICE - 1);
            if taken.range(near).next().is_none() {
                taken.insert(first);
                starts.push(first);
            }
        }
    }
    starts
}

/// Whether the slices from `a` and from `b` share an id.
fn overlap(a: u32, b: u32) -> bool {
    a.abs_diff(b) < SLICE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keel(start: u64, count: u64) -> Vec<SubRange> {
        vec![SubRange {
            owner: KEEL_OWNER.as_bytes().to_vec(),
            start,
            count,
        }]
    }

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join(STATE));
        (dir, state)
    }

    fn me() -> Owner {
        Owner::current().unwrap()
    }

    /// A process that has exited and been reaped: its record is stale.
    fn dead() -> Owner {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        Owner { pid, start_time: 1 }
    }

    const RANGE: u64 = 4 * SLICE as u64;

    #[test]
    fn containers_at_the_same_time_get_disjoint_slices() {
        let (_dir, state) = state();
        let (uids, gids) = (keel(165536, RANGE), keel(300000, RANGE));
        let a = state.allocate(&uids, &gids, me()).unwrap();
        let b = state.allocate(&uids, &gids, me()).unwrap();
        assert_eq!((a.uid, a.gid), (165536, 300000));
        assert_eq!((b.uid, b.gid), (165536 + SLICE, 300000 + SLICE));
    }

    #[test]
    fn a_released_slice_is_handed_out_again() {
        let (_dir, state) = state();
        let uids = keel(165536, RANGE);
        let a = state.allocate(&uids, &uids, me()).unwrap();
        let b = state.allocate(&uids, &uids, me()).unwrap();
        state.release(&a).unwrap();
        let c = state.allocate(&uids, &uids, me()).unwrap();
        assert_eq!(c.uid, a.uid);
        state.release(&b).unwrap();
        state.release(&c).unwrap();
        assert!(
            !state.file.path().exists(),
            "no record is left, and no file"
        );
    }

    #[test]
    fn the_slice_of_a_dead_runtime_is_handed_out_again() {
        let (_dir, state) = state();
        let uids = keel(165536, RANGE);
        let killed = state.allocate(&uids, &uids, dead()).unwrap();
        let next = state.allocate(&uids, &uids, me()).unwrap();
        assert_eq!(next.uid, killed.uid);
        let text = std::fs::read_to_string(state.file.path()).unwrap();
        assert_eq!(
            text.lines().count(),
            1,
            "the stale record is dropped: {text}"
        );
    }

    #[test]
    fn a_reused_pid_is_not_mistaken_for_its_earlier_owner() {
        let (_dir, state) = state();
        let uids = keel(165536, RANGE);
        let earlier = Owner {
            start_time: me().start_time + 1,
            ..me()
        };
        let old = state.allocate(&uids, &uids, earlier).unwrap();
        let next = state.allocate(&uids, &uids, me()).unwrap();
        assert_eq!(next.uid, old.uid);
    }

    #[test]
    fn an_old_entry_of_65536_ids_is_one_slice_and_the_error_says_what_to_do() {
        let (_dir, state) = state();
        let uids = keel(165536, SLICE.into());
        state.allocate(&uids, &uids, me()).unwrap();
        let err = format!("{:#}", state.allocate(&uids, &uids, me()).unwrap_err());
        assert!(err.contains("all 1 slices"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("keel:START:COUNT"), "{err}");
    }

    #[test]
    fn slices_stop_at_the_last_id_a_map_may_name() {
        // 4294901759 + 65536 = 4294967295: one slice fits, the rest is past the end.
        assert_eq!(slices_of(&keel(4294901759, RANGE)), [4294901759]);
        assert!(slices_of(&keel(4294901760, RANGE)).is_empty());
        assert!(slices_of(&keel(u64::MAX, u64::MAX)).is_empty());
    }

    #[test]
    fn a_range_over_every_id_gives_each_slice_once() {
        let mut ranges = keel(1, subid::ID_LIMIT);
        ranges.extend(keel(1 + u64::from(SLICE) / 2, subid::ID_LIMIT));
        let slices = slices_of(&ranges);
        assert_eq!(slices.len(), (subid::ID_LIMIT / u64::from(SLICE)) as usize);
        assert!(slices.windows(2).all(|w| w[1] - w[0] == SLICE));
    }

    #[test]
    fn overlapping_lines_give_each_slice_once() {
        let mut ranges = keel(165536, 2 * u64::from(SLICE));
        ranges.extend(keel(165536 + u64::from(SLICE), 2 * u64::from(SLICE)));
        assert_eq!(
            slices_of(&ranges),
            [165536, 165536 + SLICE, 165536 + 2 * SLICE]
        );
    }

    #[test]
    fn a_record_keel_did_not_write_stops_the_allocation() {
        let (_dir, state) = state();
        std::fs::write(state.file.path(), "garbage\n").unwrap();
        let uids = keel(165536, RANGE);
        let err = format!("{:#}", state.allocate(&uids, &uids, me()).unwrap_err());
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_one_is_not() {
        assert!(me().is_alive());
        assert!(!dead().is_alive());
    }
}

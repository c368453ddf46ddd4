//! Subordinate ids: /etc/subuid and /etc/subgid.
//!
//! An ordinary user owns one uid. To be root *and* have users 1..65536 in a container,
//! it needs more host ids, and the administrator hands them out in these files:
//!
//! ```text
//! alice:100000:65536      alice may use host ids 100000..165535
//! ```
//!
//! The kernel does not read these files; the setuid helpers `newuidmap` and `newgidmap`
//! do, and write only maps that these files allow. So keel reads them exactly as the
//! helpers do ([`parse`]), changes them only under the locks their tools take
//! ([`lock`]), and writes them as those tools do ([`edit`]).

pub mod edit;
pub mod lock;
pub mod parse;

use std::borrow::Cow;
use std::fmt;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

pub use self::parse::Kind;

/// The files, one for uids and one for gids.
pub const SUBUID: &str = "/etc/subuid";
/// See [`SUBUID`].
pub const SUBGID: &str = "/etc/subgid";

/// The size of the range a container needs for the usual ids 0..65535.
pub const FULL_RANGE: u32 = 65536;

// ANCHOR: id_limit
/// One past the last id a map may name. uid 4294967295 is `(uid_t) -1`, "no id", and
/// the kernel refuses a map line whose first id + count passes it: every range keel
/// maps or hands out ends at or below this.
pub const ID_LIMIT: u64 = 4_294_967_295;
// ANCHOR_END: id_limit

/// Where `useradd` starts handing out ranges (`SUB_UID_MIN` in /etc/login.defs): below
/// are the ids of real users and groups.
pub const FIRST_FREE: u64 = 100_000;

/// One entry: `owner:start:count`, as shadow reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRange {
    /// A user name or a numeric uid, as the bytes of the file.
    pub owner: Vec<u8>,
    /// First host id (shadow reads an `unsigned long`: it may be past any real id).
    pub start: u64,
    /// How many.
    pub count: u64,
}

impl SubRange {
    /// One past the last id (in u128: `start + count` may pass 2^64).
    pub fn end(&self) -> u128 {
        u128::from(self.start) + u128::from(self.count)
    }

    /// Whether this range and the `count` ids from `start` share an id.
    pub fn overlaps(&self, start: u64, count: u64) -> bool {
        let other_end = u128::from(start) + u128::from(count);
        u128::from(self.start) < other_end && u128::from(start) < self.end()
    }

    /// The owner, for messages.
    pub fn owner_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.owner)
    }

    /// The part of the range a map can name: `(start, count)` cut at [`ID_LIMIT`], or
    /// `None` when nothing of it is left.
    pub fn mappable(&self) -> Option<(u32, u32)> {
        let start = u32::try_from(self.start).ok()?;
        let room = ID_LIMIT.checked_sub(self.start)?;
        let count = u32::try_from(self.count.min(room)).ok()?;
        (count > 0).then_some((start, count))
    }
}

/// `owner:start:count`, as in the file.
impl fmt::Display for SubRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.owner_lossy(), self.start, self.count)
    }
}

/// One line of a file, numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its number, for messages.
    pub number: usize,
    /// Its bytes, without the `\n`: kept as they are when the file is rewritten.
    pub bytes: Vec<u8>,
    /// What shadow makes of it.
    pub kind: Kind,
}

/// A whole /etc/subuid or /etc/subgid, line by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubidFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Every line, understood or not.
    pub lines: Vec<Line>,
}

impl SubidFile {
    /// Reads `path` as the helpers do (`O_NOFOLLOW`: a symlink is refused). A missing
    /// file has no lines.
    pub fn read(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        let mut bytes = Vec::new();
        let opened = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(&path);
        match opened {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        Ok(Self::parse(path, &bytes))
    }

    /// The file of these bytes.
    pub fn parse(path: impl Into<PathBuf>, bytes: &[u8]) -> Self {
        let lines = parse::lines(bytes)
            .enumerate()
            .map(|(i, bytes)| Line {
                number: i + 1,
                bytes: bytes.to_vec(),
                kind: parse::line(bytes),
            })
            .collect();
        Self {
            path: path.into(),
            lines,
        }
    }

    /// Every entry, in file order.
    pub fn ranges(&self) -> impl Iterator<Item = &SubRange> {
        self.lines.iter().filter_map(|line| match &line.kind {
            Kind::Range(range) => Some(range),
            _ => None,
        })
    }

    // ANCHOR: ranges_of
    /// The ranges of the user `name` with uid `uid`: an owner is compared byte for byte
    /// with the name and with the uid in decimal, as newuidmap compares them.
    pub fn ranges_of(&self, name: &[u8], uid: u32) -> Vec<SubRange> {
        let uid = uid.to_string();
        self.ranges()
            .filter(|r| r.owner == name || r.owner == uid.as_bytes())
            .cloned()
            .collect()
    }
    // ANCHOR_END: ranges_of

    // ANCHOR: understood
    /// Fails on the first line that is not understood. Before handing out ids, keel
    /// must know every range: a line it cannot read may be someone's range, written in
    /// a way the helpers skip today, or mean to.
    pub fn check_understood(&self) -> Result<()> {
        for line in &self.lines {
            if let Kind::NotUnderstood(why) = line.kind {
                bail!(
                    "{} line {} is not a range that newuidmap understands ({why}): {:?}. \
                     keel hands out no ids while a line may hide someone's range: fix the \
                     line (owner:start:count, e.g. alice:100000:65536) or delete it, then \
                     run again",
                    self.path.display(),
                    line.number,
                    String::from_utf8_lossy(&line.bytes)
                );
            }
        }
        Ok(())
    }
    // ANCHOR_END: understood
}

// ANCHOR: free_start
/// The lowest start from [`FIRST_FREE`] up where `count` ids are free in every file
/// (shadow's `find_free_range`): what `useradd` would give the next user. Fails when a
/// line is not understood, or when no such hole is left below [`ID_LIMIT`].
pub fn free_start(files: &[&SubidFile], count: u32) -> Result<u32> {
    for file in files {
        file.check_understood()?;
    }
    let mut taken: Vec<&SubRange> = files.iter().flat_map(|f| f.ranges()).collect();
    taken.sort_by_key(|r| r.start);
    let count = u128::from(count);
    let mut low = u128::from(FIRST_FREE);
    for range in taken {
        if u128::from(range.start) >= low + count {
            break;
        }
        low = low.max(range.end());
    }
    match u32::try_from(low) {
        Ok(start) if low + count <= u128::from(ID_LIMIT) => Ok(start),
        _ => bail!(
            "no {count} consecutive ids from {FIRST_FREE} up are free in {}: ids end at \
             {ID_LIMIT}; free some, or add a range by hand",
            files
                .iter()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}
// ANCHOR_END: free_start

/// The command that gives `user` a full range starting at `start` (use
/// [`free_start`] of both files, so that it overlaps nobody's).
pub fn usermod_fix(user: &str, start: u32) -> String {
    let end = u64::from(start) + u64::from(FULL_RANGE) - 1;
    format!("sudo usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {user}")
}

/// Both files, by path: the system's, or a test's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// /etc/subuid.
    pub subuid: PathBuf,
    /// /etc/subgid.
    pub subgid: PathBuf,
}

impl Files {
    /// /etc/subuid and /etc/subgid.
    pub fn system() -> Self {
        Self {
            subuid: SUBUID.into(),
            subgid: SUBGID.into(),
        }
    }

    /// Both paths, uids first.
    pub fn paths(&self) -> [&Path; 2] {
        [&self.subuid, &self.subgid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"alice:100000:65536\n1001:165536:65536\nbroken line\nbob:x:1\n";

    fn file(bytes: &[u8]) -> SubidFile {
        SubidFile::parse("/etc/subuid", bytes)
    }

    fn range(owner: &str, start: u64, count: u64) -> SubRange {
        SubRange {
            owner: owner.as_bytes().to_vec(),
            start,
            count,
        }
    }

    #[test]
    fn entries_are_parsed_and_other_lines_kept() {
        let parsed = file(SAMPLE);
        assert_eq!(parsed.lines.len(), 4);
        assert_eq!(
            parsed.ranges().cloned().collect::<Vec<_>>(),
            [range("alice", 100000, 65536), range("1001", 165536, 65536)]
        );
        assert_eq!(parsed.lines[2].bytes, b"broken line");
    }

    #[test]
    fn a_user_is_found_by_name_or_uid() {
        let parsed = file(SAMPLE);
        assert_eq!(parsed.ranges_of(b"alice", 1000).len(), 1);
        assert_eq!(parsed.ranges_of(b"carol", 1001)[0].start, 165536);
        assert!(parsed.ranges_of(b"dave", 1002).is_empty());
    }

    #[test]
    fn a_non_utf8_owner_on_another_line_hides_nothing() {
        let parsed = file(b"alice:100000:65536\nb\xffb:165536:65536\ncarol:231072:65536\n");
        assert_eq!(parsed.ranges().count(), 3);
        assert_eq!(parsed.ranges_of(b"carol", 1003).len(), 1);
        assert_eq!(parsed.ranges_of(b"b\xffb", 1002).len(), 1);
        assert_eq!(free_start(&[&parsed], FULL_RANGE).unwrap(), 296608);
    }

    #[test]
    fn numbers_in_shadows_formats_hold_their_ids() {
        let parsed = file(b"alice:0x186a0:0x10000\nbob: 0503240:+65536\n");
        assert_eq!(
            parsed.ranges().cloned().collect::<Vec<_>>(),
            [range("alice", 100000, 65536), range("bob", 165536, 65536)]
        );
        assert_eq!(free_start(&[&parsed], FULL_RANGE).unwrap(), 231072);
    }

    #[test]
    fn free_ranges_fill_the_lowest_hole_of_both_files() {
        let uids = file(b"alice:100000:65536\ncarol:300000:65536\n");
        let gids = file(b"bob:165536:65536\n");
        assert_eq!(free_start(&[&uids, &gids], FULL_RANGE).unwrap(), 231072);
        assert_eq!(free_start(&[&uids, &gids], 100000).unwrap(), 365536);
        assert_eq!(free_start(&[&file(b"")], FULL_RANGE).unwrap(), 100000);
    }

    #[test]
    fn allocation_is_refused_next_to_a_line_not_understood() {
        let err = free_start(&[&file(SAMPLE)], FULL_RANGE).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("/etc/subuid line 3"), "{message}");
        assert!(message.contains("broken line"), "{message}");
        // NIS and blank lines are no one's range.
        let fine = file(b"alice:100000:65536\n\n+nis\n");
        assert_eq!(free_start(&[&fine], FULL_RANGE).unwrap(), 165536);
    }

    #[test]
    fn no_range_is_handed_out_past_the_last_id() {
        let near = file(b"alice:100000:4294850000\n");
        assert!(free_start(&[&near], FULL_RANGE).is_err());
        // Exactly up to the limit is fine: 4294901759 + 65536 = ID_LIMIT.
        let fits = file(b"alice:100000:4294801759\n");
        assert_eq!(free_start(&[&fits], FULL_RANGE).unwrap(), 4294901759);
        let huge = file(b"alice:100000:-1\n");
        assert!(free_start(&[&huge], FULL_RANGE).is_err());
    }

    #[test]
    fn counts_that_sum_past_2_to_the_64_do_not_overflow() {
        let parsed = file(b"a:-1:-1\nb:-1:-1\nc:0:-1\n");
        assert!(free_start(&[&parsed], FULL_RANGE).is_err());
        assert!(range("a", u64::MAX, u64::MAX).overlaps(u64::MAX, 1));
        assert!(!range("a", 0, 10).overlaps(10, u64::MAX));
    }

    #[test]
    fn the_mappable_part_stops_at_the_limit() {
        assert_eq!(range("a", 100000, 65536).mappable(), Some((100000, 65536)));
        assert_eq!(
            range("a", 4294967000, 65536).mappable(),
            Some((4294967000, 295))
        );
        assert_eq!(range("a", ID_LIMIT, 1).mappable(), None);
        assert_eq!(range("a", u64::MAX, u64::MAX).mappable(), None);
        assert_eq!(range("a", 100000, 0).mappable(), None);
    }

    #[test]
    fn the_usermod_fix_names_a_full_range() {
        assert_eq!(
            usermod_fix("bob", 165536),
            "sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 bob"
        );
        assert!(usermod_fix("bob", u32::MAX).contains("4295032830"));
    }

    mod properties {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        /// Lines shaped like entries (with numbers in every format shadow reads, and
        /// some it does not), and lines of any bytes at all.
        fn line() -> impl Strategy<Value = Vec<u8>> {
            let number = prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| format!("{n:#x}")),
                any::<u64>().prop_map(|n| format!("0{n:o}")),
                (0u64..5_000_000).prop_map(|n| n.to_string()),
                "[ +\\-0-9a-fxX]{0,8}",
            ];
            prop_oneof![
                (vec(any::<u8>(), 0..12), number.clone(), number).prop_map(|(owner, a, b)| {
                    [
                        owner,
                        b":".to_vec(),
                        a.into_bytes(),
                        b":".to_vec(),
                        b.into_bytes(),
                    ]
                    .concat()
                }),
                vec(any::<u8>(), 0..40),
            ]
        }

        fn file() -> impl Strategy<Value = Vec<u8>> {
            vec(line(), 0..16).prop_map(|lines| lines.join(&b'\n'))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Any bytes: no panic; entries as shadow has them; rewriting keeps every line.
            #[test]
            fn any_file_parses_and_rewrites_to_itself(bytes in file()) {
                let parsed = SubidFile::parse("/etc/subuid", &bytes);
                for range in parsed.ranges() {
                    prop_assert!(!range.owner.is_empty());
                    prop_assert!(!range.owner.iter().any(|b| matches!(b, b':' | b'\n' | 0)));
                }
                let rewritten: Vec<u8> = parsed
                    .lines
                    .iter()
                    .flat_map(|l| l.bytes.iter().copied().chain([b'\n']))
                    .collect();
                prop_assert_eq!(&SubidFile::parse("/etc/subuid", &rewritten).lines, &parsed.lines);
            }

            /// Whatever the files hold, a free range is free, starts where useradd's
            /// do, and ends below the last id; or there is a clear error.
            #[test]
            fn a_free_range_overlaps_nobody(uids in file(), gids in file(), count in 1u32..100_000_000) {
                let (uids, gids) = (SubidFile::parse("u", &uids), SubidFile::parse("g", &gids));
                if let Ok(start) = free_start(&[&uids, &gids], count) {
                    prop_assert!(u64::from(start) >= FIRST_FREE);
                    prop_assert!(u64::from(start) + u64::from(count) <= ID_LIMIT);
                    prop_assert!(!uids.ranges().chain(gids.ranges()).any(|r| r.overlaps(start.into(), count.into())));
                }
            }

            /// strtoul's three bases read back every number.
            #[test]
            fn every_number_reads_back_in_every_base(n: u64) {
                prop_assert_eq!(parse::getulong(n.to_string().as_bytes()), Some(n));
                prop_assert_eq!(parse::getulong(format!("{n:#x}").as_bytes()), Some(n));
                prop_assert_eq!(parse::getulong(format!("0{n:o}").as_bytes()), Some(n));
                prop_assert_eq!(parse::getulong(format!(" +{n}").as_bytes()), Some(n));
            }

            /// The part of a range a map may name is inside the range and below the limit.
            #[test]
            fn the_mappable_part_is_inside(start: u64, count: u64) {
                let range = SubRange { owner: b"a".to_vec(), start, count };
                if let Some((first, n)) = range.mappable() {
                    prop_assert_eq!(u64::from(first), start);
                    prop_assert!(n > 0 && u64::from(n) <= count);
                    prop_assert!(u64::from(first) + u64::from(n) <= ID_LIMIT);
                }
            }
        }
    }

    #[test]
    fn a_missing_file_has_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let read = SubidFile::read(dir.path().join("subuid")).unwrap();
        assert!(read.lines.is_empty());
    }
}

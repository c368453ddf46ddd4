//! The ids of the book's machine, and of this one.
//!
//! Chapter 3's transcripts were taken on a machine where `keeltry` is uid 1001 with
//! the subordinate ids from 100000, `keelnosub` is uid 1002, the group `nogames` is
//! gid 1003, and keel's range for `--userns auto` starts at 165536. Here the same
//! users and ranges get whatever ids are free. Before a block is compared, the numbers
//! the terminal showed are written back in the book's terms: this machine's uid of
//! `keeltry` becomes 1001, an id of its range `start + k` becomes `100000 + k`, and so
//! on. The ids are read from the system when the block has run, so a range that the
//! block itself added (`--userns auto`'s) is known.

use std::collections::BTreeMap;

/// The book's `keeltry`, `keelnosub` and `nogames`.
pub const WITH_RANGE: &str = "keeltry";
pub const WITHOUT_RANGE: &str = "keelnosub";
pub const GROUP: &str = "nogames";
/// The owner of keel's own range in `/etc/subuid`.
const KEEL: &str = "keel";

/// On the book's machine.
const BOOK_UID_WITH: u64 = 1001;
const BOOK_UID_WITHOUT: u64 = 1002;
const BOOK_GID_GROUP: u64 = 1003;
const BOOK_RANGE_START: u64 = 100_000;
/// What `useradd` gives, and a slice of keel's range.
const RANGE: u64 = 65_536;
/// The size of keel's range (1024 slices).
const KEEL_RANGE: u64 = 1024 * RANGE;

/// How this machine's numbers are written in the book's terms.
#[derive(Debug, Default)]
pub struct Facts {
    /// A number that stands for one id.
    points: BTreeMap<u64, u64>,
    /// `(start, len, book's start)`: `start + k` is `book's start + k`, for `k <= len`
    /// (the end itself appears, as the bound of a half-open range).
    ranges: Vec<(u64, u64, u64)>,
    hostname: Option<String>,
    /// Numbers that two facts claim with different meanings.
    pub ambiguous: Vec<String>,
}

/// A line of `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy)]
struct Range {
    start: u64,
    count: u64,
}

fn ranges(path: &str) -> Vec<(String, Range)> {
    keel_graders::users::read_ranges(path)
        .into_iter()
        .map(|r| {
            (
                r.owner,
                Range {
                    start: r.start.into(),
                    count: r.count.into(),
                },
            )
        })
        .collect()
}

/// The lowest start from 100000 on of `RANGE` ids that none of `taken` overlaps.
fn first_free(taken: &[Range]) -> u64 {
    let mut start = BOOK_RANGE_START;
    let mut sorted = taken.to_vec();
    sorted.sort_by_key(|r| r.start);
    for r in sorted {
        if r.start + r.count <= start {
            continue;
        }
        if r.start >= start + RANGE {
            break;
        }
        start = r.start + r.count;
    }
    start
}

impl Facts {
    /// Reads the users, the group, the ranges and the hostname as they are now.
    pub fn read() -> Self {
        let mut facts = Facts::default();
        let user = |name: &str| nix::unistd::User::from_name(name).ok().flatten();
        let mut owners = Vec::new();
        if let Some(u) = user(WITH_RANGE) {
            facts.point(u.uid.as_raw().into(), BOOK_UID_WITH);
            facts.point(u.gid.as_raw().into(), BOOK_UID_WITH);
            owners.push((
                WITH_RANGE.to_owned(),
                u.uid.as_raw().to_string(),
                BOOK_RANGE_START,
            ));
        }
        if let Some(u) = user(WITHOUT_RANGE) {
            facts.point(u.uid.as_raw().into(), BOOK_UID_WITHOUT);
            facts.point(u.gid.as_raw().into(), BOOK_UID_WITHOUT);
        }
        if let Ok(Some(g)) = nix::unistd::Group::from_name(GROUP) {
            facts.point(g.gid.as_raw().into(), BOOK_GID_GROUP);
        }
        // Keel's range follows keeltry's on the book's machine.
        owners.push((KEEL.to_owned(), KEEL.to_owned(), BOOK_RANGE_START + RANGE));
        let mut all = Vec::new();
        let mut book = Vec::new();
        for path in ["/etc/subuid", "/etc/subgid"] {
            for (owner, range) in ranges(path) {
                all.push(range);
                for (name, uid, book_start) in &owners {
                    if owner == *name || owner == *uid {
                        facts.ranges.push((range.start, range.count, *book_start));
                        let count = if name == KEEL { KEEL_RANGE } else { RANGE };
                        book.push(Range {
                            start: *book_start,
                            count,
                        });
                    }
                }
            }
        }
        // The range keel suggests to a user without one: the first free in both files.
        // It comes last (see `book_number`).
        facts
            .ranges
            .push((first_free(&all), RANGE, first_free(&book)));
        facts.hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| h != "vm");
        facts
    }

    fn point(&mut self, here: u64, book: u64) {
        if let Some(&other) = self.points.get(&here)
            && other != book
        {
            self.ambiguous
                .push(format!("{here} is both {other} and {book} of the book"));
        }
        self.points.insert(here, book);
    }

    /// The book's number for `n`, if it is one of the facts. Of a range, only the ids
    /// from its start up to two slices past it are written as the book's, and just
    /// past its end (a bound of a half-open range): a large number (keel's range holds
    /// 67108864 ids) may fall inside one by chance, and stay what it is.
    fn book_number(&self, n: u64) -> Option<u64> {
        if let Some(&book) = self.points.get(&n) {
            return Some(book);
        }
        let near =
            |&&(start, len, _): &&(u64, u64, u64)| n >= start && n < start + len.min(2 * RANGE + 1);
        let just_past =
            |&&(start, len, _): &&(u64, u64, u64)| n >= start + len && n <= start + len + 1;
        let (free, ranges) = self.ranges.split_last()?;
        std::iter::once(free)
            .chain(ranges)
            .find(near)
            .or_else(|| ranges.iter().find(just_past))
            .map(|&(start, _, book)| book + (n - start))
    }

    /// What the facts are, for a report.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .points
            .iter()
            .map(|(here, book)| format!("{here} is {book}"))
            .collect();
        parts.extend(
            self.ranges
                .iter()
                .map(|(start, len, book)| format!("{start}+{len} is {book}+")),
        );
        if let Some(host) = &self.hostname {
            parts.push(format!("{host} is vm"));
        }
        parts.join(", ")
    }

    /// `line` with this machine's numbers (and hostname) written as the book's, and
    /// whether anything changed.
    pub fn to_book(&self, line: &str) -> (String, bool) {
        let mut out = String::with_capacity(line.len());
        let mut changed = false;
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            let boundary = !out
                .chars()
                .next_back()
                .is_some_and(|p| p.is_ascii_alphanumeric());
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if boundary && digits > 0 {
                let token = &rest[..digits];
                let after = rest[digits..].chars().next();
                let number = token.parse::<u64>().ok().filter(|_| {
                    !after.is_some_and(|a| a.is_ascii_alphanumeric()) && !token.starts_with('0')
                });
                match number.and_then(|n| self.book_number(n)) {
                    Some(book) if book.to_string() != token => {
                        out.push_str(&book.to_string());
                        changed = true;
                    }
                    _ => out.push_str(token),
                }
                rest = &rest[digits..];
                continue;
            }
            if let Some(host) = &self.hostname
                && boundary
                && rest.starts_with(host.as_str())
                && !rest[host.len()..]
                    .chars()
                    .next()
                    .is_some_and(|a| a.is_ascii_alphanumeric() || a == '-' || a == '.')
            {
                out.push_str("vm");
                rest = &rest[host.len()..];
                changed = true;
                continue;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        (out, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let mut f = Facts::default();
        f.point(1005, BOOK_UID_WITH);
        f.point(1006, BOOK_UID_WITHOUT);
        f.ranges.push((231_072, RANGE, BOOK_RANGE_START));
        f.ranges.push((296_608, KEEL_RANGE, 165_536));
        f.ranges
            .push((296_608 + KEEL_RANGE, RANGE, 165_536 + KEEL_RANGE));
        f.hostname = Some("ci-7".into());
        f
    }

    #[test]
    fn numbers_become_the_books() {
        let f = facts();
        assert_eq!(
            f.to_book("uid=1005(keeltry) 0 1005 1, 1 231072 65536"),
            ("uid=1001(keeltry) 0 1001 1, 1 100000 65536".into(), true)
        );
        assert_eq!(
            f.to_book("[1-65537) -> [231072-296609)").0,
            "[1-65537) -> [100000-165537)"
        );
        assert_eq!(f.to_book("on ci-7 and ci-70").0, "on vm and ci-70");
        // Not inside words or longer numbers.
        assert_eq!(
            f.to_book("x1005 10050 65536"),
            ("x1005 10050 65536".into(), false)
        );
        // keel's range, its second slice, the range after it; not a count inside it.
        assert_eq!(
            f.to_book("keel:296608:67108864 0 362144 65536 67405472-67471007")
                .0,
            "keel:165536:67108864 0 231072 65536 67274400-67339935"
        );
    }

    #[test]
    fn the_first_free_range() {
        let r = |start, count| Range { start, count };
        assert_eq!(first_free(&[]), 100_000);
        assert_eq!(first_free(&[r(100_000, 65_536)]), 165_536);
        assert_eq!(first_free(&[r(165_536, 65_536)]), 100_000);
        assert_eq!(first_free(&[r(100_000, 65_536), r(170_000, 10)]), 170_010);
    }

    #[test]
    fn ambiguity_is_reported() {
        let mut f = Facts::default();
        f.point(1004, BOOK_UID_WITH);
        f.point(1004, BOOK_UID_WITHOUT);
        assert_eq!(f.ambiguous.len(), 1);
    }
}

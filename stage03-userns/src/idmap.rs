//! Id maps: which host ids the container's ids stand for.
//!
//! A line of `/proc/<pid>/uid_map` reads `CTR HOST COUNT`: ids `CTR..CTR+COUNT` inside
//! are ids `HOST..HOST+COUNT` outside. The slides' example, for user 1000 with the
//! subordinate range 100000-165535:
//!
//! ```text
//! 0      1000 1        container root is user 1000
//! 1    100000 65536    container users 1..65536 are host ids 100000..165535
//! ```
//!
//! Ids that no line maps show up as the overflow id 65534 (`nobody`) and cannot be
//! used: `chown` to them fails, and files owned by them keep their host permissions.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

use crate::subid::ID_LIMIT;

/// The most lines the kernel takes in one map.
pub const MAX_LINES: usize = 340;

/// One line of an id map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the container.
    pub container: u32,
    /// First id on the host it stands for.
    pub host: u32,
    /// How many ids.
    pub count: u32,
}

impl IdRange {
    /// Whether the host ids of this line lie within `start..start+count` (a range of
    /// /etc/subuid, whose numbers may be as large as shadow reads them).
    pub fn host_within(&self, start: u64, count: u64) -> bool {
        let (lo, hi) = (u128::from(start), u128::from(start) + u128::from(count));
        u128::from(self.host) >= lo && u128::from(self.host) + u128::from(self.count) <= hi
    }

    /// Whether the kernel takes this line: at least one id, and no id, inside or
    /// outside, at or past [`ID_LIMIT`] (4294967295 is `(uid_t) -1`, "no id").
    pub fn fits(&self) -> bool {
        let end = |first: u32| u64::from(first) + u64::from(self.count);
        self.count > 0 && end(self.container) <= ID_LIMIT && end(self.host) <= ID_LIMIT
    }
}

// ANCHOR: parse_range
/// `podman --uidmap` syntax: `CTR:HOST:COUNT`.
impl FromStr for IdRange {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let numbers: Vec<Option<u32>> = spec.split(':').map(|n| n.parse().ok()).collect();
        let [Some(container), Some(host), Some(count)] = numbers.as_slice() else {
            bail!(
                "{spec:?} is not an id range: write CONTAINER:HOST:COUNT with whole numbers and COUNT > 0 (e.g. 0:1000:1)"
            );
        };
        let range = Self {
            container: *container,
            host: *host,
            count: *count,
        };
        if !range.fits() {
            bail!(
                "{spec:?} is not an id range the kernel takes: COUNT must be > 0, and \
                 CONTAINER + COUNT and HOST + COUNT at most {ID_LIMIT} (the last id is {})",
                ID_LIMIT - 1
            );
        }
        Ok(range)
    }
}
// ANCHOR_END: parse_range

/// The text the kernel expects: `CTR HOST COUNT`.
impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.container, self.host, self.count)
    }
}

/// A whole map (every line of `uid_map` or `gid_map`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<IdRange>);

impl IdMap {
    // ANCHOR: map_text
    /// The map's text, one line per range, as written to `/proc/<pid>/uid_map`.
    pub fn to_proc_text(&self) -> String {
        self.0.iter().map(|r| format!("{r}\n")).collect()
    }

    /// The arguments of `newuidmap <pid> ...`: every range, flattened.
    pub fn to_args(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|r| [r.container, r.host, r.count])
            .map(|n| n.to_string())
            .collect()
    }
    // ANCHOR_END: map_text

    /// True when the map is the one line an unprivileged process may write itself:
    /// a single id, its own.
    pub fn is_only(&self, host_id: u32) -> bool {
        matches!(self.0.as_slice(), [r] if r.host == host_id && r.count == 1)
    }

    /// Rejects maps the kernel would refuse, with a message that says which lines clash.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.0.is_empty() {
            bail!("the {what} map is empty");
        }
        if self.0.len() > MAX_LINES {
            bail!(
                "the {what} map has {} lines; the kernel takes at most {MAX_LINES}",
                self.0.len()
            );
        }
        if let Some(bad) = self.0.iter().find(|r| !r.fits()) {
            bail!("{what} map: \"{bad}\" names ids the kernel does not take (up to {ID_LIMIT})");
        }
        for (i, a) in self.0.iter().enumerate() {
            for b in &self.0[i + 1..] {
                if overlaps(a.container, a.count, b.container, b.count) {
                    bail!("{what} map: the container ids of \"{a}\" and \"{b}\" overlap");
                }
                if overlaps(a.host, a.count, b.host, b.count) {
                    bail!("{what} map: the host ids of \"{a}\" and \"{b}\" overlap");
                }
            }
        }
        Ok(())
    }
}

/// Whether the ids `a..a+a_len` and `b..b+b_len` share one.
pub(crate) fn overlaps(a: u32, a_len: u32, b: u32, b_len: u32) -> bool {
    let (a, a_end) = (u64::from(a), u64::from(a) + u64::from(a_len));
    let (b, b_end) = (u64::from(b), u64::from(b) + u64::from(b_len));
    a < b_end && b < a_end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ranges: &[(u32, u32, u32)]) -> IdMap {
        IdMap(
            ranges
                .iter()
                .map(|&(container, host, count)| IdRange {
                    container,
                    host,
                    count,
                })
                .collect(),
        )
    }

    #[test]
    fn the_slides_map_reads_like_the_kernel_wants_it() {
        let m = map(&[(0, 1000, 1), (1, 100000, 65536)]);
        assert_eq!(m.to_proc_text(), "0 1000 1\n1 100000 65536\n");
        assert_eq!(m.to_args(), ["0", "1000", "1", "1", "100000", "65536"]);
        assert!(m.check("uid").is_ok());
    }

    #[test]
    fn ranges_parse_podman_syntax() {
        assert_eq!(
            "0:1000:1".parse::<IdRange>().unwrap(),
            IdRange {
                container: 0,
                host: 1000,
                count: 1
            }
        );
        assert!("0:1000".parse::<IdRange>().is_err());
        assert!("0:1000:0".parse::<IdRange>().is_err());
        assert!("a:b:c".parse::<IdRange>().is_err());
    }

    #[test]
    fn ranges_past_the_last_id_are_refused() {
        assert!("0:4294967295:1".parse::<IdRange>().is_err());
        assert!("4294967295:0:1".parse::<IdRange>().is_err());
        assert!("0:4294967294:2".parse::<IdRange>().is_err());
        assert!("1:0:4294967295".parse::<IdRange>().is_err());
        assert!("0:4294967294:1".parse::<IdRange>().is_ok());
        assert!("0:0:4294967295".parse::<IdRange>().is_ok());
        assert!(map(&[(0, 4294967295, 1)]).check("uid").is_err());
    }

    #[test]
    fn host_within_takes_shadows_large_numbers() {
        let line = IdRange {
            container: 0,
            host: 100000,
            count: 65536,
        };
        assert!(line.host_within(100000, 65536));
        assert!(line.host_within(0, u64::MAX));
        assert!(!line.host_within(u64::MAX, u64::MAX));
        assert!(!line.host_within(100001, 65536));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text at all: an error or a range the kernel takes, never a panic.
        #[test]
        fn any_text_parses_to_a_valid_range_or_an_error(spec in ".{0,40}") {
            if let Ok(range) = spec.parse::<IdRange>() {
                proptest::prop_assert!(range.fits());
                proptest::prop_assert!(IdMap(vec![range]).check("uid").is_ok());
            }
        }

        /// Text made of numbers and colons, where most parse.
        #[test]
        fn numbers_parse_back_to_themselves(a: u32, b: u32, c: u32) {
            let spec = format!("{a}:{b}:{c}");
            match spec.parse::<IdRange>() {
                Ok(range) => {
                    proptest::prop_assert_eq!((range.container, range.host, range.count), (a, b, c));
                    proptest::prop_assert!(range.fits());
                }
                Err(_) => proptest::prop_assert!(
                    c == 0 || u64::from(a) + u64::from(c) > ID_LIMIT || u64::from(b) + u64::from(c) > ID_LIMIT
                ),
            }
        }
    }

    #[test]
    fn overlapping_lines_are_refused() {
        assert!(map(&[(0, 1000, 10), (5, 2000, 10)]).check("uid").is_err());
        assert!(map(&[(0, 1000, 10), (100, 1005, 10)]).check("uid").is_err());
        assert!(map(&[(0, 1000, 10), (10, 1010, 10)]).check("uid").is_ok());
    }

    #[test]
    fn only_own_id_may_be_written_without_help() {
        assert!(map(&[(0, 1000, 1)]).is_only(1000));
        assert!(!map(&[(0, 1000, 2)]).is_only(1000));
        assert!(!map(&[(0, 1000, 1), (1, 100000, 65536)]).is_only(1000));
    }
}

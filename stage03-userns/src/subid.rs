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
//! do, and write only maps that these files allow.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The files, one for uids and one for gids.
pub const SUBUID: &str = "/etc/subuid";
/// See [`SUBUID`].
pub const SUBGID: &str = "/etc/subgid";

/// The size of the range a container needs for the usual ids 0..65535.
pub const FULL_RANGE: u32 = 65536;

/// One line: `owner:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRange {
    /// A user name or a numeric uid.
    pub owner: String,
    /// First host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// Parses the text of /etc/subuid or /etc/subgid; malformed lines are skipped, as
/// the shadow tools do.
pub fn parse(text: &str) -> Vec<SubRange> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?.to_owned();
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            (!owner.is_empty() && count > 0).then_some(SubRange {
                owner,
                start,
                count,
            })
        })
        .collect()
}

/// Every range of `path` (an empty list when the file does not exist).
pub fn read(path: &str) -> Vec<SubRange> {
    fs::read_to_string(path)
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// The ranges that belong to the user `name` with id `id`.
pub fn ranges_of(ranges: &[SubRange], name: &str, id: u32) -> Vec<SubRange> {
    ranges
        .iter()
        .filter(|r| r.owner == name || r.owner == id.to_string())
        .cloned()
        .collect()
}

/// The first host id after every range in `ranges` (at least 100000, where
/// `useradd` starts).
pub fn next_free(ranges: &[SubRange]) -> u32 {
    ranges
        .iter()
        .map(|r| r.start.saturating_add(r.count))
        .fold(100_000, u32::max)
}

// ANCHOR: ensure
/// The command that gives `user` a full range starting at `start` (use
/// [`next_free`] of both files, so that it overlaps nobody's).
pub fn usermod_fix(user: &str, start: u32) -> String {
    let end = u64::from(start) + u64::from(FULL_RANGE) - 1;
    format!("sudo usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {user}")
}

/// The range of `owner` in `path`, added on first use (as podman does for
/// `--userns=auto`): a new `owner:start:65536` after every other range.
pub fn ensure(path: &str, owner: &str) -> Result<SubRange> {
    let ranges = read(path);
    if let Some(found) = ranges.iter().find(|r| r.owner == owner) {
        return Ok(found.clone());
    }
    if !Path::new(path).exists() && !nix::unistd::geteuid().is_root() {
        bail!("{path} does not exist, and only root may create it");
    }
    let range = SubRange {
        owner: owner.to_owned(),
        start: next_free(&ranges),
        count: FULL_RANGE,
    };
    // A last line without its newline must not be glued to ours.
    let text = fs::read_to_string(path).unwrap_or_default();
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("opening {path} to add a range for {owner}"))?;
    writeln!(
        file,
        "{separator}{}:{}:{}",
        range.owner, range.start, range.count
    )
    .with_context(|| format!("adding {owner}'s range to {path}"))?;
    Ok(range)
}
// ANCHOR_END: ensure

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# comment\nalice:100000:65536\n1001:165536:65536\nbroken line\nbob:x:1\n";

    #[test]
    fn lines_are_parsed_and_broken_ones_skipped() {
        let ranges = parse(SAMPLE);
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            ranges[0],
            SubRange {
                owner: "alice".into(),
                start: 100000,
                count: 65536
            }
        );
    }

    #[test]
    fn a_user_is_found_by_name_or_uid() {
        let ranges = parse(SAMPLE);
        assert_eq!(ranges_of(&ranges, "alice", 1000).len(), 1);
        assert_eq!(ranges_of(&ranges, "carol", 1001)[0].start, 165536);
        assert!(ranges_of(&ranges, "dave", 1002).is_empty());
    }

    #[test]
    fn new_ranges_go_after_every_other() {
        assert_eq!(next_free(&parse(SAMPLE)), 231072);
        assert_eq!(next_free(&[]), 100000);
    }

    #[test]
    fn ensure_adds_a_range_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        fs::write(&path, "alice:100000:65536\n").unwrap();
        let path = path.to_str().unwrap();
        let first = ensure(path, "keel").unwrap();
        assert_eq!((first.start, first.count), (165536, 65536));
        assert_eq!(ensure(path, "keel").unwrap(), first);
        assert_eq!(read(path).len(), 2);
    }

    #[test]
    fn ensure_keeps_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        fs::write(&path, "alice:100000:65536").unwrap();
        let path = path.to_str().unwrap();
        ensure(path, "keel").unwrap();
        assert_eq!(
            fs::read_to_string(path).unwrap(),
            "alice:100000:65536\nkeel:165536:65536\n"
        );
    }

    #[test]
    fn the_usermod_fix_names_a_full_range() {
        assert_eq!(
            usermod_fix("bob", 165536),
            "sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 bob"
        );
    }
}

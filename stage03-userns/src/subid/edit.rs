//! Changing /etc/subuid and /etc/subgid as shadow's tools do (`commonio_close`): under
//! their locks, every line kept as it was, and the new file written beside the old one
//! (`<file>+`, mode 0644 whatever the umask), synced, then renamed over it. A reader
//! such as newuidmap sees the old file or the new one, never half of one; and a crash
//! leaves the old file whole.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use common::explain;

use super::lock::{EditLock, suffixed};
use super::{Files, ID_LIMIT, SubRange, SubidFile, free_start};

// ANCHOR: ensure
/// The ranges of `owner` in both files; on first use, one new range of `count` ids
/// free in both, appended to each file that has none (as podman adds its own for
/// `--userns=auto`).
pub fn ensure(files: &Files, owner: &str, count: u32) -> Result<[Vec<SubRange>; 2]> {
    let owned = |file: &SubidFile| -> Vec<SubRange> {
        file.ranges()
            .filter(|r| r.owner == owner.as_bytes())
            .cloned()
            .collect()
    };
    // Reading needs no lock (files are replaced by rename): the usual case is done here.
    let [uids, gids] = read_both(files)?;
    if !owned(&uids).is_empty() && !owned(&gids).is_empty() {
        return Ok([owned(&uids), owned(&gids)]);
    }
    // Changing them does. Then read again: another process may have added the range
    // while we waited for the lock.
    let _lock = EditLock::acquire(&files.paths())?;
    let [uids, gids] = read_both(files)?;
    let start = free_start(&[&uids, &gids], count)?;
    let range = SubRange {
        owner: owner.as_bytes().to_vec(),
        start: start.into(),
        count: count.into(),
    };
    check_mappable(&range)?;
    for file in [&uids, &gids] {
        if owned(file).is_empty() {
            replace(&file.path, &with_range(file, &range))?;
            explain::step(
                format_args!("append \"{range}\" to {}", file.path.display()),
                "a range for keel's --userns auto containers, where no one else's ids are",
            );
        }
    }
    let [uids, gids] = read_both(files)?;
    Ok([owned(&uids), owned(&gids)])
}
// ANCHOR_END: ensure

fn read_both(files: &Files) -> Result<[SubidFile; 2]> {
    let read =
        |path: &Path| SubidFile::read(path).with_context(|| format!("reading {}", path.display()));
    Ok([read(&files.subuid)?, read(&files.subgid)?])
}

// ANCHOR: check_mappable
/// Refuses a range that no map could use: the kernel takes no id of 4294967295 or
/// more, nor a line whose ids run past it. Appended anyway, every later run would fail.
pub fn check_mappable(range: &SubRange) -> Result<()> {
    if range.count == 0 || range.end() > u128::from(ID_LIMIT) {
        bail!("the range {range} does not fit below {ID_LIMIT}, the end of the ids a map may name");
    }
    Ok(())
}
// ANCHOR_END: check_mappable

/// The file's bytes with `range` appended: every line as it was (each with its
/// `\n`, as shadow writes them), then `owner:start:count`.
fn with_range(file: &SubidFile, range: &SubRange) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in &file.lines {
        bytes.extend_from_slice(&line.bytes);
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&range.owner);
    bytes.extend_from_slice(format!(":{}:{}\n", range.start, range.count).as_bytes());
    bytes
}

// ANCHOR: replace
/// Replaces `path` by `bytes`: `<path>+` is written (mode 0644, or the old file's mode
/// if that allows less; set with fchmod, so the umask has no say), synced, and renamed
/// over `path`.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let old = fs::symlink_metadata(path).ok();
    let mode = old.as_ref().map_or(0o644, |m| m.mode() & 0o644);
    let (uid, gid) = old.as_ref().map_or((0, 0), |m| (m.uid(), m.gid()));
    let staging = suffixed(path, "+");
    // A `<file>+` can only be a crashed editor's leftover: we hold the lock.
    let _ = fs::remove_file(&staging);
    let written = (|| -> std::io::Result<()> {
        let mut file = fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&staging)?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&staging, path)?;
        // The rename itself is on disk only once the directory is.
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&staging);
    }
    written.with_context(|| format!("writing {} (through {})", path.display(), staging.display()))
}
// ANCHOR_END: replace

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::subid::FULL_RANGE;

    /// The umask is the process's: tests that change it take turns.
    static UMASK: Mutex<()> = Mutex::new(());

    fn files(uids: Option<&[u8]>, gids: Option<&[u8]>) -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            subuid: dir.path().join("subuid"),
            subgid: dir.path().join("subgid"),
        };
        for (path, bytes) in [(&files.subuid, uids), (&files.subgid, gids)] {
            if let Some(bytes) = bytes {
                fs::write(path, bytes).unwrap();
                fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        (dir, files)
    }

    #[test]
    fn ensure_adds_a_range_once_after_every_other() {
        let (_dir, files) = files(Some(b"alice:100000:65536\n"), Some(b"bob:165536:65536\n"));
        let first = ensure(&files, "keel", FULL_RANGE).unwrap();
        assert_eq!(first[0][0].start, 231072);
        assert_eq!(first[1][0].start, 231072);
        assert_eq!(ensure(&files, "keel", FULL_RANGE).unwrap(), first);
        assert_eq!(
            fs::read(&files.subuid).unwrap(),
            b"alice:100000:65536\nkeel:231072:65536\n"
        );
    }

    #[test]
    fn every_other_line_is_kept_byte_for_byte() {
        let text: &[u8] = b"a\xff:100000:65536\n\n+nis\n  \nlast:0x30d40:1";
        let (_dir, files) = files(Some(text), Some(b""));
        ensure(&files, "keel", FULL_RANGE).unwrap();
        let mut expected = text.to_vec();
        expected.extend_from_slice(b"\nkeel:200001:65536\n");
        assert_eq!(fs::read(&files.subuid).unwrap(), expected);
    }

    #[test]
    fn a_line_not_understood_stops_the_allocation_and_changes_nothing() {
        let text: &[u8] = b"alice:100000:65536\nbob:1x:65536\n";
        let (_dir, files) = files(Some(text), Some(b""));
        let err = format!("{:#}", ensure(&files, "keel", FULL_RANGE).unwrap_err());
        assert!(
            err.contains("line 2") && err.contains("bob:1x:65536"),
            "{err}"
        );
        assert_eq!(fs::read(&files.subuid).unwrap(), text);
        assert_eq!(fs::read(&files.subgid).unwrap(), b"");
    }

    #[test]
    fn a_range_past_the_last_id_is_never_appended() {
        let text: &[u8] = b"alice:100000:4294850000\n";
        let (_dir, files) = files(Some(text), None);
        assert!(ensure(&files, "keel", FULL_RANGE).is_err());
        assert_eq!(fs::read(&files.subuid).unwrap(), text);
        assert!(!files.subgid.exists());
        let top = SubRange {
            owner: b"keel".to_vec(),
            start: 4294901760,
            count: 65536,
        };
        assert!(check_mappable(&top).is_err());
        let fits = SubRange {
            start: 4294901759,
            ..top
        };
        assert!(check_mappable(&fits).is_ok());
    }

    #[test]
    fn a_missing_file_is_created_0644_whatever_the_umask() {
        let _turn = UMASK.lock().unwrap_or_else(|p| p.into_inner());
        for umask in [0o000, 0o077] {
            let (_dir, files) = files(Some(b""), None);
            // SAFETY: umask only swaps the process's file mode mask.
            let old = unsafe { libc::umask(umask) };
            let ensured = ensure(&files, "keel", FULL_RANGE);
            unsafe { libc::umask(old) };
            ensured.unwrap();
            let mode = fs::metadata(&files.subgid).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o644, "umask {umask:03o}");
        }
    }

    #[test]
    fn a_world_writable_file_is_rewritten_0644() {
        let (_dir, files) = files(Some(b""), Some(b""));
        fs::set_permissions(&files.subuid, fs::Permissions::from_mode(0o666)).unwrap();
        ensure(&files, "keel", FULL_RANGE).unwrap();
        let mode = fs::metadata(&files.subuid).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn no_lock_and_no_staging_file_is_left() {
        let (dir, files) = files(Some(b""), Some(b""));
        ensure(&files, "keel", FULL_RANGE).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["subgid", "subuid"]);
    }
}

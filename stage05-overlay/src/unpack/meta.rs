//! An entry's owner, mode, time and xattrs: read from its headers, set on what was made.
//!
//! The order matters: `chown` clears the setuid and setgid bits and drops
//! `security.capability`, so the owner is set first, then the mode, then the xattrs,
//! then the time. A directory's time changes with every entry made inside it, so
//! directories get theirs once the whole layer is applied.
//!
//! The owner is the image's: uid 1000 in the layer is uid 1000 in the container. As
//! real root that is uid 1000 on the host; as root of a user namespace, the kernel
//! maps it through the namespace's map (uid 1 of the image becomes the first
//! subordinate id). An id the map lacks cannot be set (`EINVAL`), and that is an error:
//! the file would otherwise belong to someone else than the image says.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::BorrowedFd;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmod, fchmodat, futimens, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::xattr::{self, Verdict};

/// What the headers say about an entry, besides its name and kind.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Permission bits, with setuid, setgid and sticky.
    pub(crate) mode: u32,
    pub(crate) mtime: TimeSpec,
    /// `SCHILY.xattr.*` of the PAX header.
    pub(crate) xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    /// Reads them from the entry's header and PAX header (which win: they hold ids and
    /// times too large for the header's fields).
    pub(crate) fn read<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Self> {
        let header = entry.header();
        let old = header.as_old();
        let bad = |field: &str| format!("the entry {shown} has a malformed {field} field");
        let mut uid = numeric(header.uid(), &old.uid).with_context(|| bad("uid"))?;
        let mut gid = numeric(header.gid(), &old.gid).with_context(|| bad("gid"))?;
        let mode = numeric(header.mode().map(u64::from), &old.mode).with_context(|| bad("mode"))?;
        let mode = (mode & 0o7777) as u32;
        let mtime = numeric(header.mtime(), &old.mtime).with_context(|| bad("mtime"))?;
        let mut mtime = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().with_context(|| bad("PAX header"))? {
            for extension in pax {
                let extension = extension.with_context(|| bad("PAX header"))?;
                let Ok(key) = extension.key() else { continue };
                let value = extension.value_bytes();
                let text = || std::str::from_utf8(value).ok();
                match key {
                    "uid" => {
                        uid = text()
                            .and_then(|v| v.parse().ok())
                            .with_context(|| bad("PAX uid"))?
                    }
                    "gid" => {
                        gid = text()
                            .and_then(|v| v.parse().ok())
                            .with_context(|| bad("PAX gid"))?
                    }
                    "mtime" => {
                        mtime = text()
                            .and_then(pax_time)
                            .with_context(|| bad("PAX mtime"))?
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((name.to_owned(), value.to_vec()));
                        }
                    }
                }
            }
        }
        let id = |id: u64, what: &str| {
            u32::try_from(id)
                .map_err(|_| anyhow!("the entry {shown} has the {what} {id}, beyond 32 bits"))
        };
        Ok(Self {
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            mode,
            mtime,
            xattrs,
        })
    }
}

/// A numeric header field; an empty one (all NULs or spaces) is 0, as Go's
/// `archive/tar` (docker's) reads it, and some tools write them so.
fn numeric(parsed: std::io::Result<u64>, raw: &[u8]) -> std::io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        parsed => parsed,
    }
}

/// A PAX time: seconds, optionally with a fraction (`1700000000.123456789`).
fn pax_time(text: &str) -> Option<TimeSpec> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    Some(TimeSpec::new(secs, if secs < 0 { -nanos } else { nanos }))
}

/// The error of a `chown` the user namespace's map cannot do.
fn chown_error(errno: Errno, shown: &str, meta: &Meta) -> anyhow::Error {
    if errno == Errno::EINVAL {
        anyhow!(
            "the entry {shown} belongs to uid {} gid {}, which this user namespace does not \
             map: give the user subordinate ids that cover the image's (/etc/subuid and \
             /etc/subgid, at least 65536 of each)",
            meta.uid,
            meta.gid
        )
    } else {
        anyhow!(
            "chown {shown} to {}:{}: {}",
            meta.uid,
            meta.gid,
            errno.desc()
        )
    }
}

// ANCHOR: apply_fd
/// Sets owner, mode and xattrs on an open regular file or directory.
pub(crate) fn apply_fd(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    shown: &str,
    rootless: bool,
    warnings: &mut Vec<String>,
) -> Result<()> {
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|errno| chown_error(errno, shown, meta))?;
    fchmod(fd, Mode::from_bits_retain(meta.mode))
        .with_context(|| format!("chmod {:o} {shown}", meta.mode))?;
    for (name, value) in &meta.xattrs {
        match xattr::judge(name, rootless) {
            Verdict::Keep => match xattr::set(fd, name, value) {
                Ok(()) => {}
                Err(Errno::EOPNOTSUPP) => warnings.push(format!(
                    "{shown}: the xattr {name} was not kept: the filesystem does not support it"
                )),
                Err(errno) => bail!("{shown}: setting the xattr {name}: {}", errno.desc()),
            },
            Verdict::Skip(why) => {
                warnings.push(format!("{shown}: the xattr {name} was skipped: {why}"))
            }
        }
    }
    Ok(())
}
// ANCHOR_END: apply_fd

/// Sets the modification (and access) time on an open file.
pub(crate) fn set_time_fd(fd: BorrowedFd<'_>, mtime: &TimeSpec, shown: &str) -> Result<()> {
    futimens(fd, mtime, mtime).with_context(|| format!("setting the time of {shown}"))
}

/// Sets owner, mode (unless a symlink, which has none) and time on the entry `name`
/// of `parent`, which is not followed if it is a symlink. For what cannot be opened
/// safely: symlinks, device nodes, fifos. Their xattrs are not kept (the kernel allows
/// only `security.*` ones on them, and keel keeps none of those but capabilities,
/// which only mean something on a regular file).
pub(crate) fn apply_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
    shown: &str,
    symlink: bool,
    warnings: &mut Vec<String>,
) -> Result<()> {
    fchownat(
        parent,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|errno| chown_error(errno, shown, meta))?;
    if !symlink {
        fchmodat(
            parent,
            name,
            Mode::from_bits_retain(meta.mode),
            FchmodatFlags::NoFollowSymlink,
        )
        .with_context(|| format!("chmod {:o} {shown}", meta.mode))?;
    }
    utimensat(
        parent,
        name,
        &meta.mtime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .with_context(|| format!("setting the time of {shown}"))?;
    if !meta.xattrs.is_empty() {
        warnings.push(format!(
            "{shown}: its xattrs were not kept (keel keeps xattrs of files and directories only)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_their_fraction() {
        assert_eq!(pax_time("12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(pax_time("12.5"), Some(TimeSpec::new(12, 500_000_000)));
        assert_eq!(
            pax_time("12.1234567891"),
            Some(TimeSpec::new(12, 123_456_789))
        );
        assert_eq!(pax_time("1x"), None);
        assert_eq!(pax_time("1.x"), None);
    }
}

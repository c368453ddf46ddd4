//! Applying a layer: a tar stream made into a directory tree.
//!
//! This is where container runtimes get attacked: a layer is a tar file from
//! anywhere, and tar can name `../../etc/cron.d/x`, or make `a` a symlink to `/` and
//! then write `a/etc/shadow`, or hardlink `/etc/shadow` into the image. So the `tar`
//! crate only *reads* here (headers and data); every path is decided by this module
//! ([`name`]) and every file made relative to directory fds that cannot be left
//! ([`beneath`]).
//!
//! Two ways to apply layers:
//! - [`apply_layer`]: one layer into its own empty directory, an overlay lowerdir.
//!   Deletions of the layers below are recorded the way overlayfs reads them: a
//!   whiteout is a 0:0 character device, an opaque directory has the xattr
//!   `trusted.overlay.opaque=y` (or `user.overlay.opaque=y` rootless, which overlay
//!   reads with its `userxattr` option). It is two steps, which a pull takes apart to
//!   unpack an image's layers at once: [`unpack_layer`] needs no layer below, and
//!   [`Unpacked::settle`] then gives the directories the tar only implies the
//!   metadata of the layers below (see [`implied`]).
//! - [`apply_flat`]: every layer in turn onto one directory, deletions done for real:
//!   for when overlayfs is not available (a copy per container, as docker's `vfs`).

mod beneath;
pub(crate) mod compression;
mod data;
mod implied;
mod lower;
mod meta;
mod name;
mod xattr;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow};
use nix::sys::stat::{Mode, SFlag, fstatat, makedev, mkdirat, mknodat};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};
use stage02_mountns::at::{At, openat2};
use tar::EntryType;

use crate::digest::{Digest, Verifier};
use meta::Meta;
use name::{EntryPath, Special};

pub use implied::Unpacked;

/// How to apply a layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Unpacking as root of a user namespace, not as real root: device nodes are
    /// skipped (the kernel refuses them; a container's /dev comes from the host),
    /// `trusted.*` xattrs are skipped, and overlay's xattrs are `user.overlay.*`.
    pub rootless: bool,
}

impl Options {
    /// The xattr that marks an opaque directory for overlayfs.
    pub fn opaque_xattr(&self) -> &'static str {
        if self.rootless {
            "user.overlay.opaque"
        } else {
            "trusted.overlay.opaque"
        }
    }
}

/// What applying a layer did.
#[derive(Debug)]
pub struct Applied {
    /// The digest of the uncompressed tar: the layer's `diff_id`, to compare with the
    /// image's config.
    pub diff_id: Digest,
    /// How many entries the tar had.
    pub entries: u64,
    /// What was skipped, each naming the entry and why.
    pub warnings: Vec<String>,
}

// ANCHOR: apply_layer
/// Applies the layer `blob` (tar, gzip or zstd) into the empty directory `dest`, as an
/// overlay lowerdir. `lowers` are the directories of the layers below it, bottom
/// first; they are only read (see [`lower`]).
pub fn apply_layer(
    blob: impl Read,
    dest: &At,
    lowers: &[At],
    options: &Options,
) -> Result<Applied> {
    unpack_layer(blob, dest, options)?.settle(lowers)
}
// ANCHOR_END: apply_layer

/// [`apply_layer`] but for the metadata of the directories the tar implies, which
/// [`Unpacked::settle`] gives them once the layers below are whole.
pub fn unpack_layer(blob: impl Read, dest: &At, options: &Options) -> Result<Unpacked> {
    apply(blob, dest, Target::Overlay, options)
}

/// Applies the layer `blob` onto `dest`, which holds the layers below it: whiteouts
/// delete what they name, opaque markers empty their directory.
pub fn apply_flat(blob: impl Read, dest: &At, options: &Options) -> Result<Applied> {
    // Below the directories it makes there is nothing: they are the layer's.
    apply(blob, dest, Target::Flat, options)?.settle(&[])
}

/// Where the layer goes.
#[derive(Clone, Copy)]
enum Target {
    Overlay,
    Flat,
}

fn apply(blob: impl Read, dest: &At, target: Target, options: &Options) -> Result<Unpacked> {
    let tar = compression::decompress(blob)?;
    let mut hashed = Verifier::new(tar);
    let root = beneath::open(
        dest.as_fd(),
        Path::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    )
    .context("opening the layer's directory")?;
    let mut unpacker = Unpacker {
        root,
        target,
        options: *options,
        seen: HashSet::new(),
        implied: BTreeMap::new(),
        copier: data::Copier::new(),
        dir_times: Vec::new(),
        warnings: Vec::new(),
    };
    let mut entries = 0;
    {
        let mut archive = tar::Archive::new(&mut hashed);
        for entry in archive.entries().map_err(stream_error)? {
            let mut entry = entry.map_err(stream_error)?;
            unpacker.entry(&mut entry)?;
            entries += 1;
        }
    }
    // The tar ends with zero blocks (and a compressed stream with its checksum): read
    // to the end, so that the digest covers the whole tar and the checksum is checked.
    io::copy(&mut hashed, &mut io::sink()).map_err(stream_error)?;
    unpacker.set_dir_times()?;
    Ok(Unpacked {
        root: unpacker.root,
        implied: unpacker.implied,
        options: unpacker.options,
        applied: Applied {
            diff_id: hashed.digest().0,
            entries,
            warnings: unpacker.warnings,
        },
    })
}

/// A read error of the stream itself.
fn stream_error(err: io::Error) -> anyhow::Error {
    anyhow!(
        "reading the layer: {err}: the stream is truncated or corrupt (an interrupted \
         download, or not a tar)"
    )
}

struct Unpacker {
    /// The layer's directory.
    root: OwnedFd,
    target: Target,
    options: Options,
    /// The paths this layer made (entries and the directories made for them): the
    /// only targets its hardlinks may have, and what its own opaque markers keep.
    seen: HashSet<PathBuf>,
    /// The directories made for entries but not listed themselves (yet), each with
    /// the first entry that needed it: their metadata comes from the layers below, in
    /// [`Unpacked::settle`].
    implied: BTreeMap<PathBuf, String>,
    copier: data::Copier,
    /// Directories' times, set at the end.
    dir_times: Vec<(PathBuf, TimeSpec)>,
    warnings: Vec<String>,
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(()); // defaults for later entries, which their headers repeat
        }
        let raw = entry.path_bytes().into_owned();
        let shown = name::shown(&raw);
        let Some(path) = name::normalize(&raw)? else {
            return self.root_entry(entry, kind, &shown);
        };
        match name::classify(&path)? {
            Special::AufsMetadata => Ok(()),
            Special::Whiteout { target } => self.whiteout(&target, &shown),
            Special::Opaque { dir } => self.opaque(dir.as_ref(), &shown),
            Special::None => self.create(entry, kind, &path, &shown),
        }
    }

    /// `./` or `/`: the layer's root directory; only its metadata can be set.
    fn root_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        shown: &str,
    ) -> Result<()> {
        if !kind.is_dir() {
            bail!("the entry {shown} names the layer's root, which can only be a directory");
        }
        let meta = Meta::read(entry, shown)?;
        meta::apply_fd(
            self.root.as_fd(),
            &meta,
            shown,
            self.options.rootless,
            &mut self.warnings,
        )?;
        self.dir_times.push((PathBuf::new(), meta.mtime));
        Ok(())
    }

    // ANCHOR: create
    /// Makes the entry `path`.
    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        path: &EntryPath,
        shown: &str,
    ) -> Result<()> {
        let meta = Meta::read(entry, shown)?;
        let parent = self.parent_dir(path, shown)?;
        let parent = parent.as_fd();
        let name = path.name();
        // Listed: what the tar says wins over what the layers below show.
        self.implied.remove(&path.to_path());
        let rootless = self.options.rootless;
        // What is there already goes, unless a directory meets a directory: then the
        // entry only sets its metadata (tar lists a directory once, but layers may
        // repeat it, and a lower layer's stays with its contents in flat mode).
        let existing = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Some(SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT),
            Err(Errno::ENOENT) => None,
            Err(errno) => return Err(errno).with_context(|| format!("stat {shown}")),
        };
        if existing.is_some() && !(kind.is_dir() && existing == Some(SFlag::S_IFDIR)) {
            beneath::remove(parent, name)
                .with_context(|| format!("removing what is at {shown} to replace it"))?;
        }
        let made = |result: nix::Result<()>| {
            result.map_err(|errno| anyhow!("creating {shown}: {}", beneath::why(errno)))
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let how = OpenHow::new()
                    .flags(
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                    )
                    .mode(Mode::from_bits_truncate(0o600))
                    .resolve(beneath::resolve());
                let fd = openat2(parent, Path::new(name), how)
                    .map_err(|errno| anyhow!("creating {shown}: {}", beneath::why(errno)))?;
                let mut file = File::from(fd);
                self.copier.copy(entry, &mut file).map_err(stream_error)?;
                meta::apply_fd(file.as_fd(), &meta, shown, rootless, &mut self.warnings)?;
                meta::set_time_fd(file.as_fd(), &meta.mtime, shown)?;
            }
            EntryType::Directory => {
                if existing != Some(SFlag::S_IFDIR) {
                    made(mkdirat(parent, name, Mode::from_bits_truncate(0o700)))?;
                }
                let dir = beneath::open(
                    parent,
                    Path::new(name),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                )
                .map_err(|errno| anyhow!("opening {shown}: {}", beneath::why(errno)))?;
                meta::apply_fd(dir.as_fd(), &meta, shown, rootless, &mut self.warnings)?;
                self.dir_times.push((path.to_path(), meta.mtime));
            }
            EntryType::Symlink => {
                // Stored as it is: `/usr/bin/busybox` means the container's, and is only
                // ever resolved inside the container's root. Never followed here.
                let target = entry
                    .link_name_bytes()
                    .with_context(|| format!("the symlink {shown} has no target"))?;
                if target.is_empty() || target.contains(&0) {
                    bail!("the symlink {shown} has an empty target, or one with a NUL byte");
                }
                made(symlinkat(OsStr::from_bytes(&target), parent, name))?;
                meta::apply_at(parent, name, &meta, shown, true, &mut self.warnings)?;
            }
            EntryType::Link => self.hardlink(entry, parent, name, shown)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, what) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, "character device"),
                    EntryType::Block => (SFlag::S_IFBLK, "block device"),
                    _ => (SFlag::S_IFIFO, "fifo"),
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                if rootless && sflag != SFlag::S_IFIFO {
                    self.warnings.push(format!(
                        "{shown}: the {what} {major}:{minor} was skipped: a user namespace \
                         cannot make device nodes (a container's /dev is made by the runtime)"
                    ));
                    return Ok(());
                }
                let dev = makedev(u64::from(major), u64::from(minor));
                made(mknodat(
                    parent,
                    name,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    dev,
                ))?;
                meta::apply_at(parent, name, &meta, shown, false, &mut self.warnings)?;
            }
            EntryType::GNUSparse => bail!(
                "the entry {shown} is a sparse file, which keel does not unpack; rebuild the \
                 layer without sparse files (GNU tar without --sparse)"
            ),
            other => bail!(
                "the entry {shown} has the type {:?}, which is not a file, directory, link, \
                 device or fifo",
                other.as_byte() as char
            ),
        }
        self.seen.insert(path.to_path());
        Ok(())
    }
    // ANCHOR_END: create

    // ANCHOR: hardlink
    /// A hardlink: to an entry this layer made before, and nothing else. A layer
    /// cannot link to a file of another layer (in overlay they are different
    /// directories), and a link to `/etc/shadow` must not reach the host's.
    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        shown: &str,
    ) -> Result<()> {
        let raw = entry
            .link_name_bytes()
            .with_context(|| format!("the hardlink {shown} has no target"))?
            .into_owned();
        let target = name::normalize(&raw)
            .with_context(|| format!("the hardlink {shown}"))?
            .with_context(|| format!("the hardlink {shown} points to the layer's root"))?;
        if !self.seen.contains(&target.to_path()) {
            bail!(
                "the hardlink {shown} points to {}, which is not an earlier entry of this \
                 layer: a layer may only link to files it holds",
                name::shown(&raw)
            );
        }
        let target_parent = beneath::open_dir(self.root.as_fd(), target.parents())
            .map_err(|errno| anyhow!("the hardlink {shown}: {}", beneath::why(errno)))?;
        linkat(
            target_parent.as_fd(),
            target.name(),
            parent,
            name,
            AtFlags::empty(),
        )
        .map_err(|errno| {
            anyhow!(
                "the hardlink {shown} -> {}: {}",
                name::shown(&raw),
                errno.desc()
            )
        })
    }
    // ANCHOR_END: hardlink

    /// Opens the directory an entry goes in, making the directories missing on the way.
    fn parent_dir(&mut self, path: &EntryPath, shown: &str) -> Result<OwnedFd> {
        self.dir(path.parents(), shown)
    }

    /// Opens the directory `parts`, making what is missing of it; what it makes is
    /// [`Unpacker::implied`].
    fn dir(&mut self, parts: &[std::ffi::OsString], shown: &str) -> Result<OwnedFd> {
        let mut dir = beneath::open_dir(self.root.as_fd(), &[])?;
        for (i, part) in parts.iter().enumerate() {
            match beneath::open_dir(dir.as_fd(), std::slice::from_ref(part)) {
                Ok(next) => {
                    dir = next;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(errno) => bail!(
                    "the entry {shown}: at {}: {}",
                    parts[..=i].iter().collect::<PathBuf>().display(),
                    beneath::why(errno)
                ),
            }
            mkdirat(
                dir.as_fd(),
                part.as_os_str(),
                Mode::from_bits_truncate(0o700),
            )
            .with_context(|| format!("creating the directory of {shown}"))?;
            let made = beneath::open_dir(dir.as_fd(), std::slice::from_ref(part))?;
            let path: PathBuf = parts[..=i].iter().collect();
            self.seen.insert(path.clone());
            self.implied.insert(path, shown.to_owned());
            dir = made;
        }
        Ok(dir)
    }

    /// `.wh.NAME`: overlay mode records it as a 0:0 character device (the kernel lets
    /// a user namespace make that one, since Linux 5.8); flat mode deletes `NAME`.
    fn whiteout(&mut self, target: &EntryPath, shown: &str) -> Result<()> {
        // ANCHOR: whiteout
        // EXERCISE: for Target::Overlay, open the target's parent (self.parent_dir), remove what is there already (beneath::remove_if_present), then mknodat a 0:0 character device named target.name(); for Target::Flat, open the parent beneath self.root (beneath::open_dir; ENOENT: nothing to delete) and remove target.name() if present; then forget the path in self.seen
        match self.target {
            Target::Overlay => {
                let parent = self.parent_dir(target, shown)?;
                beneath::remove_if_present(parent.as_fd(), target.name())
                    .with_context(|| format!("the whiteout {shown}"))?;
                mknodat(
                    parent.as_fd(),
                    target.name(),
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    0,
                )
                .map_err(|errno| anyhow!("the whiteout {shown}: mknod: {}", errno.desc()))?;
            }
            Target::Flat => {
                let parent = match beneath::open_dir(self.root.as_fd(), target.parents()) {
                    Ok(parent) => parent,
                    Err(Errno::ENOENT) => return Ok(()), // nothing to delete
                    Err(errno) => bail!("the whiteout {shown}: {}", beneath::why(errno)),
                };
                beneath::remove_if_present(parent.as_fd(), target.name())
                    .map_err(|errno| anyhow!("the whiteout {shown}: {}", beneath::why(errno)))?;
            }
        }
        self.seen.remove(&target.to_path());
        Ok(())
        // ANCHOR_END: whiteout
    }

    // ANCHOR: opaque
    /// `DIR/.wh..wh..opq`: overlay mode marks `DIR` opaque with an xattr; flat mode
    /// empties it of what the layers below put there.
    fn opaque(&mut self, dir: Option<&EntryPath>, shown: &str) -> Result<()> {
        let parts = dir.map_or(&[][..], EntryPath::parts);
        match self.target {
            Target::Overlay => {
                let fd = self.dir(parts, shown)?;
                let name = self.options.opaque_xattr();
                xattr::set(fd.as_fd(), name, b"y").map_err(|errno| {
                    anyhow!(
                        "the opaque marker {shown}: setting {name}: {}",
                        errno.desc()
                    )
                })?;
            }
            Target::Flat => {
                let fd = match beneath::open_dir(self.root.as_fd(), parts) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => return Ok(()),
                    Err(errno) => bail!("the opaque marker {shown}: {}", beneath::why(errno)),
                };
                let base = parts.iter().collect::<PathBuf>();
                self.empty_but_seen(fd.as_fd(), &base)
                    .with_context(|| format!("the opaque marker {shown}"))?;
            }
        }
        Ok(())
    }

    /// Removes from the directory `dir` (at `base`) what this layer did not make.
    fn empty_but_seen(&self, dir: BorrowedFd<'_>, base: &Path) -> Result<()> {
        for child in beneath::children(dir)? {
            let path = base.join(&child);
            if !self.seen.contains(&path) {
                beneath::remove(dir, &child)?;
            } else if let Ok(sub) = beneath::open_dir(dir, std::slice::from_ref(&child)) {
                self.empty_but_seen(sub.as_fd(), &path)?;
            }
        }
        Ok(())
    }
    // ANCHOR_END: opaque

    /// Sets the directories' times, now that nothing more is made inside them.
    fn set_dir_times(&self) -> Result<()> {
        for (path, mtime) in &self.dir_times {
            let parts: Vec<_> = path.iter().map(|p| p.to_owned()).collect();
            match beneath::open_dir(self.root.as_fd(), &parts) {
                Ok(dir) => meta::set_time_fd(dir.as_fd(), mtime, &format!("{path:?}"))?,
                // Deleted by a later whiteout, or replaced by a later entry.
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(errno) => bail!("setting the time of {path:?}: {}", beneath::why(errno)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

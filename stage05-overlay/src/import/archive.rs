//! An image archive's files, read out of the tar without trusting its names.
//!
//! An image archive is a tar whose files name one another: `manifest.json` names the
//! layer tars, `index.json` names blobs. Those names come from whoever made the
//! archive, so they are never used as paths on this machine. The archive is read in
//! two passes over the file, and nothing of it is held in memory:
//!
//! 1. [`Archive::scan`] lists every entry (its name, kind and size) and stages the few
//!    files that say what the archive is (`manifest.json`, `index.json`,
//!    `oci-layout`);
//! 2. [`Archive::stage`] copies the entries the import needs, once it knows which.
//!
//! Staged entries go into a directory of the store's `tmp/` (same filesystem, swept
//! if this process dies), each under the *number* of its entry, never its name. A name
//! is looked up by keel's code ([`Archive::open`]): it must be relative, without `..`,
//! and name a regular file. A symbolic link is followed only where docker's own
//! `docker save` writes one (a layer shared by two images: `<id>/layer.tar ->
//! ../<other>/layer.tar`), and then only within the archive, one step, by keel
//! resolving the name itself; nothing on disk is ever followed.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tar::EntryType;

use crate::store::{Staged, Store};
use crate::unpack::compression;

/// The files that tell what an archive is, staged while it is scanned.
const MARKERS: [&str; 3] = ["manifest.json", "index.json", "oci-layout"];

/// What an archive holds, as its entries say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// `docker save` (or `skopeo copy ... docker-archive:`): a `manifest.json`.
    Docker,
    /// An OCI image layout in a tar (`skopeo copy ... oci-archive:`): an `oci-layout`.
    Oci,
    /// Neither: a root filesystem.
    Rootfs,
}

/// Whether a name may be a symbolic link to another entry of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Links {
    /// Only a regular file will do (`manifest.json`, `index.json`, blobs).
    Refuse,
    /// A link to a regular file of the archive is followed, one step (docker's layers).
    Follow,
}

#[derive(Debug)]
enum Kind {
    File,
    /// A symbolic or hard link, and the name of its target within the archive, or why
    /// it has none.
    Link(Result<String, String>),
    Other(&'static str),
}

#[derive(Debug)]
struct Entry {
    /// Its place in the tar: 0 for the first entry.
    position: usize,
    kind: Kind,
}

/// A tar file's entries by name, and those staged so far.
#[derive(Debug)]
pub(super) struct Archive {
    tarball: PathBuf,
    /// The last entry of each name (a later entry replaces an earlier one, as when a
    /// tar is extracted).
    entries: HashMap<String, Entry>,
    /// The first name that is not a plain relative name, kept to refuse the archive.
    unclean: Option<String>,
    /// The staging directory in the store's `tmp/`, removed when this is dropped.
    dir: Staged,
    staged: BTreeSet<usize>,
}

impl Archive {
    /// Lists the entries of `tarball` (plain or compressed, as `docker load` takes),
    /// staging the ones that tell its format.
    pub(super) fn scan(store: &Store, tarball: &Path) -> Result<Self> {
        let dir = store.staged();
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.path())
            .with_context(|| format!("creating {}", dir.path().display()))?;
        let mut archive = Self {
            tarball: tarball.to_owned(),
            entries: HashMap::new(),
            unclean: None,
            dir,
            staged: BTreeSet::new(),
        };
        let staging = archive.dir.path().to_owned();
        let mut staged = BTreeSet::new();
        let mut entries = HashMap::new();
        let mut unclean = None;
        for_each_entry(tarball, |position, entry| {
            let raw = entry.path_bytes().into_owned();
            let kind = entry.header().entry_type();
            let Some(name) = clean(&raw) else {
                unclean.get_or_insert_with(|| String::from_utf8_lossy(&raw).into_owned());
                return Ok(());
            };
            if name.is_empty() {
                return Ok(()); // `./`: the archive's root directory
            }
            let kind = match kind {
                EntryType::Regular | EntryType::Continuous => Kind::File,
                EntryType::Symlink | EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    Kind::Link(link_target(&name, &target, kind == EntryType::Symlink))
                }
                EntryType::Directory => Kind::Other("a directory"),
                EntryType::XGlobalHeader => return Ok(()),
                _ => Kind::Other("not a regular file"),
            };
            if matches!(kind, Kind::File) && MARKERS.contains(&name.as_str()) {
                stage_entry(&staging, position, entry)?;
                staged.insert(position);
            }
            entries.insert(name, Entry { position, kind });
            Ok(())
        })?;
        archive.entries = entries;
        archive.staged = staged;
        archive.unclean = unclean;
        Ok(archive)
    }

    /// The archive's format, by the files it holds. `manifest.json` wins over
    /// `oci-layout`: docker 25 and later write both in one archive, and the first
    /// carries the images' full names.
    pub(super) fn format(&self) -> Result<Format> {
        let format = if self.entries.contains_key("manifest.json") {
            Format::Docker
        } else if self.entries.contains_key("oci-layout") {
            Format::Oci
        } else if self.entries.contains_key("repositories") {
            // docker before 1.10 wrote only this and a directory per layer, with no
            // digests to check a layer against.
            bail!(
                "{} is an archive of docker before 1.10 (a `repositories` file, no \
                 manifest.json), which keel does not read: load it into a newer docker \
                 and save it again",
                self.tarball.display()
            );
        } else {
            return Ok(Format::Rootfs);
        };
        if let Some(name) = &self.unclean {
            bail!(
                "{} has an entry named {name:?}: an image archive names its files relative \
                 to its root, without `..`, so this one is malformed or hostile; nothing \
                 was imported",
                self.tarball.display()
            );
        }
        Ok(format)
    }

    /// The names of the regular files under `prefix` (such as `blobs/`).
    pub(super) fn files_under(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|(name, entry)| name.starts_with(prefix) && matches!(entry.kind, Kind::File))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Copies the entries `names` lead to into the staging directory, in one pass
    /// over the tar, so that [`Archive::open`] finds them.
    pub(super) fn stage(&mut self, names: &[String], links: Links) -> Result<()> {
        let mut wanted = BTreeSet::new();
        for name in names {
            let position = self.locate(name, links)?;
            if !self.staged.contains(&position) {
                wanted.insert(position);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let staging = self.dir.path().to_owned();
        for_each_entry(&self.tarball, |position, entry| {
            if wanted.contains(&position) {
                stage_entry(&staging, position, entry)?;
            }
            Ok(())
        })?;
        self.staged.extend(wanted);
        Ok(())
    }

    /// Opens the file `name` of the archive, staged before.
    pub(super) fn open(&self, name: &str, links: Links) -> Result<File> {
        let position = self.locate(name, links)?;
        if !self.staged.contains(&position) {
            bail!("internal error: {name} of the archive was not staged before it was read");
        }
        let path = self.dir.path().join(position.to_string());
        File::open(&path).with_context(|| format!("opening {}", path.display()))
    }

    /// What the archive is called in messages.
    pub(super) fn describe(&self) -> String {
        self.tarball.display().to_string()
    }

    /// The entry of the regular file `name`, or why there is none.
    fn locate(&self, name: &str, links: Links) -> Result<usize> {
        let shown = self.describe();
        let Some(clean_name) = clean(name.as_bytes()).filter(|n| !n.is_empty()) else {
            bail!(
                "{shown} names the file {name:?}: a name in an image archive is relative to \
                 its root, without `..`; refused"
            );
        };
        let Some(entry) = self.entries.get(&clean_name) else {
            bail!("{shown} has no file {name:?}, which it names: the archive is incomplete");
        };
        match (&entry.kind, links) {
            (Kind::File, _) => Ok(entry.position),
            (Kind::Other(what), _) => bail!("{name:?} in {shown} is {what}, not a file"),
            (Kind::Link(_), Links::Refuse) => bail!(
                "{name:?} in {shown} is a link: only a layer may be a link in an image \
                 archive; refused"
            ),
            (Kind::Link(Err(why)), Links::Follow) => {
                bail!("{name:?} in {shown} is a link {why}; refused")
            }
            (Kind::Link(Ok(target)), Links::Follow) => match self.entries.get(target) {
                Some(Entry {
                    kind: Kind::File,
                    position,
                }) => Ok(*position),
                Some(_) => bail!(
                    "{name:?} in {shown} is a link to {target:?}, which is not a regular \
                     file; refused"
                ),
                None => bail!(
                    "{name:?} in {shown} is a link to {target:?}, which the archive does not \
                     have: it is incomplete"
                ),
            },
        }
    }
}

/// Reads `tarball`'s entries in order, giving each with its position.
fn for_each_entry(
    tarball: &Path,
    mut each: impl FnMut(usize, &mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<()>,
) -> Result<()> {
    let shown = tarball.display();
    let file = File::open(tarball).with_context(|| format!("opening {shown}"))?;
    let (_, tar) = compression::detect(io::BufReader::new(file))
        .with_context(|| format!("reading {shown}"))?;
    let mut tar = tar::Archive::new(tar);
    let not_tar = |err: io::Error| {
        anyhow::anyhow!(
            "reading {shown}: {err}: it is not a tar (an image archive or a root \
             filesystem), or it is truncated"
        )
    };
    for (position, entry) in tar.entries().map_err(not_tar)?.enumerate() {
        let mut entry = entry.map_err(not_tar)?;
        each(position, &mut entry)?;
    }
    Ok(())
}

/// Copies an entry's content to `<dir>/<position>`.
fn stage_entry(dir: &Path, position: usize, entry: &mut impl Read) -> Result<()> {
    let path = dir.join(position.to_string());
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    io::copy(entry, &mut file).with_context(|| format!("staging {}", path.display()))?;
    Ok(())
}

/// A name of the archive in canonical form (`./a//b` is `a/b`, `.` is ""), or `None`
/// when it is absolute, holds `..` or is not UTF-8 (JSON, which names files, cannot
/// name such a file anyway).
fn clean(raw: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(raw).ok()?;
    if name.starts_with('/') || name.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The name of the entry a link at `name` points to: a symbolic link's target is
/// relative to the link's directory and may climb with `..`, but not out of the
/// archive; a hard link's is a name of the archive.
fn link_target(name: &str, target: &[u8], symbolic: bool) -> Result<String, String> {
    let shown = String::from_utf8_lossy(target);
    let target = std::str::from_utf8(target).map_err(|_| format!("to {shown:?}"))?;
    if target.starts_with('/') {
        return Err(format!(
            "to the absolute path {target:?}, outside the archive"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    if symbolic {
        parts.extend(name.split('/'));
        parts.pop(); // the link's own name
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("to {target:?}, outside the archive"));
                }
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(clean(b"./manifest.json").as_deref(), Some("manifest.json"));
        assert_eq!(clean(b"a//./b").as_deref(), Some("a/b"));
        assert_eq!(clean(b"./").as_deref(), Some(""));
        for bad in [&b"/etc/passwd"[..], b"a/../b", b"..", b"\xff"] {
            assert_eq!(clean(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn links_resolve_within_the_archive_only() {
        let link = |name, target| link_target(name, target, true);
        assert_eq!(
            link("b/layer.tar", b"../a/layer.tar").unwrap(),
            "a/layer.tar"
        );
        assert_eq!(link("layer.tar", b"./x").unwrap(), "x");
        assert!(link("b/layer.tar", b"../../etc/passwd").is_err());
        assert!(link("b/layer.tar", b"/etc/passwd").is_err());
        assert_eq!(
            link_target("b/layer.tar", b"a/layer.tar", false).unwrap(),
            "a/layer.tar"
        );
    }
}

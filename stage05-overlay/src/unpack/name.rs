//! What an entry's name may be, decided before anything is created.
//!
//! The rules, docker's where docker has one:
//! - a leading `/` is dropped (`/etc/passwd` is `etc/passwd`), as docker does: a
//!   layer's paths are relative to the image's root whichever way they are written;
//! - `.` components and repeated `/` are dropped;
//! - a `..` component is refused, anywhere: docker accepts `a/../b` when it stays
//!   inside, but no tool that builds layers writes one, and a name that is refused
//!   cannot be misread;
//! - an empty name, or one holding a NUL byte (possible in a PAX header), is refused.
//!
//! An entry whose name is only `/` or `.` is the layer's root directory itself.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Result, bail};

/// A checked entry path: normal components only, at least one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EntryPath {
    parts: Vec<OsString>,
}

impl EntryPath {
    /// The directories above the entry.
    pub(crate) fn parents(&self) -> &[OsString] {
        &self.parts[..self.parts.len() - 1]
    }

    /// The entry's own name.
    pub(crate) fn name(&self) -> &OsStr {
        &self.parts[self.parts.len() - 1]
    }

    /// Every component.
    pub(crate) fn parts(&self) -> &[OsString] {
        &self.parts
    }

    /// The path relative to the layer's root.
    pub(crate) fn to_path(&self) -> PathBuf {
        self.parts.iter().collect()
    }

    /// A path from components already known to be normal.
    pub(crate) fn from_parts(parts: &[OsString]) -> Option<Self> {
        (!parts.is_empty()).then(|| Self {
            parts: parts.to_vec(),
        })
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_path().display())
    }
}

/// An entry's name as people see it in errors.
pub(crate) fn shown(raw: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(raw))
}

// ANCHOR: normalize
/// Checks and normalizes a name from the archive; `None` is the layer's root.
pub(crate) fn normalize(raw: &[u8]) -> Result<Option<EntryPath>> {
    if raw.is_empty() {
        bail!("an entry has an empty name: the layer is malformed");
    }
    if raw.contains(&0) {
        bail!(
            "the entry {} has a NUL byte in its name: the layer is malformed",
            shown(raw)
        );
    }
    let mut parts = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => bail!(
                "the entry {} has a `..` component: a layer may not name anything outside \
                 its root",
                shown(raw)
            ),
            part => parts.push(OsStr::from_bytes(part).to_owned()),
        }
    }
    Ok(EntryPath::from_parts(&parts))
}
// ANCHOR_END: normalize

/// What an entry is to the overlay format.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Special {
    /// An ordinary entry.
    None,
    /// `DIR/.wh.NAME`: `NAME` of the layers below is deleted.
    Whiteout { target: EntryPath },
    /// `DIR/.wh..wh..opq`: what the layers below hold in `DIR` is hidden.
    Opaque { dir: Option<EntryPath> },
    /// Other `.wh..wh.*` names: aufs's own bookkeeping (hardlink directories), which
    /// docker skips too.
    AufsMetadata,
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const AUFS_META: &[u8] = b".wh..wh.";

// ANCHOR: classify
/// Whether `path` is a whiteout, an opaque marker, or an ordinary entry.
pub(crate) fn classify(path: &EntryPath) -> Result<Special> {
    if path
        .parents()
        .iter()
        .any(|p| p.as_bytes().starts_with(AUFS_META))
    {
        return Ok(Special::AufsMetadata);
    }
    let name = path.name().as_bytes();
    if name == OPAQUE {
        return Ok(Special::Opaque {
            dir: EntryPath::from_parts(path.parents()),
        });
    }
    if name.starts_with(AUFS_META) {
        return Ok(Special::AufsMetadata);
    }
    let Some(target) = name.strip_prefix(WHITEOUT) else {
        return Ok(Special::None);
    };
    if matches!(target, b"" | b"." | b"..") {
        bail!(
            "the whiteout {path} deletes {:?}, which is not a name in its directory: a \
             whiteout may only delete an entry of the directory it is in",
            String::from_utf8_lossy(target)
        );
    }
    let mut parts = path.parents().to_vec();
    parts.push(OsStr::from_bytes(target).to_owned());
    Ok(Special::Whiteout {
        target: EntryPath { parts },
    })
}
// ANCHOR_END: classify

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Option<String> {
        normalize(raw.as_bytes()).unwrap().map(|p| p.to_string())
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(norm("etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(norm("/etc//passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(norm("./etc/./passwd/").as_deref(), Some("etc/passwd"));
        assert_eq!(norm("./"), None);
        assert_eq!(norm("/"), None);
    }

    #[test]
    fn bad_names_are_refused() {
        for (raw, why) in [
            (&b""[..], "empty name"),
            (b"a/\0b", "NUL byte"),
            (b"../x", "`..`"),
            (b"a/../../x", "`..`"),
            (b"a/..", "`..`"),
        ] {
            let err = normalize(raw).unwrap_err().to_string();
            assert!(err.contains(why), "{raw:?}: {err}");
        }
    }

    fn class(raw: &str) -> Result<Special> {
        classify(&normalize(raw.as_bytes()).unwrap().unwrap())
    }

    #[test]
    fn whiteouts_are_recognized() {
        assert_eq!(class("a/b").unwrap(), Special::None);
        assert_eq!(
            class("a/.wh.b").unwrap(),
            Special::Whiteout {
                target: normalize(b"a/b").unwrap().unwrap()
            }
        );
        assert_eq!(
            class("a/.wh..wh..opq").unwrap(),
            Special::Opaque {
                dir: normalize(b"a").unwrap()
            }
        );
        assert_eq!(
            class(".wh..wh..opq").unwrap(),
            Special::Opaque { dir: None }
        );
        assert_eq!(class(".wh..wh.plnk").unwrap(), Special::AufsMetadata);
        assert_eq!(
            class(".wh..wh.plnk/123.456").unwrap(),
            Special::AufsMetadata
        );
        for bad in [".wh...", ".wh..", "a/.wh."] {
            let err = class(bad).unwrap_err().to_string();
            assert!(err.contains("not a name in its directory"), "{bad}: {err}");
        }
    }
}

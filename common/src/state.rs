//! Where a runtime keeps the state of its containers: `/run/keel` for root, and for a
//! user `$XDG_RUNTIME_DIR/keel` (a tmpfs of the user's own that the login manager
//! makes, mode 0700), or `/tmp/keel-UID` when there is none.
//!
//! A directory in `/tmp` is shared ground: anyone may have made `/tmp/keel-1000`
//! first, as a symlink to a place of theirs, waiting for the user's runtime to write
//! there. So it is made with `mkdir` (which never follows a symlink), mode 0700, and
//! used only if it is a real directory that belongs to the user and nobody else may
//! write.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The runtime directory of whoever runs keel.
pub fn runtime_dir() -> Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = if uid == 0 {
        PathBuf::from("/run/keel")
    } else if let Some(xdg) =
        std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute())
    {
        PathBuf::from(xdg).join("keel")
    } else {
        PathBuf::from(format!("/tmp/keel-{uid}"))
    };
    private_dir(&dir, uid)?;
    Ok(dir)
}

/// Makes `dir` (mode 0700) if missing, and checks that it is a directory of `uid`'s that
/// no one else may write.
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "{} is not a private directory of uid {uid} (a symlink, or someone else's): \
             remove it, or set XDG_RUNTIME_DIR to a directory of yours",
            dir.display()
        );
    }
    Ok(())
}

/// A directory of one run's own, in the runtime directory; removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// `<runtime dir>/<prefix>-<12 random hex digits>`, made mode 0700.
    pub fn create(prefix: &str) -> Result<Self> {
        let base = runtime_dir()?;
        let mut random = [0u8; 6];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .context("reading /dev/urandom")?;
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = base.join(format!("{prefix}-{id}"));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last part of its name: an id unique among the runs of this user.
    pub fn id(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

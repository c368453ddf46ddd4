//! OCI bundles for the runtimes the benchmark compares with (crun, runc): the same
//! busybox rootfs and `/bin/true`, in each runtime's own default configuration.
//!
//! The configuration comes from `crun spec` (as root) and `crun spec --rootless` (run
//! as the ordinary user, so that its id maps name that user): only the rootfs, the
//! command and the terminal are changed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Writes a bundle in `dir` (created, mode 0755) for `rootfs`: root's, or, with
/// `user`, a rootless one for that uid and gid (who then owns the directory).
pub fn write(dir: &Path, rootfs: &Path, user: Option<(u32, u32)>) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let mut spec = Command::new("crun");
    spec.arg("spec").current_dir(dir);
    if let Some((uid, gid)) = user {
        nix::unistd::chown(dir, Some(uid.into()), Some(gid.into()))?;
        spec.arg("--rootless").uid(uid).gid(gid);
    }
    let out = spec.output().context("running crun spec")?;
    if !out.status.success() {
        bail!("crun spec failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&path)?)?;
    config["root"] = json!({ "path": rootfs, "readonly": true });
    config["process"]["args"] = json!(["/bin/true"]);
    config["process"]["terminal"] = json!(false);
    fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(dir.to_path_buf())
}

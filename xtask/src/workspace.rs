//! Where things are: the workspace root, its target directory, its stage crates, their
//! sources and the files git tracks.

use std::env;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// The workspace root: xtask lives one level below it.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
}

/// The target directory cargo builds into (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The file the graders log skipped tests to when run from here.
pub fn skip_log() -> PathBuf {
    target_dir().join("xtask").join("skips.log")
}

/// The `cargo` that runs us, so nested builds use the same toolchain.
pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The target of the static build the README installs (see `stage06-cgroups/build.rs`).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// Why this machine cannot make the static build, if it cannot: Rust's musl target and
/// a C compiler for it (the registry client's TLS has C in it) must be installed.
pub fn static_build_missing() -> Option<String> {
    let sysroot = match cmd::quiet(Command::new("rustc").args(["--print", "sysroot"])) {
        Ok(output) => PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()),
        Err(err) => return Some(format!("rustc --print sysroot: {err:#}")),
    };
    if !sysroot.join("lib/rustlib").join(STATIC_TARGET).is_dir() {
        return Some(format!(
            "Rust's {STATIC_TARGET} target is not installed (rustup target add {STATIC_TARGET})"
        ));
    }
    if which("x86_64-linux-musl-gcc").is_none() {
        return Some("musl's C compiler is not installed (apt-get install musl-tools)".to_owned());
    }
    None
}

/// Builds `package` in release mode for [`STATIC_TARGET`]; returns the directory of
/// its binaries.
pub fn build_static(package: &str) -> Result<PathBuf> {
    let mut cargo = cargo();
    // Without what cargo set for us (`CARGO_PKG_NAME`, ...), as the grader of this build
    // builds it: build scripts that watch those would otherwise build it again.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && !matches!(&*key, "CARGO_HOME" | "CARGO_TARGET_DIR") {
            cargo.env_remove(&*key);
        }
    }
    cmd::run(cargo.current_dir(root()).args([
        "build",
        "--release",
        "--target",
        STATIC_TARGET,
        "--package",
        package,
    ]))?;
    Ok(target_dir().join(STATIC_TARGET).join("release"))
}

/// True when we run with root's privileges (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True under a CI service, which sets `CI=true`.
pub fn is_ci() -> bool {
    env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `program` found in a directory of `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The stage a path belongs to, e.g. `stage01` for `stage01-pidns/src/pid.rs`.
///
/// A stage crate is a directory at the root named `stageNN-something`; its id is the
/// first seven characters.
pub fn stage_of(rel: &Path) -> Option<&str> {
    let Some(Component::Normal(first)) = rel.components().next() else {
        return None;
    };
    let name = first.to_str()?;
    let digits = name.get(5..7)?;
    let is_stage = name.starts_with("stage")
        && digits.bytes().all(|b| b.is_ascii_digit())
        && name[7..].starts_with('-');
    is_stage.then_some(&name[..7])
}

/// The stage of a Rust source file of a stage crate (`stageNN-x/src/**.rs`): the files
/// that may hold exercises.
pub fn stage_source(rel: &Path) -> Option<&str> {
    let stage = stage_of(rel)?;
    let in_src = rel.components().nth(1) == Some(Component::Normal("src".as_ref()));
    let is_rust = rel.extension().is_some_and(|ext| ext == "rs");
    (in_src && is_rust).then_some(stage)
}

/// The stages that have a crate, sorted: `stage01`, `stage02`, ...
pub fn stages() -> Result<Vec<String>> {
    let mut stages: Vec<String> = std::fs::read_dir(root())?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| stage_of(Path::new(&entry.file_name())).map(str::to_owned))
        .collect();
    stages.sort();
    stages.dedup();
    Ok(stages)
}

/// The Rust sources of every stage crate (`stageNN-x/src/**.rs`) of the workspace (or
/// copy) at `root` as they are on disk, relative to it and sorted: what the compiler builds, and so where the
/// exercises are. Git is not asked: grading works in any tree, a repository or not.
pub fn stage_sources(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let name = PathBuf::from(entry?.file_name());
        if stage_of(&name).is_some() {
            rust_files(root, &name.join("src"), &mut files)?;
        }
    }
    files.sort();
    Ok(files)
}

/// Adds the `.rs` files under `rel` (relative to `root`) to `files`, skipping hidden
/// names (editors' lock and swap files) and symlinks.
fn rust_files(root: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(root.join(rel)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", rel.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_bytes().starts_with(b".") {
            continue;
        }
        let path = rel.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            rust_files(root, &path, files)?;
        } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// Every file git tracks or would track (untracked but not ignored), relative to the
/// root: what a copy of the workspace is made of.
pub fn tracked_files() -> Result<Vec<PathBuf>> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .context("running git ls-files (is git installed?)")?;
    if !out.status.success() {
        bail!(
            "git ls-files failed in {}: {}\n\
             A copy of the workspace is made of the files git lists, so it must be a git \
             repository: a clone of keel, or a student copy (`cargo xtask exercises DIR` \
             makes one). To make this tree one: git init && git add -A",
            root().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(OsStr::from_bytes(name)))
        // A file deleted but not yet staged is still listed: it is not part of the copy.
        .filter(|rel| root().join(rel).symlink_metadata().is_ok())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_of_reads_the_crate_directory() {
        assert_eq!(
            stage_of(Path::new("stage01-pidns/src/pid.rs")),
            Some("stage01")
        );
        assert_eq!(stage_of(Path::new("stage12-x")), Some("stage12"));
        assert_eq!(stage_of(Path::new("stage1-x/src/a.rs")), None);
        assert_eq!(stage_of(Path::new("stageAB-x")), None);
        assert_eq!(stage_of(Path::new("stage01")), None);
        assert_eq!(stage_of(Path::new("common/src/lib.rs")), None);
    }

    #[test]
    fn stage_source_is_rust_under_src() {
        assert_eq!(
            stage_source(Path::new("stage01-pidns/src/a/b.rs")),
            Some("stage01")
        );
        assert_eq!(stage_source(Path::new("stage01-pidns/Cargo.toml")), None);
        assert_eq!(stage_source(Path::new("stage01-pidns/benches/a.rs")), None);
    }
}

//! The guest's kernel: Debian's, fetched once with apt into `<target>/keel-vm/kernel`.
//!
//! `linux-image-amd64` is a metapackage; its one dependency is the versioned image
//! (`linux-image-6.1.0-NN-amd64`), which holds `boot/vmlinuz-*` and the modules in
//! `lib/modules/<release>/`. Both packages are fetched with `apt-get download` (no
//! install: the host's kernel is not touched), the image is unpacked with `dpkg -x`,
//! and the directory is renamed into place only when complete. Once there, nothing
//! is asked of apt again: the graders run offline. `rm -rf target/keel-vm` refetches.
//!
//! Debian's `vmlinuz` is compressed with xz, and decompressing it inside an emulated
//! CPU (TCG) takes about 4 of the 7 seconds of a boot. So the uncompressed kernel is
//! extracted once, on the host, into `vmlinux`; qemu boots that ELF directly through
//! its PVH entry point (the kernel is built with `CONFIG_PVH`). Without `xz` on the
//! host, the guest boots the compressed `vmlinuz`, only slower.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Unready;
use crate::skip::Skip;
use crate::workspace;

/// A kernel ready to boot, with its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// What qemu's `-kernel` is given: `vmlinux`, or `vmlinuz` without it.
    pub image: PathBuf,
    /// `lib/modules/<release>`: the modules, at the path the guest will see them.
    pub modules: PathBuf,
    /// `uname -r` of the guest, e.g. `6.1.0-57-amd64`.
    pub release: String,
}

/// Where the graders keep the kernel and their runs' files.
pub fn cache_dir() -> PathBuf {
    workspace::target_dir().join("keel-vm")
}

/// The cached kernel, fetched first if it is not there. Skips when apt cannot fetch it.
pub fn prepare() -> Result<Kernel, Unready> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)
        .map_err(|err| Unready::Broken(format!("cannot create {}: {err}", cache.display())))?;
    // Test processes run in parallel (nextest): one downloads, the others wait.
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join(".lock"))
        .map_err(|err| err.to_string())
        .and_then(|file| {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, errno)| errno.to_string())
        })
        .map_err(|err| Unready::Broken(format!("cannot lock {}: {err}", cache.display())))?;
    let dir = cache.join("kernel");
    if !dir.exists() {
        fetch(&cache, &dir)?;
    }
    drop(lock);
    open(&dir).map_err(|err| {
        Unready::Broken(format!(
            "the cached kernel in {} is broken ({err}): remove it to fetch it again",
            dir.display()
        ))
    })
}

/// Finds the boot image and the modules in an unpacked image package.
fn open(dir: &Path) -> Result<Kernel, String> {
    let modules_root = dir.join("lib/modules");
    let release = only_entry(&modules_root)?;
    let vmlinux = dir.join("vmlinux");
    let image = if vmlinux.is_file() {
        vmlinux
    } else {
        dir.join("boot").join(format!("vmlinuz-{release}"))
    };
    if !image.is_file() {
        return Err(format!("{} is missing", image.display()));
    }
    Ok(Kernel {
        image,
        modules: modules_root.join(&release),
        release,
    })
}

/// Downloads and unpacks the kernel into `dir`, through a staging directory in `cache`.
fn fetch(cache: &Path, dir: &Path) -> Result<(), Unready> {
    for tool in ["apt-get", "dpkg-deb", "dpkg"] {
        if workspace::which(tool).is_none() {
            return Err(Unready::Skip(Skip(format!(
                "{tool} is missing: the VM's kernel is Debian's linux-image-amd64"
            ))));
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(".kernel-")
        .tempdir_in(cache)
        .map_err(|err| {
            Unready::Broken(format!("temporary directory in {}: {err}", cache.display()))
        })?;
    let debs = staging.path();
    eprintln!(
        "keel-vm: fetching Debian's linux-image-amd64 into {}",
        cache.display()
    );
    let meta = download(debs, "linux-image-amd64")?;
    let image_package = image_dependency(&meta).map_err(Unready::Broken)?;
    let image_deb = download(debs, &image_package)?;

    let root = debs.join("root");
    let broken = |what: String| Unready::Broken(format!("unpacking the kernel: {what}"));
    run(Command::new("dpkg").arg("-x").arg(&image_deb).arg(&root)).map_err(broken)?;
    let kernel = open(&root).map_err(broken)?;
    match extract_vmlinux(&kernel.image, &root.join("vmlinux")) {
        Ok(()) => {}
        Err(err) => eprintln!("keel-vm: booting the compressed kernel (slower): {err}"),
    }
    std::fs::rename(&root, dir)
        .map_err(|err| broken(format!("rename to {}: {err}", dir.display())))?;
    Ok(())
}

/// `apt-get download PACKAGE` into `dir`; returns the `.deb`'s path.
fn download(dir: &Path, package: &str) -> Result<PathBuf, Unready> {
    let output = Command::new("apt-get")
        .args(["download", "--quiet", package])
        .current_dir(dir)
        .output()
        .map_err(|err| Unready::Skip(Skip(format!("cannot run apt-get: {err}"))))?;
    if !output.status.success() {
        // One line (a skip is logged as one), without the warning root's downloads
        // always get (apt's sandbox user cannot write into our directory).
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.contains("Download is performed unsandboxed"))
            .map(str::trim)
            .collect();
        return Err(Unready::Skip(Skip(format!(
            "apt-get download {package} failed (offline, or `apt-get update` never run?): {}",
            errors.join(" ")
        ))));
    }
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|err| Unready::Broken(format!("{}: {err}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .ok_or_else(|| Unready::Broken(format!("apt-get download {package} left no .deb")))
}

/// The versioned image a `linux-image-amd64` package depends on: the first
/// `linux-image-*` of its `Depends` (`linux-image-6.1.0-57-amd64 (= 6.1.192-3)`).
fn image_dependency(meta: &Path) -> Result<String, String> {
    let depends = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(meta)
        .arg("Depends"))?;
    depends
        .split([',', '|'])
        .filter_map(|dependency| dependency.split_whitespace().next())
        .find(|name| name.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or_else(|| format!("{} depends on no linux-image-*: {depends}", meta.display()))
}

/// Writes the uncompressed kernel of a bzImage to `out`.
///
/// The bzImage's setup header says where its compressed payload lies: `setup_sects`
/// (byte 0x1f1) sectors of real-mode setup after the boot sector, then the
/// protected-mode code, whose `payload_offset` and `payload_length` (0x248, 0x24c)
/// locate the xz stream.
fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<(), String> {
    let image = std::fs::read(bzimage).map_err(|err| format!("{}: {err}", bzimage.display()))?;
    let u32_at = |offset: usize| -> Option<usize> {
        let bytes = image.get(offset..offset + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let setup_sects = match image.get(0x1f1) {
        Some(0) => 4, // the boot protocol's default
        Some(&n) => usize::from(n),
        None => return Err("not a bzImage: too short".into()),
    };
    let (offset, length) = u32_at(0x248)
        .zip(u32_at(0x24c))
        .ok_or("not a bzImage: no payload fields")?;
    let start = (setup_sects + 1) * 512 + offset;
    let payload = image
        .get(start..start + length)
        .ok_or("the payload lies outside the bzImage")?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        return Err("the payload is not xz-compressed".into());
    }
    let mut xz = Command::new("xz")
        .args(["--decompress", "--stdout", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(File::create(out).map_err(|err| format!("{}: {err}", out.display()))?)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run xz ({err}): apt-get install xz-utils"))?;
    let mut stdin = xz.stdin.take().ok_or("no stdin for xz")?;
    // xz reads while we write; a thread avoids a deadlock on a full pipe.
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &payload));
    let output = xz.wait_with_output().map_err(|err| format!("xz: {err}"))?;
    let written = writer.join().map_err(|_| "the writer to xz panicked")?;
    if !output.status.success() || written.is_err() {
        let _ = std::fs::remove_file(out);
        return Err(format!(
            "xz failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// The path of module `name` (e.g. `overlay`) and of the modules it needs, in the order
/// they must be loaded, relative to the modules directory (`kernel/fs/overlayfs/overlay.ko`).
pub fn module_paths(kernel: &Kernel, names: &[String]) -> Result<Vec<String>, String> {
    let order = kernel.modules.join("modules.order");
    let order =
        std::fs::read_to_string(&order).map_err(|err| format!("{}: {err}", order.display()))?;
    let mut loaded = Vec::new();
    for name in names {
        add_module(kernel, &order, name, &mut loaded, 0)?;
    }
    Ok(loaded)
}

/// Adds `name` after its dependencies (the `depends=` of its `.modinfo`).
fn add_module(
    kernel: &Kernel,
    order: &str,
    name: &str,
    loaded: &mut Vec<String>,
    depth: usize,
) -> Result<(), String> {
    if depth > 16 {
        return Err(format!("module {name}: dependencies nested too deep"));
    }
    let wanted = format!("{}.ko", name.replace('-', "_"));
    let path = order
        .lines()
        .map(|line| line.trim().trim_end_matches(".xz").trim_end_matches(".zst"))
        .find(|line| {
            line.rsplit('/').next().map(|file| file.replace('-', "_")) == Some(wanted.clone())
        })
        .ok_or_else(|| format!("no module {name} in {}", kernel.modules.display()))?
        .to_owned();
    if loaded.contains(&path) {
        return Ok(());
    }
    let file = kernel.modules.join(&path);
    let bytes = std::fs::read(&file).map_err(|err| format!("{}: {err}", file.display()))?;
    for dependency in modinfo_depends(&bytes) {
        add_module(kernel, order, &dependency, loaded, depth + 1)?;
    }
    loaded.push(path);
    Ok(())
}

/// The `depends=a,b` string of a module's `.modinfo` section, split.
fn modinfo_depends(module: &[u8]) -> Vec<String> {
    module
        .split(|byte| *byte == 0)
        .find_map(|field| field.strip_prefix(b"depends="))
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The one entry of a directory (`lib/modules` holds one release).
fn only_entry(dir: &Path) -> Result<String, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    match names.len() {
        1 => Ok(names.remove(0)),
        n => Err(format!("{} holds {n} entries, not one", dir.display())),
    }
}

/// Runs a command; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|err| format!("cannot run {shown}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "{shown}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

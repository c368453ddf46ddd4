//! The guest's whole filesystem, as one initramfs: busybox, `/init`, the user's
//! `/etc` files, the kernel modules, and what the grader asked for.
//!
//! Host binaries are copied at their paths with the shared libraries `ldd` lists, at
//! theirs (the loader `/lib64/ld-linux-x86-64.so.2` among them). So a stage binary
//! runs in the guest as built, dynamically linked: no second, static build of the
//! workspace (minutes on two cores), and the same goes for the host's `newuidmap`. The
//! guest's glibc is the host's; only the kernel is Debian's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::{Kind, Writer};
use super::kernel::{self, Kernel};
use super::{DELEGATED, SUBID_COUNT, SUBID_START, Script, UID, USER};
use crate::rootfs;

const INIT: &str = include_str!("init.sh");
const AS_USER: &str = include_str!("as-user.sh");

/// Directories every guest has, with their modes.
const DIRECTORIES: [(&str, u32); 16] = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("usr/local/bin", 0o755),
    ("etc", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("home", 0o755),
    ("newroot", 0o755),
    ("keel", 0o700),
    ("var/tmp", 0o1777),
];

/// What an entry's content comes from.
enum Source {
    Directory,
    Host(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
    CharDevice(u32, u32),
}

/// The entries by path (relative, no leading `/`): sorted, a parent comes before its
/// children, as the kernel needs to unpack them.
#[derive(Default)]
struct Tree(BTreeMap<String, (Source, u32)>);

impl Tree {
    /// Adds an entry, and its missing parents as directories of mode 0755.
    fn add(&mut self, path: &str, source: Source, mode: u32) {
        let path = path.trim_start_matches('/');
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            self.0
                .entry(path[..end].to_owned())
                .or_insert((Source::Directory, 0o755));
            end += 1;
        }
        self.0.insert(path.to_owned(), (source, mode));
    }

    fn contains(&self, path: &str) -> bool {
        self.0.contains_key(path.trim_start_matches('/'))
    }

    fn write(&self, out: &Path) -> Result<(), String> {
        let error = |err: std::io::Error| format!("{}: {err}", out.display());
        let file = File::create(out).map_err(error)?;
        let mut writer = Writer::new(BufWriter::new(file));
        for (path, (source, mode)) in &self.0 {
            let data;
            let kind = match source {
                Source::Directory => Kind::Directory,
                Source::Host(host) => {
                    data =
                        std::fs::read(host).map_err(|err| format!("{}: {err}", host.display()))?;
                    Kind::File(&data)
                }
                Source::Bytes(bytes) => Kind::File(bytes),
                Source::Symlink(target) => Kind::Symlink(target),
                Source::CharDevice(major, minor) => Kind::CharDevice(*major, *minor),
            };
            writer.entry(path, *mode, kind).map_err(error)?;
        }
        writer.finish().map_err(error)?;
        Ok(())
    }
}

/// Writes the initramfs for `script` to `out`.
pub fn build(out: &Path, kernel: &Kernel, script: &Script) -> Result<(), String> {
    let mut tree = Tree::default();
    for (dir, mode) in DIRECTORIES {
        tree.add(dir, Source::Directory, mode);
    }
    // The console init's stdio is opened on, before any devtmpfs is mounted.
    tree.add("dev/console", Source::CharDevice(5, 1), 0o600);
    tree.add("init", Source::Bytes(INIT.into()), 0o755);
    tree.add(
        "usr/local/bin/as-user",
        Source::Bytes(AS_USER.into()),
        0o755,
    );
    for (path, text) in etc_files() {
        tree.add(path, Source::Bytes(text.into_bytes()), 0o644);
    }
    tree.add(
        "keel/env",
        Source::Bytes(env_file(script).into_bytes()),
        0o644,
    );
    tree.add(
        "keel/script",
        Source::Bytes(script.text.clone().into_bytes()),
        0o755,
    );

    let mut modules = String::new();
    for path in kernel::module_paths(kernel, &script.modules)? {
        let guest = format!("lib/modules/{}/{path}", kernel.release);
        modules.push_str(&format!("/{guest}\n"));
        tree.add(&guest, Source::Host(kernel.modules.join(&path)), 0o644);
    }
    tree.add("keel/modules", Source::Bytes(modules.into_bytes()), 0o644);

    // The grader's files and binaries first: busybox's links must not replace them.
    for (guest, bytes, mode) in &script.files {
        tree.add(guest, Source::Bytes(bytes.clone()), *mode);
    }
    for (host, guest) in &script.binaries {
        add_binary(&mut tree, host, guest)?;
    }
    tree.add(rootfs::BUSYBOX, Source::Host(rootfs::BUSYBOX.into()), 0o755);
    for applet in rootfs::applets()? {
        if !tree.contains(&applet) {
            tree.add(&applet, Source::Symlink(rootfs::BUSYBOX.into()), 0o777);
        }
    }
    tree.write(out)
}

/// Adds a host binary at `guest`, and its shared libraries at their host paths.
fn add_binary(tree: &mut Tree, host: &Path, guest: &str) -> Result<(), String> {
    let mode = std::fs::metadata(host)
        .map_err(|err| format!("{}: {err}", host.display()))?
        .permissions()
        .mode()
        & 0o7777; // setuid kept: the host's newuidmap is setuid root
    tree.add(guest, Source::Host(host.to_owned()), mode);
    for library in shared_libraries(host)? {
        let path = library.to_string_lossy().into_owned();
        if !tree.contains(&path) {
            // Symlinks followed: the file's content lands at the name the loader asks for.
            tree.add(&path, Source::Host(library), 0o755);
        }
    }
    Ok(())
}

/// The shared libraries `ldd` lists for `binary`, with the loader; none if static.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|err| format!("cannot run ldd: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let all = format!("{text}{}", String::from_utf8_lossy(&output.stderr));
        if all.contains("not a dynamic executable") || all.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(format!("ldd {}: {}", binary.display(), all.trim()));
    }
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2
    // (0x...)`, `linux-vdso.so.1 (0x...)` (in the kernel: nothing to copy).
    let mut libraries = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            return Err(format!("ldd {}: {}", binary.display(), line.trim()));
        }
        let path = match line.split_once("=>") {
            Some((_, resolved)) => resolved.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// `/etc`: root and the ordinary user, with subordinate ids as `useradd` gives them.
fn etc_files() -> [(&'static str, String); 6] {
    [
        (
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\n\
                 {USER}:x:{UID}:{UID}:{USER}:/home/{USER}:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            ),
        ),
        (
            "etc/group",
            format!("root:x:0:\n{USER}:x:{UID}:\nnogroup:x:65534:\n"),
        ),
        (
            "etc/subuid",
            format!("{USER}:{SUBID_START}:{SUBID_COUNT}\n"),
        ),
        (
            "etc/subgid",
            format!("{USER}:{SUBID_START}:{SUBID_COUNT}\n"),
        ),
        ("etc/shells", "/bin/sh\n".to_owned()),
        ("etc/hostname", "keel-vm\n".to_owned()),
    ]
}

/// `/keel/env`: what `/init` and `as-user` read, and the script sees.
fn env_file(script: &Script) -> String {
    format!(
        "export KEEL_VM_USER={USER}\n\
         export KEEL_VM_UID={UID}\n\
         export KEEL_VM_DELEGATED={DELEGATED}\n\
         export KEEL_VM_TIMEOUT={}\n",
        script.timeout.as_secs().max(1)
    )
}

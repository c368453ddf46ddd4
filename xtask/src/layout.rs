//! `cargo xtask layout`: writes `stage06-cgroups/run.order`, the functions a `run`
//! executes, in the order it first does, for the linker to put side by side.
//!
//! Why it matters: the kernel maps a program's code on demand, and on each page a
//! process touches first it maps up to 64 KB around it ("fault-around"). A `run`
//! executes about 800 of the runtime's 8,000 functions, some 0.6 MB of code, but the
//! linker spreads them over all 3.6 MB of `.text` (next to the registry client, the
//! netlink code and the rest), so that 3 MB of it was resident in every `run`: half the
//! runtime's memory. Side by side they take what they need. `stage06-cgroups/build.rs`
//! hands the file to the linker (lld's `--symbol-ordering-file`) in release builds.
//!
//! How the functions are found: the runtime runs the commands of `bench start` under
//! `ptrace`, with a breakpoint (`int3`) on the first byte of every function. Each
//! breakpoint that fires names a function the run needs; the tracer puts the byte
//! back and lets the process go on, so each one fires once per process. Processes
//! forked by the runtime are traced too (the container's child runs the runtime's code
//! until its `execve`), and so are the `vfork`s that start the setuid helpers: the
//! static build's C library is in the binary, and its spawning code too, so the
//! child of a `vfork` runs the runtime's code (and meets its breakpoints) until its
//! `execve`. Every process but the runtime is let go at the *entry* of its `execve`:
//! traced through it, a setuid helper would run without its privileges.
//!
//! The names are the linker's (mangled): a change to the code that the names do not
//! follow leaves some functions out of place, which costs memory, never correctness.
//! `cargo xtask bench start` says how many are still found.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::bench::{self, As, Contender, Setup};
use crate::{cmd, workspace};

/// The file, relative to the workspace.
pub const ORDER: &str = "stage06-cgroups/run.order";

/// The runs traced, rootless first: the order of their functions is the order of
/// the file.
const TRACED: &[Contender] = &[
    bench::STAGE06_USER,
    bench::STAGE06_IMAGE,
    bench::STAGE06_MEMORY,
];

/// What the breakpoint instruction raises its SIGTRAP with (`si_code`).
const SI_KERNEL: i32 = 0x80;

/// `cargo xtask layout`: traces the runs, writes the file.
pub fn run() -> Result<()> {
    let setup = Setup::new(TRACED, false)?;
    let ids = setup.user.as_ref().map(|u| (u.uid, u.gid));
    // The package's two binaries, `stage06-cgroups` and `keel`: the same code, but
    // each names some functions its own way (its `main`, what it instantiates, the
    // numbers of its copies), so both are traced. And both builds: glibc's and the
    // static one the README installs, whose standard library (another build of it)
    // has other names, and whose C library is in the binary, its functions too.
    let mut binaries = Vec::new();
    let mut builds = vec![(
        workspace::target_dir().join("release"),
        &setup.places.release,
    )];
    match workspace::static_build_missing() {
        None => builds.push((
            workspace::target_dir()
                .join(workspace::STATIC_TARGET)
                .join("release"),
            &setup.places.installed,
        )),
        Some(why) => println!("the static build is not traced: {why}"),
    }
    for (built, place) in builds {
        let keel = place.join("keel");
        fs::copy(built.join("keel"), &keel)?;
        fs::copy(built.join("stage06-cgroups"), place.join("stage06-cgroups"))?;
        binaries.extend([place.join("stage06-cgroups"), keel]);
    }
    let mut order = Vec::new();
    let mut named = HashSet::new();
    for binary in binaries {
        let functions = Functions::of(&binary)?;
        for contender in TRACED {
            let user = ids.filter(|_| contender.runs_as == As::User);
            let runs = || {
                let command = contender.command(&setup.places, ids);
                bench::followed_by(Command::new(&binary), &command, user)
            };
            // The first run imports the image into the store: trace the runs after it.
            for _ in 0..2 {
                bench::measure(&mut runs())
                    .with_context(|| format!("{} (untraced)", contender.name))?;
            }
            let entered =
                trace(runs(), &functions).with_context(|| format!("tracing {}", contender.name))?;
            let before = order.len();
            for &address in &entered {
                let name = &functions.names[&address];
                if named.insert(name.clone()) {
                    order.push(name.clone());
                }
            }
            println!(
                "{} ({}): {} functions entered, {} new",
                contender.name,
                binary.display(),
                entered.len(),
                order.len() - before
            );
        }
    }
    let path = workspace::root().join(ORDER);
    let mut text = String::from(HEADER);
    for name in &order {
        text.push_str(name);
        text.push('\n');
    }
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("{}: {} functions", path.display(), order.len());
    Ok(())
}

const HEADER: &str = "\
# The functions `stage06-cgroups run` executes, in the order it first does: the
# linker puts them side by side (see stage06-cgroups/build.rs), so that a run maps
# the code it needs and little else. Written by `cargo xtask layout`; see
# xtask/src/layout.rs.
";

/// How many names of [`ORDER`] are functions of `binary`, and how many it names:
/// fewer found means the code changed since `cargo xtask layout` last ran.
pub fn coverage(binary: &Path) -> Result<(usize, usize)> {
    let text = fs::read_to_string(workspace::root().join(ORDER))?;
    let wanted: HashSet<&str> = text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let functions = Functions::of(binary)?;
    let found = functions
        .names
        .values()
        .filter(|name| wanted.contains(name.as_str()))
        .count();
    Ok((found, wanted.len()))
}

/// The functions of a binary: the first instruction of each (its address as linked),
/// with a name the linker knows it by.
struct Functions {
    names: BTreeMap<u64, String>,
}

impl Functions {
    /// From `nm`: every defined function with a size.
    fn of(binary: &Path) -> Result<Self> {
        let mut names = BTreeMap::new();
        let listing = cmd::quiet(
            Command::new("nm")
                .args(["--defined-only", "--print-size"])
                .arg(binary),
        )?;
        for line in String::from_utf8_lossy(&listing.stdout).lines() {
            if let Some((address, name)) = function(line) {
                // Of two names for one address, the one more likely to stay the same
                // from build to build. (A numbered copy's name is kept when it has no
                // other: it is right for this build, and may name another function in
                // the next, which costs only memory.)
                let entry = names.entry(address).or_insert_with(|| name.to_owned());
                if !stable(entry) && stable(name) {
                    *entry = name.to_owned();
                }
            }
        }
        if names.is_empty() {
            bail!("{} has no symbols (was it stripped?)", binary.display());
        }
        Ok(Self { names })
    }
}

/// A line of `nm --print-size`: `ADDRESS SIZE TYPE NAME`, for a function (`t`, `T`)
/// of a non-zero size.
fn function(line: &str) -> Option<(u64, &str)> {
    let mut words = line.split_whitespace();
    let (address, size, kind, name) = (words.next()?, words.next()?, words.next()?, words.next()?);
    let size = u64::from_str_radix(size, 16).ok()?;
    if !matches!(kind, "t" | "T") || size == 0 {
        return None;
    }
    Some((u64::from_str_radix(address, 16).ok()?, name))
}

/// Whether a name stays from build to build: not the numbered copy (`name.1234`)
/// that link-time optimisation makes of a local function.
fn stable(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((_, number)) => !number.chars().all(|c| c.is_ascii_digit()),
        None => true,
    }
}

/// Where a process has the binary's code: its load address and its code's extent.
struct Mapped {
    base: u64,
    code: std::ops::Range<u64>,
}

impl Mapped {
    /// From `/proc/PID/maps`: the mappings of the file `/proc/PID/exe` is.
    fn of(pid: Pid) -> Result<Self> {
        let exe = fs::metadata(format!("/proc/{pid}/exe"))?;
        let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
        let (mut base, mut code) = (None, None);
        for line in maps.lines() {
            // START-END PERMS OFFSET DEV INODE PATH
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 6 || words[4].parse::<u64>().ok() != Some(exe.ino()) {
                continue;
            }
            let (start, end) = words[0].split_once('-').unwrap_or_default();
            let start = u64::from_str_radix(start, 16)?;
            let end = u64::from_str_radix(end, 16)?;
            if u64::from_str_radix(words[2], 16)? == 0 {
                base.get_or_insert(start);
            }
            if words[1].contains('x') {
                code = Some(start..end);
            }
        }
        match (base, code) {
            (Some(base), Some(code)) => Ok(Self { base, code }),
            _ => bail!("no code of /proc/{pid}/exe in /proc/{pid}/maps"),
        }
    }
}

/// The int3 breakpoints of one process image, and the bytes they replaced.
struct Breakpoints {
    mapped: Mapped,
    /// Original first byte of each function, by address in the process.
    original: HashMap<u64, u8>,
}

impl Breakpoints {
    /// Writes an `int3` over the first byte of every function of `functions` in
    /// `pid`, which has just executed the binary.
    fn insert(pid: Pid, functions: &Functions) -> Result<Self> {
        let mapped = Mapped::of(pid)?;
        let memory = memory(pid)?;
        let length = usize::try_from(mapped.code.end - mapped.code.start)?;
        let mut code = vec![0u8; length];
        memory.read_exact_at(&mut code, mapped.code.start)?;
        let mut original = HashMap::new();
        for &linked in functions.names.keys() {
            let address = mapped.base + linked;
            if mapped.code.contains(&address) {
                let at = usize::try_from(address - mapped.code.start)?;
                original.insert(address, code[at]);
                code[at] = 0xcc;
            }
        }
        // Through /proc/PID/mem a tracer may write over read-only code (the kernel
        // gives the process its own copy of the pages).
        memory.write_all_at(&code, mapped.code.start)?;
        Ok(Self { mapped, original })
    }

    /// The function whose breakpoint `pid` stopped at, if it did: the byte goes back
    /// and the process goes on from the function's first instruction.
    fn fired(&self, pid: Pid) -> Result<Option<u64>> {
        let info = ptrace::getsiginfo(pid)?;
        let mut registers = ptrace::getregs(pid)?;
        let address = registers.rip.wrapping_sub(1);
        let (true, Some(&byte)) = (info.si_code == SI_KERNEL, self.original.get(&address)) else {
            return Ok(None);
        };
        memory(pid)?.write_all_at(&[byte], address)?;
        registers.rip = address;
        ptrace::setregs(pid, registers)?;
        Ok(Some(address - self.mapped.base))
    }
}

fn memory(pid: Pid) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .with_context(|| format!("opening /proc/{pid}/mem"))
}

/// Runs `command` traced and returns the functions its processes entered, by linked
/// address, in the order they first did.
fn trace(mut command: Command, functions: &Functions) -> Result<Vec<u64>> {
    command.stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: ptrace(PTRACE_TRACEME) is one system call, async-signal-safe.
    unsafe {
        command.pre_exec(|| ptrace::traceme().map_err(std::io::Error::from));
    }
    let runtime = Pid::from_raw(i32::try_from(command.spawn()?.id())?);
    // Stopped at its execve.
    waitpid(runtime, None)?;
    ptrace::setoptions(
        runtime,
        Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_EXITKILL,
    )?;
    // The runtime runs on to the next breakpoint; every other process stops at each
    // system call too, to be let go at its `execve`.
    let resume = |pid: Pid| {
        if pid == runtime {
            ptrace::cont(pid, None)
        } else {
            ptrace::syscall(pid, None)
        }
    };
    // Every traced process runs one image of the binary: the runtime's, or a fork's
    // copy of it (which has the breakpoints not yet fired at the fork).
    let mut breakpoints = Breakpoints::insert(runtime, functions)?;
    // Processes and threads past the stop they start with.
    let mut started = HashSet::from([runtime]);
    let mut entered = Vec::new();
    let mut seen = HashSet::new();
    let mut code = None;
    ptrace::cont(runtime, None)?;
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(status) => status,
            Err(Errno::ECHILD) => break,
            Err(err) => return Err(err.into()),
        };
        match status {
            WaitStatus::Exited(pid, exit) if pid == runtime => code = Some(exit),
            WaitStatus::Signaled(pid, signal, _) if pid == runtime => {
                bail!("the runtime was killed by {signal}")
            }
            // The runtime re-executing itself (root's sealed copy).
            WaitStatus::PtraceEvent(pid, _, event) if event == Event::PTRACE_EVENT_EXEC as i32 => {
                breakpoints = Breakpoints::insert(pid, functions)?;
                resume(pid)?;
            }
            // Forks, vforks and threads: they are traced from their first instruction on.
            WaitStatus::PtraceEvent(pid, _, _) => resume(pid)?,
            // Another program is about to replace the runtime's code: let it go.
            WaitStatus::PtraceSyscall(pid) if is_exec(pid)? => ptrace::detach(pid, None)?,
            WaitStatus::PtraceSyscall(pid) => resume(pid)?,
            WaitStatus::Stopped(pid, Signal::SIGTRAP) => match breakpoints.fired(pid)? {
                Some(address) => {
                    if seen.insert(address) {
                        entered.push(address);
                    }
                    resume(pid)?;
                }
                None => ptrace::cont(pid, Some(Signal::SIGTRAP))?,
            },
            WaitStatus::Stopped(pid, Signal::SIGSTOP) if started.insert(pid) => resume(pid)?,
            WaitStatus::Stopped(pid, signal) => ptrace::cont(pid, Some(signal))?,
            _ => {}
        }
    }
    match code {
        Some(0) => Ok(entered),
        other => bail!("the traced run failed (exit code {other:?})"),
    }
}

/// Whether `pid`, stopped at a system call, is entering `execve` (or `execveat`).
fn is_exec(pid: Pid) -> Result<bool> {
    let call = ptrace::getregs(pid)?.orig_rax;
    Ok([nix::libc::SYS_execve, nix::libc::SYS_execveat]
        .iter()
        .any(|&exec| u64::try_from(exec) == Ok(call)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_read_from_nm() {
        assert_eq!(
            function("0000000000174cc0 0000000000000042 t _ZN4keel4main17h0123456789abcdefE"),
            Some((0x174cc0, "_ZN4keel4main17h0123456789abcdefE"))
        );
        assert_eq!(function("0000000000174cc0 0000000000000000 t empty"), None);
        assert_eq!(function("0000000000539940 0000000000000008 d DATA"), None);
        assert_eq!(function("                 U pow"), None);
    }

    #[test]
    fn numbered_copies_are_not_stable_names() {
        assert!(stable("_ZN4keel4main17h0123456789abcdefE"));
        assert!(!stable("_RNvNtCs1_3std2io5error4kind.1330"));
        assert!(stable("anon.name.part"));
    }
}

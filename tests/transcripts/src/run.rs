//! Running the blocks, chapter by chapter, and saying where the book is wrong.
//!
//! A chapter is read as a reader works through it: one terminal for root and one per
//! user, kept from block to block (a variable set in one block is there in the next),
//! new for the next chapter. In a block, a `#` line goes to root's shell, a `$` line
//! to the user's; but while a shell that a line started inside its shell is waiting
//! (`unshare ... sh`), the lines of its prompt go there. A block must leave every
//! shell as it found it, at its first prompt (`exit` what it started).
//!
//! **Waiting.** After each line the harness waits for the shell's next prompt, with a
//! deadline. Output that comes after that prompt (a background job's) is shown by the
//! book right after the line that started it, as if it had come before the prompt:
//! the harness waits, with the same deadline, until as many lines as the book shows
//! there have come, and moves them before the prompt. So a block with a background job
//! must show where its output lands, and end the job (`kill %1; wait`) where bash
//! reports it, rather than at whatever prompt comes next.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::book::{Block, Chapter, Step};
use crate::expect::{self, Line, Shown};
use crate::facts::{Facts, WITH_RANGE};
use crate::machine::Machine;
use crate::screen;
use crate::shell::{self, COLUMNS, Login, Shell};

/// Set by SIGINT, SIGTERM or SIGHUP: the run stops after the block it is in, and the
/// machine is still cleaned up (users removed, processes killed).
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Turns the signals that would end the run into a request to stop (no `SA_RESTART`:
/// a wait in progress is interrupted).
pub fn stop_on_signals() -> Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(SigHandler::Handler(stop), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// How long one command may take, unless its block says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where things are.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The workspace: root's shells start there (`target/debug`, `tests/fixtures`).
    pub workspace: PathBuf,
    /// Cargo's target directory.
    pub target: PathBuf,
    /// The directory of the `cargo` to put on root's `PATH`.
    pub cargo_bin: Option<PathBuf>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: Vec<String>,
}

/// One chapter's shells.
struct Shells<'a> {
    setup: &'a Setup,
    machine: &'a Machine,
    by_user: HashMap<String, Shell>,
    /// Every shell started, to tell them from what the blocks left running.
    started: Vec<i32>,
}

impl Shells<'_> {
    fn get(&mut self, user: &str) -> Result<&mut Shell> {
        if !self.by_user.contains_key(user) {
            let login = login(user)?;
            let env = self.env(&login)?;
            let dir = if login.uid == 0 {
                self.setup.workspace.clone()
            } else {
                home(user)
                    .filter(|h| h.is_dir())
                    .unwrap_or_else(|| "/".into())
            };
            let shell = Shell::start(login, &dir, &env, Instant::now() + DEFAULT_TIMEOUT)?;
            self.started.push(shell.pid() as i32);
            self.by_user.insert(user.to_owned(), shell);
        }
        Ok(self.by_user.get_mut(user).expect("just inserted"))
    }

    fn env(&self, login: &Login) -> Result<Vec<(OsString, OsString)>> {
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        let mut set = |k: &str, v: OsString| env.push((k.into(), v));
        let path = if login.uid == 0 {
            let mut dirs = vec![self.setup.target.join("debug")];
            dirs.extend(self.setup.cargo_bin.clone());
            dirs.extend(ROOT_PATH.map(PathBuf::from));
            std::env::join_paths(dirs)?
        } else {
            // Debian's login.defs, ENV_PATH.
            "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games".into()
        };
        set("PATH", path);
        let home = if login.uid == 0 {
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into())
        } else {
            home(&login.name).unwrap_or_default().into_os_string()
        };
        set("HOME", home);
        set("USER", login.name.clone().into());
        set("LOGNAME", login.name.clone().into());
        set("SHELL", "/bin/bash".into());
        set("TERM", "xterm".into());
        set("LANG", "C.UTF-8".into());
        // No history file: root's ~/.bash_history stays as it was.
        set("HISTFILE", OsString::new());
        set(
            "INPUTRC",
            self.machine.work.join("inputrc").into_os_string(),
        );
        env.extend(shell::prompt_env(&self.machine.env_file()));
        Ok(env)
    }

    fn close(&mut self, keep_root: bool) {
        let users: Vec<String> = self.by_user.keys().cloned().collect();
        for user in users {
            if keep_root && user == "root" {
                continue;
            }
            if let Some(shell) = self.by_user.remove(&user) {
                shell.close();
            }
        }
    }
}

fn login(user: &str) -> Result<Login> {
    let entry = nix::unistd::User::from_name(user)?
        .with_context(|| format!("there is no user {user} (yet?)"))?;
    let name = std::ffi::CString::new(user)?;
    let groups = nix::unistd::getgrouplist(&name, entry.gid)?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Ok(Login {
        name: user.to_owned(),
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
        groups,
    })
}

fn home(user: &str) -> Option<PathBuf> {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// Runs every block of `chapters`.
pub fn run(chapters: &[Chapter], setup: &Setup, machine: &Machine) -> Result<Outcome> {
    std::fs::write(machine.env_file(), shell::ENV_FILE)?;
    std::fs::write(
        machine.work.join("inputrc"),
        "set enable-bracketed-paste off\nset bell-style none\n",
    )?;
    let mut outcome = Outcome::default();
    for chapter in chapters {
        let mut shells = Shells {
            setup,
            machine,
            by_user: HashMap::new(),
            started: Vec::new(),
        };
        let order = chapter
            .blocks
            .iter()
            .filter(|b| b.directive.first)
            .chain(chapter.blocks.iter().filter(|b| !b.directive.first));
        for block in order {
            let at = format!("{}:{}", chapter.name, block.line);
            if STOP.load(Ordering::Relaxed) {
                outcome
                    .failed
                    .push(format!("{at}: not run, the run was interrupted"));
                continue;
            }
            let missing = block
                .directive
                .needs
                .iter()
                .find(|program| !installed(program));
            if let Some(program) = missing {
                let reason = format!("needs {program}, which is not installed here");
                println!("SKIP: {at}: {reason}");
                outcome.skipped.push(format!("{at}: {reason}"));
                continue;
            }
            if let Some(reason) = &block.directive.skip {
                println!("SKIP: {at}: {reason}");
                outcome.skipped.push(format!("{at}: {reason}"));
                continue;
            }
            if block.directive.new_login {
                shells.close(true);
            }
            let started = Instant::now();
            match check_block(block, &mut shells) {
                Ok(()) => {
                    println!("ok    {at} ({:.1}s)", started.elapsed().as_secs_f64());
                    outcome.passed += 1;
                }
                Err(failure) => {
                    println!("FAIL  {at}\n{}\n", failure.report);
                    outcome.failed.push(at);
                    if failure.interrupted {
                        // What the shells are in is unknown now: start again.
                        shells.close(false);
                    }
                }
            }
        }
        shells.close(false);
        for process in machine.kill_leftovers(&shells.started) {
            println!("  {}: killed what it left running: {process}", chapter.name);
        }
    }
    Ok(outcome)
}

/// Why a block failed.
struct Failure {
    report: String,
    /// The block did not run to its end: its shells are in an unknown state.
    interrupted: bool,
}

/// Whether `program` is in a directory of root's `PATH`.
fn installed(program: &str) -> bool {
    ROOT_PATH
        .iter()
        .any(|dir| Path::new(dir).join(program).is_file())
}

/// Root's `PATH` on the book's machines, after the workspace's own directories.
const ROOT_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Runs a block and compares.
fn check_block(block: &Block, shells: &mut Shells) -> std::result::Result<(), Failure> {
    let expected: Vec<Line> = block
        .lines
        .iter()
        .map(|(_, text)| Line::parse(text, &block.directive.holes))
        .collect();
    let shown = run_block(block, shells, &expected);
    let (lines, error) = match shown {
        Ok(lines) => (lines, None),
        Err((lines, err)) => (lines, Some(err)),
    };
    let facts = Facts::read();
    let actual: Vec<Shown> = lines
        .iter()
        .map(|(text, echo)| {
            if *echo {
                Shown {
                    text: text.clone(),
                    lenient: false,
                }
            } else {
                let (text, lenient) = facts.to_book(text);
                Shown { text, lenient }
            }
        })
        .collect();
    let terminal: Vec<&str> = actual.iter().map(|s| s.text.as_str()).collect();
    let mut report = String::new();
    if let Some(err) = &error {
        report.push_str(&format!("  the block did not run to its end: {err:#}\n"));
    }
    if !facts.ambiguous.is_empty() {
        report.push_str(&format!(
            "  this machine's ids cannot be told apart: {}\n",
            facts.ambiguous.join("; ")
        ));
    }
    if let Err(at) = expect::compare(&expected, &actual) {
        let line = |i: usize| {
            block
                .lines
                .get(i)
                .map(|(n, _)| *n)
                .unwrap_or(block.line + block.lines.len() + 1)
        };
        let book = expected
            .get(at.expected)
            .map(expect::shown)
            .unwrap_or("(the block's end)");
        let shown = terminal.get(at.actual).copied().unwrap_or("(nothing more)");
        report.push_str(&format!(
            "  line {}: the book shows\n      {book}\n    the terminal showed\n      {shown}\n",
            line(at.expected)
        ));
    } else if error.is_none() {
        return Ok(());
    }
    let described = facts.describe();
    if actual.iter().any(|line| line.lenient) {
        report.push_str(&format!(
            "  (this machine's numbers, as the book's: {described})\n"
        ));
    }
    report.push_str("  the whole block, as the terminal showed it:\n");
    for line in &terminal {
        report.push_str(&format!("    | {line}\n"));
    }
    Err(Failure {
        report: report.trim_end().to_owned(),
        interrupted: error.is_some(),
    })
}

type Rendered = Vec<(String, bool)>;

/// Types the block's commands and renders what each showed. The bool of a line says
/// whether it is the echo of a typed line (which the facts do not rewrite).
fn run_block(
    block: &Block,
    shells: &mut Shells,
    expected: &[Line],
) -> std::result::Result<Rendered, (Rendered, anyhow::Error)> {
    let mut lines: Rendered = Vec::new();
    let mut previous: Option<String> = None;
    let mut used: Vec<String> = Vec::new();
    for (index, step) in block.steps.iter().enumerate() {
        let next_pushed = block.steps.get(index + 1).is_some_and(|s| s.pushed);
        let user = match who_types(step, block, shells, previous.as_deref()) {
            Ok(user) => user,
            Err(err) => return Err((lines, err)),
        };
        let min = expect::min_lines(&expected[step.first + step.command.len()..step.end]);
        let timeout = block
            .directive
            .timeout
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let result = match shells.get(&user) {
            Ok(shell) => run_step(shell, step, min, next_pushed, timeout),
            Err(err) => Err((Vec::new(), err)),
        };
        match result {
            Ok(step_lines) => lines.extend(step_lines),
            Err((step_lines, err)) => {
                lines.extend(step_lines);
                let number = block.lines[step.first].0;
                return Err((lines, err.context(format!("line {number}"))));
            }
        }
        if !used.contains(&user) {
            used.push(user.clone());
        }
        previous = Some(user);
    }
    for user in used {
        if shells.by_user.get(&user).is_some_and(|s| s.nested) {
            let err = anyhow::anyhow!(
                "the block leaves a shell it started running in {user}'s terminal: `exit` it"
            );
            return Err((lines, err));
        }
    }
    Ok(lines)
}

/// Whose shell a step is typed into.
fn who_types(
    step: &Step,
    block: &Block,
    shells: &Shells,
    previous: Option<&str>,
) -> Result<String> {
    if let Some(prev) = previous
        && let Some(shell) = shells.by_user.get(prev)
        && shell.nested
    {
        if prompt_char(&shell.prompt) == Some(step.prompt) {
            return Ok(prev.to_owned());
        }
        bail!(
            "a `{}` line while a shell started inside {prev}'s waits at another prompt",
            step.prompt
        );
    }
    Ok(match step.prompt {
        '#' => "root".to_owned(),
        _ => step
            .user
            .clone()
            .or_else(|| block.directive.user.clone())
            .unwrap_or_else(|| WITH_RANGE.to_owned()),
    })
}

/// `#`, `$` or `>`: the character after a prompt's marker.
fn prompt_char(prompt: &[u8]) -> Option<char> {
    let bel = prompt.iter().position(|&b| b == 0x07)?;
    prompt.get(bel + 1).map(|&b| b as char)
}

type StepError = (Rendered, anyhow::Error);

/// Types one command (or waits for a pushed one) and renders what the terminal showed.
fn run_step(
    shell: &mut Shell,
    step: &Step,
    min_output: usize,
    next_pushed: bool,
    timeout: Duration,
) -> std::result::Result<Rendered, StepError> {
    let deadline = Instant::now() + timeout;
    let mut shown = shell.prompt.clone();
    let render = |shown: &[u8]| -> Rendered {
        screen::render(shown, COLUMNS.into())
            .into_iter()
            .enumerate()
            .map(|(i, line)| (line, i < step.command.len()))
            .collect()
    };
    let fail = |shown: &[u8], err: anyhow::Error| Err((render(shown), err));
    if step.pushed {
        if let Err(err) = shell.read_prompt(&mut shown, deadline) {
            return fail(&shown, err.context("waiting for the pushed command to run"));
        }
    } else {
        for (i, line) in step.command.iter().enumerate() {
            if let Err(err) = shell.type_line(line) {
                return fail(&shown, err);
            }
            let last = i + 1 == step.command.len();
            match shell.read_prompt(&mut shown, deadline) {
                Ok(prompt) if prompt.continuation == last => {
                    let why = if last {
                        "the shell wants more of the command than the book shows"
                    } else {
                        "the shell ran the command before the book's continuation lines"
                    };
                    return fail(&shown, anyhow::anyhow!(why));
                }
                Ok(_) if !last => shown.extend_from_slice(&shell.prompt),
                Ok(_) => {}
                Err(err) => {
                    return fail(
                        &shown,
                        err.context(format!(
                            "no prompt within {}s after typing it",
                            timeout.as_secs()
                        )),
                    );
                }
            }
        }
    }
    if next_pushed {
        return Ok(render(&shown));
    }
    // A background job's output comes after the prompt: wait for what the book shows.
    shell.take_pending(&mut shown);
    while render(&shown).len() < step.command.len() + min_output {
        match shell.read_more(deadline) {
            Ok(true) => shell.take_pending(&mut shown),
            Ok(false) => break,
            Err(err) => return fail(&shown, err),
        }
    }
    Ok(render(&shown))
}

/// Where the book is: `<workspace>/book/src`.
pub fn book_src(workspace: &Path) -> PathBuf {
    workspace.join("book").join("src")
}

//! The book's console blocks, and how each is to be run.
//!
//! A ```` ```console ```` block is a terminal session: a line that starts with `# ` is
//! typed at root's prompt, `$ ` at an ordinary user's, `> ` continues the command
//! above it, and the other lines are what the terminal showed. An HTML comment right
//! before the block (mdBook does not render it) tells the harness what the text alone
//! cannot:
//!
//! ```text
//! <!-- transcript:
//!   vary 3857 3859      the same value wherever the token appears (a PID)
//!   any 71              any value, each time (a count of the host's processes);
//!                       "a quoted token" may hold spaces, and matches any text
//!   user keelnosub      who types the `$` lines (default keeltry)
//!   pushed id           this command line is typed by the container, not by us
//!   new login           the user logs in again first (a group was added)
//!   timeout 120         seconds a command may take (default 60)
//!   needs gcc python3   skipped (and counted) where one of these is not installed
//!   first               run before the chapter's other blocks, and before a later
//!                       chapter run alone: it makes what the chapter's examples use
//!                       before the text makes it (the rootfs of chapter 2)
//!   skip: REASON        not run, for the reason given (alone in its comment)
//! -->
//! ```
//!
//! A command line that ends in `# as NAME` is typed by that user.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::expect::Holes;

/// A chapter of the book.
#[derive(Debug)]
pub struct Chapter {
    /// As the reports show it, e.g. `book/src/stage01-pidns.md`.
    pub name: String,
    pub blocks: Vec<Block>,
}

/// What the comment before a block says.
#[derive(Debug, Clone, Default)]
pub struct Directive {
    pub skip: Option<String>,
    pub user: Option<String>,
    pub holes: Holes,
    pub pushed: Vec<String>,
    pub new_login: bool,
    pub timeout: Option<u64>,
    /// Run before the chapter's other blocks (and before a later chapter run alone).
    pub first: bool,
    /// Programs the block runs that a machine may lack: without one, it is skipped.
    pub needs: Vec<String>,
}

/// One console block.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub directive: Directive,
    /// Every line of the block, with its 1-based line in the chapter.
    pub lines: Vec<(usize, String)>,
    pub steps: Vec<Step>,
}

/// One command and what it printed.
#[derive(Debug, Clone)]
pub struct Step {
    /// `#` or `$`.
    pub prompt: char,
    /// Who types it, from a trailing `# as NAME`.
    pub user: Option<String>,
    /// The command's lines as typed: the first, then its continuations.
    pub command: Vec<String>,
    /// Index of the command's first line in `Block::lines`.
    pub first: usize,
    /// Index past the step's last line (command and output) in `Block::lines`.
    pub end: usize,
    /// Typed by the container (TIOCSTI), not by the harness.
    pub pushed: bool,
}

/// The chapters in the order of `SUMMARY.md`.
pub fn chapters(src: &Path, shown_root: &Path) -> Result<Vec<Chapter>> {
    let summary = std::fs::read_to_string(src.join("SUMMARY.md"))
        .with_context(|| format!("reading {}", src.join("SUMMARY.md").display()))?;
    let mut chapters = Vec::new();
    for file in summary_links(&summary) {
        let path = src.join(&file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .strip_prefix(shown_root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let blocks = blocks(&text).with_context(|| format!("in {name}"))?;
        chapters.push(Chapter { name, blocks });
    }
    Ok(chapters)
}

/// The `(file.md)` targets of `SUMMARY.md`, in order.
fn summary_links(summary: &str) -> Vec<PathBuf> {
    summary
        .lines()
        .filter_map(|line| {
            let start = line.find("](")? + 2;
            let end = start + line[start..].find(')')?;
            let target = &line[start..end];
            target.ends_with(".md").then(|| PathBuf::from(target))
        })
        .collect()
}

/// The console blocks of a chapter.
pub fn blocks(markdown: &str) -> Result<Vec<Block>> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut comment: Option<(usize, String)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(fence) = fence(trimmed) {
            let info = trimmed[fence.len()..].trim();
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with(fence) && lines[j].trim() == fence)
                .with_context(|| format!("line {}: the block is never closed", i + 1))?;
            if info == "console" {
                let directive = match comment.take() {
                    Some((at, text)) => {
                        directive(&text).with_context(|| format!("line {at}: the comment"))?
                    }
                    None => Directive::default(),
                };
                let body: Vec<(usize, String)> =
                    (i + 1..end).map(|j| (j + 1, lines[j].to_owned())).collect();
                let steps = steps(&body, &directive)
                    .with_context(|| format!("the block at line {}", i + 1))?;
                blocks.push(Block {
                    line: i + 1,
                    directive,
                    lines: body,
                    steps,
                });
            }
            comment = None;
            i = end + 1;
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("<!-- transcript:") {
            let start = i;
            let mut text = String::from(rest);
            while !text.contains("-->") {
                i += 1;
                let Some(next) = lines.get(i) else {
                    bail!("line {}: the comment is never closed", start + 1);
                };
                text.push('\n');
                text.push_str(next);
            }
            let body = text.split("-->").next().unwrap_or_default().to_owned();
            comment = Some((start + 1, body));
        } else if !trimmed.is_empty() {
            // Only blank lines may stand between a comment and its block.
            comment = None;
        }
        i += 1;
    }
    Ok(blocks)
}

fn fence(line: &str) -> Option<&str> {
    let ticks = line.bytes().take_while(|&b| b == b'`').count();
    (ticks >= 3).then(|| &line[..ticks])
}

/// Reads the statements of a `<!-- transcript: ... -->` comment.
fn directive(text: &str) -> Result<Directive> {
    let mut d = Directive::default();
    // `skip` is the whole comment: its reason may say anything.
    if let Some(reason) = text.trim().strip_prefix("skip") {
        let reason = reason
            .trim_start_matches(':')
            .split_whitespace()
            .collect::<Vec<_>>();
        if reason.is_empty() {
            bail!("`skip` needs a reason");
        }
        d.skip = Some(reason.join(" "));
        return Ok(d);
    }
    let statements = text.lines().flat_map(|line| {
        // `pushed` takes its line as it is; other lines may hold several statements.
        if line.trim_start().starts_with("pushed") {
            vec![line]
        } else {
            line.split(';').collect()
        }
    });
    for statement in statements.map(str::trim).filter(|s| !s.is_empty()) {
        let (word, rest) = statement
            .split_once(char::is_whitespace)
            .unwrap_or((statement, ""));
        let rest = rest.trim();
        let tokens = || words(rest);
        match word.trim_end_matches(':') {
            "skip" => bail!("`skip` is a comment of its own"),
            "user" => d.user = Some(rest.to_owned()),
            "vary" => d.holes.vary.extend(tokens()),
            "any" => d.holes.any.extend(tokens()),
            "pushed" => d.pushed.push(rest.to_owned()),
            "new" if rest == "login" => d.new_login = true,
            "first" if rest.is_empty() => d.first = true,
            "needs" => d.needs.extend(tokens()),
            "timeout" => d.timeout = Some(rest.parse().context("timeout: seconds")?),
            _ => bail!("unknown statement `{statement}`"),
        }
    }
    Ok(d)
}

/// The words of `text`; a word in double quotes may hold spaces.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (word, after) = match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
            Some((quoted, after)) => (quoted, after),
            None => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
        };
        // An empty word (`""`) would match everywhere, and hold nothing.
        if !word.is_empty() {
            words.push(word.to_owned());
        }
        rest = after.trim_start();
    }
    words
}

/// The prompt a line starts with, and the command after it.
fn prompt_of(line: &str) -> Option<(char, &str)> {
    for prompt in ['#', '$'] {
        if line == prompt.to_string() {
            return Some((prompt, ""));
        }
        if let Some(rest) = line.strip_prefix(prompt).and_then(|r| r.strip_prefix(' ')) {
            return Some((prompt, rest));
        }
    }
    None
}

/// A trailing `# as NAME`.
fn typed_by(command: &str) -> Option<String> {
    let (_, comment) = command.rsplit_once("# as ")?;
    let name = comment.trim();
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| name.to_owned())
}

fn steps(lines: &[(usize, String)], directive: &Directive) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continuing = false;
    for (index, (number, line)) in lines.iter().enumerate() {
        if let Some((prompt, command)) = prompt_of(line) {
            if let Some(last) = steps.last_mut() {
                last.end = index;
            }
            let pushed = directive.pushed.iter().any(|p| p == command);
            steps.push(Step {
                prompt,
                user: typed_by(command),
                command: vec![command.to_owned()],
                first: index,
                end: index + 1,
                pushed,
            });
            continuing = true;
        } else if let (true, Some(rest)) = (continuing, line.strip_prefix('>')) {
            let step = steps.last_mut().expect("continuing a step");
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            step.user = step.user.take().or_else(|| typed_by(rest));
            step.command.push(rest.to_owned());
            step.end = index + 1;
        } else {
            let Some(step) = steps.last_mut() else {
                bail!("line {number}: output before any command");
            };
            step.end = index + 1;
            continuing = false;
        }
    }
    if let Some(unused) = directive
        .pushed
        .iter()
        .find(|p| !steps.iter().any(|s| s.pushed && s.command[0] == **p))
    {
        bail!("`pushed {unused}`: no such command line in the block");
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_steps_and_directives() {
        let md = "Text\n\
                  <!-- transcript: vary 3857; user keelnosub\n  any 71 -->\n\
                  \n\
                  ```console\n\
                  # sleep 1 &\n\
                  [1] 3857\n\
                  $ (echo a\n\
                  >  echo b)    # as keeltry\n\
                  a\n\
                  b\n\
                  #\n\
                  ```\n\
                  ```text\n# not a command\n```\n\
                  <!-- transcript: skip: shows another machine -->\n\
                  words\n\
                  ```console\n# true\n```\n";
        let blocks = blocks(md).unwrap();
        assert_eq!(blocks.len(), 2);
        let b = &blocks[0];
        assert_eq!(b.line, 5);
        assert_eq!(b.directive.holes.vary, ["3857"]);
        assert_eq!(b.directive.holes.any, ["71"]);
        assert_eq!(b.directive.user.as_deref(), Some("keelnosub"));
        let summary: Vec<_> = b
            .steps
            .iter()
            .map(|s| (s.prompt, s.command.clone(), s.user.clone(), s.first, s.end))
            .collect();
        assert_eq!(
            summary,
            [
                ('#', vec!["sleep 1 &".to_owned()], None, 0, 2),
                (
                    '$',
                    vec!["(echo a".to_owned(), " echo b)    # as keeltry".to_owned()],
                    Some("keeltry".to_owned()),
                    2,
                    6
                ),
                ('#', vec![String::new()], None, 6, 7),
            ]
        );
        // A comment followed by text is not the block's.
        assert!(blocks[1].directive.skip.is_none());
    }

    #[test]
    fn needs_and_pushed() {
        let md = "<!-- transcript: needs gcc python3\n  pushed id; not a statement -->\n\
                  ```console\n# true\n# id; not a statement\n```\n";
        let d = &blocks(md).unwrap()[0].directive;
        assert_eq!(d.needs, ["gcc", "python3"]);
        assert_eq!(d.pushed, ["id; not a statement"]);
    }

    #[test]
    fn quoted_words() {
        assert_eq!(words(r#" a "b c" d "#), ["a", "b c", "d"]);
        assert_eq!(
            words(r#"vary "" x"#),
            ["vary", "x"],
            "an empty word is dropped"
        );
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        assert!(blocks("```console\noutput first\n```\n").is_err());
        assert!(blocks("<!-- transcript: skip -->\n```console\n# true\n```\n").is_err());
        assert!(blocks("<!-- transcript: frobnicate -->\n```console\n# true\n```\n").is_err());
        assert!(blocks("<!-- transcript: pushed id -->\n```console\n# true\n```\n").is_err());
    }
}

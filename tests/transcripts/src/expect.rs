//! Comparing what the book shows with what the terminal showed.
//!
//! The book shows real output, taken on one machine. Some of it is that machine's:
//! PIDs, namespace inodes, dates, timings. Such values are *holes*: a hole matches any
//! value of its shape, and a hole that is a variable matches the same value everywhere
//! in the block (a PID that the book shows twice must be the same PID twice). Holes are
//! found in three ways:
//!
//! - automatically, by their shape: namespace inodes (`4026531836`: a variable),
//!   `ls -l` dates (`Nov 29 00:02`), and `time`'s durations (`0m3.025s`, which must
//!   agree to the whole second, so that "3 seconds" and "at once" stay what the book
//!   says);
//! - declared for a block with `vary TOKEN...` (variables) or `any TOKEN...` (each
//!   occurrence on its own), for what only the author can tell apart, e.g. a PID;
//! - a line that is `...` alone stands for any number of lines, and a line that ends
//!   in ` ...` goes on with anything, as in the book.
//!
//! A line with a hole may differ from the book in the width of its runs of spaces:
//! columns move when a value is longer.

use std::collections::HashMap;

/// What a hole matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Digits.
    Number,
    /// Anything but white space.
    Word,
    /// Any text at all (a declared token with spaces in it).
    Text,
    /// `Nov 29 00:02` or `Dec 14  2025`.
    Date,
    /// `0m3.025s`, with this many whole seconds.
    Duration(u64),
    /// The rest of the line, if any.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    Char(char),
    /// A run of spaces: exact, or one or more on a lenient line.
    Spaces(usize),
    /// The spaces a line starts with: exact, or any number on a lenient line.
    Indent(usize),
    Hole {
        shape: Shape,
        var: Option<String>,
    },
}

/// One line the book shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `...`: any number of lines.
    Any,
    Text {
        atoms: Vec<Atom>,
        holes: bool,
        /// As written, for messages.
        shown: String,
    },
}

/// The tokens a block declares as holes.
#[derive(Debug, Clone, Default)]
pub struct Holes {
    /// `vary`: the same value wherever the token appears.
    pub vary: Vec<String>,
    /// `any`: any value, each time.
    pub any: Vec<String>,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `token` appears in `text` at byte `at`, not as part of a longer word.
fn token_at(text: &str, at: usize, token: &str) -> bool {
    text[at..].starts_with(token)
        && !text[..at].chars().next_back().is_some_and(is_word_char)
        && !text[at + token.len()..]
            .chars()
            .next()
            .is_some_and(is_word_char)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The length of an `ls -l` date at the start of `text`, if there is one.
fn date_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    if b.len() < 12 || !MONTHS.iter().any(|m| text.starts_with(m)) || b[3] != b' ' {
        return None;
    }
    let day = (b[4] == b' ' || b[4].is_ascii_digit()) && b[5].is_ascii_digit() && b[6] == b' ';
    let time = b[7..9].iter().all(u8::is_ascii_digit)
        && b[9] == b':'
        && b[10..12].iter().all(u8::is_ascii_digit);
    let year = b[7] == b' ' && b[8..12].iter().all(u8::is_ascii_digit);
    (day && (time || year)).then_some(12)
}

/// The length of a duration `NmS.FFFs` at the start of `text`, and its whole seconds.
fn duration_len(text: &str) -> Option<(usize, u64)> {
    let minutes = text.bytes().take_while(u8::is_ascii_digit).count();
    let rest = text[minutes..].strip_prefix('m')?;
    let seconds = rest.bytes().take_while(u8::is_ascii_digit).count();
    let fraction = rest[seconds..].strip_prefix('.')?;
    let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
    if minutes == 0 || seconds == 0 || digits == 0 || !fraction[digits..].starts_with('s') {
        return None;
    }
    let whole = text[..minutes].parse::<u64>().ok()? * 60 + rest[..seconds].parse::<u64>().ok()?;
    Some((minutes + 1 + seconds + 1 + digits + 1, whole))
}

/// A namespace inode: ten digits from 4026000000 on, as the kernel numbers them.
fn ns_inode_len(text: &str) -> Option<usize> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    (digits == 10 && text.starts_with("4026")).then_some(10)
}

impl Line {
    /// One line of the book, with the block's declared holes.
    pub fn parse(text: &str, holes: &Holes) -> Self {
        let text = expand_tabs(text.trim_end());
        if text == "..." {
            return Line::Any;
        }
        let mut atoms = Vec::new();
        let mut has_holes = false;
        // `text ...`: the line goes on with anything.
        let (text, rest_of_line) = match text.strip_suffix(" ...") {
            Some(prefix) => (prefix.to_owned(), true),
            None => (text, false),
        };
        let mut at = 0;
        while at < text.len() {
            let rest = &text[at..];
            let boundary = !text[..at].chars().next_back().is_some_and(is_word_char);
            let mut hole = |len: usize, shape: Shape, var: Option<String>| {
                atoms.push(Atom::Hole { shape, var });
                has_holes = true;
                len
            };
            let declared = |list: &[String]| {
                list.iter()
                    .filter(|t| token_at(&text, at, t))
                    .max_by_key(|t| t.len())
                    .cloned()
            };
            let shape_of = |token: &str| {
                if token.bytes().all(|b| b.is_ascii_digit()) {
                    Shape::Number
                } else if token.contains(char::is_whitespace) {
                    Shape::Text
                } else {
                    Shape::Word
                }
            };
            at += if let Some(token) = declared(&holes.vary) {
                hole(token.len(), shape_of(&token), Some(token.clone()))
            } else if let Some(token) = declared(&holes.any) {
                hole(token.len(), shape_of(&token), None)
            } else if let Some(len) = boundary.then(|| ns_inode_len(rest)).flatten() {
                hole(len, Shape::Number, Some(rest[..len].to_owned()))
            } else if let Some(len) = boundary.then(|| date_len(rest)).flatten() {
                hole(len, Shape::Date, None)
            } else if let Some((len, secs)) = boundary.then(|| duration_len(rest)).flatten() {
                hole(len, Shape::Duration(secs), None)
            } else if rest.starts_with(' ') {
                let len = rest.bytes().take_while(|&b| b == b' ').count();
                atoms.push(if at == 0 {
                    Atom::Indent(len)
                } else {
                    Atom::Spaces(len)
                });
                len
            } else {
                let c = rest.chars().next().expect("not at the end");
                atoms.push(Atom::Char(c));
                c.len_utf8()
            };
        }
        if rest_of_line {
            atoms.push(Atom::Hole {
                shape: Shape::Rest,
                var: None,
            });
            has_holes = true;
        }
        Line::Text {
            atoms,
            holes: has_holes,
            shown: if rest_of_line {
                format!("{text} ...")
            } else {
                text
            },
        }
    }

    fn shown(&self) -> &str {
        match self {
            Line::Any => "...",
            Line::Text { shown, .. } => shown,
        }
    }
}

/// Tab stops every 8 columns, as the terminal shows them.
pub fn expand_tabs(text: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for c in text.chars() {
        if c == '\t' {
            let next = (col / 8 + 1) * 8;
            out.extend(std::iter::repeat_n(' ', next - col));
            col = next;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

/// One line the terminal showed; `lenient` when its numbers were rewritten to the
/// book's (see `facts`), so that its columns may have moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub text: String,
    pub lenient: bool,
}

type Bindings = HashMap<String, String>;

/// Where a comparison failed: the first book line that could not be matched, and the
/// terminal's line at that point (`None`: the terminal showed no more lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Index into the book's lines.
    pub expected: usize,
    /// Index into the terminal's lines.
    pub actual: usize,
}

/// Compares the book's lines with the terminal's.
pub fn compare(expected: &[Line], actual: &[Shown]) -> Result<(), Mismatch> {
    let mut furthest = Mismatch {
        expected: 0,
        actual: 0,
    };
    if lines_match(expected, actual, 0, 0, &Bindings::new(), &mut furthest) {
        Ok(())
    } else {
        Err(furthest)
    }
}

/// The smallest number of lines `expected` stands for: to wait for output that comes
/// late (a background job's).
pub fn min_lines(expected: &[Line]) -> usize {
    expected.iter().filter(|l| !matches!(l, Line::Any)).count()
}

/// What the book showed at a mismatch, for messages.
pub fn shown(line: &Line) -> &str {
    line.shown()
}

fn lines_match(
    expected: &[Line],
    actual: &[Shown],
    e: usize,
    a: usize,
    bindings: &Bindings,
    furthest: &mut Mismatch,
) -> bool {
    if (e, a) > (furthest.expected, furthest.actual) {
        *furthest = Mismatch {
            expected: e,
            actual: a,
        };
    }
    match expected.get(e) {
        None => a == actual.len(),
        Some(Line::Any) => (a..=actual.len())
            .any(|skip| lines_match(expected, actual, e + 1, skip, bindings, furthest)),
        Some(Line::Text { atoms, holes, .. }) => {
            let Some(line) = actual.get(a) else {
                return false;
            };
            let lenient = *holes || line.lenient;
            let chars: Vec<char> = line.text.chars().collect();
            let mut found = false;
            atoms_match(atoms, &chars, lenient, bindings, &mut |b| {
                found = lines_match(expected, actual, e + 1, a + 1, b, furthest);
                found
            });
            found
        }
    }
}

/// Calls `done` with the bindings of each way `atoms` match all of `text`, until it
/// returns true.
fn atoms_match(
    atoms: &[Atom],
    text: &[char],
    lenient: bool,
    bindings: &Bindings,
    done: &mut dyn FnMut(&Bindings) -> bool,
) -> bool {
    let Some((atom, rest)) = atoms.split_first() else {
        return text.is_empty() && done(bindings);
    };
    match atom {
        Atom::Char(c) => {
            text.first() == Some(c) && atoms_match(rest, &text[1..], lenient, bindings, done)
        }
        Atom::Spaces(n) | Atom::Indent(n) => {
            let run = text.iter().take_while(|&&c| c == ' ').count();
            if lenient {
                // Padding before a right-aligned column may vanish when the value is wider.
                let min = usize::from(matches!(atom, Atom::Spaces(_)));
                (min..=run)
                    .rev()
                    .any(|len| atoms_match(rest, &text[len..], lenient, bindings, done))
            } else {
                run >= *n && atoms_match(rest, &text[*n..], lenient, bindings, done)
            }
        }
        Atom::Hole { shape, var } => {
            let bound = var.as_ref().and_then(|v| bindings.get(v));
            for len in candidates(*shape, text).into_iter().rev() {
                let value: String = text[..len].iter().collect();
                if bound.is_some_and(|b| *b != value) {
                    continue;
                }
                let matched = if let (Some(var), None) = (var, bound) {
                    let mut more = bindings.clone();
                    more.insert(var.clone(), value);
                    atoms_match(rest, &text[len..], lenient, &more, done)
                } else {
                    atoms_match(rest, &text[len..], lenient, bindings, done)
                };
                if matched {
                    return true;
                }
            }
            false
        }
    }
}

/// The lengths of `text`'s prefixes that `shape` matches, shortest first.
fn candidates(shape: Shape, text: &[char]) -> Vec<usize> {
    let prefix: String = text.iter().take(40).collect();
    match shape {
        Shape::Number => (1..=text.iter().take_while(|c| c.is_ascii_digit()).count()).collect(),
        Shape::Word => (1..=text.iter().take_while(|c| !c.is_whitespace()).count()).collect(),
        Shape::Date => date_len(&prefix).into_iter().collect(),
        Shape::Rest => (0..=text.len()).collect(),
        Shape::Text => (1..=text.len()).collect(),
        Shape::Duration(whole) => duration_len(&prefix)
            .filter(|&(_, secs)| secs == whole)
            .map(|(len, _)| len)
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(lines: &[&str], holes: &Holes) -> Vec<Line> {
        lines.iter().map(|l| Line::parse(l, holes)).collect()
    }

    fn terminal(lines: &[&str]) -> Vec<Shown> {
        lines
            .iter()
            .map(|l| Shown {
                text: (*l).to_owned(),
                lenient: false,
            })
            .collect()
    }

    fn vary(tokens: &[&str]) -> Holes {
        Holes {
            vary: tokens.iter().map(|t| (*t).to_owned()).collect(),
            any: Vec::new(),
        }
    }

    #[test]
    fn exact_lines() {
        let expected = book(&["# echo hi", "hi"], &Holes::default());
        assert!(compare(&expected, &terminal(&["# echo hi", "hi"])).is_ok());
        let err = compare(&expected, &terminal(&["# echo hi", "ho"])).unwrap_err();
        assert_eq!(
            err,
            Mismatch {
                expected: 1,
                actual: 1
            }
        );
        assert!(compare(&expected, &terminal(&["# echo hi", "hi", "more"])).is_err());
        assert!(compare(&expected, &terminal(&["# echo hi"])).is_err());
    }

    #[test]
    fn a_variable_is_the_same_value_everywhere() {
        let expected = book(&["[1] 3857", "NSpid:\t3857\t1"], &vary(&["3857"]));
        assert!(compare(&expected, &terminal(&["[1] 42", "NSpid:  42      1"])).is_ok());
        assert!(compare(&expected, &terminal(&["[1] 42", "NSpid:  43      1"])).is_err());
        // Not inside a longer number.
        let expected = book(&["38570"], &vary(&["3857"]));
        assert!(compare(&expected, &terminal(&["42"])).is_err());
    }

    #[test]
    fn any_is_independent() {
        let holes = Holes {
            vary: Vec::new(),
            any: vec!["71".into()],
        };
        let expected = book(&["net 71", "user 71"], &holes);
        assert!(compare(&expected, &terminal(&["net 80", "user 79"])).is_ok());
    }

    #[test]
    fn namespace_inodes_dates_and_durations_are_holes() {
        let expected = book(
            &[
                "pid:[4026532180] mnt:[4026532177] pid:[4026532180]",
                "-rw-r--r-- 1 0 0 0 Nov 29 00:10 /tmp/f",
                "real\t0m3.025s",
            ],
            &Holes::default(),
        );
        let ok = terminal(&[
            "pid:[4026532999] mnt:[4026532998] pid:[4026532999]",
            "-rw-r--r-- 1 0 0 0 Jan  2  2026 /tmp/f",
            "real    0m3.871s",
        ]);
        assert!(compare(&expected, &ok).is_ok());
        let slow = terminal(&[
            "pid:[4026532999] mnt:[4026532998] pid:[4026532999]",
            "-rw-r--r-- 1 0 0 0 Jan  2  2026 /tmp/f",
            "real    0m4.001s",
        ]);
        assert!(compare(&expected, &slow).is_err());
    }

    #[test]
    fn columns_may_move_around_holes() {
        let expected = book(&["    PID TTY", "   3859 sleep"], &vary(&["3859"]));
        assert!(compare(&expected, &terminal(&["    PID TTY", " 123456 sleep"])).is_ok());
        // Without holes, spacing is exact.
        let expected = book(&["a  b"], &Holes::default());
        assert!(compare(&expected, &terminal(&["a b"])).is_err());
    }

    #[test]
    fn dots_stand_for_any_lines() {
        let expected = book(&["first", "...", "last"], &Holes::default());
        assert!(compare(&expected, &terminal(&["first", "last"])).is_ok());
        assert!(compare(&expected, &terminal(&["first", "a", "b", "last"])).is_ok());
        let err = compare(&expected, &terminal(&["first", "a"])).unwrap_err();
        assert_eq!(err.expected, 2);
        assert_eq!(min_lines(&expected), 2);
        let expected = book(&["bin boot dev ..."], &Holes::default());
        assert!(compare(&expected, &terminal(&["bin boot dev etc home"])).is_ok());
        assert!(compare(&expected, &terminal(&["bin boot"])).is_err());
    }
}

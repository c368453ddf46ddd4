//! "Did you mean `run`?": a command that is not there, typed where a subcommand goes.
//!
//! As with `docker run`, everything after the runtime's options is the command, and
//! here `run` itself may be left out: `stage02-mountns rnu -- true` runs a command
//! called `rnu`. Guessing at the command line would make any command that looks like
//! a subcommand unreachable, so keel does not guess there. It asks the container
//! first: only when the first word of the command line (no `run`, no option, no `--`
//! before it) is a command the container does not have, and is one letter away from a
//! subcommand, is the mistake taken for a misspelled subcommand. The run is then the
//! runtime's failure (125, a usage error), and the message says which one was meant.

/// The subcommand that `word` is one edit away from (a letter added, removed,
/// changed, or two neighbours swapped: `rnu`, `doctr`), if any. A path is never a
/// misspelled subcommand.
pub fn misspelled<'a>(word: &str, subcommands: &[&'a str]) -> Option<&'a str> {
    if word.contains('/') {
        return None;
    }
    subcommands
        .iter()
        .copied()
        .find(|name| *name != word && one_edit_apart(word, name))
}

/// Whether `a` becomes `b` by one insertion, deletion, substitution, or swap of two
/// neighbouring characters.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    match (a.len(), b.len()) {
        (0, 0) => false,
        (n, m) if n == m => {
            a[1..] == b[1..] || (n >= 2 && a[0] == b[1] && a[1] == b[0] && a[2..] == b[2..])
        }
        (n, m) if n + 1 == m => a == &b[1..],
        (n, m) if m + 1 == n => &a[1..] == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{misspelled, one_edit_apart};
    use proptest::prelude::*;

    const SUBCOMMANDS: [&str; 2] = ["run", "doctor"];

    #[test]
    fn one_letter_off_is_a_suggestion() {
        for (typo, meant) in [
            ("rnu", "run"),
            ("urn", "run"),
            ("rn", "run"),
            ("runn", "run"),
            ("ran", "run"),
            ("doctr", "doctor"),
            ("docter", "doctor"),
            ("dcotor", "doctor"),
            ("doctors", "doctor"),
        ] {
            assert_eq!(misspelled(typo, &SUBCOMMANDS), Some(meant), "{typo}");
        }
    }

    #[test]
    fn commands_are_not_suggestions() {
        for word in [
            "run", "doctor", "nur", "sh", "true", "ls", "/run", "./rn", "", "r",
        ] {
            assert_eq!(misspelled(word, &SUBCOMMANDS), None, "{word:?}");
        }
    }

    proptest! {
        /// Any text: no panic, and the relation is symmetric.
        #[test]
        fn one_edit_apart_is_symmetric(a in any::<String>(), b in any::<String>()) {
            prop_assert_eq!(one_edit_apart(&a, &b), one_edit_apart(&b, &a));
        }

        /// Removing one character of a word is one edit.
        #[test]
        fn a_deletion_is_one_edit(word in "[a-z]{1,12}", at in any::<prop::sample::Index>()) {
            let mut chars: Vec<char> = word.chars().collect();
            chars.remove(at.index(chars.len()));
            let shorter: String = chars.into_iter().collect();
            prop_assert!(one_edit_apart(&shorter, &word));
        }
    }
}

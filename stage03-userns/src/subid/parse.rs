//! Reading /etc/subuid and /etc/subgid exactly as shadow 4.13 does.
//!
//! newuidmap and newgidmap decide which ids a user may map, so keel must see the files
//! as they do, byte for byte, or it could hand out a range that, to them, belongs to
//! someone else. shadow reads them with `commonio_open` and `subordinate_parse`:
//!
//! - the file is **bytes**, split at `\n` (a last line may lack it); a user name is
//!   whatever bytes the administrator wrote, UTF-8 or not;
//! - a line whose first byte is `+` or `-` is a NIS line: kept, never an entry;
//! - a line of 1024 bytes or more is not an entry;
//! - otherwise the line is split at `:` into exactly three non-empty fields, `owner`,
//!   `start` and `count`; anything after a third `:` is ignored (`a:1:2:junk` is
//!   `a:1:2`), and a line of fewer fields is not an entry;
//! - `start` and `count` are read by `getulong`: C's `strtoul(field, &end, 0)`, which
//!   must consume the whole field without overflowing. So `0x186a0` (hex), `0303240`
//!   (octal), ` 100000` (leading whitespace) and `+100000` all mean 100000, and
//!   `-1` means 2^64 - 1.
//!
//! Lines that are not entries are skipped by the helpers, and kept as they are when
//! shadow's tools rewrite the file. There are no comments: `#alice:1:2` is an entry of
//! the owner `#alice`.

use super::SubRange;

/// What one line of the file is, to shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An entry: `owner:start:count`.
    Range(SubRange),
    /// A NIS line (`+` or `-` first): not an entry, and nothing keel needs to know.
    Nis,
    /// Nothing but whitespace: not an entry, and it cannot hide one.
    Blank,
    /// Not an entry to shadow, but not empty either: the helpers skip it, and keel
    /// cannot tell whose ids it was meant to hold. The text says why.
    NotUnderstood(&'static str),
}

/// shadow's buffer for one line: a line this long or longer is not an entry.
pub const MAX_LINE: usize = 1024;

/// One line (without its `\n`).
pub fn line(bytes: &[u8]) -> Kind {
    if let Some(b'+' | b'-') = bytes.first() {
        return Kind::Nis;
    }
    if bytes.iter().all(|&b| is_c_space(b)) {
        return Kind::Blank;
    }
    if bytes.contains(&0) {
        // shadow reads lines with fgets and C strings: a NUL byte cuts a line short,
        // and glues what follows to the next line. keel does not imitate that.
        return Kind::NotUnderstood("it holds a NUL byte");
    }
    if bytes.len() >= MAX_LINE {
        return Kind::NotUnderstood("it is 1024 bytes or longer");
    }
    let mut fields = bytes.splitn(4, |&b| b == b':');
    let (Some(owner), Some(start), Some(count)) = (fields.next(), fields.next(), fields.next())
    else {
        return Kind::NotUnderstood("it does not have the three fields owner:start:count");
    };
    // A fourth field, if any, is left in `fields`: shadow ignores it, and so do we.
    if owner.is_empty() || start.is_empty() || count.is_empty() {
        return Kind::NotUnderstood("one of its fields is empty");
    }
    match (getulong(start), getulong(count)) {
        (Some(start), Some(count)) => Kind::Range(SubRange {
            owner: owner.to_vec(),
            start,
            count,
        }),
        _ => Kind::NotUnderstood("its start or count is not a number (decimal, 0x hex or 0 octal)"),
    }
}

/// Every line of a file's bytes, split at `\n`: a last line without its `\n` counts,
/// an empty end does not.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

// ANCHOR: getulong
/// shadow's `getulong`: `strtoul(field, &end, 0)`, accepted only when the field is not
/// empty, `end` reached its end, and the value did not overflow (`ERANGE`).
///
/// `strtoul` skips leading whitespace, takes one sign (`-` negates, modulo 2^64),
/// then reads hex after `0x`, octal after a leading `0`, decimal otherwise.
pub fn getulong(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|&b| !is_c_space(b))?;
    let mut rest = &field[start..];
    let negative = match rest.first() {
        Some(b'-') => true,
        Some(b'+') => false,
        _ => {
            return digits(rest);
        }
    };
    rest = &rest[1..];
    let value = digits(rest)?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The digits after the sign: all of them, in the base their prefix says.
fn digits(text: &[u8]) -> Option<u64> {
    let (radix, digits) = match text {
        [b'0', b'x' | b'X', hex @ ..] => (16, hex),
        [b'0', ..] => (8, text),
        _ => (10, text),
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &b| {
        let digit = u64::from(char::from(b).to_digit(radix)?);
        value.checked_mul(u64::from(radix))?.checked_add(digit)
    })
}
// ANCHOR_END: getulong

/// C's `isspace` in the "C" locale (Rust's `is_ascii_whitespace` lacks `\v`).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(owner: &[u8], start: u64, count: u64) -> Kind {
        Kind::Range(SubRange {
            owner: owner.to_vec(),
            start,
            count,
        })
    }

    #[test]
    fn numbers_are_read_as_strtoul_base_0_reads_them() {
        for (text, value) in [
            ("100000", 100000),
            ("0x186a0", 100000),
            ("0X186A0", 100000),
            ("0303240", 100000),
            (" 100000", 100000),
            ("\t\x0b\x0c\r 100000", 100000),
            ("+100000", 100000),
            ("0", 0),
            ("00", 0),
            ("-1", u64::MAX),
            ("-0x10", u64::MAX - 15),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(getulong(text.as_bytes()), Some(value), "{text:?}");
        }
        for text in [
            "",
            " ",
            "+",
            "-",
            "+-1",
            "- 1",
            "100000 ",
            "1e5",
            "08",
            "0x",
            "0xg",
            "18446744073709551616",
            "-18446744073709551616",
            "0x10000000000000000",
            "１",
        ] {
            assert_eq!(getulong(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn lines_are_split_at_newlines_and_a_last_line_needs_none() {
        let split = |bytes: &[u8]| lines(bytes).map(<[u8]>::to_vec).collect::<Vec<_>>();
        assert!(split(b"").is_empty());
        assert_eq!(split(b"\n"), [b"".to_vec()]);
        assert_eq!(split(b"a\nb"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(split(b"a\nb\n"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            split(b"a\n\nb\n"),
            [b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn owners_are_bytes() {
        assert_eq!(
            line(b"b\xffb:165536:65536"),
            range(b"b\xffb", 165536, 65536)
        );
    }

    #[test]
    fn a_fourth_field_is_ignored_as_shadow_ignores_it() {
        assert_eq!(
            line(b"alice:100000:65536:x"),
            range(b"alice", 100000, 65536)
        );
        assert_eq!(line(b"alice:100000:65536:"), range(b"alice", 100000, 65536));
        assert_eq!(line(b"alice:1:2:3:4"), range(b"alice", 1, 2));
    }

    #[test]
    fn fields_are_exactly_three_and_none_empty() {
        for bad in [
            &b"alice"[..],
            b"alice:100000",
            b":100000:65536",
            b"alice::65536",
            b"alice:100000:",
            b"alice:100000:65536 ",
            b"alice:x:65536",
        ] {
            assert!(
                matches!(line(bad), Kind::NotUnderstood(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn nis_lines_and_blank_lines_are_not_entries() {
        assert_eq!(line(b"+alice:100000:65536"), Kind::Nis);
        assert_eq!(line(b"-"), Kind::Nis);
        assert_eq!(line(b""), Kind::Blank);
        assert_eq!(line(b" \t"), Kind::Blank);
    }

    #[test]
    fn a_hash_is_no_comment_to_shadow() {
        assert_eq!(line(b"#alice:1:2"), range(b"#alice", 1, 2));
        assert!(matches!(line(b"# ranges"), Kind::NotUnderstood(_)));
    }

    #[test]
    fn lines_of_1024_bytes_or_more_are_not_entries() {
        let owner = "a".repeat(MAX_LINE - ":1:1".len());
        let at_limit = format!("{owner}:1:1");
        assert_eq!(at_limit.len(), MAX_LINE);
        assert!(matches!(line(at_limit.as_bytes()), Kind::NotUnderstood(_)));
        let below = &at_limit[1..];
        assert!(matches!(line(below.as_bytes()), Kind::Range(_)));
    }

    #[test]
    fn a_nul_byte_makes_a_line_not_understood() {
        assert!(matches!(line(b"alice\0:1:2"), Kind::NotUnderstood(_)));
    }

    #[test]
    fn huge_and_negative_numbers_are_entries_as_they_are_to_shadow() {
        assert_eq!(
            line(b"alice:-1:0xffffffffffffffff"),
            range(b"alice", u64::MAX, u64::MAX)
        );
    }
}

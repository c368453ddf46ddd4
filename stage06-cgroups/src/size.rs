//! Sizes as docker spells them: `64m`, `1g`, `512k`, `1048576` (bytes), `100b`.

use std::fmt;
use std::str::FromStr;

/// A number of bytes, read from docker's spelling (binary units: `1k` is 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl FromStr for Bytes {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a size: write a number with an optional unit b, k, m or g \
                 (binary: 1k = 1024 bytes), as in 64m"
            )
        };
        let lower = text.trim().to_ascii_lowercase();
        let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &lower[digits.len()..];
        let shift = match unit {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(bad()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let number: u64 = digits.parse().map_err(|_| bad())?;
        number
            .checked_mul(1 << shift)
            .map(Bytes)
            .ok_or_else(|| format!("{text:?} is more bytes than a 64-bit number holds"))
    }
}

impl fmt::Display for Bytes {
    /// The largest binary unit that divides the size: `32MiB`, `1536KiB`, `100B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
        for (shift, unit) in units {
            if self.0 != 0 && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn docker_spellings() {
        assert_eq!("64m".parse(), Ok(Bytes(64 << 20)));
        assert_eq!("1G".parse(), Ok(Bytes(1 << 30)));
        assert_eq!("512k".parse(), Ok(Bytes(512 << 10)));
        assert_eq!("100b".parse(), Ok(Bytes(100)));
        assert_eq!("4096".parse(), Ok(Bytes(4096)));
    }

    #[test]
    fn bad_sizes_say_how_to_write_one() {
        for bad in ["1x", "", "m", "-1m", "1.5g", "12 m"] {
            let err = bad.parse::<Bytes>().unwrap_err();
            assert!(err.contains("as in 64m"), "{bad}: {err}");
        }
        assert!(
            "99999999999t"
                .parse::<Bytes>()
                .unwrap_err()
                .contains("64-bit")
        );
    }

    #[test]
    fn shown_in_the_largest_unit_that_divides() {
        assert_eq!(Bytes(32 << 20).to_string(), "32MiB");
        assert_eq!(Bytes(1536 << 10).to_string(), "1536KiB");
        assert_eq!(Bytes(100).to_string(), "100B");
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs(text in "\\PC{0,12}") {
            let _ = text.parse::<Bytes>();
        }

        #[test]
        fn megabytes_round_trip(n in 0u64..1 << 20) {
            prop_assert_eq!(format!("{n}m").parse::<Bytes>(), Ok(Bytes(n << 20)));
        }
    }
}

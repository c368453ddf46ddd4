//! Image references, read as docker reads them.
//!
//! People type `alpine`, `user/app:1` or `localhost:5000/x`, and expect what docker
//! does: a name without a registry is on Docker Hub (`docker.io`), an official image
//! there lives under `library/`, and a name without a tag or digest means `:latest`.
//! The first component of the name is a registry only if it *looks like a host*: it
//! holds a `.` (a domain) or a `:` (a port), or is `localhost`. So `user/app` is a
//! repository on Docker Hub, and `registry.example.com/app` a repository elsewhere.
//!
//! keel stores and shows every reference in its canonical full form
//! (`docker.io/library/alpine:latest`), so that two spellings of one image are one key.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use crate::digest::Digest;

/// Docker Hub, the registry of names that do not name one.
pub const DOCKER_HUB: &str = "docker.io";

/// The longest repository name (registry and path) docker accepts.
const NAME_MAX: usize = 255;

/// The longest tag.
const TAG_MAX: usize = 128;

/// An image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    // ANCHOR: parse
    /// Parses a reference as `docker pull` does, and normalizes it: `alpine` is
    /// `docker.io/library/alpine:latest`.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            bail!("an image reference cannot be empty: give a name such as alpine or alpine:3.20");
        }
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "{text:?} looks like an image ID; a reference names a repository \
                 (write a name, or name@sha256:{text})"
            );
        }
        // `name[:tag][@digest]`: a digest is after the only `@`.
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                let digest =
                    Digest::parse(digest).with_context(|| format!("reference {text:?}"))?;
                (name, Some(digest))
            }
            None => (text, None),
        };
        let (domain, remainder) = split_domain(name_and_tag);
        // What follows the registry holds no `:` but the tag's.
        let (path, tag) = match remainder.rsplit_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (remainder, None),
        };
        check_domain(domain).with_context(|| format!("reference {text:?}"))?;
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        check_path(&path).with_context(|| format!("reference {text:?}"))?;
        if domain.len() + 1 + path.len() > NAME_MAX {
            bail!("reference {text:?}: the name is longer than {NAME_MAX} characters");
        }
        if let Some(tag) = tag {
            check_tag(tag).with_context(|| format!("reference {text:?}"))?;
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Self {
            domain: domain.to_owned(),
            path,
            tag,
            digest,
        })
    }
    // ANCHOR_END: parse

    /// The registry: `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository within the registry: `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.path
    }

    /// The tag, if any (a reference by digest alone has none).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The registry without its port: `localhost`, `127.0.0.1`, `::1`.
    pub fn host(&self) -> &str {
        if let Some(rest) = self.domain.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.domain
            .split_once(':')
            .map_or(self.domain.as_str(), |(host, _)| host)
    }

    /// Whether the registry is on this machine's loopback (`localhost`, `127.0.0.0/8`,
    /// `[::1]`). Such a registry is spoken to in plain HTTP, as docker does: nothing
    /// crosses a network there, and a test registry has no certificate.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip == IpAddr::V6(Ipv6Addr::LOCALHOST))
    }
}

impl fmt::Display for Reference {
    /// The canonical full form: `docker.io/library/alpine:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

/// Splits the registry off a name, as docker does: the first component is one if it
/// holds a `.` or a `:`, is `localhost`, or has uppercase letters (which a repository
/// may not); otherwise the name is on Docker Hub.
fn split_domain(name: &str) -> (&str, &str) {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    };
    // Docker Hub's old name is the same registry.
    let domain = if domain == "index.docker.io" {
        DOCKER_HUB
    } else {
        domain
    };
    (domain, remainder)
}

/// `host[:port]`, where host is a domain name (`a.b-c.d`) or a bracketed IPv6 address.
fn check_domain(domain: &str) -> Result<()> {
    let bad = || {
        anyhow::anyhow!(
            "registry {domain:?} is not a host[:port] (letters, digits, '-' and '.', or an \
             IPv6 address in brackets, then an optional :port)"
        )
    };
    let port = if let Some(rest) = domain.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or_else(bad)?;
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(bad());
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
        port
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("registry {domain:?}: the port {port:?} is not a number");
    }
    Ok(())
}

/// A repository path: components of lowercase letters and digits, separated by `/`;
/// within a component, runs of those joined by one `.`, one or two `_`, or `-`s.
fn check_path(path: &str) -> Result<()> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        bail!("repository name {path:?} must be lowercase");
    }
    for component in path.split('/') {
        if !path_component_ok(component) {
            bail!(
                "repository name {path:?}: the component {component:?} is not valid (lowercase \
                 letters and digits, joined by one '.', one or two '_', or '-'s; no empty parts)"
            );
        }
    }
    Ok(())
}

fn path_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of letters and digits.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // Then a separator: `.`, `_`, `__`, or one or more `-`.
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &component[sep_start..i] {
            "." | "_" | "__" => {}
            sep if sep.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

/// A tag: a word character, then up to 127 word characters, `.` or `-`.
fn check_tag(tag: &str) -> Result<()> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = tag.len() <= TAG_MAX
        && tag.chars().next().is_some_and(word)
        && tag.chars().all(|c| word(c) || c == '.' || c == '-');
    if !ok {
        bail!(
            "tag {tag:?} is not valid: 1 to {TAG_MAX} letters, digits, '_', '.' or '-', \
             not starting with '.' or '-'"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn canonical(text: &str) -> String {
        Reference::parse(text)
            .unwrap_or_else(|err| panic!("{text}: {err:#}"))
            .to_string()
    }

    #[test]
    fn normalizes_as_docker_does() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.20", "docker.io/library/alpine:3.20"),
            ("user/app:1", "docker.io/user/app:1"),
            ("docker.io/alpine", "docker.io/library/alpine:latest"),
            ("index.docker.io/user/app", "docker.io/user/app:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            (
                "127.0.0.1:5000/test/busybox:latest",
                "127.0.0.1:5000/test/busybox:latest",
            ),
            ("[::1]:5000/a", "[::1]:5000/a:latest"),
            (
                "quay.io/a/b/c_d__e.f-g--h:v1.2-rc_3",
                "quay.io/a/b/c_d__e.f-g--h:v1.2-rc_3",
            ),
            // Without a `/`, `localhost:5000` is an image named localhost, tag 5000.
            ("localhost:5000", "docker.io/library/localhost:5000"),
        ];
        for (text, want) in cases {
            assert_eq!(canonical(text), want, "{text}");
        }
    }

    #[test]
    fn digests_pin_a_manifest() {
        let r = Reference::parse(&format!("registry.example.com/a/b@sha256:{HEX}")).unwrap();
        assert_eq!(r.domain(), "registry.example.com");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(Digest::hex), Some(HEX));
        assert_eq!(
            r.to_string(),
            format!("registry.example.com/a/b@sha256:{HEX}")
        );

        let r = Reference::parse(&format!("alpine:3@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("3"));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine:3@sha256:{HEX}")
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("", "cannot be empty"),
            (HEX, "looks like an image ID"),
            ("Alpine", "must be lowercase"),
            ("example.com/User/app", "must be lowercase"),
            ("alpine:-bad", "tag \"-bad\" is not valid"),
            ("alpine:a:b", "component \"alpine:a\""),
            ("alpine@sha256:abc", "64 hex digits"),
            ("alpine@md5:abc", "knows only sha256"),
            ("a//b", "no empty parts"),
            ("a..b", "component \"a..b\""),
            ("a___b", "component \"a___b\""),
            ("-a.com/b", "is not a host[:port]"),
            ("a.com:x/b", "port \"x\" is not a number"),
            ("[zz]:5000/a", "is not a host[:port]"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", Reference::parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        let err = format!("{:#}", Reference::parse(&long).unwrap_err());
        assert!(err.contains("longer than 255"), "{err}");
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
    }

    #[test]
    fn loopback_registries_are_told_apart() {
        let loopback = |text: &str| Reference::parse(text).unwrap().is_loopback();
        assert!(loopback("localhost/x"));
        assert!(loopback("localhost:5000/x"));
        assert!(loopback("127.0.0.1:5000/x"));
        assert!(loopback("127.8.9.10/x"));
        assert!(loopback("[::1]:5000/x"));
        assert!(loopback("[::1]/x"));
        assert!(!loopback("alpine"));
        assert!(!loopback("10.0.0.1:5000/x"));
        assert!(!loopback("localhost.example.com/x"));
        assert!(!loopback("[::2]:5000/x"));
        assert_eq!(Reference::parse("[::1]:5000/x").unwrap().host(), "::1");
        assert_eq!(
            Reference::parse("localhost:5000/x").unwrap().host(),
            "localhost"
        );
    }

    /// References made of the pieces that matter to the parser.
    fn reference() -> impl Strategy<Value = String> {
        let domain = "(|localhost/|[a-z]{1,3}\\.[a-z]{1,3}/|[a-z]{1,3}:[0-9]{1,4}/|\\[::1\\]:5/|127\\.0\\.0\\.1/)";
        // A first component with a `.` would be a registry: separators come later.
        let path = "[a-z0-9]{1,3}(/[a-z0-9]{1,3}((\\.|_|__|-{1,3})[a-z0-9]{1,3}){0,2}){0,2}";
        let tag = "(|:[A-Za-z0-9_][A-Za-z0-9_.-]{0,5})";
        let digest = prop_oneof![Just(String::new()), Just(format!("@sha256:{HEX}"))];
        (domain, path, tag, digest).prop_map(|(d, p, t, g)| format!("{d}{p}{t}{g}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_string_is_parsed_or_refused_without_panicking(text in any::<String>()) {
            let _ = Reference::parse(&text);
        }

        #[test]
        fn strings_of_separators_never_panic(text in "[a-zA-Z0-9:/@.\\[\\]_-]{0,40}") {
            let _ = Reference::parse(&text);
        }

        #[test]
        fn display_parses_back_to_the_same_reference(text in reference()) {
            if let Ok(parsed) = Reference::parse(&text) {
                let shown = parsed.to_string();
                let again = Reference::parse(&shown);
                prop_assert!(again.is_ok(), "{text:?} -> {shown:?}: {:?}", again.err());
                prop_assert_eq!(again.ok(), Some(parsed));
            }
        }

        #[test]
        fn well_formed_references_are_accepted(text in reference()) {
            prop_assert!(
                Reference::parse(&text).is_ok(),
                "{text:?}: {:?}", Reference::parse(&text).err()
            );
        }
    }
}

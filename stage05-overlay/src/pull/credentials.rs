//! Credentials for a registry, from the files that `docker login` and `podman login`
//! write: `{"auths": {"<registry>": {"auth": "<base64 of user:password>"}}}` (or
//! `username` and `password` fields).
//!
//! Which file: the one the caller names (`--authfile`), else `$REGISTRY_AUTH_FILE`
//! (podman's), else docker's `$DOCKER_CONFIG/config.json` (by default
//! `~/.docker/config.json`). The first that has an entry for the registry wins.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde::Deserialize;

/// A user name and password for one registry.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
    /// The file they came from, to name in errors.
    pub(crate) file: PathBuf,
}

impl fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.username, self.file.display())
    }
}

/// The outcome of a search: what was found, and where it was looked for.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    pub(crate) credentials: Option<Credentials>,
    pub(crate) searched: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The files to look in, in order.
fn auth_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(file) = explicit {
        return vec![file.to_owned()];
    }
    let mut files = Vec::new();
    if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        files.push(PathBuf::from(file));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        files.push(PathBuf::from(dir).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        files.push(PathBuf::from(home).join(".docker/config.json"));
    }
    files
}

/// The credentials for `repository` on `registry` (a reference's domain, such as
/// `docker.io` or `localhost:5000`). A file that is named explicitly must exist; the
/// default ones may be missing.
pub(crate) fn find(registry: &str, repository: &str, explicit: Option<&Path>) -> Result<Lookup> {
    let mut lookup = Lookup::default();
    for file in auth_files(explicit) {
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                continue;
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        };
        lookup.searched.push(file.clone());
        let parsed: AuthFile = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not an auth file ({{\"auths\": {{...}}}})",
                file.display()
            )
        })?;
        let Some(entry) = best_entry(&parsed.auths, registry, repository) else {
            continue;
        };
        let (username, password) = decode(entry)
            .with_context(|| format!("{}: the entry for {registry}", file.display()))?;
        lookup.credentials = Some(Credentials {
            username,
            password,
            file,
        });
        return Ok(lookup);
    }
    Ok(lookup)
}

/// The entry for the registry, or for a namespace of it that holds the repository
/// (podman lets `registry/namespace` have credentials of its own): the longest wins.
fn best_entry<'a>(
    auths: &'a HashMap<String, Entry>,
    registry: &str,
    repository: &str,
) -> Option<&'a Entry> {
    let full = format!("{registry}/{repository}");
    auths
        .iter()
        .filter_map(|(key, entry)| {
            let key = normalize(key);
            let covers = key == registry
                || full
                    .strip_prefix(&key)
                    .is_some_and(|rest| rest.starts_with('/') && key.starts_with(registry));
            covers.then_some((key.len(), entry))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, entry)| entry)
}

/// A key as people and tools write it, as a reference's domain: docker writes Docker
/// Hub's as `https://index.docker.io/v1/`; old files have `https://host/v2/`.
fn normalize(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    match key {
        "index.docker.io" | "registry-1.docker.io" => crate::reference::DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

/// The user name and password of an entry: `auth` is base64 of `user:password`.
fn decode(entry: &Entry) -> Result<(String, String)> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .context("its \"auth\" is not base64")?;
        let text = String::from_utf8(bytes).context("its \"auth\" is not UTF-8")?;
        let Some((user, password)) = text.split_once(':') else {
            bail!("its \"auth\" is not base64 of user:password");
        };
        return Ok((user.to_owned(), password.to_owned()));
    }
    match (&entry.username, &entry.password) {
        (Some(user), Some(password)) => Ok((user.clone(), password.clone())),
        _ => bail!("it has neither \"auth\" nor \"username\" and \"password\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) -> PathBuf {
        let file = dir.join("auth.json");
        std::fs::write(&file, json).unwrap();
        file
    }

    #[test]
    fn reads_auth_and_username_password_entries() {
        let dir = tempfile::tempdir().unwrap();
        // "alice:s3cret:with:colons"
        let file = write(
            dir.path(),
            r#"{"auths": {
                "localhost:5000": {"auth": "YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"},
                "https://index.docker.io/v1/": {"username": "bob", "password": "pw"}
            }}"#,
        );
        let found = find("localhost:5000", "x", Some(&file)).unwrap();
        let creds = found.credentials.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("alice", "s3cret:with:colons")
        );
        assert!(!format!("{creds:?}").contains("s3cret"));
        let hub = find("docker.io", "library/alpine", Some(&file)).unwrap();
        assert_eq!(hub.credentials.unwrap().username, "bob");
        assert!(
            find("quay.io", "x", Some(&file))
                .unwrap()
                .credentials
                .is_none()
        );
    }

    #[test]
    fn a_namespace_entry_wins_over_its_registry() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            r#"{"auths": {
                "r.io": {"username": "all", "password": "p"},
                "r.io/team": {"username": "team", "password": "p"},
                "r.io/te": {"username": "wrong", "password": "p"}
            }}"#,
        );
        let user = |repo: &str| {
            find("r.io", repo, Some(&file))
                .unwrap()
                .credentials
                .unwrap()
                .username
        };
        assert_eq!(user("team/app"), "team");
        assert_eq!(user("other/app"), "all");
    }

    #[test]
    fn broken_files_and_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "not json");
        let err = format!("{:#}", find("r.io", "x", Some(&file)).unwrap_err());
        assert!(
            err.contains("auth.json") && err.contains("not an auth file"),
            "{err}"
        );
        let file = write(dir.path(), r#"{"auths": {"r.io": {"auth": "!!!"}}}"#);
        let err = format!("{:#}", find("r.io", "x", Some(&file)).unwrap_err());
        assert!(err.contains("not base64"), "{err}");
        let missing = dir.path().join("missing.json");
        assert!(find("r.io", "x", Some(&missing)).is_err());
    }
}

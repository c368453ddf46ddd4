//! A private `/etc` for root's runs: a mount namespace of their own, where `/etc` is an
//! overlay of the host's.
//!
//! Graders of how a runtime reads and changes `/etc/subuid` and `/etc/subgid` need
//! files in states no machine should be in (a line that is not UTF-8, a range at the
//! end of the ids, no `/etc/subgid` at all), and runs that change them (several at
//! once). Done on the host's files, every other test that runs meanwhile (newuidmap,
//! for the test users) would see them. So the run happens in `unshare --mount`, with an
//! overlay on `/etc`: every file of the host's `/etc` is there, and whatever the test
//! or the runtime writes, renames, links or removes there stays in the overlay's upper
//! layer, a tmpfs that disappears with the namespace. The host's `/etc` is never
//! written, and its mount table never changes.
//!
//! ```text
//! let etc = PrivateEtc::new()?.file("subuid", Some(b"alice:0x186a0:65536\n")).file("subgid", None);
//! let out = etc.run(&format!("{keel} run --userns auto -- true"));
//! let subuid: Option<Vec<u8>> = etc.saved("subuid");     // as the run left it
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tempfile::TempDir;

use crate::running::Running;
use crate::runtime::{DEFAULT_TIMEOUT, Held, Output};
use crate::skip::Skip;

/// The files saved after every run, for the test to look at.
const SAVED: [&str; 2] = ["subuid", "subgid"];

/// A private `/etc` to run scripts in.
#[derive(Debug)]
pub struct PrivateEtc {
    dir: TempDir,
    /// `(name, bytes)`: written into `/etc` before the script, or removed (`None`).
    files: Vec<(String, Option<Vec<u8>>)>,
}

impl PrivateEtc {
    /// Needs root and `unshare` (util-linux).
    pub fn new() -> Result<Self, Skip> {
        crate::skip::require_root()?;
        if !Path::new("/usr/bin/unshare").exists() {
            return Err(Skip(
                "/usr/bin/unshare is missing: apt-get install util-linux".into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("private-etc-")
            .tempdir()
            .expect("cannot create a temporary directory");
        for sub in ["files", "out", "layers"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        Ok(Self {
            dir,
            files: Vec::new(),
        })
    }

    /// `/etc/<name>` holds `bytes` (mode 0644, owned by root), or does not exist (`None`).
    pub fn file(mut self, name: &str, bytes: Option<&[u8]>) -> Self {
        self.files
            .push((name.to_owned(), bytes.map(<[u8]>::to_vec)));
        self
    }

    /// A directory of the host that the script may write to as `$OUT`.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Runs `script` (`sh -c`, as root) in the private `/etc`, within the usual
    /// deadline. Afterwards, [`saved`](Self::saved) holds `/etc/subuid` and `/etc/subgid`
    /// as they were left.
    pub fn run(&self, script: &str) -> Output {
        let root = self.dir.path();
        let mut setup = format!(
            "set -e\n\
             mount -t tmpfs -o mode=0700 tmpfs {layers}\n\
             mkdir {layers}/upper {layers}/work\n\
             mount -t overlay overlay -o lowerdir=/etc,upperdir={layers}/upper,workdir={layers}/work /etc\n",
            layers = root.join("layers").display()
        );
        for (i, (name, bytes)) in self.files.iter().enumerate() {
            match bytes {
                Some(bytes) => {
                    let staged = root.join("files").join(i.to_string());
                    std::fs::write(&staged, bytes).expect("write a staged file");
                    setup.push_str(&format!(
                        "cp {} /etc/{name}\nchown 0:0 /etc/{name}\nchmod 0644 /etc/{name}\n",
                        staged.display()
                    ));
                }
                None => setup.push_str(&format!("rm -f /etc/{name}\n")),
            }
        }
        let save: String = SAVED
            .iter()
            .map(|name| {
                format!(
                    "if [ -e /etc/{name} ]; then cp /etc/{name} \"$OUT/{name}\"; \
                     stat -c %a /etc/{name} > \"$OUT/{name}.mode\"; fi\n"
                )
            })
            .collect();
        let whole = format!("{setup}set +e\n( {script}\n)\ncode=$?\n{save}exit $code\n");
        let mut command = Command::new("/usr/bin/unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c", &whole])
            .env("OUT", self.out())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let description = format!("`{script}` (in a private /etc)");
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start unshare: {err}"));
        Running::new(
            child,
            description,
            Instant::now() + DEFAULT_TIMEOUT,
            Held::default(),
        )
        .wait()
    }

    /// `/etc/<name>` as the last run left it (`subuid` or `subgid`); `None` if it did
    /// not exist.
    pub fn saved(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.out().join(name)).ok()
    }

    /// The mode of `/etc/<name>` as the last run left it, e.g. `0o644`.
    pub fn saved_mode(&self, name: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.out().join(format!("{name}.mode"))).ok()?;
        u32::from_str_radix(text.trim(), 8).ok()
    }
}

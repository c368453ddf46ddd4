//! A real registry on loopback for the pulls: Debian's `docker-registry` (the
//! distribution registry) on a free port of 127.0.0.1, its storage in a directory of
//! the benchmark's, stopped by its PID when dropped. Images are pushed to it with
//! `skopeo`, as the graders do (tests/src/registry.rs).

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cmd, workspace};

/// How long the registry may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A running registry.
pub(crate) struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub(crate) address: String,
}

/// Why a registry cannot be run and pushed to here, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    ["docker-registry", "skopeo"]
        .into_iter()
        .find(|program| workspace::which(program).is_none())
        .map(|program| format!("{program} is not installed (apt-get install {program})"))
}

impl Registry {
    /// Starts a registry keeping its storage, config and log in `dir`.
    pub(crate) fn start(dir: &Path) -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        fs::create_dir_all(dir)?;
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                dir.join("storage").display()
            ),
        )?;
        let log_path = dir.join("registry.log");
        let log = fs::File::create(&log_path)?;
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let deadline = Instant::now() + READY_WITHIN;
        while TcpStream::connect(&address).is_err() {
            let exited = child.try_wait()?;
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                bail!(
                    "docker-registry did not listen on {address} ({}): {}",
                    exited.map_or("not within 20 s".to_owned(), |s| s.to_string()),
                    log.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, address })
    }

    /// Pushes the OCI layout `layout` as `name` (`bench/big:latest`); `home` is the
    /// HOME skopeo runs with (it keeps a cache there).
    pub(crate) fn push(&self, layout: &Path, name: &str, home: &Path) -> Result<()> {
        let mut push = Command::new("skopeo");
        push.args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{}/{name}", self.address))
            .env("HOME", home);
        let out = cmd::quiet(&mut push)?;
        if !out.status.success() {
            bail!(
                "pushing the image: `{}` failed ({}): {}",
                cmd::describe(&push),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

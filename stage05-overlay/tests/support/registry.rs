//! A real registry (Debian's `docker-registry`, the distribution registry) on a free
//! port of 127.0.0.1, with its storage in a temporary directory; killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub address: String,
    pub dir: tempfile::TempDir,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Waits until something listens on `address`, or fails after 20 s.
pub fn wait_for_port(address: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(address).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the registry exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Registry {
    /// Starts a registry, with `auth` (YAML lines under `auth:`) if given; `None` (and
    /// a SKIP line) if the registry is not installed.
    pub fn start(auth: Option<&str>) -> Option<Self> {
        if !Path::new(BINARY).exists() {
            println!("SKIP: docker-registry is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let address = format!("127.0.0.1:{}", free_port());
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {address}\n",
            dir.path().join("storage").display()
        );
        if let Some(auth) = auth {
            config += &format!("auth:\n{auth}");
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("writing the registry's config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        wait_for_port(&address, &mut child);
        Some(Self {
            child,
            address,
            dir,
        })
    }

    /// Where the registry keeps the blob `hex`'s bytes.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

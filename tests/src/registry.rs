//! A real registry on the machine's loopback (stage05): Debian's `docker-registry`
//! (the distribution registry) on a free port of 127.0.0.1, its storage in a temporary
//! directory, stopped (by its PID) when dropped; and images pushed to it with `skopeo`
//! from OCI layouts the graders build ([`crate::oci`]).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip::Skip;
use crate::workspace;

const BINARY: &str = "/usr/bin/docker-registry";

/// alice's password, `s3cret`, as `htpasswd -B` writes it (bcrypt, which the registry
/// asks for).
pub const HTPASSWD: &str = "alice:$2b$12$FzNlDkO7Ltp59m80z5iYBOERe/bQivtzFisNlcM.eNLRB.UFtR.AG\n";

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub address: String,
    /// Whether it asks for alice's password.
    pub with_password: bool,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `password`, it asks for alice's (basic auth).
    pub fn start(password: bool) -> Result<Self, Skip> {
        if !Path::new(BINARY).exists() {
            return Err(Skip(
                "docker-registry is not installed (apt-get install docker-registry)".into(),
            ));
        }
        if workspace::which("skopeo").is_none() {
            return Err(Skip(
                "skopeo is not installed (apt-get install skopeo)".into(),
            ));
        }
        let dir = tempfile::tempdir().expect("a directory for the registry");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let address = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {address}\n",
            dir.path().join("storage").display()
        );
        if password {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, HTPASSWD).expect("htpasswd");
            config += &format!(
                "auth:\n  htpasswd:\n    realm: keel-graders\n    path: {}\n",
                htpasswd.display()
            );
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).expect("the registry's config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("a log");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        // Ready when it listens: a deadline, polling the port.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&address).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the registry exited before it listened: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the registry does not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            address,
            with_password: password,
            dir,
        })
    }

    /// Pushes the OCI layout `layout` as `name` (`test/busybox:latest`) with skopeo.
    pub fn push(&self, layout: &Path, name: &str) {
        let mut command = Command::new("skopeo");
        command
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .env("HOME", self.dir.path());
        if self.with_password {
            command.arg("--dest-creds=alice:s3cret");
        }
        let out = command
            .arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{}/{name}", self.address))
            .output()
            .expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {}/{name}: {}",
            self.address,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

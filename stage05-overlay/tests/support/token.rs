//! A token server, as registries with `auth: token` use (Docker Hub's is one): it
//! answers `GET /token?service=..&scope=repository:<name>:pull` with a JWT signed by
//! a key whose self-signed certificate the registry trusts (its `rootcertbundle`).
//! Keys, certificate and signatures come from the `openssl` command.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

pub const SERVICE: &str = "keel-test";
pub const ISSUER: &str = "keel-test-issuer";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret";

pub struct TokenServer {
    pub address: String,
    key: PathBuf,
    cert_der: Vec<u8>,
    pub cert: PathBuf,
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.unwrap_or_default())
        .expect("openssl stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TokenServer {
    /// Makes a key and certificate in `dir` and serves tokens on a free port.
    pub fn start(dir: &Path) -> std::sync::Arc<Self> {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=keel-test-token",
                "-keyout",
                &key.display().to_string(),
                "-out",
                &cert.display().to_string(),
            ],
            None,
        );
        let cert_der = openssl(
            &[
                "x509",
                "-in",
                &cert.display().to_string(),
                "-outform",
                "DER",
            ],
            None,
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("token server bind");
        let server = std::sync::Arc::new(Self {
            address: listener.local_addr().expect("address").to_string(),
            key,
            cert_der,
            cert,
        });
        let serving = std::sync::Arc::clone(&server);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                    match stream.read(&mut buf[len..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]).into_owned();
                let (status, body) = serving.answer(&head);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        server
    }

    /// The registry's `auth:` section.
    pub fn registry_auth(&self) -> String {
        format!(
            "  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.address,
            self.cert.display()
        )
    }

    /// A token granting `actions` on `repository`.
    pub fn token(&self, repository: &str, actions: &[&str]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let header =
            json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let access = if actions.is_empty() {
            json!([])
        } else {
            json!([{"type": "repository", "name": repository, "actions": actions}])
        };
        let claims = json!({
            "iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 3600, "nbf": now - 60,
            "iat": now - 60, "jti": format!("{now}-{repository}"), "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = openssl(
            &["dgst", "-sha256", "-sign", &self.key.display().to_string()],
            Some(input.as_bytes()),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Anonymous requests get a token that grants nothing (as Docker Hub's do for a
    /// private repository); alice gets pull; wrong credentials get 401.
    fn answer(&self, head: &str) -> (&'static str, String) {
        let request_line = head.lines().next().unwrap_or_default();
        let scope = request_line
            .split(['?', '&', ' '])
            .find_map(|p| p.strip_prefix("scope="))
            .map(percent_decode)
            .unwrap_or_default();
        let repository = scope.split(':').nth(1).unwrap_or_default().to_owned();
        let authorization = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("authorization: ")
                    .or_else(|| l.strip_prefix("Authorization: "))
            })
            .map(str::trim);
        let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
        match authorization {
            None => (
                "200 OK",
                json!({"token": self.token(&repository, &[])}).to_string(),
            ),
            Some(given) if given == expected => (
                "200 OK",
                json!({"token": self.token(&repository, &["pull"])}).to_string(),
            ),
            Some(_) => (
                "401 Unauthorized",
                r#"{"details":"wrong credentials"}"#.to_owned(),
            ),
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! A client of one repository of one registry, as the OCI distribution spec defines
//! them: `GET /v2/<name>/manifests/<tag or digest>` and `GET /v2/<name>/blobs/<digest>`.
//!
//! The HTTP is reqwest's (rustls, the system's CA certificates); what is here is what a
//! registry expects of a client: which scheme, which API host, the authentication
//! dance on a 401, and errors that say what to do. Its methods block: they run on a
//! tokio runtime that the client owns, so the runtime lives exactly as long as one
//! pull (a container is cloned later, from a process that must have no such threads).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use super::challenge::{self, Challenge};
use super::credentials::{self, Lookup};
use crate::digest::Digest;
use crate::reference::{DOCKER_HUB, Reference};

/// Docker Hub's API is not at `docker.io`.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The largest manifest or token answer read (registries refuse manifests over 4 MiB).
pub(crate) const JSON_MAX: usize = 4 << 20;

/// How a registry is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// HTTPS with verified certificates: every registry not on loopback.
    Verified,
    /// Plain HTTP: a registry on this machine's loopback, as docker does.
    Plain,
    /// `--tls-verify=false`: HTTPS without checking the certificate, or plain HTTP if
    /// the registry does not speak TLS.
    Unverified,
}

/// One repository of one registry.
pub(crate) struct Registry {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// `https://registry-1.docker.io`
    base: String,
    /// As the reference names it, for messages: `docker.io/library/alpine`.
    name: String,
    repository: String,
    security: Security,
    credentials: Lookup,
    /// The `Authorization` to send, once a challenge was answered.
    authorization: Mutex<Option<HeaderValue>>,
}

/// A status that is worth trying again: the server was busy or failed.
#[derive(Debug)]
pub(crate) struct Transient(pub(crate) String);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

/// Whether `err` may go away if the request is made again: a connection that broke
/// or timed out, or a server that said "later" (429, 5xx).
pub(crate) fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<Transient>()
            || cause.downcast_ref::<reqwest::Error>().is_some_and(|e| {
                (e.is_timeout() || e.is_connect() || e.is_body() || e.is_request()) && !is_tls(e)
            })
    })
}

/// Whether `err` is a failed TLS handshake (a certificate not trusted, a server that
/// does not speak TLS): rustls's error, somewhere in the chain, maybe wrapped in
/// `io::Error`s (which do not list what they wrap as their source).
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let mut inner: &(dyn std::error::Error + 'static) = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if inner.is::<rustls::Error>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl Registry {
    /// A client of `reference`'s repository. `auth_file` overrides where credentials
    /// are looked for.
    pub(crate) fn new(
        reference: &Reference,
        tls_verify: bool,
        auth_file: Option<&std::path::Path>,
    ) -> Result<Self> {
        let security = if reference.is_loopback() {
            Security::Plain
        } else if tls_verify {
            Security::Verified
        } else {
            Security::Unverified
        };
        let host = match reference.domain() {
            DOCKER_HUB => DOCKER_HUB_API,
            other => other,
        };
        let credentials = credentials::find(reference.domain(), reference.repository(), auth_file)?;
        Self::with(
            host,
            security,
            reference.name(),
            reference.repository(),
            credentials,
        )
    }

    pub(crate) fn with(
        host: &str,
        security: Security,
        name: String,
        repository: &str,
        credentials: Lookup,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keel-pull")
            .enable_all()
            .build()
            .context("starting the HTTP client's threads")?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // A connection that stalls this long is broken: the download resumes on
            // another one.
            .read_timeout(Duration::from_secs(60))
            .danger_accept_invalid_certs(security == Security::Unverified)
            .build()
            .context("making the HTTP client")?;
        let scheme = match security {
            Security::Plain => "http",
            Security::Verified | Security::Unverified => "https",
        };
        let mut registry = Self {
            runtime,
            client,
            base: format!("{scheme}://{host}"),
            name,
            repository: repository.to_owned(),
            security,
            credentials,
            authorization: Mutex::new(None),
        };
        if security == Security::Unverified {
            registry.pick_scheme(host);
        }
        Ok(registry)
    }

    /// With `--tls-verify=false`, a registry that does not speak TLS is spoken to in
    /// plain HTTP, as podman does: its `/v2/` is asked over HTTPS first.
    fn pick_scheme(&mut self, host: &str) {
        let url = format!("{}/v2/", self.base);
        let tried = self
            .runtime
            .block_on(async { self.client.get(&url).send().await });
        if tried.is_err_and(|err| err.is_connect()) {
            self.base = format!("http://{host}");
        }
    }

    /// Runs `future` on the client's runtime, from any thread that is not one of its
    /// own.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `GET <base><path>`, answering the registry's challenge if it asks for one.
    async fn get(&self, path: &str, headers: HeaderMap) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        let mut answered = false;
        loop {
            let mut request = self.client.get(&url).headers(headers.clone());
            let authorization = self.lock_authorization().clone();
            if let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            let response = request
                .send()
                .await
                .map_err(|err| self.transport_error(err, &url))?;
            if response.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(challenge::parse);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            let authorization = self.answer(&challenge).await?;
            *self.lock_authorization() = Some(authorization);
            answered = true;
        }
    }

    fn lock_authorization(&self) -> std::sync::MutexGuard<'_, Option<HeaderValue>> {
        // A thread that panicked holding it cannot have left half a header value.
        self.authorization
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `Authorization` header that answers `challenge`.
    async fn answer(&self, challenge: &Challenge) -> Result<HeaderValue> {
        let basic = self.credentials.credentials.as_ref().map(|c| {
            let pair = format!("{}:{}", c.username, c.password);
            base64::engine::general_purpose::STANDARD.encode(pair)
        });
        match challenge {
            Challenge::Basic => {
                let Some(basic) = basic else {
                    return Err(self.login_needed());
                };
                header_value(&format!("Basic {basic}"))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                let mut query = vec![("scope", scope)];
                if let Some(service) = service {
                    query.push(("service", service.clone()));
                }
                let mut request = self.client.get(realm).query(&query);
                if let Some(basic) = basic {
                    request = request.header(header::AUTHORIZATION, format!("Basic {basic}"));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|err| self.transport_error(err, realm))?;
                match response.status() {
                    status if status.is_success() => {}
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        return Err(self.login_needed());
                    }
                    status => bail!(
                        "the token server of {} ({realm}) answered {status}: {}",
                        self.name,
                        error_text(response).await
                    ),
                }
                let bytes = read_limited(response, JSON_MAX)
                    .await
                    .with_context(|| format!("reading the token from {realm}"))?;
                #[derive(Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let token: Token = serde_json::from_slice(&bytes)
                    .with_context(|| format!("the token server {realm} sent no token"))?;
                let Some(token) = token.token.or(token.access_token) else {
                    bail!("the token server {realm} sent no token");
                };
                header_value(&format!("Bearer {token}"))
            }
        }
    }

    /// The error of a registry that wants credentials it did not get, or refused them.
    fn login_needed(&self) -> anyhow::Error {
        match &self.credentials.credentials {
            Some(found) => anyhow!(
                "{} refused the credentials of {:?} from {} (unauthorized): check them, or \
                 log in again (podman login / docker login)",
                self.name,
                found.username,
                found.file.display()
            ),
            None => anyhow!(
                "{} requires authentication (unauthorized), and there are no credentials for \
                 it in {}: log in (podman login / docker login), or name an auth file \
                 (--authfile, $REGISTRY_AUTH_FILE)",
                self.name,
                if self.credentials.searched.is_empty() {
                    "any auth file (none was found)".to_owned()
                } else {
                    self.credentials
                        .searched
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        }
    }

    /// An error of the connection itself, saying where it went and what may help.
    fn transport_error(&self, err: reqwest::Error, url: &str) -> anyhow::Error {
        let hint = if is_tls(&err) && self.security == Security::Verified {
            ": the registry's TLS certificate could not be verified (or it does not speak \
             TLS); if you trust it, pull with --tls-verify=false"
        } else if err.is_connect() {
            ": is the registry running there, and the name and port right?"
        } else if err.is_timeout() {
            ": the registry did not answer in time"
        } else {
            ""
        };
        anyhow::Error::new(err).context(format!("cannot reach {url}{hint}"))
    }

    /// The manifest (or index) `tag_or_digest`, as its bytes and its media type (from
    /// `Content-Type`; the caller falls back to the manifest's own `mediaType`).
    pub(crate) fn manifest(
        &self,
        tag_or_digest: &str,
        accept: &[&str],
    ) -> Result<(Vec<u8>, Option<String>, Option<Digest>)> {
        self.block_on(async {
            let path = format!("/v2/{}/manifests/{tag_or_digest}", self.repository);
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, header_value(&accept.join(", "))?);
            let response = self.get(&path, headers).await?;
            let what = format!("the manifest {}:{tag_or_digest}", self.name);
            let response = self.check(response, &what).await?;
            let media_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
            // What the registry says the digest is: checked against the bytes.
            let said = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Digest::parse(v).ok());
            let bytes = read_limited(response, JSON_MAX)
                .await
                .with_context(|| format!("reading {what}"))?;
            Ok((bytes, media_type, said))
        })
    }

    /// The blob `digest` from byte `offset` on (a `Range` request when resuming).
    /// Returns the response and where its body starts: `offset`, or 0 if the registry
    /// ignored the range and sends it all.
    pub(crate) fn blob(&self, digest: &Digest, offset: u64) -> Result<(Response, u64)> {
        self.block_on(async {
            let path = format!("/v2/{}/blobs/{digest}", self.repository);
            let mut headers = HeaderMap::new();
            if offset > 0 {
                headers.insert(header::RANGE, header_value(&format!("bytes={offset}-"))?);
            }
            let response = self.get(&path, headers).await?;
            let what = format!("the blob {digest} of {}", self.name);
            let response = self.check(response, &what).await?;
            let start = if response.status() == StatusCode::PARTIAL_CONTENT {
                offset
            } else {
                0
            };
            Ok((response, start))
        })
    }

    /// The response if it is a success; otherwise an error that says what is wrong.
    async fn check(&self, response: Response, what: &str) -> Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = error_text(response).await;
        Err(match status {
            StatusCode::UNAUTHORIZED => self.login_needed().context(format!("fetching {what}")),
            StatusCode::FORBIDDEN => anyhow!(
                "{what}: access denied by the registry ({text}): the credentials do not allow \
                 pulling {}",
                self.name
            ),
            StatusCode::NOT_FOUND if what.starts_with("the manifest") => anyhow!(
                "manifest unknown: {} has no {what} ({text}): check the name and tag",
                self.base
            ),
            StatusCode::NOT_FOUND => anyhow!(
                "blob unknown: the registry has no {what}, which the image's manifest names \
                 ({text}): the image in the registry is incomplete; push it again"
            ),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                anyhow::Error::new(Transient(format!("{what}: {status} ({text})")))
            }
            status if status.is_server_error() => {
                anyhow::Error::new(Transient(format!("{what}: {status} ({text})")))
            }
            status => anyhow!("{what}: the registry answered {status} ({text})"),
        })
    }
}

/// What a registry says in an error body: `{"errors": [{"code", "message"}]}`.
async fn error_text(response: Response) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(Deserialize)]
    struct Error {
        code: Option<String>,
        message: Option<String>,
    }
    let status = response.status();
    let Ok(bytes) = read_limited(response, 64 << 10).await else {
        return status.to_string();
    };
    match serde_json::from_slice::<Errors>(&bytes) {
        Ok(errors) if !errors.errors.is_empty() => errors
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => status.to_string(),
    }
}

/// The body, refused if longer than `limit`.
async fn read_limited(mut response: Response, limit: usize) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > limit {
            bail!("the answer is larger than {limit} bytes, more than it may be");
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn header_value(text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text).context("a header value that HTTP cannot carry")
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server on loopback that answers one connection with `answer`.
    fn server(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(answer);
            }
        });
        address
    }

    fn registry(host: &str, security: Security) -> Registry {
        Registry::with(host, security, format!("{host}/x"), "x", Lookup::default()).unwrap()
    }

    #[test]
    fn a_tls_failure_suggests_tls_verify_false() {
        // A server that speaks plain HTTP where HTTPS is expected.
        let host = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let err = registry(&host, Security::Verified)
            .manifest("latest", &["application/json"])
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("--tls-verify=false"), "{text}");
        assert!(
            text.contains(&format!("https://{host}/v2/x/manifests/latest")),
            "{text}"
        );
        assert!(!is_transient(&err), "{text}");
    }

    #[test]
    fn connection_refused_names_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = registry(&host, Security::Plain)
            .manifest("1", &["application/json"])
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("http://{host}/v2/x/manifests/1")),
            "{text}"
        );
        assert!(text.contains("is the registry running"), "{text}");
    }

    #[test]
    fn unverified_falls_back_to_plain_http() {
        let host = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        // The probe over HTTPS fails against a plain server.
        assert_eq!(
            registry(&host, Security::Unverified).base,
            format!("http://{host}")
        );
    }

    #[test]
    fn docker_hub_is_asked_at_its_api_host() {
        let reference = Reference::parse("alpine").unwrap();
        let registry = Registry::new(&reference, true, None).unwrap();
        assert_eq!(registry.base, "https://registry-1.docker.io");
        let local = Reference::parse("127.0.0.1:5000/a").unwrap();
        assert_eq!(
            Registry::new(&local, true, None).unwrap().base,
            "http://127.0.0.1:5000"
        );
    }
}

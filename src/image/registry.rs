//! A client of the OCI distribution API (what Docker Hub, ghcr.io, quay.io and Debian's
//! docker-registry serve): manifests, blobs streamed, and the auth dance — anonymous bearer
//! tokens from the `WWW-Authenticate` challenge, or basic auth from `engine login`'s credentials.
//!
//! Synchronous on purpose (ureq): a pull is a handful of requests and a few parallel blob streams,
//! each consumed by a thread that unpacks as it reads; an async runtime would add a scheduler and
//! a dependency tree for no gain.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::reference::Reference;
use super::store::write_atomic;
use super::Error;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What we can read, best first; a registry converts to Docker schema 1 when none is offered.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// A manifest larger than this is not one: refuse before reading it all into memory.
const MAX_MANIFEST: u64 = 4 << 20;

/// Stored credentials, as Docker's config.json `auths` (base64 of `user:password`).
#[derive(Default, Serialize, Deserialize)]
pub struct AuthFile {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
}

#[derive(Serialize, Deserialize)]
pub struct AuthEntry {
    pub auth: String,
}

impl AuthFile {
    pub fn load(path: &Path) -> Result<AuthFile, Error> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(Error::json(format!("{}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
        }
    }

    /// Written 0600 and atomically: it holds passwords.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(self).map_err(Error::json("credentials"))?;
        write_atomic(path, &json, 0o600)
    }

    pub fn get(&self, registry: &str) -> Option<(String, String)> {
        let raw = base64::engine::general_purpose::STANDARD.decode(&self.auths.get(registry)?.auth).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    pub fn set(&mut self, registry: &str, user: &str, password: &str) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.auths.insert(registry.to_string(), AuthEntry { auth });
    }
}

/// One repository on one registry, with the auth it has earned so far.
pub struct Registry {
    agent: ureq::Agent,
    base: String,
    host: String,
    repository: String,
    creds: Option<(String, String)>,
    /// `Authorization` header value once a challenge has been answered.
    auth: Mutex<Option<String>>,
}

/// A manifest as fetched: its bytes, what they are, and their digest.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

impl Registry {
    /// `insecure`: plain HTTP; always so for loopback hosts, else only when the user said so.
    pub fn new(reference: &Reference, insecure: bool, creds: Option<(String, String)>) -> Registry {
        let scheme = if insecure || reference.is_loopback() { "http" } else { "https" };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .redirects(5)
            // Blob redirects go to object stores that must not see the registry's token.
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .build();
        Registry {
            agent,
            base: format!("{scheme}://{}", reference.api_host()),
            host: reference.registry.clone(),
            repository: reference.repository.clone(),
            creds,
            auth: Mutex::new(None),
        }
    }

    fn current_auth(&self) -> Option<String> {
        self.auth.lock().ok().and_then(|a| a.clone())
    }

    fn set_auth(&self, value: String) {
        if let Ok(mut a) = self.auth.lock() {
            *a = Some(value);
        }
    }

    /// GET with the auth we have; on a 401, answers the challenge once and retries.
    fn get(&self, path: &str, accept: Option<&str>, what: &str) -> Result<ureq::Response, Error> {
        let url = format!("{}{}", self.base, path);
        let mut answered = false;
        loop {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(auth) = self.current_auth() {
                req = req.set("Authorization", &auth);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !answered => {
                    let challenge = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.answer(&challenge)?;
                    answered = true;
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(if self.creds.is_some() {
                        Error::Denied(self.host.clone())
                    } else {
                        Error::NeedLogin(self.host.clone())
                    })
                }
                Err(ureq::Error::Status(404, _)) => return Err(Error::NotFound(what.to_string())),
                Err(ureq::Error::Status(code, resp)) => {
                    let detail = resp.into_string().ok().map(|b| error_detail(&b)).unwrap_or_default();
                    return Err(Error::Status { host: self.host.clone(), what: what.into(), status: code, detail });
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(Error::Unreachable { host: self.host.clone(), cause: transport_cause(&t) })
                }
            }
        }
    }

    /// Sets the Authorization header the challenge asks for.
    fn answer(&self, challenge: &str) -> Result<(), Error> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let (u, p) = self.creds.clone().ok_or_else(|| Error::NeedLogin(self.host.clone()))?;
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                self.set_auth(format!("Basic {b}"));
                Ok(())
            }
            "bearer" => {
                let realm = params.get("realm").cloned().ok_or_else(|| Error::Token {
                    realm: self.host.clone(),
                    cause: "challenge names no realm".into(),
                })?;
                let scope =
                    params.get("scope").cloned().unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                let mut req = self.agent.get(&realm).query("scope", &scope);
                if let Some(service) = params.get("service") {
                    req = req.query("service", service);
                }
                if let Some((u, p)) = &self.creds {
                    let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                    req = req.set("Authorization", &format!("Basic {b}"));
                }
                let token_err = |cause: String| Error::Token { realm: realm.clone(), cause };
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(401, _)) if self.creds.is_some() => {
                        return Err(Error::Denied(self.host.clone()))
                    }
                    Err(ureq::Error::Status(code, _)) => return Err(token_err(format!("answered {code}"))),
                    Err(ureq::Error::Transport(t)) => return Err(token_err(transport_cause(&t))),
                };
                #[derive(Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let body = resp.into_string().map_err(|e| token_err(e.to_string()))?;
                let t: Token = serde_json::from_str(&body).map_err(|e| token_err(e.to_string()))?;
                let token = t.token.or(t.access_token).ok_or_else(|| token_err("no token in the answer".into()))?;
                self.set_auth(format!("Bearer {token}"));
                Ok(())
            }
            _ => Err(Error::Token { realm: self.host.clone(), cause: format!("unsupported challenge {challenge:?}") }),
        }
    }

    /// Fetches a manifest (or index) by tag or digest; its media type from the JSON's
    /// `mediaType`, else the Content-Type (umoci's manifests carry none).
    pub fn manifest(&self, reference: &str, what: &str) -> Result<Fetched, Error> {
        let path = format!("/v2/{}/manifests/{}", self.repository, reference);
        let resp = self.get(&path, Some(ACCEPT), what)?;
        let content_type = resp.content_type().to_string();
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io(format!("read manifest of {what}")))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::Invalid(format!("manifest of {what} is larger than {MAX_MANIFEST} bytes")));
        }
        let digest = super::store::sha256_digest(&bytes);
        if super::reference::is_digest(reference) && digest != reference {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {what}"),
                expected: reference.into(),
                actual: digest,
            });
        }
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(Error::json(format!("manifest of {what}")))?;
        let media_type = head.media_type.filter(|m| !m.is_empty()).unwrap_or(content_type);
        Ok(Fetched { bytes, media_type, digest })
    }

    /// A blob's bytes as they stream (the caller verifies the digest while reading).
    pub fn blob(&self, digest: &str, what: &str) -> Result<Box<dyn Read + Send>, Error> {
        let path = format!("/v2/{}/blobs/{}", self.repository, digest);
        Ok(self.get(&path, None, what)?.into_reader())
    }

    /// A small blob (a config) read whole and verified.
    pub fn small_blob(&self, digest: &str, what: &str) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.blob(digest, what)?
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io(format!("read {what}")))?;
        let actual = super::store::sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch { what: what.into(), expected: digest.into(), actual });
        }
        Ok(bytes)
    }

    /// `GET /v2/` with the credentials: what `engine login` checks them with.
    pub fn check_login(&self) -> Result<(), Error> {
        self.get("/v2/", None, "the API root").map(|_| ())
    }
}

/// `Bearer realm="...",service="...",scope="..."` → scheme and parameters.
fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = BTreeMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((key, after)) = s.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        s = next.trim_start_matches([',', ' ']);
    }
    (scheme.to_string(), params)
}

/// The first message of a distribution-API error body (`{"errors":[{"code","message"}]}`).
fn error_detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ApiError>,
    }
    #[derive(Deserialize)]
    struct ApiError {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(e) => e
            .errors
            .first()
            .map(|x| format!(" ({})", x.message.clone().or(x.code.clone()).unwrap_or_default()))
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn transport_cause(t: &ureq::Transport) -> String {
    // ureq's Display repeats the URL; the io error underneath says what happened.
    let mut cause: &dyn std::error::Error = t;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::parse_challenge;

    #[test]
    fn challenge() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p.get("realm").map(String::as_str), Some("https://auth.docker.io/token"));
        assert_eq!(p.get("scope").map(String::as_str), Some("repository:library/busybox:pull"));
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p.get("realm").map(String::as_str), Some("Registry Realm"));
    }
}

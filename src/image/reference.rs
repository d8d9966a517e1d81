//! Docker image references, normalised as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`; a first component with a `.` or `:` or `localhost` is a
//! registry host; `@sha256:<64 hex>` pins a digest.
use std::fmt;

use super::Error;

/// Docker Hub's name in references, and the host its API answers on.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, Error> {
        let bad = |why| Error::Reference(input.to_string(), why);
        if input.is_empty() || input.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                if !is_digest(d) {
                    return Err(bad("a digest is sha256: and 64 lowercase hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/' (a registry port has a '/' after it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(t[1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(bad("a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (first.to_string(), path),
            _ => (DOCKER_HUB.to_string(), name),
        };
        // Docker's legacy name for the Hub is the Hub.
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_string() } else { registry };
        if registry.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))) {
            return Err(bad("invalid registry host"));
        }
        let path_ok = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c.starts_with(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
                    && c.ends_with(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
                    && c.chars().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, '.' | '_' | '-'))
            });
        if !path_ok {
            return Err(bad("a repository name is lowercase [a-z0-9] components joined by . _ - and /"));
        }
        let repository =
            if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host (and port) the distribution API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry's manifests endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// Whether the registry may be spoken to in plain HTTP without being told: loopback only.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => &self.registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits: the only digest algorithm registries serve today.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).map(|r| r.to_string()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("library/busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("index.docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("docker.io/busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(norm("127.0.0.1:5000/x:tag"), "127.0.0.1:5000/x:tag");
        assert_eq!(norm("localhost/a/b"), "localhost/a/b:latest");
        assert_eq!(norm("ghcr.io/o/r:v1.2-rc"), "ghcr.io/o/r:v1.2-rc");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(norm(&format!("127.0.0.1:5000/x@{d}")), format!("127.0.0.1:5000/x@{d}"));
        assert_eq!(norm(&format!("x:t@{d}")), format!("docker.io/library/x:t@{d}"));
    }

    #[test]
    fn refuses_bad_names() {
        for s in ["", "Busybox", "x@sha256:abc", "x:", "a//b", "x:-t", "-x", "x/"] {
            assert!(Reference::parse(s).is_err(), "{s} accepted");
        }
    }

    #[test]
    fn loopback_hosts() {
        assert!(Reference::parse("127.0.0.1:5000/x").map(|r| r.is_loopback()).unwrap_or(false));
        assert!(Reference::parse("localhost:5000/x").map(|r| r.is_loopback()).unwrap_or(false));
        assert!(!Reference::parse("ghcr.io/x").map(|r| r.is_loopback()).unwrap_or(true));
    }
}

//! Image references, parsed and normalized as Docker does: `mysql` is
//! `docker.io/library/mysql:latest`, `host:5000/team/app@sha256:…` keeps its registry and digest.
//!
//! The value is oci-spec's `distribution::Reference`; the parsing is hoist's own because
//! oci-spec's grammar refuses bracketed IPv6 registries (`[::1]:5000/app`, which Docker
//! takes) and accepts digests other than sha256, which the store cannot keep, and because a
//! refusal here says which part is wrong.

use super::digest::Digest;
use super::error::ImageError;

pub const DEFAULT_REGISTRY: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(oci_spec::distribution::Reference);

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, ImageError> {
        let bad = |why: &str| ImageError::BadReference { reference: text.to_string(), why: why.to_string() };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                (rest, Some(Digest::parse(digest).map_err(|_| bad("the digest is not sha256:<64 hex>"))?))
            }
            None => (text, None),
        };
        // A tag follows the last ':' only when no '/' comes after it (host:port/repo).
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_string())),
            _ => (rest, None),
        };
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !tag.starts_with(['.', '-']);
            if !valid {
                return Err(bad("the tag may only hold letters, digits, '_', '.' and '-'"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad("the repository must be lowercase letters, digits and separators"));
        }
        Ok(Reference(match (tag, digest) {
            (Some(tag), Some(digest)) => {
                oci_spec::distribution::Reference::with_tag_and_digest(registry, repository, tag, digest.to_string())
            }
            (None, Some(digest)) => {
                oci_spec::distribution::Reference::with_digest(registry, repository, digest.to_string())
            }
            (tag, None) => oci_spec::distribution::Reference::with_tag(
                registry,
                repository,
                tag.unwrap_or_else(|| "latest".into()),
            ),
        }))
    }

    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`…
    pub fn registry(&self) -> &str {
        self.0.registry()
    }

    /// `library/mysql`, `team/app`.
    pub fn repository(&self) -> &str {
        self.0.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    /// The sha256 digest, if the reference pins one (checked when parsed).
    pub fn digest(&self) -> Option<Digest> {
        self.0.digest().and_then(|digest| Digest::parse(digest).ok())
    }

    /// The registry host to talk to (Docker Hub's API lives at registry-1.docker.io).
    pub fn api_host(&self) -> &str {
        match self.registry() {
            DEFAULT_REGISTRY => "registry-1.docker.io",
            registry => registry,
        }
    }

    /// A tag or digest to ask the registry for.
    pub fn manifest_ref(&self) -> String {
        match (self.0.digest(), self.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.to_string(),
            (None, None) => "latest".into(),
        }
    }

    /// Whether plain HTTP is allowed: only for the local machine, as Docker does. The host
    /// is parsed as an address (`127.evil.example` is a name, not loopback).
    pub fn is_local(&self) -> bool {
        let registry = self.registry();
        let host = match registry.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once(']').map_or("", |(address, _)| address),
            None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
        };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("mysql", "docker.io/library/mysql:latest"),
            ("mysql:8.4", "docker.io/library/mysql:8.4"),
            ("bitnami/redis", "docker.io/bitnami/redis:latest"),
            ("ghcr.io/org/app:1.2", "ghcr.io/org/app:1.2"),
            ("localhost/app", "localhost/app:latest"),
            ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"),
        ];
        for (input, expected) in cases {
            assert_eq!(Reference::parse(input).unwrap().to_string(), expected, "{input}");
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("host:5000/repo@{digest}")).unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("host:5000", "repo", None));
        assert_eq!(r.manifest_ref(), digest);
        assert!(Reference::parse("127.0.0.1:5000/x").unwrap().is_local());
        assert!(!Reference::parse("example.com/x").unwrap().is_local());
        for name in ["127.evil.example/x", "127.0.0.1.nip.io:5000/x", "localhost.example/x"] {
            assert!(!Reference::parse(name).unwrap().is_local(), "{name}");
        }
        for name in ["127.1.2.3/x", "localhost:5000/x", "[::1]:5000/x"] {
            assert!(Reference::parse(name).unwrap().is_local(), "{name}");
        }
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "UPPER/case", "repo:bad tag", "repo@sha256:123", "a//b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}

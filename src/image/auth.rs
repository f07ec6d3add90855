//! Registry credentials and challenges: basic auth from `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`), and parsing `WWW-Authenticate` challenges (Docker Hub's
//! bearer-token flow, or plain Basic).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ username: {:?}, password: <hidden> }}", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// The credentials Docker stored for `registry` (`docker login`), if any.
pub fn credentials_for(registry: &str) -> Option<Credentials> {
    let text = std::fs::read(docker_config_path()?).ok()?;
    credentials_in(&text, registry)
}

fn credentials_in(config: &[u8], registry: &str) -> Option<Credentials> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
    }
    let config: Config = serde_json::from_slice(config).ok()?;
    let keys: Vec<String> = if registry == super::reference::DEFAULT_REGISTRY {
        vec!["https://index.docker.io/v1/".into(), "index.docker.io".into(), "docker.io".into()]
    } else {
        vec![registry.into(), format!("https://{registry}"), format!("http://{registry}")]
    };
    let entry = keys.iter().find_map(|k| config.auths.get(k))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(entry.auth.as_ref()?.trim()).ok()?;
    let (username, password) = String::from_utf8(decoded).ok()?.split_once(':').map(|(u, p)| (u.into(), p.into()))?;
    Some(Credentials { username, password })
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
    Basic,
}

pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, n)| (v, n))
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = next.trim_start_matches([',', ' ']);
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/mysql:pull""#;
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/mysql:pull".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
    }

    #[test]
    fn reads_docker_config_auths() {
        let config = br#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}}}"#;
        let local = credentials_in(config, "127.0.0.1:5000").unwrap();
        assert_eq!((local.username.as_str(), local.password.as_str()), ("user", "pass"));
        assert_eq!(credentials_in(config, "docker.io").unwrap().username, "hub");
        assert!(credentials_in(config, "ghcr.io").is_none());
    }
}

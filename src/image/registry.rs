//! Pulling images from an OCI distribution (v2) registry: manifests (OCI index, Docker
//! manifest list, OCI and Docker schema 2 manifests) for the wanted platform, blobs in
//! parallel with retries and backoff, every digest verified before anything is stored.
//! Plain HTTP is used only for the local machine (`localhost`, 127.0.0.0/8, as Docker
//! allows) or registries listed as insecure. Progress is reported through a callback; the
//! library never prints.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use super::auth::{self, Challenge, Credentials};
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::import::image_from_manifest;
use super::manifest::{
    digest_of, host_platform, parse_document, platform_text, select_platform, Descriptor, Document, Manifest, Platform,
    ACCEPTED,
};
use super::reference::Reference;
use super::store::{ImageRecord, Store};

/// What a pull reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A blob download starts (`total` bytes).
    Start { digest: Digest, total: u64 },
    /// More bytes of a blob arrived.
    Advance { digest: Digest, bytes: u64 },
    /// The blob is stored (or was already).
    Done { digest: Digest, cached: bool },
    /// A failed attempt that will be retried.
    Retry { digest: Digest, attempt: u32, error: String },
}

#[derive(Clone)]
pub struct PullOptions<'a> {
    pub platform: Platform,
    /// Registries (host[:port]) that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Credentials to use instead of those in the Docker config.
    pub credentials: Option<Credentials>,
    pub progress: &'a (dyn Fn(Progress) + Sync),
    /// Parallel blob downloads.
    pub parallel: usize,
    pub attempts: u32,
}

impl Default for PullOptions<'_> {
    fn default() -> Self {
        PullOptions {
            platform: host_platform(),
            insecure_registries: Vec::new(),
            credentials: None,
            progress: &|_| {},
            parallel: 3,
            attempts: 3,
        }
    }
}

/// A session with one repository of one registry.
struct Session<'a> {
    agent: ureq::Agent,
    base: String,
    reference: &'a Reference,
    credentials: Option<Credentials>,
    /// The `Authorization` header that worked last.
    authorization: Mutex<Option<String>>,
}

enum Failure {
    /// Worth another attempt (connection trouble, 5xx, 429).
    Transient(String),
    Fatal(ImageError),
}

impl Session<'_> {
    fn registry_error(&self, message: impl Into<String>) -> ImageError {
        ImageError::Registry { registry: self.reference.registry().to_string(), message: message.into() }
    }

    /// GETs `path` (below `/v2/<repository>/`), answering an auth challenge once.
    fn get(&self, path: &str, accept: &str) -> std::result::Result<ureq::http::Response<ureq::Body>, Failure> {
        let url = format!("{}/v2/{}/{path}", self.base, self.reference.repository());
        for round in 0..2 {
            let mut request = self.agent.get(&url).header("Accept", accept);
            if let Some(value) = self.authorization.lock().map(|a| a.clone()).unwrap_or(None) {
                request = request.header("Authorization", value);
            }
            let response = request.call().map_err(|e| Failure::Transient(format!("GET {url}: {e}")))?;
            let status = response.status().as_u16();
            match status {
                200..=299 => return Ok(response),
                401 if round == 0 => {
                    let header = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let value = self.authorize(&header).map_err(Failure::Fatal)?;
                    if let Ok(mut slot) = self.authorization.lock() {
                        *slot = Some(value);
                    }
                }
                401 | 403 => {
                    return Err(Failure::Fatal(self.registry_error(format!(
                        "access to {} denied ({status}){}",
                        self.reference.repository(),
                        if self.credentials.is_none() { "; no credentials found in ~/.docker/config.json" } else { "" }
                    ))))
                }
                404 => return Err(Failure::Fatal(self.registry_error(format!("{url} not found (404)")))),
                429 | 500..=599 => return Err(Failure::Transient(format!("GET {url}: HTTP {status}"))),
                _ => return Err(Failure::Fatal(self.registry_error(format!("GET {url}: unexpected HTTP {status}")))),
            }
        }
        Err(Failure::Fatal(self.registry_error("authentication was not accepted")))
    }

    /// The `Authorization` header value that answers `challenge`.
    fn authorize(&self, challenge: &str) -> Result<String> {
        match auth::parse_challenge(challenge) {
            Some(Challenge::Basic) => self
                .credentials
                .as_ref()
                .map(Credentials::basic_header)
                .ok_or_else(|| self.registry_error("asks for a password; none found in ~/.docker/config.json")),
            Some(Challenge::Bearer { realm, service, scope }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.reference.repository()));
                let mut request = self.agent.get(&realm).query("scope", &scope);
                if let Some(service) = &service {
                    request = request.query("service", service);
                }
                if let Some(credentials) = &self.credentials {
                    request = request.header("Authorization", credentials.basic_header());
                }
                let mut response =
                    request.call().map_err(|e| self.registry_error(format!("token from {realm}: {e}")))?;
                if !response.status().is_success() {
                    return Err(self.registry_error(format!("token from {realm}: HTTP {}", response.status())));
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let body = response
                    .body_mut()
                    .read_to_vec()
                    .map_err(|e| self.registry_error(format!("token from {realm}: {e}")))?;
                let token: Token = serde_json::from_slice(&body)
                    .map_err(|e| self.registry_error(format!("token from {realm}: {e}")))?;
                let token = token
                    .token
                    .or(token.access_token)
                    .ok_or_else(|| self.registry_error(format!("token from {realm}: no token in the answer")))?;
                Ok(format!("Bearer {token}"))
            }
            None => Err(self.registry_error(format!("unsupported authentication challenge {challenge:?}"))),
        }
    }

    fn with_retries<T>(
        &self,
        attempts: u32,
        on_retry: impl Fn(u32, &str),
        mut once: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=attempts.max(1) {
            match once() {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(message)) if attempt == attempts.max(1) => {
                    return Err(self.registry_error(format!("{message} (after {attempt} attempts)")))
                }
                Err(Failure::Transient(message)) => {
                    on_retry(attempt, &message);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        Err(self.registry_error("no attempt was made"))
    }

    /// Fetches a manifest (or index) by tag or digest; returns its bytes and digest.
    fn manifest(&self, reference: &str, expected: Option<&Digest>, attempts: u32) -> Result<(Vec<u8>, Digest)> {
        let accept = ACCEPTED.join(", ");
        let bytes = self.with_retries(
            attempts,
            |_, _| {},
            || {
                let mut response = self.get(&format!("manifests/{reference}"), &accept)?;
                response
                    .body_mut()
                    .with_config()
                    .limit(16 << 20)
                    .read_to_vec()
                    .map_err(|e| Failure::Transient(format!("reading manifest {reference}: {e}")))
            },
        )?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected {
            if &digest != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {}@{expected}", self.reference.repository()),
                    expected: expected.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        Ok((bytes, digest))
    }

    /// Downloads a blob into the store (verified), unless it is there already.
    fn blob(&self, store: &Store, descriptor: &Descriptor, options: &PullOptions) -> Result<()> {
        let digest = &digest_of(descriptor)?;
        if store.has_blob(digest) {
            (options.progress)(Progress::Done { digest: digest.clone(), cached: true });
            return Ok(());
        }
        (options.progress)(Progress::Start { digest: digest.clone(), total: descriptor.size() });
        let on_retry = |attempt: u32, error: &str| {
            (options.progress)(Progress::Retry { digest: digest.clone(), attempt, error: error.to_string() })
        };
        self.with_retries(options.attempts, on_retry, || {
            let response = self.get(&format!("blobs/{digest}"), "*/*")?;
            let reader = Counting { inner: response.into_body().into_reader(), digest, progress: options.progress };
            match store.write_blob(reader, Some(digest), &format!("blob {digest}")) {
                Ok(_) => Ok(()),
                // A broken connection is worth another try; a wrong digest is not.
                Err(ImageError::Io { source, .. }) => Err(Failure::Transient(format!("blob {digest}: {source}"))),
                Err(e) => Err(Failure::Fatal(e)),
            }
        })?;
        (options.progress)(Progress::Done { digest: digest.clone(), cached: false });
        Ok(())
    }
}

struct Counting<'a, R> {
    inner: R,
    digest: &'a Digest,
    progress: &'a (dyn Fn(Progress) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(Progress::Advance { digest: self.digest.clone(), bytes: n as u64 });
        Ok(n)
    }
}

/// Pulls `reference` into `store` and records it under that name.
pub fn pull(store: &Store, reference: &Reference, options: &PullOptions) -> Result<ImageRecord> {
    let (manifest, manifest_digest) = fetch(store, reference, options)?;
    image_from_manifest(store, &manifest, Some(manifest_digest), std::slice::from_ref(reference))
}

/// Downloads the manifest and every blob of `reference` for the wanted platform into the
/// store (verified), without unpacking; returns the manifest and its digest.
pub fn fetch(store: &Store, reference: &Reference, options: &PullOptions) -> Result<(Manifest, Digest)> {
    let plain_http = reference.is_local() || options.insecure_registries.iter().any(|r| r == reference.registry());
    let scheme = if plain_http { "http" } else { "https" };
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")));
    if reference.is_local() {
        // Loopback traffic never goes through a proxy.
        config = config.proxy(None);
    }
    let credentials = options.credentials.clone().or_else(|| auth::credentials_for(reference.registry()));
    let session = Session {
        agent: config.build().new_agent(),
        base: format!("{scheme}://{}", reference.api_host()),
        reference,
        credentials,
        authorization: Mutex::new(None),
    };

    let (bytes, digest) = session.manifest(&reference.manifest_ref(), reference.digest().as_ref(), options.attempts)?;
    let (manifest_bytes, manifest_digest) = match parse_document(&bytes, &format!("manifest of {reference}"))? {
        Document::Index(index) => {
            let manifests = index.manifests();
            let chosen = select_platform(manifests, &options.platform).ok_or_else(|| ImageError::NoPlatform {
                reference: reference.to_string(),
                platform: platform_text(&options.platform),
                available: super::archive::platforms(manifests),
            })?;
            let chosen = digest_of(chosen)?;
            session.manifest(&chosen.to_string(), Some(&chosen), options.attempts)?
        }
        Document::Manifest(_) => (bytes, digest),
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| ImageError::format(format!("manifest of {reference}"), e))?;
    store.write_blob(manifest_bytes.as_slice(), Some(&manifest_digest), "manifest")?;

    let mut wanted: Vec<&Descriptor> = vec![manifest.config()];
    wanted.extend(manifest.layers().iter());
    let queue = Mutex::new(wanted.into_iter());
    let first_error: Mutex<Option<ImageError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.parallel.max(1) {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(descriptor) = next else { break };
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    break;
                }
                if let Err(e) = session.blob(store, descriptor, options) {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok((manifest, manifest_digest))
}

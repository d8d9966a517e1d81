//! Images: pull from registries speaking the OCI distribution API, import archives, keep them in a
//! content-addressed store, and hand the supervisor an image's layers (overlay lower dirs) and its
//! config.
//!
//! Daemonless, as podman: the CLI verbs work on the store directly under flock, so the supervisor
//! only ever reads it (`resolve`). One rule holds for every byte that enters the store: it is
//! verified against its digest while it streams and becomes visible only by a rename after the
//! check, so an interrupted or forged download leaves nothing half-visible.
pub mod archive;
pub mod config;
pub mod export;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
pub mod user;

use std::path::{Path, PathBuf};

pub use config::ImageConfig;
pub use pull::{pull, PullOptions};
pub use reference::Reference;
pub use store::Store;

/// The store's folder under the supervisor's root (`<root>/images`).
pub fn store_dir(root: &Path) -> PathBuf {
    root.join("images")
}

/// What a container needs from an image: its layers as overlay lower dirs and its config.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Unpacked layer trees, top layer first (overlayfs' `lowerdir=` order).
    pub lower_dirs: Vec<PathBuf>,
    pub config: ImageConfig,
    /// The image ID: the digest of its config blob (`sha256:...`), as Docker and podman name it.
    pub digest: String,
    /// The name it was found by, normalised (`docker.io/library/busybox:latest`).
    pub reference: String,
}

/// Looks an image up in the store under `store_root` (see `store_dir`) by reference
/// (`busybox`, `127.0.0.1:5000/x:tag`, `name@sha256:...`) or by image ID (prefix).
/// Read-only: takes the store's lock shared, so an `rmi` cannot remove layers mid-way.
pub fn resolve(store_root: &Path, reference: &str) -> Result<ResolvedImage, Error> {
    resolve_locked(store_root, reference).map(|(image, _shared)| image)
}

/// `resolve`, also handing back the store's shared lock: a container start holds it until its
/// record (naming the image) is on disk, so an `rmi` cannot slip in between and remove the
/// layers of a container that `in_use` cannot see yet.
pub fn resolve_locked(store_root: &Path, reference: &str) -> Result<(ResolvedImage, store::Lock), Error> {
    let store = Store::open(store_root)?;
    let shared = store.lock_shared()?;
    let record = store.find(reference)?;
    let config = store.image_config(&record)?;
    let lower_dirs = record.layers.iter().rev().map(|d| store.layer_dir(d)).collect::<Result<Vec<_>, _>>()?;
    for dir in &lower_dirs {
        if !dir.is_dir() {
            return Err(Error::Corrupt(format!("layer {} of {reference} is missing", dir.display())));
        }
    }
    // The name the user gave if it is one of the image's, else its first name, else the ID.
    let given = Reference::parse(reference).ok().map(|r| r.to_string()).filter(|n| record.names.contains(n));
    let image = ResolvedImage {
        lower_dirs,
        config: ImageConfig::from_oci(&config),
        digest: record.id.clone(),
        reference: given.or_else(|| record.names.first().cloned()).unwrap_or_else(|| record.id.clone()),
    };
    Ok((image, shared))
}

/// The containers (running or ended, not removed) whose root is made of the image `image_id`,
/// by name, from the supervisor's records (`<root>/containers/*.json`, beside the store): `rmi`
/// refuses such an image unless forced, and `prune` and `rmi -f` keep its layers.
/// A record that cannot be read or parsed is skipped (it is being replaced, or is not a record).
pub fn in_use(store_root: &Path, image_id: &str) -> Result<Vec<String>, Error> {
    #[derive(serde::Deserialize)]
    struct Spec {
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct Image {
        id: String,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        spec: Spec,
        #[serde(default)]
        image: Option<Image>,
    }
    let Some(root) = store_root.parent() else { return Ok(Vec::new()) };
    let dir = root.join("containers");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", dir.display()))(e)),
    };
    let mut users = Vec::new();
    for e in entries {
        let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
        let file = e.file_name().to_string_lossy().into_owned();
        if file.starts_with('.') || !file.ends_with(".json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(e.path()) else { continue };
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else { continue };
        if record.image.is_some_and(|i| i.id == image_id) {
            users.push(record.spec.name);
        }
    }
    users.sort();
    Ok(users)
}

/// Every failure of the image side: each variant names the step, keeps the cause, and reads as
/// one line after `engine: `.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference {0:?}: {1}")]
    Reference(String, &'static str),
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    Platform(String),
    #[error("{step}: {source}")]
    Io {
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach registry {host}: {cause}")]
    Unreachable { host: String, cause: String },
    #[error("{what}: registry {host} answered {status}{detail}")]
    Status { host: String, what: String, status: u16, detail: String },
    #[error("registry {0} asks for credentials: run `engine login {0}`")]
    NeedLogin(String),
    #[error("registry {0} refused the credentials")]
    Denied(String),
    #[error("token from {realm}: {cause}")]
    Token { realm: String, cause: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("no image for {wanted} in {reference}; available: {available}")]
    NoPlatform { wanted: String, reference: String, available: String },
    #[error("{what}: unsupported media type {media_type:?}")]
    MediaType { what: String, media_type: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("{what}: invalid JSON: {cause}")]
    Json { what: String, cause: String },
    #[error("layer {layer}: unsafe entry {entry:?}: {why}")]
    Unsafe { layer: String, entry: String, why: String },
    #[error("layer {layer}: entry {entry:?}: {source}")]
    Entry {
        layer: String,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: unreadable archive: {source}")]
    Archive {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("image {0} is used by container(s) {1}: stop and remove them, or use -f")]
    InUse(String, String),
    #[error("{0} matches several images: give more of the ID")]
    Ambiguous(String),
    #[error("image store damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with the step that failed.
    pub fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let step = step.into();
        move |source| Error::Io { step, source }
    }

    fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |e| Error::Json { what, cause: e.to_string() }
    }
}

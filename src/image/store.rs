//! The content-addressed image store, under `<root>/images`:
//!
//! ```text
//! lock                      flock: pulls and lookups hold it shared, rmi/prune exclusive
//! blobs/sha256/<hex>        manifests and configs, verified (layer blobs are not kept: the
//!                           unpacked tree is what containers use, and diff IDs re-verify it)
//! layers/<diff-id hex>/     one unpacked tree per layer (keyed by its uncompressed digest, so a
//!                           layer pulled or imported in any compression is stored once)
//! images/<config hex>.json  one record per image (ID = config digest, as Docker and podman)
//! refs/<escaped name>       name → image ID (`docker.io%2Flibrary%2Fbusybox:latest`)
//! locks/<diff-id hex>       flock per layer: two pulls of one layer wait for each other
//! tmp/                      layers being unpacked; renamed into layers/ only once verified
//! auth.json                 `engine login` credentials, mode 0600
//! ```
//!
//! Every record is written atomically (temp file, fsync, rename, fsync of the directory), so a
//! crash leaves the old record or the new one, never a torn file.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reference::{is_digest, Reference};
use super::Error;

/// What the store keeps about one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config blob's digest: the image ID.
    pub id: String,
    /// The manifest's digest when the image came from a registry (`name@digest` finds it).
    #[serde(default)]
    pub manifest_digest: Option<String>,
    /// Layer diff IDs, bottom first.
    pub layers: Vec<String>,
    /// Bytes of the layers as transferred.
    pub size: u64,
    #[serde(default)]
    pub created: Option<String>,
    /// When it entered the store (RFC 3339).
    pub added: String,
    /// Names pointing at it: filled in from refs/ when read, never stored.
    #[serde(skip)]
    pub names: Vec<String>,
}

pub struct Store {
    root: PathBuf,
}

/// A held flock; released when dropped (the fd closes).
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    /// flock `op` (LOCK_SH or LOCK_EX, maybe with LOCK_NB) on the file at `path`, made 0600 if
    /// absent. Also the volumes' lock (supervisor/volumes.rs).
    pub fn acquire(path: &Path, op: libc::c_int) -> io::Result<Lock> {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        flock(&f, op)?;
        Ok(Lock(f))
    }
}

/// A directory under tmp/ removed on drop unless taken by `commit_layer`.
pub struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            // Best effort: a failure leaves a stale dir that the next prune or exclusive pull removes.
            let _ = fs::remove_dir_all(&p);
        }
    }
}

fn hex_of(digest: &str) -> Result<&str, Error> {
    if is_digest(digest) {
        Ok(&digest[7..])
    } else {
        Err(Error::Invalid(format!("invalid digest {digest:?}")))
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A ref name as a file name: '/' cannot appear in one, '%' escapes.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn unescape(file: &str) -> String {
    file.replace("%2F", "/").replace("%25", "%")
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: valid fd.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}-{n}-{nanos}", std::process::id())
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let step = || format!("write {}", path.display());
    let dir = path.parent().ok_or_else(|| Error::Invalid(format!("{} has no parent", path.display())))?;
    let tmp = dir.join(unique(".tmp-"));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(Error::io(step()))
}

impl Store {
    /// Opens the store at `root`, creating its folders (0700: layers hold set-id binaries and
    /// device nodes that no unprivileged user should reach).
    pub fn open(root: &Path) -> Result<Store, Error> {
        for sub in ["", "blobs", "blobs/sha256", "layers", "images", "refs", "locks", "tmp"] {
            let p = root.join(sub);
            match fs::DirBuilder::new().mode(0o700).recursive(sub.is_empty()).create(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("create the image store {}", p.display()))(e)),
            }
        }
        Ok(Store { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_file(&self, path: &Path, op: libc::c_int) -> Result<Lock, Error> {
        Lock::acquire(path, op).map_err(Error::io(format!("lock {}", path.display())))
    }

    pub fn lock_shared(&self) -> Result<Lock, Error> {
        self.lock_file(&self.root.join("lock"), libc::LOCK_SH)
    }

    pub fn lock_exclusive(&self) -> Result<Lock, Error> {
        self.lock_file(&self.root.join("lock"), libc::LOCK_EX)
    }

    /// The exclusive lock if nobody holds the store, else None (without waiting).
    pub fn try_lock_exclusive(&self) -> Result<Option<Lock>, Error> {
        match self.lock_file(&self.root.join("lock"), libc::LOCK_EX | libc::LOCK_NB) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Held while a layer is fetched: a second pull of the same layer waits, then finds it present.
    pub fn lock_layer(&self, diff_id: &str) -> Result<Lock, Error> {
        let hex = hex_of(diff_id)?;
        self.lock_file(&self.root.join("locks").join(hex), libc::LOCK_EX)
    }

    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("layers").join(hex_of(diff_id)?))
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).map(|p| p.is_dir()).unwrap_or(false)
    }

    pub fn temp_dir(&self) -> Result<TempDir, Error> {
        let p = self.root.join("tmp").join(unique("layer-"));
        fs::DirBuilder::new().mode(0o755).create(&p).map_err(Error::io(format!("create {}", p.display())))?;
        Ok(TempDir { path: Some(p) })
    }

    /// Makes a verified layer visible: one rename, so it is there whole or not at all.
    pub fn commit_layer(&self, mut tmp: TempDir, diff_id: &str) -> Result<(), Error> {
        let dest = self.layer_dir(diff_id)?;
        let Some(src) = tmp.path.take() else { return Err(Error::Invalid("temp dir already used".into())) };
        match fs::rename(&src, &dest) {
            Ok(()) => Ok(()),
            // Someone else committed it meanwhile (only without the layer lock): theirs is as good.
            Err(e) if dest.is_dir() && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                let _ = fs::remove_dir_all(&src);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&src);
                Err(Error::io(format!("move layer {diff_id} into place"))(e))
            }
        }
    }

    /// Removes what interrupted pulls left in tmp/; only under the exclusive lock.
    pub fn clean_tmp(&self, _exclusive: &Lock) -> Result<(), Error> {
        let dir = self.root.join("tmp");
        for e in fs::read_dir(&dir).map_err(Error::io(format!("read {}", dir.display())))? {
            let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
            fs::remove_dir_all(e.path()).map_err(Error::io(format!("remove {}", e.path().display())))?;
        }
        Ok(())
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Stores a small blob (manifest, config) after checking it against its digest.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), Error> {
        let actual = sha256_digest(bytes);
        if actual != digest {
            return Err(Error::DigestMismatch { what: "blob".into(), expected: digest.into(), actual });
        }
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes, 0o600)
    }

    pub fn blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(Error::io(format!("read blob {}", path.display())))
    }

    pub fn image_config(&self, record: &ImageRecord) -> Result<oci_spec::image::ImageConfiguration, Error> {
        super::config::parse(&self.blob(&record.id)?, &format!("config of image {}", record.id))
    }

    fn record_path(&self, id: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("images").join(format!("{}.json", hex_of(id)?)))
    }

    /// Writes the image's record, then points each name at it.
    pub fn add_image(&self, record: &ImageRecord, names: &[String]) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(record).map_err(Error::json("image record"))?;
        write_atomic(&self.record_path(&record.id)?, &json, 0o600)?;
        for name in names {
            let r = serde_json::json!({ "id": record.id });
            write_atomic(&self.root.join("refs").join(escape(name)), r.to_string().as_bytes(), 0o600)?;
        }
        Ok(())
    }

    fn read_record(&self, id: &str) -> Result<Option<ImageRecord>, Error> {
        let path = self.record_path(id)?;
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(Error::json(format!("{}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
        }
    }

    /// Every name → image ID.
    pub fn refs(&self) -> Result<Vec<(String, String)>, Error> {
        let dir = self.root.join("refs");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io(format!("read {}", dir.display())))? {
            let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
            let file = e.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            if let Some(id) = self.ref_target(&e.path())? {
                out.push((unescape(&file), id));
            }
        }
        out.sort();
        Ok(out)
    }

    fn ref_target(&self, path: &Path) -> Result<Option<String>, Error> {
        #[derive(Deserialize)]
        struct RefFile {
            id: String,
        }
        match fs::read(path) {
            Ok(b) => {
                let r: RefFile = serde_json::from_slice(&b).map_err(Error::json(format!("{}", path.display())))?;
                Ok(Some(r.id))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
        }
    }

    /// Every image, with its names.
    pub fn images(&self) -> Result<Vec<ImageRecord>, Error> {
        let refs = self.refs()?;
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io(format!("read {}", dir.display())))? {
            let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = file.strip_suffix(".json") else { continue };
            if let Some(mut r) = self.read_record(&format!("sha256:{hex}"))? {
                r.names = refs.iter().filter(|(_, id)| *id == r.id).map(|(n, _)| n.clone()).collect();
                out.push(r);
            }
        }
        out.sort_by(|a, b| b.added.cmp(&a.added));
        Ok(out)
    }

    /// Finds an image by name (normalised as Docker does), `name@digest`, or ID (or its prefix).
    pub fn find(&self, query: &str) -> Result<ImageRecord, Error> {
        if let Ok(r) = Reference::parse(query) {
            if r.digest.is_none() {
                if let Some(id) = self.ref_target(&self.root.join("refs").join(escape(&r.to_string())))? {
                    if let Some(mut rec) = self.read_record(&id)? {
                        rec.names = self.refs()?.into_iter().filter(|(_, i)| *i == id).map(|(n, _)| n).collect();
                        return Ok(rec);
                    }
                }
            } else if let Some(d) = &r.digest {
                if let Some(rec) = self.images()?.into_iter().find(|i| i.manifest_digest.as_deref() == Some(d)) {
                    return Ok(rec);
                }
            }
        }
        let hex = query.strip_prefix("sha256:").unwrap_or(query).to_ascii_lowercase();
        if hex.len() >= 3 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: Vec<ImageRecord> =
                self.images()?.into_iter().filter(|i| i.id.trim_start_matches("sha256:").starts_with(&hex)).collect();
            match found.len() {
                0 => {}
                1 => return Ok(found.remove(0)),
                _ => return Err(Error::Ambiguous(query.to_string())),
            }
        }
        Err(Error::NotFound(format!("image {query}")))
    }

    /// Removes one name; returns whether the name existed.
    pub fn remove_name(&self, name: &str) -> Result<bool, Error> {
        let p = self.root.join("refs").join(escape(name));
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("remove {}", p.display()))(e)),
        }
    }

    /// Removes an image's record (its names first); the layers go at the next `gc`.
    pub fn remove_image(&self, record: &ImageRecord) -> Result<(), Error> {
        for n in &record.names {
            self.remove_name(n)?;
        }
        let p = self.record_path(&record.id)?;
        fs::remove_file(&p).map_err(Error::io(format!("remove {}", p.display())))
    }

    /// Removes every layer, blob and lock file no image references, and what interrupted pulls
    /// left in tmp/. Returns the layers removed. Only under the exclusive lock.
    pub fn gc(&self, exclusive: &Lock) -> Result<Vec<String>, Error> {
        self.clean_tmp(exclusive)?;
        let images = self.images()?;
        let mut keep_layers = std::collections::HashSet::new();
        let mut keep_blobs = std::collections::HashSet::new();
        for i in &images {
            keep_blobs.insert(i.id.trim_start_matches("sha256:").to_string());
            if let Some(m) = &i.manifest_digest {
                keep_blobs.insert(m.trim_start_matches("sha256:").to_string());
            }
            for l in &i.layers {
                keep_layers.insert(l.trim_start_matches("sha256:").to_string());
            }
        }
        let mut removed = Vec::new();
        let sweep = |sub: &str, keep: &std::collections::HashSet<String>, removed: &mut Vec<String>| {
            let dir = self.root.join(sub);
            for e in fs::read_dir(&dir).map_err(Error::io(format!("read {}", dir.display())))? {
                let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let p = e.path();
                let r = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                r.map_err(Error::io(format!("remove {}", p.display())))?;
                if sub == "layers" {
                    removed.push(format!("sha256:{name}"));
                }
            }
            Ok::<(), Error>(())
        };
        sweep("layers", &keep_layers, &mut removed)?;
        sweep("locks", &keep_layers, &mut Vec::new())?;
        sweep("blobs/sha256", &keep_blobs, &mut Vec::new())?;
        Ok(removed)
    }

    pub fn auth_path(&self) -> PathBuf {
        self.root.join("auth.json")
    }
}

//! `import` of image archives: docker-archive (`manifest.json` + `repositories`, as `docker save`,
//! `podman save` and `skopeo copy ... docker-archive:` write it) and oci-archive (`oci-layout` +
//! `index.json` + `blobs/`). The archive is indexed in one pass (name → offset, size), then each
//! layer is read straight from its place in the file through the same verify-and-unpack path as
//! a pull: nothing is extracted to a scratch copy first.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::pull::{self, ingest_all, LayerJob, Manifest, Platform, Progress};
use super::registry::{DOCKER_LIST, OCI_INDEX};
use super::store::{sha256_digest, ImageRecord, Store};
use super::unpack::Compression;
use super::{Error, Reference};

/// A manifest or config bigger than this is not one.
const MAX_JSON: u64 = 16 << 20;

/// One image brought in by `import`.
#[derive(Debug, Clone)]
pub struct Imported {
    pub id: String,
    pub names: Vec<String>,
    pub fetched: usize,
}

/// The archive's regular files: name (without `./`) → (offset, size).
struct TarIndex {
    path: PathBuf,
    files: HashMap<String, (u64, u64)>,
}

fn normalise(name: &str) -> String {
    name.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

impl TarIndex {
    fn build(path: &Path) -> Result<TarIndex, Error> {
        let bad = |source| Error::Archive { layer: path.display().to_string(), source };
        let f = File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
        let mut head = [0u8; 2];
        (&f).read_exact(&mut head).map_err(bad)?;
        if head == [0x1f, 0x8b] {
            return Err(Error::Invalid(format!("{}: a compressed archive: gunzip it first", path.display())));
        }
        (&f).seek(SeekFrom::Start(0)).map_err(bad)?;
        let mut archive = tar::Archive::new(BufReader::new(f));
        let mut files = HashMap::new();
        let mut links = Vec::new();
        for e in archive.entries().map_err(bad)? {
            let e = e.map_err(bad)?;
            let name = normalise(&String::from_utf8_lossy(&e.path_bytes()));
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    files.insert(name, (e.raw_file_position(), e.size()));
                }
                // Older `docker save` links a layer shared by two images to its first copy.
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = e.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                        let joined = if e.header().entry_type() == tar::EntryType::Link || target.starts_with('/') {
                            normalise(&target)
                        } else {
                            resolve_relative(dir, &target)
                        };
                        links.push((name, joined));
                    }
                }
                _ => {}
            }
        }
        for (name, target) in links {
            if let Some(v) = files.get(&target).copied() {
                files.insert(name, v);
            }
        }
        Ok(TarIndex { path: path.to_path_buf(), files })
    }

    fn get(&self, name: &str) -> Result<(u64, u64), Error> {
        self.files
            .get(&normalise(name))
            .copied()
            .ok_or_else(|| Error::NotFound(format!("{} in archive {}", name, self.path.display())))
    }

    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        let (offset, size) = self.get(name)?;
        let mut f = File::open(&self.path).map_err(Error::io(format!("open {}", self.path.display())))?;
        f.seek(SeekFrom::Start(offset)).map_err(Error::io(format!("read {}", self.path.display())))?;
        Ok((Box::new(f.take(size)), size))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        let (mut r, size) = self.open(name)?;
        if size > MAX_JSON {
            return Err(Error::Invalid(format!("{name} in {} is too large", self.path.display())));
        }
        let mut out = Vec::with_capacity(size as usize);
        r.read_to_end(&mut out).map_err(Error::io(format!("read {name} in {}", self.path.display())))?;
        Ok(out)
    }

    fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
}

fn resolve_relative(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Imports every image in the archive at `file`.
pub fn import(store_root: &Path, file: &Path, quiet: bool) -> Result<Vec<Imported>, Error> {
    let index = TarIndex::build(file)?;
    let store = Store::open(store_root)?;
    if let Some(x) = store.try_lock_exclusive()? {
        store.clean_tmp(&x)?;
    }
    let _shared = store.lock_shared()?;
    let progress = Progress::new(quiet);
    let images = if index.has("oci-layout") && index.has("index.json") {
        oci_images(&index)?
    } else if index.has("manifest.json") {
        docker_images(&index)?
    } else {
        return Err(Error::Invalid(format!(
            "{}: neither a docker-archive (manifest.json) nor an oci-archive (oci-layout, index.json)",
            file.display()
        )));
    };
    let mut out = Vec::new();
    for img in images {
        let config = super::config::parse(&img.config, &format!("config {} in {}", img.id, file.display()))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != img.layers.len() {
            return Err(Error::Corrupt(format!(
                "{}: the config lists {} layers, the manifest {}",
                file.display(),
                diff_ids.len(),
                img.layers.len()
            )));
        }
        let mut jobs = Vec::new();
        for ((entry, digest, compression), diff_id) in img.layers.iter().zip(diff_ids) {
            if !super::reference::is_digest(diff_id) {
                return Err(Error::Invalid(format!("invalid diff ID {diff_id:?} in {}", file.display())));
            }
            let (_, size) = index.get(entry)?;
            jobs.push((
                entry.clone(),
                LayerJob {
                    diff_id: diff_id.clone(),
                    digest: digest.clone(),
                    size: Some(size),
                    compression: *compression,
                },
            ));
        }
        let entries: HashMap<String, String> = jobs.iter().map(|(e, j)| (j.diff_id.clone(), e.clone())).collect();
        let layer_jobs: Vec<LayerJob> = jobs.into_iter().map(|(_, j)| j).collect();
        let fetched = ingest_all(
            &store,
            &layer_jobs,
            |job| {
                let entry = entries.get(&job.diff_id).map(String::as_str).unwrap_or_default();
                index.open(entry).map(|(r, _)| r)
            },
            &progress,
        )?;
        store.put_blob(&img.id, &img.config)?;
        if let Some((digest, bytes)) = &img.manifest {
            store.put_blob(digest, bytes)?;
        }
        let record = ImageRecord {
            id: img.id.clone(),
            manifest_digest: img.manifest.as_ref().map(|(d, _)| d.clone()),
            layers: layer_jobs.iter().map(|j| j.diff_id.clone()).collect(),
            size: layer_jobs.iter().filter_map(|j| j.size).sum(),
            created: config.created().clone(),
            added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            names: Vec::new(),
        };
        store.add_image(&record, &img.names)?;
        let shown = if img.names.is_empty() { "<none>".to_string() } else { img.names.join(", ") };
        progress.line(&format!("imported {shown}: {}", img.id));
        out.push(Imported { id: img.id, names: img.names, fetched });
    }
    Ok(out)
}

/// One image found in an archive, before its layers are ingested.
struct Found {
    id: String,
    config: Vec<u8>,
    manifest: Option<(String, Vec<u8>)>,
    /// (entry in the archive, blob digest if known, compression), bottom first.
    layers: Vec<(String, Option<String>, Compression)>,
    names: Vec<String>,
}

fn docker_images(index: &TarIndex) -> Result<Vec<Found>, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> =
        serde_json::from_slice(&index.read("manifest.json")?).map_err(Error::json("manifest.json of the archive"))?;
    let mut out = Vec::new();
    for e in entries {
        let config = index.read(&e.config)?;
        let names = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t).map(|r| r.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        // A layer's file in a docker-archive is a tar (newer Docker: maybe compressed): its
        // integrity is the config's diff ID, checked while it unpacks.
        let layers = e.layers.into_iter().map(|l| (l, None, Compression::Sniff)).collect();
        out.push(Found { id: sha256_digest(&config), config, manifest: None, layers, names });
    }
    Ok(out)
}

fn blob_entry(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn oci_images(index: &TarIndex) -> Result<Vec<Found>, Error> {
    #[derive(Deserialize)]
    struct Desc {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        digest: String,
        #[serde(default)]
        annotations: HashMap<String, String>,
        #[serde(default)]
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Idx {
        manifests: Vec<Desc>,
    }
    let top: Idx =
        serde_json::from_slice(&index.read("index.json")?).map_err(Error::json("index.json of the archive"))?;
    let host = Platform::host();
    let mut out = Vec::new();
    for d in top.manifests {
        let mut names = Vec::new();
        for key in ["io.containerd.image.name", "org.opencontainers.image.ref.name"] {
            if let Some(n) = d.annotations.get(key) {
                // A bare tag ("latest") names nothing by itself: only full references count.
                if n.contains(['/', ':']) {
                    if let Ok(r) = Reference::parse(n) {
                        names.push(r.to_string());
                        break;
                    }
                }
            }
        }
        let mut digest = d.digest.clone();
        let mut media_type = d.media_type.clone();
        let mut bytes = read_blob(index, &digest)?;
        if media_type.is_empty() {
            media_type = head_media_type(&bytes);
        }
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            let nested: Idx = serde_json::from_slice(&bytes).map_err(Error::json(format!("index {digest}")))?;
            let choice = nested
                .manifests
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|p| p.os == host.os && p.architecture == host.architecture))
                .ok_or_else(|| Error::NoPlatform {
                    wanted: host.to_string(),
                    reference: names.first().cloned().unwrap_or_else(|| digest.clone()),
                    available: nested
                        .manifests
                        .iter()
                        .filter_map(|m| m.platform.as_ref())
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            digest = choice.digest.clone();
            bytes = read_blob(index, &digest)?;
        } else if d.platform.as_ref().is_some_and(|p| p.os != host.os || p.architecture != host.architecture) {
            continue;
        }
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(Error::json(format!("manifest {digest}")))?;
        let config = read_blob(index, &manifest.config.digest)?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let c = pull::layer_compression(&l.media_type, &format!("layer {}", pull::short(&l.digest)))?;
                Ok((blob_entry(&l.digest), Some(l.digest.clone()), c))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        out.push(Found { id: manifest.config.digest.clone(), config, manifest: Some((digest, bytes)), layers, names });
    }
    Ok(out)
}

fn read_blob(index: &TarIndex, digest: &str) -> Result<Vec<u8>, Error> {
    if !super::reference::is_digest(digest) {
        return Err(Error::Invalid(format!("invalid digest {digest:?} in the archive")));
    }
    let bytes = index.read(&blob_entry(digest))?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(Error::DigestMismatch {
            what: format!("blob {digest} in the archive"),
            expected: digest.into(),
            actual,
        });
    }
    Ok(bytes)
}

fn head_media_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Head>(bytes) {
        Ok(h) if !h.media_type.is_empty() => h.media_type,
        Ok(h) if h.manifests.is_some() => OCI_INDEX.to_string(),
        _ => super::registry::OCI_MANIFEST.to_string(),
    }
}

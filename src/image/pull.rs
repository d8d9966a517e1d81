//! `pull`: manifest (or index → the platform's manifest) → config → layers, several at once, each
//! streamed through its digest check and unpacked in the same pass, then the image record.
//!
//! Order is what makes an interrupted pull harmless: a layer appears in layers/ only whole and
//! verified (rename from tmp/), and the image record — the only thing that makes an image visible
//! — is written last. A rerun finds the finished layers and fetches only the rest.
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use super::registry::{AuthFile, Registry, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::store::{ImageRecord, Store};
use super::unpack::{self, Compression, Expect};
use super::{Error, Reference};

/// Layers fetched at once: enough to fill a link, few enough not to thrash a small disk.
const PARALLEL_LAYERS: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `os/arch[/variant]`; default linux and the host's architecture.
    pub platform: Option<String>,
    /// Plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// Print only the image ID.
    pub quiet: bool,
    /// Progress on stderr, not stdout: a pull on `run`'s behalf, whose stdout is the container's.
    pub to_stderr: bool,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub id: String,
    pub reference: String,
    pub manifest_digest: String,
    pub fetched: usize,
    pub present: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(v.to_string()) })
            }
            _ => Err(Error::Platform(s.to_string())),
        }
    }

    /// linux and the host's architecture in Go's names, as registries spell them.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), architecture: arch.into(), variant: None }
    }

    /// A wanted platform without a variant takes any variant.
    fn accepts(&self, p: &Platform) -> bool {
        self.os == p.os && self.architecture == p.architecture && (self.variant.is_none() || self.variant == p.variant)
    }
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

pub fn layer_compression(media_type: &str, what: &str) -> Result<Compression, Error> {
    let base = media_type
        .trim_start_matches("application/vnd.oci.image.layer.nondistributable.v1.")
        .trim_start_matches("application/vnd.oci.image.layer.v1.")
        .trim_start_matches("application/vnd.docker.image.rootfs.foreign.diff.")
        .trim_start_matches("application/vnd.docker.image.rootfs.diff.");
    match base {
        "tar" if base != media_type => Ok(Compression::None),
        "tar+gzip" | "tar.gzip" if base != media_type => Ok(Compression::Gzip),
        "tar+zstd" | "tar.zstd" if base != media_type => Ok(Compression::Zstd),
        _ => Err(Error::MediaType { what: what.to_string(), media_type: media_type.to_string() }),
    }
}

fn check_config_type(media_type: &str, what: &str) -> Result<(), Error> {
    match media_type {
        "application/vnd.oci.image.config.v1+json" | "application/vnd.docker.container.image.v1+json" => Ok(()),
        _ => Err(Error::MediaType { what: what.to_string(), media_type: media_type.to_string() }),
    }
}

/// How a pull shows its layers: bars on a terminal, one line per layer otherwise.
pub struct Progress {
    bars: Option<indicatif::MultiProgress>,
    quiet: bool,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress::to(quiet, false)
    }

    /// Progress on stderr (bars only when it is a terminal) when `to_stderr`, else on stdout.
    pub fn to(quiet: bool, to_stderr: bool) -> Progress {
        let (tty, out): (bool, Box<dyn Write + Send>) = if to_stderr {
            (std::io::stderr().is_terminal(), Box::new(std::io::stderr()))
        } else {
            (std::io::stdout().is_terminal(), Box::new(std::io::stdout()))
        };
        let bars = (tty && !quiet).then(indicatif::MultiProgress::new);
        Progress { bars, quiet, out: Mutex::new(out) }
    }

    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                if let Ok(mut o) = self.out.lock() {
                    let _ = writeln!(o, "{text}");
                }
            }
        }
    }

    fn bar(&self, label: &str, size: u64) -> Option<indicatif::ProgressBar> {
        let m = self.bars.as_ref()?;
        let pb = m.add(indicatif::ProgressBar::new(size));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(label.to_string());
        Some(pb)
    }
}

pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One layer to bring into the store, from wherever its bytes come.
pub struct LayerJob {
    pub diff_id: String,
    pub digest: Option<String>,
    pub size: Option<u64>,
    pub compression: Compression,
}

/// Brings one layer into the store unless it is there: under its lock (a concurrent pull of the
/// same layer waits, then finds it), into a temp dir, renamed into place only once verified.
/// Returns whether bytes were fetched.
pub fn ingest_layer(
    store: &Store,
    job: &LayerJob,
    open: impl FnOnce() -> Result<Box<dyn Read + Send>, Error>,
    progress: &Progress,
) -> Result<bool, Error> {
    if store.has_layer(&job.diff_id) {
        return Ok(false);
    }
    let _lock = store.lock_layer(&job.diff_id)?;
    if store.has_layer(&job.diff_id) {
        return Ok(false);
    }
    let label = short(job.digest.as_deref().unwrap_or(&job.diff_id)).to_string();
    let started = Instant::now();
    let tmp = store.temp_dir()?;
    // A registry that streams past the size the manifest promised is cut off there, not read
    // until the disk is full; the size check below then names it.
    let reader = match job.size {
        Some(size) => Box::new(open()?.take(size.saturating_add(1))) as Box<dyn Read + Send>,
        None => open()?,
    };
    let bar = progress.bar(&label, job.size.unwrap_or(0));
    let tick: Option<Box<dyn FnMut(u64) + Send>> = bar.clone().map(|b| Box::new(move |n| b.inc(n)) as Box<_>);
    let expect = Expect { digest: job.digest.as_deref(), size: job.size, diff_id: &job.diff_id };
    let result = unpack::unpack_layer(reader, job.compression, &expect, tmp.path(), &label, tick);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result?;
    store.commit_layer(tmp, &job.diff_id)?;
    let size = job.size.map(|s| format!(" {}", human(s))).unwrap_or_default();
    progress.line(&format!("layer {label}: fetched{size} in {:.2} s", started.elapsed().as_secs_f64()));
    Ok(true)
}

/// Runs `jobs` on a few threads; the first error stops the rest from starting and is returned.
pub fn ingest_all<F>(store: &Store, jobs: &[LayerJob], open: F, progress: &Progress) -> Result<usize, Error>
where
    F: Fn(&LayerJob) -> Result<Box<dyn Read + Send>, Error> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let fetched = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let workers = PARALLEL_LAYERS.min(jobs.len());
    // The scope joins every worker, on the error path too.
    let spawned = std::thread::scope(|s| {
        for i in 0..workers {
            let h = std::thread::Builder::new().name(format!("pull-{i}")).spawn_scoped(s, || loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(k) else { return };
                match ingest_layer(store, job, || open(job), progress) {
                    Ok(true) => {
                        fetched.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
            if let Err(e) = h {
                // The workers already running take no further job.
                failed.store(true, Ordering::Relaxed);
                return Err(Error::io("start a layer download thread")(e));
            }
        }
        Ok(())
    });
    spawned?;
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(fetched.into_inner())
}

/// Pulls `reference` into the store at `store_root`.
pub fn pull(store_root: &Path, reference: &str, opts: &PullOptions) -> Result<Pulled, Error> {
    let r = Reference::parse(reference)?;
    let wanted = match &opts.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let store = Store::open(store_root)?;
    // Whoever finds the store idle sweeps what interrupted pulls left, then all share it.
    if let Some(x) = store.try_lock_exclusive()? {
        store.clean_tmp(&x)?;
    }
    let _shared = store.lock_shared()?;
    let creds = AuthFile::load(&store.auth_path())?.get(&r.registry);
    let registry = Registry::new(&r, opts.insecure, creds);
    let progress = Progress::to(opts.quiet, opts.to_stderr);
    let name = r.to_string();
    let what = format!("image {name}");

    let mut fetched = registry.manifest(r.manifest_ref(), &what)?;
    if fetched.media_type == OCI_INDEX || fetched.media_type == DOCKER_LIST {
        let index: Index = serde_json::from_slice(&fetched.bytes).map_err(Error::json(format!("index of {name}")))?;
        let choice = index.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| wanted.accepts(p)));
        let Some(choice) = choice else {
            let mut available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| p.to_string())
                .collect();
            available.dedup();
            return Err(Error::NoPlatform {
                wanted: wanted.to_string(),
                reference: name,
                available: if available.is_empty() { "none".into() } else { available.join(", ") },
            });
        };
        fetched = registry.manifest(&choice.digest, &format!("{wanted} manifest of {name}"))?;
    }
    if fetched.media_type != OCI_MANIFEST && fetched.media_type != DOCKER_MANIFEST {
        return Err(Error::MediaType { what: format!("manifest of {name}"), media_type: fetched.media_type });
    }
    let manifest: Manifest =
        serde_json::from_slice(&fetched.bytes).map_err(Error::json(format!("manifest of {name}")))?;
    check_config_type(&manifest.config.media_type, &format!("config of {name}"))?;
    let compressions = manifest
        .layers
        .iter()
        .map(|l| layer_compression(&l.media_type, &format!("layer {} of {name}", short(&l.digest))))
        .collect::<Result<Vec<_>, _>>()?;

    let config_bytes = match store.blob(&manifest.config.digest) {
        Ok(b) if super::store::sha256_digest(&b) == manifest.config.digest => b,
        _ => registry.small_blob(&manifest.config.digest, &format!("config of {name}"))?,
    };
    let config = super::config::parse(&config_bytes, &format!("config of {name}"))?;
    let got = Platform {
        os: config.os().to_string(),
        architecture: config.architecture().to_string(),
        variant: config.variant().clone(),
    };
    if !wanted.accepts(&got) {
        return Err(Error::NoPlatform { wanted: wanted.to_string(), reference: name, available: got.to_string() });
    }
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Corrupt(format!(
            "{name}: the config lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let jobs: Vec<LayerJob> = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .zip(compressions)
        .map(|((l, d), c)| LayerJob {
            diff_id: d.clone(),
            digest: Some(l.digest.clone()),
            size: Some(l.size),
            compression: c,
        })
        .collect();
    for j in &jobs {
        if !super::reference::is_digest(&j.diff_id) {
            return Err(Error::Invalid(format!("{name}: invalid diff ID {:?} in the config", j.diff_id)));
        }
    }
    let present = jobs.iter().filter(|j| store.has_layer(&j.diff_id)).count();
    let fetched_layers = ingest_all(
        &store,
        &jobs,
        |job| {
            let digest = job.digest.as_deref().unwrap_or_default();
            registry.blob(digest, &format!("layer {} of {name}", short(digest)))
        },
        &progress,
    )?;

    let id = manifest.config.digest.clone();
    store.put_blob(&fetched.digest, &fetched.bytes)?;
    store.put_blob(&id, &config_bytes)?;
    let unchanged =
        store.find(&name).is_ok_and(|rec| rec.id == id && rec.manifest_digest.as_deref() == Some(&fetched.digest));
    if !unchanged {
        let record = ImageRecord {
            id: id.clone(),
            manifest_digest: Some(fetched.digest.clone()),
            layers: jobs.iter().map(|j| j.diff_id.clone()).collect(),
            size: manifest.layers.iter().map(|l| l.size).sum(),
            created: config.created().clone(),
            added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            names: Vec::new(),
        };
        store.add_image(&record, std::slice::from_ref(&name))?;
    }
    progress.line(&format!("{name}: {} ({fetched_layers} layers fetched, {present} present)", fetched.digest));
    Ok(Pulled { id, reference: name, manifest_digest: fetched.digest, fetched: fetched_layers, present })
}

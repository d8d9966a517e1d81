//! Volumes: `-v HOST:CTR[:ro|rw]`, `-v NAME:CTR`, `--tmpfs PATH[:OPTS]` and `--mount` in Docker's
//! syntax, all parsed into one [`VolumeMount`] list in the container's spec (so they survive a
//! supervisor restart and `inspect` shows them), and the named volumes' store: one directory per
//! volume, `ROOT/volumes/NAME/_data`, as Docker's local driver lays them out.
//!
//! The mount targets are created and resolved by the core inside the container root
//! (`container::rootfs`, `safepath`): a planted symlink is followed as the container sees it,
//! never out to the host.
use std::path::{Path, PathBuf};

use crate::image::store::Lock;
use serde::{Deserialize, Serialize};

use super::spec::InvalidSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host directory or file, bound (rbind, private).
    Bind,
    /// A named volume: `ROOT/volumes/NAME/_data`, created on first use.
    Volume,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// The host path (bind), the volume's name (volume); empty for a tmpfs.
    #[serde(default)]
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub readonly: bool,
    /// A tmpfs's mount options, already checked: `size=BYTES`, `mode=OCTAL`, exec/suid/dev flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn bad(s: impl Into<String>) -> String {
    s.into()
}

/// `-v SRC:CTR[:ro|rw]`: SRC absolute is a bind of the host path, else the name of a volume.
pub fn parse_volume_flag(s: &str) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [src, ctr] => (*src, *ctr, ""),
        [src, ctr, opts] => (*src, *ctr, *opts),
        _ => return Err(bad(format!("-v {s:?}: expected HOST-PATH:CONTAINER-PATH[:ro|rw] or NAME:CONTAINER-PATH"))),
    };
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            _ => return Err(bad(format!("-v {s:?}: unknown option {o:?} (ro or rw)"))),
        }
    }
    let kind = if source.starts_with('/') { MountKind::Bind } else { MountKind::Volume };
    let m = VolumeMount { kind, source: source.into(), target: target.into(), readonly, options: vec![] };
    check(&m).map_err(|e| format!("-v {s:?}: {e}"))?;
    Ok(m)
}

/// `--tmpfs PATH[:size=64m,mode=1777,ro,exec,...]`. Docker's defaults: nosuid, nodev, noexec.
pub fn parse_tmpfs_flag(s: &str) -> Result<VolumeMount, String> {
    let (target, opts) = s.split_once(':').unwrap_or((s, ""));
    let m =
        tmpfs(target, opts.split(',').filter(|o| !o.is_empty()), false).map_err(|e| format!("--tmpfs {s:?}: {e}"))?;
    check(&m).map_err(|e| format!("--tmpfs {s:?}: {e}"))?;
    Ok(m)
}

fn tmpfs<'a>(target: &str, opts: impl Iterator<Item = &'a str>, readonly: bool) -> Result<VolumeMount, String> {
    let mut flags = [("suid", false), ("dev", false), ("exec", false)];
    let (mut size, mut mode, mut readonly) = (None, None, readonly);
    for o in opts {
        match o.split_once('=') {
            Some(("size", v)) => size = Some(crate::cgroup::parse_size(v).map_err(|e| format!("size={v}: {e}"))?),
            Some(("mode", v)) => {
                u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("mode={v}: expected an octal mode such as 1777"))?;
                mode = Some(v.to_string());
            }
            None if o == "ro" || o == "rw" => readonly = o == "ro",
            None => match flags.iter_mut().find(|(name, _)| o == *name || o.strip_prefix("no") == Some(name)) {
                Some(slot) => slot.1 = !o.starts_with("no"),
                None => {
                    return Err(format!(
                        "unknown tmpfs option {o:?} (size=, mode=, ro, rw, [no]exec, [no]suid, [no]dev)"
                    ))
                }
            },
            Some(_) => {
                return Err(format!("unknown tmpfs option {o:?} (size=, mode=, ro, rw, [no]exec, [no]suid, [no]dev)"))
            }
        }
    }
    let mut options: Vec<String> =
        flags.iter().map(|(name, on)| if *on { name.to_string() } else { format!("no{name}") }).collect();
    options.extend(size.map(|b| format!("size={b}")));
    options.push(format!("mode={}", mode.unwrap_or_else(|| "1777".into())));
    Ok(VolumeMount { kind: MountKind::Tmpfs, source: String::new(), target: target.into(), readonly, options })
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...,readonly[,tmpfs-size=..,tmpfs-mode=..]`.
pub fn parse_mount_flag(s: &str) -> Result<VolumeMount, String> {
    let err = |e: String| format!("--mount {s:?}: {e}");
    let (mut kind, mut source, mut target, mut readonly, mut tmpfs_opts) = (None, None, None, false, Vec::new());
    for field in s.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (k, v) {
            ("type", Some(t)) => {
                kind = Some(match t {
                    "bind" => MountKind::Bind,
                    "volume" => MountKind::Volume,
                    "tmpfs" => MountKind::Tmpfs,
                    _ => return Err(err(format!("type {t:?} is not bind, volume or tmpfs"))),
                })
            }
            ("source" | "src", Some(v)) => source = Some(v.to_string()),
            ("target" | "destination" | "dst", Some(v)) => target = Some(v.to_string()),
            ("readonly" | "ro", None | Some("true" | "1")) => readonly = true,
            ("readonly" | "ro", Some("false" | "0")) => readonly = false,
            ("tmpfs-size", Some(v)) => tmpfs_opts.push(format!("size={v}")),
            ("tmpfs-mode", Some(v)) => tmpfs_opts.push(format!("mode={v}")),
            _ => return Err(err(format!("unknown field {field:?}"))),
        }
    }
    let kind = kind.ok_or_else(|| err("no type= (bind, volume or tmpfs)".into()))?;
    let target = target.ok_or_else(|| err("no target=".into()))?;
    let m = match kind {
        MountKind::Tmpfs if source.is_some() => return Err(err("a tmpfs takes no source".into())),
        MountKind::Tmpfs => tmpfs(&target, tmpfs_opts.iter().map(String::as_str), readonly).map_err(err)?,
        _ if !tmpfs_opts.is_empty() => return Err(err("tmpfs-size/tmpfs-mode need type=tmpfs".into())),
        _ => {
            let source = source.ok_or_else(|| err("no source=".into()))?;
            if kind == MountKind::Bind && !source.starts_with('/') {
                return Err(err(format!("bind source {source:?} must be an absolute path")));
            }
            VolumeMount { kind, source, target, readonly, options: vec![] }
        }
    };
    check(&m).map_err(err)?;
    Ok(m)
}

/// What holds without looking at the host: the target, the volume name.
fn check(m: &VolumeMount) -> Result<(), String> {
    if !m.target.starts_with('/') || m.target.trim_matches('/').is_empty() {
        return Err(format!("container path {:?} must be an absolute path below /", m.target));
    }
    if m.target.contains('\0') || m.source.contains('\0') {
        return Err("paths must not contain NUL bytes".into());
    }
    if m.kind == MountKind::Volume {
        validate_volume_name(&m.source)?;
    }
    Ok(())
}

pub fn validate_volume_name(name: &str) -> Result<(), String> {
    crate::container::name::validate(name).map_err(|_| {
        format!(
            "invalid volume name {name:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,63}} (a host path must be absolute)"
        )
    })
}

/// The supervisor's check of a spec's mounts, on the host that will run it: a bind's source must
/// exist (Docker's `-v` would create it; `--mount` refuses, and so does engine, so that a typo
/// never makes a directory as root), two mounts may not share a target.
pub fn validate(mounts: &[VolumeMount]) -> Result<(), InvalidSpec> {
    let mut seen = std::collections::HashSet::new();
    for m in mounts {
        check(m).map_err(InvalidSpec)?;
        if m.kind == MountKind::Bind {
            if let Err(e) = std::fs::metadata(&m.source) {
                return Err(InvalidSpec(format!("bind source {}: {e}", m.source)));
            }
        }
        if !seen.insert(m.target.trim_end_matches('/')) {
            return Err(InvalidSpec(format!("{} is mounted twice", m.target)));
        }
    }
    Ok(())
}

pub fn volumes_dir(root: &Path) -> PathBuf {
    root.join("volumes")
}

/// Where a named volume's data lives.
pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    volumes_dir(root).join(name).join("_data")
}

/// Creates the volume if it does not exist yet (as `-v NAME:CTR` does); its data directory.
pub fn create(root: &Path, name: &str) -> Result<PathBuf, String> {
    validate_volume_name(name)?;
    let data = data_dir(root, name);
    std::fs::create_dir_all(&data).map_err(|e| format!("creating volume {name} ({}): {e}", data.display()))?;
    Ok(data)
}

pub fn list(root: &Path) -> Result<Vec<String>, String> {
    let dir = volumes_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| validate_volume_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The containers (running or not, as Docker counts them) whose spec names the volume.
pub fn users(root: &Path, name: &str) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Record {
        spec: super::spec::ContainerSpec,
    }
    let dir = root.join("containers");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut users = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if file.starts_with('.') || !file.ends_with(".json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(e.path()) else { continue };
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else { continue };
        if record.spec.volumes.iter().any(|m| m.kind == MountKind::Volume && m.source == name) {
            users.push(record.spec.name);
        }
    }
    users.sort();
    Ok(users)
}

/// ROOT/volumes/.lock (not a volume name). A start that names volumes holds it shared from
/// before its record is on disk until its volumes are made; `volume rm` holds it exclusive while
/// it looks for users and removes. So rm never removes what a start is about to mount, and a
/// start after the rm makes the volume anew.
pub fn lock(root: &Path, exclusive: bool) -> Result<Lock, String> {
    let dir = volumes_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(".lock");
    Lock::acquire(&path, if exclusive { libc::LOCK_EX } else { libc::LOCK_SH })
        .map_err(|e| format!("locking {}: {e}", path.display()))
}

/// Removes a volume and its data, unless a container uses it.
pub fn remove(root: &Path, name: &str) -> Result<(), String> {
    validate_volume_name(name)?;
    let dir = volumes_dir(root).join(name);
    if !dir.is_dir() {
        return Err(format!("no such volume: {name}"));
    }
    let _lock = lock(root, true)?;
    let users = users(root, name)?;
    if !users.is_empty() {
        return Err(format!("volume {name} is in use by container {}: remove it first", users.join(", ")));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing volume {name} ({}): {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_docker_spells_them() {
        let m = parse_volume_flag("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str(), m.readonly),
            (MountKind::Bind, "/srv/data", "/data", true)
        );
        assert_eq!(parse_volume_flag("cache:/c").unwrap().kind, MountKind::Volume);
        for bad in ["/a", "rel/x:/c", "/a:c", "/a:/", "/a:/b:rx", "a:b:c:d", "../x:/c"] {
            assert!(parse_volume_flag(bad).is_err(), "{bad}");
        }
        let t = parse_tmpfs_flag("/run:size=64m,mode=755,exec").unwrap();
        assert_eq!(t.options, ["nosuid", "nodev", "exec", "size=67108864", "mode=755"]);
        assert!(parse_tmpfs_flag("/run:size=lots").is_err() && parse_tmpfs_flag("/run:mode=999").is_err());
        let m = parse_mount_flag("type=bind,source=/srv,target=/s,readonly").unwrap();
        assert_eq!((m.kind, m.readonly), (MountKind::Bind, true));
        let t = parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=1m").unwrap();
        assert!(t.options.contains(&"size=1048576".to_string()));
        for bad in
            ["type=bind,target=/s", "type=nfs,source=x,target=/s", "type=volume,source=v", "type=bind,src=x,dst=/s"]
        {
            assert!(parse_mount_flag(bad).is_err(), "{bad}");
        }
    }
}

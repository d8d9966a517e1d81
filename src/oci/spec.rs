//! `spec [--bundle DIR] [--rootless]`: writes a default config.json into the bundle, runc's: `sh`
//! on a terminal, a read-only `rootfs`, the usual mounts, masked and read-only paths, and a
//! device rule denying everything not listed. `--rootless` maps the caller's ids in a user
//! namespace and keeps the host's network (as runc's).
use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::error::{OciError, Result};
use super::SPEC_VERSION;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// A configuration for a container run by an unprivileged user.
    #[arg(long)]
    rootless: bool,
}

pub fn default_spec(rootless: bool) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    let mut linux = json!({
        "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
        "namespaces": [],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                        "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    if rootless {
        // The host's network (no user-owned veth), sysfs bound from the host, no gid= on devpts
        // (the group may not be mapped), no cgroup limits (none delegated).
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(json!({"type": "user"}));
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        if let Some(obj) = linux.as_object_mut() {
            obj.remove("resources");
        }
        for m in &mut mounts {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            } else if m["destination"] == "/dev/pts" {
                if let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|o| o.as_str().is_some_and(|s| !s.starts_with("gid=")));
                }
            }
        }
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    linux["namespaces"] = Value::Array(namespaces);
    json!({
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true,
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "engine",
        "mounts": mounts,
        "linux": linux,
    })
}

pub fn run(args: Args) -> Result<i32> {
    let path = args.bundle.join("config.json");
    let text = serde_json::to_string_pretty(&default_spec(args.rootless))
        .map_err(|e| OciError::Other(format!("encoding the default config.json: {e}")))?;
    // create_new: never overwrite a config someone wrote (runc refuses the same way).
    let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(OciError::Other(format!("{} exists: remove it first", path.display())))
        }
        Err(e) => return Err(OciError::io(format!("creating {}", path.display()))(e)),
    };
    f.write_all(format!("{text}\n").as_bytes()).map_err(OciError::io(format!("writing {}", path.display())))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_and_rootless_parse_and_pass_our_checks() {
        for rootless in [false, true] {
            let text = super::default_spec(rootless).to_string();
            let spec = crate::oci::config::parse(text.as_bytes()).unwrap();
            crate::oci::config::check(&spec).unwrap();
            let ns: Vec<String> = spec
                .linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .map(|n| n.typ().to_string())
                .collect();
            assert_eq!(ns.contains(&"user".to_string()), rootless, "{ns:?}");
            assert_eq!(ns.contains(&"net".to_string()), !rootless, "{ns:?}");
        }
    }
}

//! What to run: the container's description as the Docker-style CLI sends it and the supervisor
//! validates it; `to_oci` translates it into the core's one description, the OCI runtime Spec.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    pub name: String,
    /// Absolute path of the root filesystem directory (the CLI resolves it). With `image` set:
    /// the directory of that name the CLI also found, used only if the store has no such image
    /// (empty when there is none, and cleared once the image is resolved).
    pub rootfs: PathBuf,
    /// An image reference or ID given where a ROOTFS stands (`busybox`, `127.0.0.1:5000/x:tag`,
    /// `sha256:ab12...`), resolved by the supervisor in its store; None: `rootfs` is the root.
    pub image: Option<String>,
    /// Empty with an image: the image's Entrypoint + Cmd (given: Entrypoint + these, as Docker).
    pub command: Vec<String>,
    /// `--entrypoint`: replaces the image's Entrypoint and drops its Cmd (Docker's rule);
    /// `--entrypoint ""` runs the given command alone.
    pub entrypoint: Option<String>,
    /// `--user` (else the image's User): uid[:gid] or name[:group], looked up in the container's
    /// /etc/passwd and /etc/group.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `KEY=VALUE` entries added to (and overriding) the default environment.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub nice: Option<i32>,
    /// Memory limits for the kernel monitor (or the cgroup fallback), in MiB.
    pub soft_mib: Option<u64>,
    pub hard_mib: Option<u64>,
    /// `--soft-signal`: the signal sent to the command when RSS crosses `soft_mib` (once per
    /// crossing, re-armed below 90 % of it).
    pub soft_signal: Option<i32>,
    /// cgroup limits (`--memory` in bytes, `--cpus`, `--pids-limit`, `--cpuset-cpus`).
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub net: NetMode,
    /// A static address on the bridge (`--ip`); the next free one otherwise.
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--security-opt no-new-privileges`: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=unconfined`: no default seccomp profile.
    pub seccomp_unconfined: bool,
    /// `--read-only`: the container's root is mounted read-only (/dev, /dev/shm, /proc and the
    /// /etc files keep their own mounts, as in Docker).
    pub read_only: bool,
    /// `--log-opt max-size=.. --log-opt max-file=..`: how the log rotates (recorded, so whoever
    /// starts the container again keeps rotating it the same way).
    pub log: crate::supervisor::logs::rotate::LogConfig,
    /// `-v`, `--tmpfs` and `--mount`, in the order given (see [`super::volumes`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<super::volumes::VolumeMount>,
    /// `-t`: the command's stdio is a pty opened inside the container (the supervisor holds
    /// the master, see `supervisor::console`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// `-i`: the command's stdin stays open for `run`/`attach` clients (a pipe, or the pty).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// `--restart`: what the supervisor does when the container ends (see [`super::restart`]).
    pub restart: super::restart::RestartPolicy,
    /// `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]`: published ports (DNAT from the host, see
    /// [`crate::net::firewall`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::net::PortMapping>,
    /// `--dns`: the nameservers of the container's /etc/resolv.conf (empty: the host's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// Only loopback.
    None,
    /// A veth pair into the supervisor's bridge (Docker's default).
    #[default]
    Bridge,
}

impl ContainerSpec {
    /// The CPUs of `--cpuset-cpus`, also used for sched_setaffinity.
    pub fn cpu_list(&self) -> Result<Option<Vec<usize>>, InvalidSpec> {
        self.cpuset_cpus
            .as_deref()
            .map(|s| crate::cgroup::parse_cpuset(s).map_err(|e| InvalidSpec(format!("--cpuset-cpus {s:?}: {e}"))))
            .transpose()
    }
}

/// `--soft-signal`: a name (TERM, SIGUSR1, usr1) or a number. KILL and STOP are refused: the hard
/// limit is the kill, and a stopped process cannot save anything.
pub fn parse_soft_signal(s: &str) -> Result<i32, String> {
    use std::str::FromStr;
    let sig = match s.parse::<i32>() {
        Ok(n) => nix::sys::signal::Signal::try_from(n).map_err(|_| format!("--soft-signal {s}: no such signal"))?,
        Err(_) => {
            let upper = s.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
            nix::sys::signal::Signal::from_str(&name).map_err(|_| format!("--soft-signal {s}: no such signal"))?
        }
    };
    if matches!(sig, nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGSTOP) {
        return Err(format!("--soft-signal {s}: {sig} cannot be caught; the hard limit (--hard-mib) is the kill"));
    }
    Ok(sig as i32)
}

/// A spec that cannot be run, with the sentence the user sees.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// Docker's floor for a memory limit: below it the init and a shell cannot even start, and the
/// user would see an OOM kill during setup instead of a sentence.
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
const MIB: u64 = 1 << 20;
/// The largest description a container may have (command, environment, names), as JSON: it
/// travels to the init in one message on the init channel.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The one name rule ([`crate::container::name`]), with this module's error type.
pub fn validate_name(name: &str) -> Result<(), InvalidSpec> {
    crate::container::name::validate(name).map_err(|e| InvalidSpec(e.to_string()))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 64 bytes
/// (the kernel's limit for a UTS host name).
fn validate_hostname(host: &str) -> Result<(), InvalidSpec> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() <= 64 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(InvalidSpec(format!("invalid hostname {host:?}")))
    }
}

impl ContainerSpec {
    /// What the CLI checks before sending: an image may bring the command.
    pub fn validate_request(&self) -> Result<(), InvalidSpec> {
        if self.image.is_some() && self.command.is_empty() {
            let probe = ContainerSpec { command: vec!["/image-command".into()], ..self.clone() };
            return probe.validate();
        }
        self.validate()
    }

    pub fn validate(&self) -> Result<(), InvalidSpec> {
        validate_name(&self.name)?;
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(InvalidSpec("no command given".into()));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(InvalidSpec("command arguments must not contain NUL bytes".into()));
        }
        if self.image.is_none() {
            if !self.rootfs.is_absolute() {
                return Err(InvalidSpec(format!("rootfs {} is not an absolute path", self.rootfs.display())));
            }
            match std::fs::metadata(&self.rootfs) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(InvalidSpec(format!("rootfs {} is not a directory", self.rootfs.display()))),
                Err(e) => return Err(InvalidSpec(format!("rootfs {}: {e}", self.rootfs.display()))),
            }
        }
        if let Some(u) = &self.user {
            if u.is_empty() || u.contains(['\0', '\n']) || u.split(':').count() > 2 {
                return Err(InvalidSpec(format!("invalid --user {u:?}: expected user[:group] (names or numbers)")));
            }
        }
        if let Some(h) = &self.hostname {
            validate_hostname(h)?;
        }
        for kv in &self.env {
            let key = kv.split_once('=').map(|(k, _)| k).unwrap_or("");
            let key_ok = !key.is_empty()
                && !key.as_bytes()[0].is_ascii_digit()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !key_ok || kv.contains('\0') {
                return Err(InvalidSpec(format!("invalid --env {kv:?}: expected KEY=VALUE")));
            }
        }
        if let Some(w) = &self.workdir {
            if !w.starts_with('/') {
                return Err(InvalidSpec(format!("--workdir {w:?} must be an absolute path")));
            }
        }
        if let Some(n) = self.nice {
            if !(-20..=19).contains(&n) {
                return Err(InvalidSpec(format!("--nice {n} is out of range (-20..19)")));
            }
        }
        for (flag, mib) in [("--soft-mib", self.soft_mib), ("--hard-mib", self.hard_mib)] {
            if mib.is_some_and(|m| m.checked_mul(MIB).is_none()) {
                return Err(InvalidSpec(format!("{flag} {} is too large", mib.unwrap_or_default())));
            }
        }
        if self.hard_mib.is_some_and(|h| h * MIB < MIN_MEMORY_BYTES) {
            return Err(InvalidSpec("--hard-mib must be at least 6 (Docker's minimum memory limit is 6 MiB)".into()));
        }
        if self.memory.is_some_and(|m| m < MIN_MEMORY_BYTES) {
            return Err(InvalidSpec("--memory must be at least 6m (Docker's minimum memory limit is 6 MiB)".into()));
        }
        match (self.soft_mib, self.hard_mib) {
            (Some(s), Some(h)) if s > h => {
                return Err(InvalidSpec(format!("--soft-mib {s} is above --hard-mib {h}")));
            }
            _ => {}
        }
        if let Some(sig) = self.soft_signal {
            if self.soft_mib.is_none() {
                return Err(InvalidSpec(
                    "--soft-signal needs --soft-mib: the signal is sent when RSS crosses it".into(),
                ));
            }
            parse_soft_signal(&sig.to_string()).map_err(InvalidSpec)?;
        }
        if self.ip.is_some() && self.net == NetMode::None {
            return Err(InvalidSpec("--ip needs --net bridge".into()));
        }
        if self.net == NetMode::None && (!self.ports.is_empty() || !self.dns.is_empty()) {
            let flag = if self.ports.is_empty() { "--dns" } else { "-p" };
            return Err(InvalidSpec(format!(
                "{flag} needs --net bridge (a container with --net none has only loopback)"
            )));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(q) = self.ports[..i].iter().find(|q| q.overlaps(p)) {
                return Err(InvalidSpec(format!("-p {} and -p {} publish the same host port", q.flag(), p.flag())));
            }
        }
        if self.cpus.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return Err(InvalidSpec("--cpus must be a positive number".into()));
        }
        if self.memory == Some(0) || self.pids_limit == Some(0) {
            return Err(InvalidSpec("--memory and --pids-limit must be greater than 0".into()));
        }
        self.cpu_list()?;
        super::volumes::validate(&self.volumes)?;
        let size = serde_json::to_vec(self).map_or(usize::MAX, |json| json.len());
        if size > MAX_SPEC_BYTES {
            return Err(InvalidSpec(format!(
                "the container's description (command, environment, options) is {size} bytes; at most {MAX_SPEC_BYTES} are allowed"
            )));
        }
        Ok(())
    }

    /// Merges an image's config in, as Docker does: `--entrypoint` replaces the image's
    /// Entrypoint (and drops its Cmd), a command given replaces its Cmd; the image's Env comes
    /// first so `-e` overrides it by key; WorkingDir and User apply unless `-w`/`--user` were given.
    pub fn apply_image(&mut self, image: &crate::image::ImageConfig, reference: &str) -> Result<(), InvalidSpec> {
        let entrypoint = match &self.entrypoint {
            Some(e) if e.is_empty() => Vec::new(),
            Some(e) => vec![e.clone()],
            None => image.entrypoint.clone(),
        };
        let cmd = match (self.command.is_empty(), self.entrypoint.is_some()) {
            (false, _) => std::mem::take(&mut self.command),
            (true, true) => Vec::new(),
            (true, false) => image.cmd.clone(),
        };
        self.command = entrypoint.into_iter().chain(cmd).collect();
        if self.command.is_empty() {
            return Err(InvalidSpec(format!("image {reference} has no Entrypoint or Cmd: give a command")));
        }
        self.env = image.env.iter().cloned().chain(std::mem::take(&mut self.env)).collect();
        if self.workdir.is_none() && !image.working_dir.is_empty() {
            self.workdir = Some(image.working_dir.clone());
        }
        if self.user.is_none() && !image.user.is_empty() {
            self.user = Some(image.user.clone());
        }
        Ok(())
    }

    /// `--soft-mib` in bytes (validated not to overflow).
    pub fn soft_bytes(&self) -> Option<u64> {
        self.soft_mib.map(|m| m.saturating_mul(MIB))
    }

    /// `--hard-mib` in bytes (validated not to overflow).
    pub fn hard_bytes(&self) -> Option<u64> {
        self.hard_mib.map(|m| m.saturating_mul(MIB))
    }

    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
    }

    /// The command's environment: defaults first, then `--env` entries overriding by key.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("HOSTNAME".into(), self.hostname().into()),
            ("HOME".into(), "/root".into()),
        ];
        for kv in &self.env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match env.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => env.push((k.to_string(), v.to_string())),
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec { name: "a".into(), rootfs: "/".into(), command: vec!["/bin/true".into()], ..Default::default() }
    }

    #[test]
    fn env_overrides_defaults_by_key() {
        let mut s = spec();
        s.env = vec!["PATH=/x".into(), "FOO=bar=baz".into()];
        let env = s.environment();
        assert_eq!(env[0], ("PATH".into(), "/x".into()));
        assert!(env.contains(&("FOO".into(), "bar=baz".into())));
        assert!(env.contains(&("HOSTNAME".into(), "a".into())));
    }

    #[test]
    fn image_config_merges_as_docker_does() {
        let image = crate::image::ImageConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo hi".into()],
            env: vec!["PATH=/img".into(), "A=1".into()],
            working_dir: "/srv".into(),
            user: "app".into(),
            ..Default::default()
        };
        let mut s = ContainerSpec { name: "a".into(), image: Some("x".into()), ..Default::default() };
        s.env = vec!["A=2".into()];
        s.apply_image(&image, "x").unwrap();
        assert_eq!(s.command, ["/bin/sh", "-c", "echo hi"]);
        assert!(s.environment().contains(&("A".into(), "2".into())));
        assert!(s.environment().contains(&("PATH".into(), "/img".into())));
        assert_eq!((s.workdir.as_deref(), s.user.as_deref()), (Some("/srv"), Some("app")));
        let mut s =
            ContainerSpec { command: vec!["echo bye".into()], workdir: Some("/w".into()), ..Default::default() };
        s.apply_image(&image, "x").unwrap();
        assert_eq!((s.command.join(" "), s.workdir.as_deref()), ("/bin/sh -c echo bye".into(), Some("/w")));
        let mut s = ContainerSpec { entrypoint: Some("/bin/true".into()), ..Default::default() };
        s.apply_image(&image, "x").unwrap();
        assert_eq!(s.command, ["/bin/true"], "--entrypoint drops the image's Cmd");
        let mut s = ContainerSpec { entrypoint: Some(String::new()), ..Default::default() };
        assert!(s.apply_image(&image, "x").is_err(), "nothing left to run");
    }

    #[test]
    fn bad_specs_are_refused() {
        let cases: Vec<fn(&mut ContainerSpec)> = vec![
            |s| s.command.clear(),
            |s| s.rootfs = "relative".into(),
            |s| s.rootfs = "/nonexistent-rootfs".into(),
            |s| s.env = vec!["=x".into()],
            |s| s.env = vec!["NOEQUALS".into()],
            |s| s.workdir = Some("rel".into()),
            |s| s.nice = Some(20),
            |s| s.hostname = Some("bad_host".into()),
            |s| {
                s.soft_mib = Some(10);
                s.hard_mib = Some(8)
            },
            |s| s.hard_mib = Some(17_592_186_044_417),
            |s| s.soft_mib = Some(u64::MAX),
            |s| s.hard_mib = Some(5),
            |s| s.memory = Some((6 << 20) - 1),
            |s| s.soft_signal = Some(libc::SIGTERM),
            |s| {
                s.soft_mib = Some(8);
                s.soft_signal = Some(libc::SIGKILL)
            },
            |s| {
                s.soft_mib = Some(8);
                s.soft_signal = Some(0)
            },
            |s| s.env = vec![format!("BIG={}", "x".repeat(MAX_SPEC_BYTES))],
        ];
        for (i, f) in cases.into_iter().enumerate() {
            let mut s = spec();
            f(&mut s);
            assert!(s.validate().is_err(), "case {i}");
        }
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn soft_signal_names_and_numbers() {
        for (s, want) in [("TERM", 15), ("SIGTERM", 15), ("usr1", libc::SIGUSR1), ("15", 15), ("SIGINT", 2)] {
            assert_eq!(parse_soft_signal(s), Ok(want), "{s}");
        }
        for bad in ["KILL", "9", "STOP", "0", "FOO", "65", ""] {
            assert!(parse_soft_signal(bad).is_err(), "{bad}");
        }
        let mut s = spec();
        s.soft_mib = Some(8);
        s.soft_signal = Some(libc::SIGUSR1);
        assert!(s.validate().is_ok());
        s.soft_mib = None;
        assert_eq!(
            s.validate().unwrap_err().0,
            "--soft-signal needs --soft-mib: the signal is sent when RSS crosses it"
        );
    }
}

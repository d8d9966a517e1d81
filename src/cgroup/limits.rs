//! What a container may use (Limits), what it used (Stats), and the checks a Limits
//! value passes before any directory is created, so a bad flag leaves nothing behind.

use super::parse::{format_cpuset, parse_cpuset};
use super::{fs, CgroupError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Flag names used in error messages, so the user learns which option to change.
pub const FLAG_MEMORY: &str = "--memory/--hard-mib";
pub const FLAG_MEMORY_HIGH: &str = "--soft-mib";
pub const FLAG_CPUS: &str = "--cpus";
pub const FLAG_PIDS: &str = "--pids-limit";
pub const FLAG_CPUSET: &str = "--cpuset-cpus";

/// pids.max of a container started without --pids-limit (podman's default): enough for any
/// ordinary workload, and a fork bomb stops there instead of at the host's or the
/// supervisor's limit.
pub const DEFAULT_PIDS_MAX: u64 = 2048;

/// CFS period used for --cpus, as Docker does: quota = cpus × 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Hard limit in bytes; swap is included where the host accounts it.
    pub memory_max: Option<u64>,
    /// Soft limit in bytes (v2 memory.high, v1 memory.soft_limit_in_bytes).
    pub memory_high: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_max: Option<u64>,
    /// A CPU list such as "0-2,4".
    pub cpuset_cpus: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub memory_current: u64,
    /// None where the kernel keeps no peak (v2 before 5.19).
    pub memory_peak: Option<u64>,
    pub cpu_usage_ns: u64,
    pub pids_current: u64,
}

/// Limits after checking, in the units the kernel files take.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub cpu_quota_us: Option<u64>,
    pub pids_max: Option<u64>,
    /// Normalised CPU list.
    pub cpuset: Option<String>,
}

impl Checked {
    /// The controller each limit needs (same names in v1 and v2), with the flag to name
    /// when the host lacks it.
    pub fn controllers(&self) -> Vec<(&'static str, &'static str)> {
        let mut r = Vec::new();
        if self.memory_max.is_some() {
            r.push(("memory", FLAG_MEMORY));
        }
        if self.memory_high.is_some() {
            r.push(("memory", FLAG_MEMORY_HIGH));
        }
        if self.cpu_quota_us.is_some() {
            r.push(("cpu", FLAG_CPUS));
        }
        if self.pids_max.is_some() {
            r.push(("pids", FLAG_PIDS));
        }
        if self.cpuset.is_some() {
            r.push(("cpuset", FLAG_CPUSET));
        }
        r
    }
}

fn invalid(flag: &'static str, value: impl ToString, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidValue { flag, value: value.to_string(), reason: reason.into() }
}

/// Checks values against each other and against this host's CPUs.
pub fn check(l: &Limits) -> Result<Checked, CgroupError> {
    if l.memory_max == Some(0) {
        return Err(invalid(FLAG_MEMORY, 0, "must be greater than 0"));
    }
    if l.memory_high == Some(0) {
        return Err(invalid(FLAG_MEMORY_HIGH, 0, "must be greater than 0"));
    }
    if let (Some(max), Some(high)) = (l.memory_max, l.memory_high) {
        if high > max {
            return Err(invalid(FLAG_MEMORY_HIGH, high, format!("soft limit is above the hard limit ({max} bytes)")));
        }
    }
    if l.pids_max == Some(0) {
        return Err(invalid(FLAG_PIDS, 0, "must be at least 1"));
    }
    // Read only when needed: a host without this file can still run unlimited containers.
    let online = if l.cpus.is_some() || l.cpuset_cpus.is_some() { online_cpus()? } else { Vec::new() };
    let cpu_quota_us = match l.cpus {
        None => None,
        Some(c) if !c.is_finite() || c < super::parse::MIN_CPUS => {
            return Err(invalid(FLAG_CPUS, c, "must be at least 0.01"))
        }
        Some(c) if c > online.len() as f64 => {
            return Err(invalid(FLAG_CPUS, c, format!("this host has {} CPUs", online.len())))
        }
        Some(c) => Some((c * CPU_PERIOD_US as f64).round() as u64),
    };
    let cpuset = match &l.cpuset_cpus {
        None => None,
        Some(s) => {
            let cpus = parse_cpuset(s)?;
            if let Some(bad) = cpus.iter().find(|c| !online.contains(c)) {
                return Err(invalid(
                    FLAG_CPUSET,
                    s,
                    format!("CPU {bad} is not online (online: {})", format_cpuset(&online)),
                ));
            }
            Some(format_cpuset(&cpus))
        }
    };
    Ok(Checked { memory_max: l.memory_max, memory_high: l.memory_high, cpu_quota_us, pids_max: l.pids_max, cpuset })
}

fn online_cpus() -> Result<Vec<usize>, CgroupError> {
    let path = Path::new("/sys/devices/system/cpu/online");
    let s = fs::read(path)?;
    parse_cpuset(&s).map_err(|_| CgroupError::Parse { path: path.into(), content: s })
}

/// Writes one limit file, refusing clearly when the file (controller or kernel feature)
/// is missing, and naming the flag when the kernel rejects the value.
pub fn write_limit(dir: &Path, file: &str, value: &str, flag: &'static str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(CgroupError::Unsupported {
            flag,
            reason: format!("{} does not exist: this kernel cannot enforce it", path.display()),
        });
    }
    fs::write(&path, value).map_err(|e| match e {
        CgroupError::Write { path, value, source } => CgroupError::Rejected { flag, path, value, source },
        other => other,
    })
}

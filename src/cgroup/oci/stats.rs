//! What `runc events --stats` reports, in the shape of runc's `types.Stats` JSON (types/events.go):
//! containerd's shim and podman decode these field names.

use super::super::{fs, CgroupError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

fn zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OciStats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Nanoseconds, as every field here.
    #[serde(default, skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// u64::MAX when unlimited, as runc reports it.
    pub limit: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "zero")]
    pub current: u64,
    /// 0 when unlimited (runc's omitempty).
    #[serde(default, skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Nanoseconds per USER_HZ tick (cpuacct.stat counts in ticks; USER_HZ is 100 on Linux).
const NS_PER_TICK: u64 = 10_000_000;

fn opt_u64(path: &Path) -> Result<u64, CgroupError> {
    Ok(fs::read_u64_opt(path)?.unwrap_or(0))
}

/// A number, or "max" (v2) / a huge v1 value read as u64::MAX.
fn limit(path: &Path) -> Result<u64, CgroupError> {
    if !path.exists() {
        return Ok(0);
    }
    let s = fs::read(path)?;
    match s.trim() {
        "max" => Ok(u64::MAX),
        t => t.parse().map_err(|_| CgroupError::Parse { path: path.into(), content: s.clone() }),
    }
}

fn flat(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    Ok(fs::read(path)?
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect())
}

fn list(path: &Path) -> Result<Vec<u64>, CgroupError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(fs::read(path)?.split_whitespace().filter_map(|n| n.parse().ok()).collect())
}

/// Hugepage sizes for which the group has files: hugetlb.<size>.<suffix>.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("hugetlb.")?.strip_suffix(suffix).map(String::from))
        .filter(|s| !s.contains('.'))
        .collect();
    v.sort();
    v
}

fn mem_entry(d: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    Ok(MemoryEntry {
        limit: limit(&d.join(format!("{prefix}.limit_in_bytes")))?,
        usage: opt_u64(&d.join(format!("{prefix}.usage_in_bytes")))?,
        max: opt_u64(&d.join(format!("{prefix}.max_usage_in_bytes")))?,
        failcnt: opt_u64(&d.join(format!("{prefix}.failcnt")))?,
    })
}

/// "8:0 Read 4096" lines of a v1 blkio file; the "Total" line is dropped.
fn blkio_v1(path: &Path) -> Result<Vec<BlkioEntry>, CgroupError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(fs::read(path)?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: op.into(),
                value: value.parse().ok()?,
            })
        })
        .collect())
}

pub fn v1(dirs: &BTreeMap<String, std::path::PathBuf>) -> Result<OciStats, CgroupError> {
    let mut s = OciStats::default();
    if let Some(d) = dirs.get("cpuacct") {
        let u = &mut s.cpu.usage;
        u.total = opt_u64(&d.join("cpuacct.usage"))?;
        u.percpu = list(&d.join("cpuacct.usage_percpu"))?;
        u.percpu_kernel = list(&d.join("cpuacct.usage_percpu_sys"))?;
        u.percpu_user = list(&d.join("cpuacct.usage_percpu_user"))?;
        let st = flat(&d.join("cpuacct.stat"))?;
        u.user = st.get("user").copied().unwrap_or(0).saturating_mul(NS_PER_TICK);
        u.kernel = st.get("system").copied().unwrap_or(0).saturating_mul(NS_PER_TICK);
    }
    if let Some(d) = dirs.get("cpu") {
        let st = flat(&d.join("cpu.stat"))?;
        s.cpu.throttling = Throttling {
            periods: st.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: st.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(d) = dirs.get("memory") {
        let m = &mut s.memory;
        m.usage = mem_entry(d, "memory")?;
        m.swap = mem_entry(d, "memory.memsw")?;
        m.kernel = mem_entry(d, "memory.kmem")?;
        m.kernel_tcp = mem_entry(d, "memory.kmem.tcp")?;
        m.raw = flat(&d.join("memory.stat"))?;
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
    }
    if let Some(d) = dirs.get("pids") {
        s.pids.current = opt_u64(&d.join("pids.current"))?;
        s.pids.limit = limit(&d.join("pids.max"))?;
    }
    if s.pids.limit == u64::MAX {
        s.pids.limit = 0;
    }
    if let Some(d) = dirs.get("blkio") {
        s.blkio.io_service_bytes_recursive = blkio_v1(&d.join("blkio.throttle.io_service_bytes_recursive"))?;
        s.blkio.io_serviced_recursive = blkio_v1(&d.join("blkio.throttle.io_serviced_recursive"))?;
    }
    if let Some(d) = dirs.get("hugetlb") {
        for size in hugetlb_sizes(d, ".limit_in_bytes") {
            let h = Hugetlb {
                usage: opt_u64(&d.join(format!("hugetlb.{size}.usage_in_bytes")))?,
                max: opt_u64(&d.join(format!("hugetlb.{size}.max_usage_in_bytes")))?,
                failcnt: opt_u64(&d.join(format!("hugetlb.{size}.failcnt")))?,
            };
            s.hugetlb.insert(size, h);
        }
    }
    Ok(s)
}

pub fn v2(d: &Path) -> Result<OciStats, CgroupError> {
    let mut s = OciStats::default();
    let cpu = flat(&d.join("cpu.stat"))?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
    s.cpu.usage =
        CpuUsage { total: us("usage_usec"), user: us("user_usec"), kernel: us("system_usec"), ..Default::default() };
    s.cpu.throttling = Throttling {
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    };
    if d.join("memory.current").exists() {
        let events = flat(&d.join("memory.events"))?;
        let m = &mut s.memory;
        m.usage = MemoryEntry {
            limit: limit(&d.join("memory.max"))?,
            usage: opt_u64(&d.join("memory.current"))?,
            max: opt_u64(&d.join("memory.peak"))?,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        m.swap = MemoryEntry {
            limit: limit(&d.join("memory.swap.max"))?,
            usage: opt_u64(&d.join("memory.swap.current"))?,
            max: opt_u64(&d.join("memory.swap.peak"))?,
            failcnt: 0,
        };
        m.raw = flat(&d.join("memory.stat"))?;
        m.cache = m.raw.get("file").copied().unwrap_or(0);
    }
    s.pids.current = opt_u64(&d.join("pids.current"))?;
    s.pids.limit = match limit(&d.join("pids.max"))? {
        u64::MAX => 0,
        n => n,
    };
    if d.join("io.stat").exists() {
        for line in fs::read(&d.join("io.stat"))?.lines() {
            let mut it = line.split_whitespace();
            let Some((ma, mi)) = it.next().and_then(|dev| dev.split_once(':')) else { continue };
            let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else { continue };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else { continue };
                let Ok(value) = v.parse() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry { major, minor, op: op.into(), value });
            }
        }
    }
    for size in hugetlb_sizes(d, ".max") {
        let events = flat(&d.join(format!("hugetlb.{size}.events")))?;
        let h = Hugetlb {
            usage: opt_u64(&d.join(format!("hugetlb.{size}.current")))?,
            max: 0,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        s.hugetlb.insert(size, h);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_runcs_field_names() {
        let mut s = OciStats::default();
        s.cpu.usage.total = 5;
        s.cpu.throttling.throttled_periods = 2;
        s.memory.usage.limit = u64::MAX;
        s.pids.current = 1;
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["cpu"]["usage"]["total"], 5);
        assert_eq!(j["cpu"]["usage"]["kernel"], 0);
        assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 2);
        assert_eq!(j["memory"]["usage"]["limit"], u64::MAX);
        assert!(j["memory"]["kernelTCP"].is_object());
        assert!(j["memory"]["usage"].get("usage").is_none(), "omitempty");
        assert_eq!(j["pids"]["current"], 1);
    }

    #[test]
    fn v2_from_files() {
        let t = tempfile::tempdir().unwrap();
        let w = |f: &str, s: &str| std::fs::write(t.path().join(f), s).unwrap();
        w("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n");
        w("memory.current", "4096\n");
        w("memory.max", "max\n");
        w("memory.events", "low 0\nhigh 0\nmax 2\noom 0\noom_kill 0\n");
        w("memory.stat", "anon 1\nfile 2\n");
        w("pids.current", "3\n");
        w("pids.max", "64\n");
        w("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        w("hugetlb.2MB.max", "max\n");
        w("hugetlb.2MB.current", "0\n");
        let s = v2(t.path()).unwrap();
        assert_eq!((s.cpu.usage.total, s.cpu.usage.user, s.cpu.usage.kernel), (10_000, 6_000, 4_000));
        assert_eq!(s.cpu.throttling.throttled_time, 7_000);
        assert_eq!((s.memory.usage.usage, s.memory.usage.limit, s.memory.usage.failcnt), (4096, u64::MAX, 2));
        assert_eq!(s.memory.cache, 2);
        assert_eq!((s.pids.current, s.pids.limit), (3, 64));
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.blkio.io_serviced_recursive[1], BlkioEntry { major: 8, minor: 0, op: "Write".into(), value: 2 });
        assert!(s.hugetlb.contains_key("2MB"));
    }
}

//! `linux.resources` written to a group's files, v1 and v2, as runc writes them.
//!
//! Every value asked for is written or refused with the field's name; the fields runc ignores
//! are ignored here too, and listed at `ignored_v1` / `ignored_v2`. Devices are not here (see
//! devices.rs): they are set at create only, as `runc update` leaves them alone too.

use super::super::limits::write_limit;
use super::super::{fs, CgroupError};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxThrottleDevice};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const F_MEM_LIMIT: &str = "linux.resources.memory.limit";
pub const F_MEM_RESERVATION: &str = "linux.resources.memory.reservation";
pub const F_MEM_SWAP: &str = "linux.resources.memory.swap";
pub const F_MEM_KERNEL_TCP: &str = "linux.resources.memory.kernelTCP";
pub const F_MEM_SWAPPINESS: &str = "linux.resources.memory.swappiness";
pub const F_MEM_OOM: &str = "linux.resources.memory.disableOOMKiller";
pub const F_CPU_SHARES: &str = "linux.resources.cpu.shares";
pub const F_CPU_QUOTA: &str = "linux.resources.cpu.quota";
pub const F_CPU_PERIOD: &str = "linux.resources.cpu.period";
pub const F_CPU_BURST: &str = "linux.resources.cpu.burst";
pub const F_CPU_RT_RUNTIME: &str = "linux.resources.cpu.realtimeRuntime";
pub const F_CPU_RT_PERIOD: &str = "linux.resources.cpu.realtimePeriod";
pub const F_CPU_IDLE: &str = "linux.resources.cpu.idle";
pub const F_CPUS: &str = "linux.resources.cpu.cpus";
pub const F_MEMS: &str = "linux.resources.cpu.mems";
pub const F_PIDS: &str = "linux.resources.pids.limit";
pub const F_BLKIO_WEIGHT: &str = "linux.resources.blockIO.weight";
pub const F_BLKIO_LEAF: &str = "linux.resources.blockIO.leafWeight";
pub const F_BLKIO_WEIGHT_DEV: &str = "linux.resources.blockIO.weightDevice";
pub const F_BLKIO_RBPS: &str = "linux.resources.blockIO.throttleReadBpsDevice";
pub const F_BLKIO_WBPS: &str = "linux.resources.blockIO.throttleWriteBpsDevice";
pub const F_BLKIO_RIOPS: &str = "linux.resources.blockIO.throttleReadIOPSDevice";
pub const F_BLKIO_WIOPS: &str = "linux.resources.blockIO.throttleWriteIOPSDevice";
pub const F_HUGETLB: &str = "linux.resources.hugepageLimits";
pub const F_NET_CLASSID: &str = "linux.resources.network.classID";
pub const F_NET_PRIO: &str = "linux.resources.network.priorities";
pub const F_UNIFIED: &str = "linux.resources.unified";
pub const F_RDMA: &str = "linux.resources.rdma";

/// Fields accepted and not applied on v1, as runc does: memory.kernel (kernel memory
/// accounting limits are deprecated; runc ≥ 1.2 ignores them, and Linux 6.x refuses them).
pub const IGNORED_V1: &[&str] = &["linux.resources.memory.kernel"];
/// Fields accepted and not applied on v2, as runc's fs2 does: v2 has no such knob.
pub const IGNORED_V2: &[&str] = &[
    "linux.resources.memory.kernel",
    F_MEM_KERNEL_TCP,
    F_MEM_SWAPPINESS,
    F_MEM_OOM,
    F_BLKIO_LEAF,
    F_NET_CLASSID,
    F_NET_PRIO,
];

fn invalid(flag: &'static str, value: impl ToString, reason: &str) -> CgroupError {
    CgroupError::InvalidValue { flag, value: value.to_string(), reason: reason.into() }
}

fn has<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// Adds `ctrl` for each field that is set.
fn need<const N: usize>(
    n: &mut Vec<(&'static str, &'static str)>,
    ctrl: &'static str,
    fields: [(bool, &'static str); N],
) {
    n.extend(fields.into_iter().filter(|(set, _)| *set).map(|(_, f)| (ctrl, f)));
}

/// The controller each requested (and not ignored) field needs on v1, with the field to name.
pub fn needs_v1(r: &LinuxResources) -> Vec<(&'static str, &'static str)> {
    let mut n = Vec::new();
    if let Some(m) = r.memory() {
        need(
            &mut n,
            "memory",
            [
                (m.limit().is_some(), F_MEM_LIMIT),
                (m.reservation().is_some(), F_MEM_RESERVATION),
                (m.swap().is_some(), F_MEM_SWAP),
                (m.kernel_tcp().is_some(), F_MEM_KERNEL_TCP),
                (m.swappiness().is_some(), F_MEM_SWAPPINESS),
                (m.disable_oom_killer() == Some(true), F_MEM_OOM),
            ],
        );
    }
    if let Some(c) = r.cpu() {
        need(
            &mut n,
            "cpu",
            [
                (c.shares().is_some(), F_CPU_SHARES),
                (c.quota().is_some(), F_CPU_QUOTA),
                (c.period().is_some(), F_CPU_PERIOD),
                (c.burst().is_some(), F_CPU_BURST),
                (c.realtime_runtime().is_some(), F_CPU_RT_RUNTIME),
                (c.realtime_period().is_some(), F_CPU_RT_PERIOD),
                (c.idle().is_some(), F_CPU_IDLE),
            ],
        );
        if c.cpus().as_deref().is_some_and(|s| !s.is_empty()) {
            n.push(("cpuset", F_CPUS));
        }
        if c.mems().as_deref().is_some_and(|s| !s.is_empty()) {
            n.push(("cpuset", F_MEMS));
        }
    }
    if r.pids().is_some() {
        n.push(("pids", F_PIDS));
    }
    if let Some(b) = r.block_io() {
        need(
            &mut n,
            "blkio",
            [
                (b.weight().is_some(), F_BLKIO_WEIGHT),
                (b.leaf_weight().is_some(), F_BLKIO_LEAF),
                (has(b.weight_device()), F_BLKIO_WEIGHT_DEV),
                (has(b.throttle_read_bps_device()), F_BLKIO_RBPS),
                (has(b.throttle_write_bps_device()), F_BLKIO_WBPS),
                (has(b.throttle_read_iops_device()), F_BLKIO_RIOPS),
                (has(b.throttle_write_iops_device()), F_BLKIO_WIOPS),
            ],
        );
    }
    if has(r.hugepage_limits()) {
        n.push(("hugetlb", F_HUGETLB));
    }
    if let Some(net) = r.network() {
        if net.class_id().is_some() {
            n.push(("net_cls", F_NET_CLASSID));
        }
        if has(net.priorities()) {
            n.push(("net_prio", F_NET_PRIO));
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        n.push(("rdma", F_RDMA));
    }
    n
}

/// The same for v2 (controller names as in cgroup.controllers); `unified` keys need the
/// controller their name starts with, and are checked when written.
pub fn needs_v2(r: &LinuxResources) -> Result<Vec<(&'static str, &'static str)>, CgroupError> {
    let mut n: Vec<(&'static str, &'static str)> = needs_v1(r)
        .into_iter()
        .filter(|(_, f)| !IGNORED_V2.contains(f))
        .map(|(c, f)| (if c == "blkio" { "io" } else { c }, f))
        .collect();
    if let Some(c) = r.cpu() {
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            let f = if c.realtime_runtime().is_some() { F_CPU_RT_RUNTIME } else { F_CPU_RT_PERIOD };
            return Err(CgroupError::Unsupported {
                flag: f,
                reason: "cgroup v2 has no real-time CPU bandwidth".into(),
            });
        }
    }
    if let Some(u) = r.unified() {
        for k in u.keys() {
            check_unified_key(k)?;
        }
    }
    n.retain(|(c, _)| *c != "net_cls" && *c != "net_prio");
    Ok(n)
}

fn check_unified_key(k: &str) -> Result<(), CgroupError> {
    if k.is_empty() || k.contains('/') || k.contains('\0') || k == "." || k == ".." {
        return Err(invalid(F_UNIFIED, k, "a key is a file name of the group (no '/')"));
    }
    Ok(())
}

/// Refuses, by field, what the host's hierarchies lack, before anything is created.
pub fn check_controllers(
    needs: &[(&'static str, &'static str)],
    have: &[&str],
    where_: &str,
) -> Result<(), CgroupError> {
    match needs.iter().find(|(c, _)| !have.contains(c)) {
        None => Ok(()),
        Some((c, f)) => {
            Err(CgroupError::Unsupported { flag: f, reason: format!("no {c} controller {where_} (there: {have:?})") })
        }
    }
}

/// v1 `-1` or a byte count; 0 is "not set" for runc, and so here.
fn limit_str(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn v2_max(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn apply_memory_v1(d: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let memsw = d.join("memory.memsw.limit_in_bytes");
    let limit = m.limit();
    let swap = m.swap();
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s >= 0 && s < l {
            return Err(invalid(F_MEM_SWAP, s, "memory+swap must be at least the memory limit"));
        }
    }
    let swap = match swap {
        // -1 without swap accounting: nothing to lift.
        Some(-1) if !memsw.exists() => None,
        Some(_) if !memsw.exists() => {
            return Err(CgroupError::Unsupported {
                flag: F_MEM_SWAP,
                reason: format!("{} does not exist: this kernel does not account swap", memsw.display()),
            })
        }
        s => s,
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // The kernel keeps limit <= memsw at every step: raise memsw first when growing.
            let cur = fs::read(&d.join("memory.limit_in_bytes"))?.trim().parse::<u64>().unwrap_or(u64::MAX);
            let grows = l < 0 || (l as u64) > cur;
            if grows {
                write_limit(d, "memory.memsw.limit_in_bytes", &limit_str(s), F_MEM_SWAP)?;
                write_limit(d, "memory.limit_in_bytes", &limit_str(l), F_MEM_LIMIT)?;
            } else {
                write_limit(d, "memory.limit_in_bytes", &limit_str(l), F_MEM_LIMIT)?;
                write_limit(d, "memory.memsw.limit_in_bytes", &limit_str(s), F_MEM_SWAP)?;
            }
        }
        (Some(l), None) => write_limit(d, "memory.limit_in_bytes", &limit_str(l), F_MEM_LIMIT)?,
        (None, Some(s)) => write_limit(d, "memory.memsw.limit_in_bytes", &limit_str(s), F_MEM_SWAP)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        write_limit(d, "memory.soft_limit_in_bytes", &limit_str(r), F_MEM_RESERVATION)?;
    }
    if let Some(t) = m.kernel_tcp() {
        write_limit(d, "memory.kmem.tcp.limit_in_bytes", &limit_str(t), F_MEM_KERNEL_TCP)?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid(F_MEM_SWAPPINESS, s, "must be between 0 and 100"));
        }
        write_limit(d, "memory.swappiness", &s.to_string(), F_MEM_SWAPPINESS)?;
    }
    if m.disable_oom_killer() == Some(true) {
        write_limit(d, "memory.oom_control", "1", F_MEM_OOM)?;
    }
    Ok(())
}

fn apply_memory_v2(d: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    // runc's ConvertMemorySwapToCgroupV2Value: OCI swap is memory+swap, v2 swap.max is swap alone.
    if let Some(s) = m.swap() {
        let v = match (s, m.limit()) {
            (s, _) if s < 0 => "max".to_string(),
            (0, _) => String::new(),
            (_, None) | (_, Some(0)) => {
                // Keep the group's current memory.max as the base, as `runc update` does.
                let cur = fs::read(&d.join("memory.max"))?;
                match cur.trim().parse::<i64>() {
                    Ok(l) if s >= l => (s - l).to_string(),
                    Ok(l) => return Err(invalid(F_MEM_SWAP, s, &format!("below the memory limit {l}"))),
                    Err(_) => return Err(invalid(F_MEM_SWAP, s, "a swap limit needs a memory limit")),
                }
            }
            (_, Some(l)) if l < 0 => return Err(invalid(F_MEM_SWAP, s, "a swap limit needs a memory limit")),
            (s, Some(l)) if s < l => {
                return Err(invalid(F_MEM_SWAP, s, "memory+swap must be at least the memory limit"))
            }
            (s, Some(l)) => (s - l).to_string(),
        };
        if !v.is_empty() {
            write_limit(d, "memory.swap.max", &v, F_MEM_SWAP)?;
        }
    }
    if let Some(l) = m.limit() {
        write_limit(d, "memory.max", &v2_max(l), F_MEM_LIMIT)?;
    }
    if let Some(r) = m.reservation() {
        write_limit(d, "memory.low", &v2_max(r), F_MEM_RESERVATION)?;
    }
    Ok(())
}

/// runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// runc's ConvertBlkIOToIOWeightValue: [10, 1000] onto [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

fn apply_cpu_v1(cpu: &Path, cpuset: Option<&PathBuf>, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares() {
        write_limit(cpu, "cpu.shares", &s.to_string(), F_CPU_SHARES)?;
    }
    if let Some(p) = c.period() {
        write_limit(cpu, "cpu.cfs_period_us", &p.to_string(), F_CPU_PERIOD)?;
    }
    if let Some(q) = c.quota() {
        write_limit(cpu, "cpu.cfs_quota_us", &(if q <= 0 { -1 } else { q }).to_string(), F_CPU_QUOTA)?;
    }
    if let Some(b) = c.burst() {
        write_limit(cpu, "cpu.cfs_burst_us", &b.to_string(), F_CPU_BURST)?;
    }
    // The period first: the runtime is checked against it.
    if let Some(p) = c.realtime_period() {
        write_limit(cpu, "cpu.rt_period_us", &p.to_string(), F_CPU_RT_PERIOD)?;
    }
    if let Some(r) = c.realtime_runtime() {
        write_limit(cpu, "cpu.rt_runtime_us", &r.to_string(), F_CPU_RT_RUNTIME)?;
    }
    if let Some(i) = c.idle() {
        write_limit(cpu, "cpu.idle", &i.to_string(), F_CPU_IDLE)?;
    }
    apply_cpuset(cpuset, c)
}

fn apply_cpuset(dir: Option<&PathBuf>, c: &LinuxCpu) -> Result<(), CgroupError> {
    for (v, file, f) in [(c.mems(), "cpuset.mems", F_MEMS), (c.cpus(), "cpuset.cpus", F_CPUS)] {
        if let Some(v) = v.as_deref().filter(|s| !s.is_empty()) {
            let d = dir.ok_or(CgroupError::Unsupported { flag: f, reason: "no cpuset controller".into() })?;
            write_limit(d, file, v, f)?;
        }
    }
    Ok(())
}

fn apply_cpu_v2(d: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        write_limit(d, "cpu.weight", &shares_to_weight(s).to_string(), F_CPU_SHARES)?;
    }
    if c.quota().is_some() || c.period().is_some() {
        // One file holds both: keep the half not asked for.
        let cur = fs::read(&d.join("cpu.max")).unwrap_or_default();
        let mut it = cur.split_whitespace();
        let (cur_q, cur_p) = (it.next().unwrap_or("max").to_string(), it.next().unwrap_or("100000").to_string());
        let q = match c.quota() {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".into(),
            None => cur_q,
        };
        let p = c.period().map(|p| p.to_string()).unwrap_or(cur_p);
        let f = if c.quota().is_some() { F_CPU_QUOTA } else { F_CPU_PERIOD };
        write_limit(d, "cpu.max", &format!("{q} {p}"), f)?;
    }
    if let Some(b) = c.burst() {
        write_limit(d, "cpu.max.burst", &b.to_string(), F_CPU_BURST)?;
    }
    if let Some(i) = c.idle() {
        write_limit(d, "cpu.idle", &i.to_string(), F_CPU_IDLE)?;
    }
    apply_cpuset(Some(&d.to_path_buf()), c)
}

fn throttles(b: &LinuxBlockIo) -> [(&Option<Vec<LinuxThrottleDevice>>, &'static str, &'static str, &'static str); 4] {
    [
        (b.throttle_read_bps_device(), "blkio.throttle.read_bps_device", "rbps", F_BLKIO_RBPS),
        (b.throttle_write_bps_device(), "blkio.throttle.write_bps_device", "wbps", F_BLKIO_WBPS),
        (b.throttle_read_iops_device(), "blkio.throttle.read_iops_device", "riops", F_BLKIO_RIOPS),
        (b.throttle_write_iops_device(), "blkio.throttle.write_iops_device", "wiops", F_BLKIO_WIOPS),
    ]
}

fn dev_num(f: &'static str, major: i64, minor: i64) -> Result<String, CgroupError> {
    if major < 0 || minor < 0 || major > u32::MAX as i64 || minor > u32::MAX as i64 {
        return Err(invalid(f, format!("{major}:{minor}"), "not a device number"));
    }
    Ok(format!("{major}:{minor}"))
}

/// The first of `files` the group has; none means the kernel has no I/O scheduler weight here.
fn pick<'a>(d: &Path, files: &[&'a str], f: &'static str) -> Result<&'a str, CgroupError> {
    files.iter().copied().find(|n| d.join(n).exists()).ok_or_else(|| CgroupError::Unsupported {
        flag: f,
        reason: format!(
            "none of {files:?} exists in {}: I/O weights need the BFQ (or, before Linux 5.0, CFQ) scheduler on the device",
            d.display()
        ),
    })
}

fn apply_blkio_v1(d: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight() {
        let file = pick(d, &["blkio.bfq.weight", "blkio.weight"], F_BLKIO_WEIGHT)?;
        write_limit(d, file, &w.to_string(), F_BLKIO_WEIGHT)?;
    }
    if let Some(w) = b.leaf_weight() {
        write_limit(d, "blkio.leaf_weight", &w.to_string(), F_BLKIO_LEAF)?;
    }
    for wd in b.weight_device().iter().flatten() {
        let dev = dev_num(F_BLKIO_WEIGHT_DEV, wd.major(), wd.minor())?;
        if let Some(w) = wd.weight() {
            let file = pick(d, &["blkio.bfq.weight_device", "blkio.weight_device"], F_BLKIO_WEIGHT_DEV)?;
            write_limit(d, file, &format!("{dev} {w}"), F_BLKIO_WEIGHT_DEV)?;
        }
        if let Some(w) = wd.leaf_weight() {
            write_limit(d, "blkio.leaf_weight_device", &format!("{dev} {w}"), F_BLKIO_WEIGHT_DEV)?;
        }
    }
    for (list, file, _, f) in throttles(b) {
        for t in list.iter().flatten() {
            write_limit(d, file, &format!("{} {}", dev_num(f, t.major(), t.minor())?, t.rate()), f)?;
        }
    }
    Ok(())
}

fn apply_io_v2(d: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight() {
        // BFQ takes the blkio range as it is; io.weight its own.
        let file = pick(d, &["io.bfq.weight", "io.weight"], F_BLKIO_WEIGHT)?;
        let v = if file == "io.bfq.weight" { u64::from(w) } else { blkio_to_io_weight(w) };
        write_limit(d, file, &v.to_string(), F_BLKIO_WEIGHT)?;
    }
    for wd in b.weight_device().iter().flatten() {
        let dev = dev_num(F_BLKIO_WEIGHT_DEV, wd.major(), wd.minor())?;
        if let Some(w) = wd.weight() {
            let file = pick(d, &["io.bfq.weight", "io.weight"], F_BLKIO_WEIGHT_DEV)?;
            let v = if file == "io.bfq.weight" { u64::from(w) } else { blkio_to_io_weight(w) };
            write_limit(d, file, &format!("{dev} {v}"), F_BLKIO_WEIGHT_DEV)?;
        }
    }
    for (list, _, key, f) in throttles(b) {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 { "max".to_string() } else { t.rate().to_string() };
            write_limit(d, "io.max", &format!("{} {key}={rate}", dev_num(f, t.major(), t.minor())?), f)?;
        }
    }
    Ok(())
}

/// "2MB", "1GB", "64KB": the size part of hugetlb.<size>.* file names.
fn page_size(s: &str) -> Result<&str, CgroupError> {
    let ok = !s.is_empty() && s.len() <= 16 && s.bytes().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(s)
    } else {
        Err(invalid(F_HUGETLB, s, "pageSize is a size such as 2MB or 1GB"))
    }
}

fn apply_rdma(d: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    for (dev, l) in r.rdma().iter().flatten() {
        if dev.is_empty() || dev.contains(char::is_whitespace) || dev.contains('/') {
            return Err(invalid(F_RDMA, dev, "not a device name"));
        }
        let mut v = dev.clone();
        if let Some(h) = l.hca_handles() {
            v.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            v.push_str(&format!(" hca_object={o}"));
        }
        write_limit(d, "rdma.max", &v, F_RDMA)?;
    }
    Ok(())
}

fn memory_only(m: &LinuxMemory) -> LinuxResources {
    let mut r = LinuxResources::default();
    r.set_memory(Some(*m));
    r
}

fn block_io_only(b: &LinuxBlockIo) -> LinuxResources {
    let mut r = LinuxResources::default();
    r.set_block_io(Some(b.clone()));
    r
}

/// Writes `r` to the v1 groups `dirs` (controller → directory). The controllers were checked.
pub fn apply_v1(dirs: &BTreeMap<String, PathBuf>, r: &LinuxResources) -> Result<(), CgroupError> {
    let dir = |ctrl: &str, f: &'static str| {
        dirs.get(ctrl).ok_or_else(|| CgroupError::Unsupported { flag: f, reason: format!("no {ctrl} controller") })
    };
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Unsupported {
            flag: F_UNIFIED,
            reason: "this host's containers use cgroup v1 hierarchies: unified resources need cgroup v2".into(),
        });
    }
    if let Some(m) = r.memory() {
        if !needs_v1(&memory_only(m)).is_empty() {
            apply_memory_v1(dir("memory", F_MEM_LIMIT)?, m)?;
        }
    }
    if let Some(c) = r.cpu() {
        let has_cpu = [c.shares().is_some(), c.quota().is_some(), c.period().is_some(), c.burst().is_some()]
            .into_iter()
            .chain([c.realtime_period().is_some(), c.realtime_runtime().is_some(), c.idle().is_some()])
            .any(|b| b);
        if has_cpu {
            apply_cpu_v1(dir("cpu", F_CPU_SHARES)?, dirs.get("cpuset"), c)?;
        } else {
            apply_cpuset(dirs.get("cpuset"), c)?;
        }
    }
    if let Some(p) = r.pids() {
        write_limit(dir("pids", F_PIDS)?, "pids.max", &v2_max(if p.limit() <= 0 { -1 } else { p.limit() }), F_PIDS)?;
    }
    if let Some(b) = r.block_io() {
        if !needs_v1(&block_io_only(b)).is_empty() {
            apply_blkio_v1(dir("blkio", F_BLKIO_WEIGHT)?, b)?;
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        let size = page_size(h.page_size())?;
        write_limit(
            dir("hugetlb", F_HUGETLB)?,
            &format!("hugetlb.{size}.limit_in_bytes"),
            &limit_str(h.limit()),
            F_HUGETLB,
        )?;
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write_limit(dir("net_cls", F_NET_CLASSID)?, "net_cls.classid", &id.to_string(), F_NET_CLASSID)?;
        }
        for p in n.priorities().iter().flatten() {
            if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                return Err(invalid(F_NET_PRIO, p.name(), "not an interface name"));
            }
            let v = format!("{} {}", p.name(), p.priority());
            write_limit(dir("net_prio", F_NET_PRIO)?, "net_prio.ifpriomap", &v, F_NET_PRIO)?;
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        apply_rdma(dir("rdma", F_RDMA)?, r)?;
    }
    Ok(())
}

/// Writes `r` to the v2 group `d`. The controllers were checked and enabled above it.
pub fn apply_v2(d: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    needs_v2(r)?;
    if let Some(p) = r.pids() {
        write_limit(d, "pids.max", &v2_max(if p.limit() <= 0 { -1 } else { p.limit() }), F_PIDS)?;
    }
    if let Some(m) = r.memory() {
        apply_memory_v2(d, m)?;
    }
    if let Some(b) = r.block_io() {
        apply_io_v2(d, b)?;
    }
    if let Some(c) = r.cpu() {
        apply_cpu_v2(d, c)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        let size = page_size(h.page_size())?;
        write_limit(d, &format!("hugetlb.{size}.max"), &v2_max(h.limit()), F_HUGETLB)?;
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        apply_rdma(d, r)?;
    }
    // Sorted, so a failure is the same one on every run.
    let unified: BTreeMap<&String, &String> = r.unified().iter().flatten().collect();
    for (k, v) in unified {
        check_unified_key(k)?;
        let path = d.join(k);
        if !path.exists() {
            let ctrl = k.split('.').next().unwrap_or(k);
            return Err(CgroupError::Unsupported {
                flag: F_UNIFIED,
                reason: format!("{k}: no such file in {} (is the {ctrl} controller available?)", d.display()),
            });
        }
        fs::write(&path, v).map_err(|e| match e {
            CgroupError::Write { path, value, source } => {
                CgroupError::Rejected { flag: F_UNIFIED, path, value, source }
            }
            other => other,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    /// A directory holding the given (empty) files, as a group whose controllers have them.
    fn group(files: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(t.path().join(f), "").unwrap();
        }
        t
    }

    fn read(t: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(t.path().join(f)).unwrap()
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn v2_files() {
        let t = group(&[
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.max",
            "cpu.weight",
            "cpu.idle",
            "cpuset.cpus",
            "cpuset.mems",
            "pids.max",
            "io.weight",
            "io.max",
            "hugetlb.2MB.max",
            "memory.high",
        ]);
        let r = res(r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":52428800,"swappiness":10,
            "disableOOMKiller":true,"kernel":1048576},
            "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0","idle":0},
            "pids":{"limit":0},"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
            "hugepageLimits":[{"pageSize":"2MB","limit":2097152}],"network":{"classID":1},
            "unified":{"memory.high":"90000000"}}"#);
        apply_v2(t.path(), &r).unwrap();
        assert_eq!(read(&t, "memory.max"), "104857600");
        assert_eq!(read(&t, "memory.swap.max"), "104857600");
        assert_eq!(read(&t, "memory.low"), "52428800");
        assert_eq!(read(&t, "cpu.max"), "50000 100000");
        assert_eq!(read(&t, "cpu.weight"), "39");
        assert_eq!(read(&t, "cpuset.cpus"), "0");
        assert_eq!(read(&t, "pids.max"), "max");
        assert_eq!(read(&t, "io.weight"), "4950");
        assert_eq!(read(&t, "io.max"), "8:0 rbps=1048576");
        assert_eq!(read(&t, "hugetlb.2MB.max"), "2097152");
        assert_eq!(read(&t, "memory.high"), "90000000");

        let e = apply_v2(t.path(), &res(r#"{"unified":{"../cgroup.procs":"1"}}"#)).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.unified: invalid value \"../cgroup.procs\""), "{e}");
        let e = apply_v2(t.path(), &res(r#"{"unified":{"rdma.max":"x"}}"#)).unwrap_err().to_string();
        assert!(e.contains("rdma.max: no such file") && e.contains("rdma controller"), "{e}");
        let e = apply_v2(t.path(), &res(r#"{"cpu":{"realtimeRuntime":1000}}"#)).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.cpu.realtimeRuntime: cgroup v2 has no"), "{e}");
        let e = apply_v2(t.path(), &res(r#"{"memory":{"limit":100,"swap":50}}"#)).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.memory.swap: invalid value \"50\""), "{e}");
        // Only the period: the quota already there stays.
        apply_v2(t.path(), &res(r#"{"cpu":{"period":200000}}"#)).unwrap();
        assert_eq!(read(&t, "cpu.max"), "50000 200000");
    }

    #[test]
    fn v1_files_and_refusals() {
        let t = group(&[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "pids.max",
            "blkio.throttle.write_iops_device",
        ]);
        let mut dirs = BTreeMap::new();
        for c in ["memory", "cpu", "pids", "blkio"] {
            dirs.insert(c.to_string(), t.path().to_path_buf());
        }
        // The fake files are not truncated on write: a one-digit "current limit" to grow from.
        std::fs::write(t.path().join("memory.limit_in_bytes"), "1").unwrap();
        let r = res(r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":1,"swappiness":10,
            "disableOOMKiller":true,"kernel":1048576},"cpu":{"shares":512,"quota":-1,"period":50000},
            "pids":{"limit":32},"blockIO":{"throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":100}]}}"#);
        assert!(needs_v1(&r).contains(&("memory", F_MEM_OOM)));
        assert!(!needs_v1(&r).iter().any(|(_, f)| f.ends_with("kernel")), "kernel is ignored");
        apply_v1(&dirs, &r).unwrap();
        assert_eq!(read(&t, "memory.limit_in_bytes"), "104857600");
        assert_eq!(read(&t, "memory.memsw.limit_in_bytes"), "209715200");
        assert_eq!(read(&t, "memory.soft_limit_in_bytes"), "1");
        assert_eq!(read(&t, "memory.swappiness"), "10");
        assert_eq!(read(&t, "memory.oom_control"), "1");
        assert_eq!(read(&t, "cpu.shares"), "512");
        assert_eq!(read(&t, "cpu.cfs_quota_us"), "-1");
        assert_eq!(read(&t, "cpu.cfs_period_us"), "50000");
        assert_eq!(read(&t, "pids.max"), "32");
        assert_eq!(read(&t, "blkio.throttle.write_iops_device"), "8:0 100");

        for (json, field, why) in [
            (r#"{"blockIO":{"weight":500}}"#, F_BLKIO_WEIGHT, "BFQ"),
            (r#"{"memory":{"kernelTCP":1000}}"#, F_MEM_KERNEL_TCP, "does not exist"),
            (r#"{"unified":{"memory.high":"1"}}"#, F_UNIFIED, "need cgroup v2"),
            (r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#, F_HUGETLB, "no hugetlb controller"),
            (r#"{"network":{"classID":1}}"#, F_NET_CLASSID, "no net_cls controller"),
            (r#"{"memory":{"swappiness":101}}"#, F_MEM_SWAPPINESS, "between 0 and 100"),
        ] {
            let e = apply_v1(&dirs, &res(json)).expect_err(json).to_string();
            assert!(e.starts_with(field) && e.contains(why), "{json}: {e}");
        }
        let have: Vec<&str> = dirs.keys().map(|k| k.as_str()).collect();
        let e = check_controllers(&needs_v1(&res(r#"{"network":{"classID":1}}"#)), &have, "mounted")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.network.classID: no net_cls controller mounted (there: ["), "{e}");
    }
}

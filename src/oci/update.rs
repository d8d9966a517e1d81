//! `update [-r FILE | flags] ID`: new resource limits for a live container, written into its
//! cgroups (v1 files or their v2 equivalents, as runc converts them). What this host's cgroups
//! cannot take is refused in one line naming the option.
use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::cgroups::controller_dir;
use super::error::{OciError, Result};
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A JSON file of runtime-spec `linux.resources` ("-" for stdin); flags are then ignored.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap (-1: unlimited).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    kernel_memory_tcp: Option<String>,
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    #[arg(long = "mem-bw-schema")]
    mem_bw_schema: Option<String>,
    id: String,
}

/// One cgroup file write of an update.
#[derive(Debug, PartialEq)]
struct Write {
    ctrl: &'static str,
    v1: Option<(String, String)>,
    v2: Option<(String, String)>,
    flag: &'static str,
}

fn size(flag: &str, s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    crate::cgroup::parse_size(s)
        .map(|n| n as i64)
        .map_err(|e| OciError::Unsupported(format!("update: --{flag} {s:?}: {e}")))
}

fn from_flags(a: &Args) -> Result<LinuxResources> {
    for (set, flag) in [
        (a.kernel_memory.is_some(), "kernel-memory"),
        (a.kernel_memory_tcp.is_some(), "kernel-memory-tcp"),
        (a.l3_cache_schema.is_some(), "l3-cache-schema"),
        (a.mem_bw_schema.is_some(), "mem-bw-schema"),
    ] {
        if set {
            return Err(OciError::Unsupported(format!("update: --{flag} is not supported by engine-oci")));
        }
    }
    let mut r = LinuxResources::default();
    let mut mem = oci_spec::runtime::LinuxMemory::default();
    if let Some(m) = &a.memory {
        mem.set_limit(Some(size("memory", m)?));
    }
    if let Some(m) = &a.memory_reservation {
        mem.set_reservation(Some(size("memory-reservation", m)?));
    }
    if let Some(m) = &a.memory_swap {
        mem.set_swap(Some(size("memory-swap", m)?));
    }
    if mem != Default::default() {
        r.set_memory(Some(mem));
    }
    let mut cpu = oci_spec::runtime::LinuxCpu::default();
    cpu.set_shares(a.cpu_shares);
    cpu.set_quota(a.cpu_quota);
    cpu.set_period(a.cpu_period);
    cpu.set_realtime_period(a.cpu_rt_period);
    cpu.set_realtime_runtime(a.cpu_rt_runtime);
    cpu.set_cpus(a.cpuset_cpus.clone());
    cpu.set_mems(a.cpuset_mems.clone());
    if cpu != Default::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(p) = a.pids_limit {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(p);
        r.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = oci_spec::runtime::LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// runc's conversion of cpu.shares (2..262144) to cpu.weight (1..10000).
fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn plan(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let mut add = |ctrl, v1: Option<(&str, String)>, v2: Option<(&str, String)>, flag| {
        let own = |x: Option<(&str, String)>| x.map(|(f, v)| (f.to_string(), v));
        let (v1, v2) = (own(v1), own(v2));
        w.push(Write { ctrl, v1, v2, flag })
    };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            add("memory", Some(("memory.limit_in_bytes", l.to_string())), Some(("memory.max", max_or(l))), "memory");
        }
        if let Some(s) = m.swap() {
            // v2's swap.max is swap alone; the spec's (and v1's) is memory plus swap.
            let v2 = if s < 0 { "max".to_string() } else { (s - m.limit().unwrap_or(0)).max(0).to_string() };
            add(
                "memory",
                Some(("memory.memsw.limit_in_bytes", s.to_string())),
                Some(("memory.swap.max", v2)),
                "memory-swap",
            );
        }
        if let Some(s) = m.reservation() {
            add(
                "memory",
                Some(("memory.soft_limit_in_bytes", s.to_string())),
                Some(("memory.low", max_or(s))),
                "memory-reservation",
            );
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            return Err(OciError::Unsupported("update: memory.kernel and memory.kernelTCP are not supported".into()));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            add(
                "cpu",
                Some(("cpu.shares", s.to_string())),
                Some(("cpu.weight", shares_to_weight(s).to_string())),
                "cpu-shares",
            );
        }
        if let Some(p) = c.period() {
            add("cpu", Some(("cpu.cfs_period_us", p.to_string())), None, "cpu-period");
        }
        if c.quota().is_some() || c.period().is_some() {
            let q = c.quota();
            let v2 = format!("{} {}", q.map_or("max".to_string(), max_or), c.period().unwrap_or(100_000));
            add("cpu", q.map(|q| ("cpu.cfs_quota_us", q.to_string())), Some(("cpu.max", v2)), "cpu-quota");
        }
        if let Some(p) = c.realtime_period() {
            add("cpu", Some(("cpu.rt_period_us", p.to_string())), None, "cpu-rt-period");
        }
        if let Some(p) = c.realtime_runtime() {
            add("cpu", Some(("cpu.rt_runtime_us", p.to_string())), None, "cpu-rt-runtime");
        }
        if let Some(s) = c.cpus() {
            add("cpuset", Some(("cpuset.cpus", s.clone())), Some(("cpuset.cpus", s.clone())), "cpuset-cpus");
        }
        if let Some(s) = c.mems() {
            add("cpuset", Some(("cpuset.mems", s.clone())), Some(("cpuset.mems", s.clone())), "cpuset-mems");
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() <= 0 { "max".to_string() } else { p.limit().to_string() };
        add("pids", Some(("pids.max", v.clone())), Some(("pids.max", v)), "pids-limit");
    }
    if let Some(b) = r.block_io() {
        if let Some(wt) = b.weight() {
            add(
                "blkio",
                Some(("blkio.weight", wt.to_string())),
                Some(("io.weight", format!("default {wt}"))),
                "blkio-weight",
            );
        }
    }
    if let Some(u) = r.unified() {
        for (k, v) in u {
            add("unified", None, Some((k.as_str(), v.clone())), "unified");
        }
    }
    Ok(w)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let resources = match &args.resources {
        Some(p) => {
            let mut text = Vec::new();
            let read = if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut text).map(drop)
            } else {
                std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut text)).map(drop)
            };
            read.map_err(OciError::io(format!("update: reading {}", p.display())))?;
            serde_json::from_slice::<LinuxResources>(&text).map_err(|e| {
                OciError::Other(format!("update: {}: not runtime-spec linux.resources: {e}", p.display()))
            })?
        }
        None => from_flags(&args)?,
    };
    let c = ctx.root.open(&args.id)?;
    let paths = &c.record()?.cgroup_paths;
    for w in plan(&resources)? {
        let Some((dir, v2)) = controller_dir(paths, w.ctrl) else {
            return Err(OciError::Unsupported(format!("update: --{}: the container has no {} cgroup", w.flag, w.ctrl)));
        };
        let Some((file, value)) = (if v2 { w.v2 } else { w.v1 }) else {
            return Err(OciError::Unsupported(format!(
                "update: --{} is not available on cgroup {}",
                w.flag,
                if v2 { "v2" } else { "v1" }
            )));
        };
        if file.contains('/') || file.starts_with('.') {
            return Err(OciError::Unsupported(format!("update: unified key {file:?} is not a cgroup file name")));
        }
        let target = dir.join(&file);
        std::fs::write(&target, &value).map_err(OciError::io(format!(
            "update: --{}: writing {value:?} to {}",
            w.flag,
            target.display()
        )))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_as_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn plan_v1_and_v2_files() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576,"swap":2097152},"pids":{"limit":-1},"cpu":{"quota":50000,"period":100000}}"#,
        )
        .unwrap();
        let w = plan(&r).unwrap();
        let pair = |f: &str, v: &str| Some((f.to_string(), v.to_string()));
        assert_eq!(w[0].v1, pair("memory.limit_in_bytes", "1048576"));
        assert_eq!(w[1].v2, pair("memory.swap.max", "1048576"));
        assert!(w.iter().any(|x| x.v2 == pair("cpu.max", "50000 100000")));
        assert!(w.iter().any(|x| x.v1 == pair("pids.max", "max")));
    }
}

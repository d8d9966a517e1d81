//! `update [-r FILE | flags] ID`: new resource limits for a live container: runc's flags (or a
//! `linux.resources` JSON) become a `LinuxResources`, which the cgroup module writes into the
//! container's groups (`Cgroup::update`: v1 files or their v2 equivalents, as runc converts
//! them). What this host's cgroups cannot take is refused in one line naming the field.
use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

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
    let cg = super::cgroups::open(c.record()?)?;
    // The cgroup module converts (v1 files or v2 equivalents) and refuses what this host's
    // groups cannot take, naming the field.
    cg.update(&resources).map_err(|e| OciError::Other(format!("update: {e}")))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn flags_become_resources() {
        let t = T::parse_from([
            "x",
            "--memory",
            "10m",
            "--memory-swap",
            "-1",
            "--cpu-quota",
            "-1",
            "--pids-limit",
            "5",
            "c",
        ]);
        let r = from_flags(&t.a).unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(10 << 20));
        assert_eq!(r.memory().unwrap().swap(), Some(-1));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(-1));
        assert_eq!(r.pids().unwrap().limit(), 5);
        let t = T::parse_from(["x", "--kernel-memory", "1m", "c"]);
        assert!(from_flags(&t.a).unwrap_err().to_string().contains("--kernel-memory"));
    }
}

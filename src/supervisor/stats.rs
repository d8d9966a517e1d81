//! `engine stats`: one reading of each container's cgroup (CPU time, memory and its limit, pids,
//! block I/O) and of its veth (network bytes). The client asks once a second and turns the
//! counters into rates; the supervisor keeps nothing between readings.
use std::os::unix::net::UnixStream;

use super::failure::Failure;
use super::record::ContainerRecord;
use super::registry::RegistryError;
use super::Supervisor;
use crate::protocol::{write_frame, ContainerStats, Response};

pub fn stats(sup: &Supervisor, conn: &mut UnixStream, names: &[String]) -> Result<(), Failure> {
    let records = if names.is_empty() {
        sup.registry.list().into_iter().filter(|r| !r.state.is_terminal()).collect()
    } else {
        names.iter().map(|n| sup.registry.get(n)).collect::<Result<Vec<_>, _>>()?
    };
    let host_memory = host_memory_bytes();
    let stats = records
        .iter()
        .map(|record| {
            let mut s = ContainerStats {
                name: record.name().to_string(),
                state: record.state_text(),
                read_at_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
                memory_limit_bytes: host_memory,
                ..Default::default()
            };
            // Read outside the registry's lock (a slow cgroup file must not hold up every other
            // request): the group is opened by its name under the supervisor's parent.
            let oci = (!record.state.is_terminal())
                .then(|| crate::cgroup::Cgroup::open_in(&sup.cgroup_parent, record.name()))
                .flatten()
                .and_then(|cg| cg.stats_oci().ok());
            if let Some(oci) = oci {
                fill(&mut s, &oci, host_memory);
            }
            if let (Some(net), false) = (&record.network, record.state.is_terminal()) {
                // The host end counts the other way round: what it sends, the container receives.
                s.net_rx_bytes = veth_counter(&net.host_veth, "tx_bytes");
                s.net_tx_bytes = veth_counter(&net.host_veth, "rx_bytes");
            }
            s
        })
        .collect();
    write_frame(conn, &Response::Stats { stats }, b"").map_err(|e| Failure::engine(format!("client went away: {e}")))
}

/// The record of `name` as it is now, with the live cgroup stats and monitor usage of a running
/// container, read after the registry's lock is dropped (like [`stats`]): `inspect`, `ps --stats`
/// and the metrics.
pub fn inspect(sup: &Supervisor, name: &str) -> Result<ContainerRecord, RegistryError> {
    let (mut record, probe) = sup.registry.inspect(name)?;
    if let Some(probe) = probe {
        if probe.cgroup {
            // Gone meanwhile (the container ended): no figures, as for an ended container.
            record.stats = crate::cgroup::Cgroup::open_in(&sup.cgroup_parent, name).and_then(|cg| cg.stats().ok());
        }
        if let (true, Some(dev)) = (probe.monitored, sup.monitor.as_ref()) {
            if let Ok(usage) = dev.query(probe.pid) {
                record.peak_rss_bytes = record.peak_rss_bytes.max(Some(usage.peak_rss_bytes));
            }
        }
    }
    Ok(record)
}

fn fill(s: &mut ContainerStats, oci: &crate::cgroup::OciStats, host_memory: u64) {
    s.cpu_ns = oci.cpu.usage.total;
    let m = &oci.memory;
    // docker stats' figure: the page cache the kernel can drop at once is not "used".
    let inactive = m.raw.get("total_inactive_file").or_else(|| m.raw.get("inactive_file")).copied().unwrap_or(0);
    s.memory_bytes = m.usage.usage.saturating_sub(inactive);
    // Unlimited reads as u64::MAX (v2) or a huge page-rounded number (v1): the host's then.
    if m.usage.limit > 0 && (host_memory == 0 || m.usage.limit < host_memory) {
        s.memory_limit_bytes = m.usage.limit;
    }
    s.pids = oci.pids.current;
    for e in &oci.blkio.io_service_bytes_recursive {
        match e.op.as_str() {
            "Read" | "read" => s.block_read_bytes += e.value,
            "Write" | "write" => s.block_write_bytes += e.value,
            _ => {}
        }
    }
}

fn veth_counter(link: &str, counter: &str) -> u64 {
    // The name is engine's own (checked when the veth was made): no path can come from it.
    std::fs::read_to_string(format!("/sys/class/net/{link}/statistics/{counter}"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// MemTotal of /proc/meminfo in bytes (0 if unreadable).
fn host_memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib << 10)
}

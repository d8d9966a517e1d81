//! LinuxResources → `cgroup::Limits`, for `CgroupRules::Engine`: the supervisor's containers,
//! whose groups engine makes under its own parent with its own device allow-list. The Spec the
//! supervisor builds (src/supervisor/to_oci.rs) only carries what `Limits` expresses: memory
//! limit, memory.high (unified, or the v1 soft limit from reservation), CPU quota/period, pids,
//! cpuset CPUs. OCI bundles (`CgroupRules::Oci`) take the resources as they are through
//! `Cgroup::create_oci`.
use oci_spec::runtime::LinuxResources;

use super::error::CoreError;
use crate::cgroup::Limits;

/// The CFS period when the Spec gives a quota alone (the kernel's and Docker's default).
const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

pub fn from_oci(resources: Option<&LinuxResources>) -> Result<Limits, CoreError> {
    let mut limits = Limits::default();
    let Some(r) = resources else { return Ok(limits) };
    let positive = |v: Option<i64>| v.filter(|&v| v > 0).map(|v| v as u64);
    if let Some(m) = r.memory() {
        limits.memory_max = positive(m.limit());
        limits.memory_high = positive(m.reservation());
    }
    if let Some(high) = r.unified().as_ref().and_then(|u| u.get("memory.high")) {
        let bytes = high.parse::<u64>().map_err(|_| CoreError::spec("linux.resources.unified.memory.high", high))?;
        limits.memory_high = Some(bytes);
    }
    if let Some(c) = r.cpu() {
        if let Some(quota) = positive(c.quota()) {
            let period = c.period().unwrap_or(DEFAULT_CPU_PERIOD_US);
            if period == 0 {
                return Err(CoreError::spec("linux.resources.cpu.period", "must be greater than 0"));
            }
            limits.cpus = Some(quota as f64 / period as f64);
        }
        limits.cpuset_cpus = c.cpus().clone().filter(|s| !s.is_empty());
    }
    if let Some(p) = r.pids() {
        limits.pids_max = positive(Some(p.limit()));
    }
    Ok(limits)
}

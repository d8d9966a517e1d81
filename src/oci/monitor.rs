//! engine's kernel memory monitor for any OCI container, asked for with annotations:
//! `org.engine.monitor.soft-mib`, `org.engine.monitor.hard-mib` (MiB) and
//! `org.engine.monitor.soft-signal` (a signal name or number sent at the soft limit).
//!
//! With `/dev/container_monitor`, `create` registers the container's pid once it exists and
//! `delete` unregisters it. Without the device, the limits become the cgroup's (hard → memory
//! limit, soft → v2 memory.high / v1 soft limit), written into the Spec before create, as the
//! supervisor does (src/supervisor/resources.rs).
use oci_spec::runtime::Spec;

use super::error::{OciError, Result};
use crate::monitor::MonitorDevice;

pub const SOFT_MIB: &str = "org.engine.monitor.soft-mib";
pub const HARD_MIB: &str = "org.engine.monitor.hard-mib";
pub const SOFT_SIGNAL: &str = "org.engine.monitor.soft-signal";

const MIB: u64 = 1024 * 1024;

/// What the annotations ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_signal: Option<i32>,
}

impl Request {
    pub fn is_empty(&self) -> bool {
        self.soft_bytes.is_none() && self.hard_bytes.is_none()
    }
}

/// Reads the annotations; a malformed value is refused naming it.
pub fn request(spec: &Spec) -> Result<Request> {
    let Some(ann) = spec.annotations() else { return Ok(Request::default()) };
    let mib = |key: &str| -> Result<Option<u64>> {
        match ann.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 && n <= u64::MAX / MIB => Ok(Some(n * MIB)),
                _ => Err(OciError::config(
                    format!("annotations.{key}"),
                    format!("{v:?} is not a positive number of MiB"),
                )),
            },
        }
    };
    let req = Request {
        soft_bytes: mib(SOFT_MIB)?,
        hard_bytes: mib(HARD_MIB)?,
        soft_signal: match ann.get(SOFT_SIGNAL) {
            None => None,
            Some(s) => Some(super::kill::parse_signal(s).map_err(|_| {
                OciError::config(format!("annotations.{SOFT_SIGNAL}"), format!("{s:?} is not a signal"))
            })?),
        },
    };
    if let (Some(s), Some(h)) = (req.soft_bytes, req.hard_bytes) {
        if s > h {
            return Err(OciError::config(format!("annotations.{SOFT_MIB}"), format!("greater than {HARD_MIB}")));
        }
    }
    if req.soft_signal.is_some() && req.soft_bytes.is_none() {
        return Err(OciError::config(format!("annotations.{SOFT_SIGNAL}"), format!("needs {SOFT_MIB}")));
    }
    Ok(req)
}

/// How the request will be enforced, decided before create.
pub enum Plan {
    None,
    Device(MonitorDevice),
    /// Written into the Spec's memory resources.
    Cgroup,
}

/// Opens the device if there is one; otherwise turns the request into cgroup memory limits in
/// `spec` (the hard limit only lowers an existing memory limit, never raises it).
pub fn plan(spec: &mut Spec, req: &Request) -> Result<Plan> {
    if req.is_empty() {
        return Ok(Plan::None);
    }
    match MonitorDevice::open() {
        Ok(dev) => {
            if req.soft_signal.is_some() && !dev.version().soft_signal() {
                return Err(OciError::Unsupported(format!(
                    "annotations.{SOFT_SIGNAL}: the loaded container_monitor module speaks ABI {} and cannot send signals",
                    dev.version().abi
                )));
            }
            return Ok(Plan::Device(dev));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(OciError::io("opening /dev/container_monitor")(e)),
    }
    if req.soft_signal.is_some() {
        // The supervisor watches memory.high events for this; a runtime that exits after create cannot.
        return Err(OciError::Unsupported(format!(
            "annotations.{SOFT_SIGNAL}: needs /dev/container_monitor (the cgroup fallback cannot send signals from a runtime that exits after create)"
        )));
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut mem = res.memory().unwrap_or_default();
    if let Some(h) = req.hard_bytes {
        let h = h as i64;
        if mem.limit().is_none_or(|m| m <= 0 || h <= m) {
            mem.set_limit(Some(h));
        }
    }
    if let Some(s) = req.soft_bytes {
        // As the supervisor: v2 memory.high (throttling above it, through the spec's `unified`;
        // its `reservation` would be memory.low, a protection), v1 the soft limit (`reservation`).
        match crate::cgroup::Cgroup::detect() {
            Ok(crate::cgroup::Version::V2) => {
                let mut unified = res.unified().clone().unwrap_or_default();
                unified.insert("memory.high".to_string(), s.to_string());
                res.set_unified(Some(unified));
            }
            _ => {
                mem.set_reservation(Some(s as i64));
            }
        }
    }
    res.set_memory(Some(mem));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    Ok(Plan::Cgroup)
}

/// Registers the container's pid with the device (the plan was `Device`).
pub fn register(dev: &MonitorDevice, pid: i32, id: &str, req: &Request) -> Result<()> {
    // The monitor's names are printable ASCII without spaces, at most 63 bytes; ids are ASCII.
    let name: String = id.chars().take(63).collect();
    dev.register(pid, req.soft_bytes.unwrap_or(0), req.hard_bytes.unwrap_or(u64::MAX), &name, req.soft_signal)
        .map_err(OciError::io(format!("registering container \"{id}\" with /dev/container_monitor")))
}

/// Drops the container from the monitor; one already gone (ENOENT) or a device since unloaded is fine.
pub fn unregister(pid: i32) -> Result<()> {
    let dev = match MonitorDevice::open() {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(OciError::io("opening /dev/container_monitor")(e)),
    };
    match dev.unregister(pid) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
            Err(OciError::io(format!("unregistering pid {pid} from /dev/container_monitor"))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(ann: &[(&str, &str)]) -> Spec {
        let mut spec = Spec::default();
        spec.set_annotations(Some(ann.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
        spec
    }

    #[test]
    fn annotations_parse() {
        let r = request(&spec_with(&[(SOFT_MIB, "64"), (HARD_MIB, "128"), (SOFT_SIGNAL, "USR1")])).unwrap();
        assert_eq!(r, Request { soft_bytes: Some(64 * MIB), hard_bytes: Some(128 * MIB), soft_signal: Some(10) });
        assert!(request(&Spec::default()).unwrap().is_empty());
        let e = request(&spec_with(&[(HARD_MIB, "lots")])).unwrap_err().to_string();
        assert_eq!(e, "config.json: annotations.org.engine.monitor.hard-mib: \"lots\" is not a positive number of MiB");
        assert!(request(&spec_with(&[(SOFT_MIB, "200"), (HARD_MIB, "100")])).is_err());
        assert!(request(&spec_with(&[(SOFT_SIGNAL, "USR1")])).is_err());
    }

    #[test]
    fn fallback_writes_memory_limits_into_the_spec() {
        if std::path::Path::new(crate::monitor::abi::CM_DEVICE_PATH).exists() {
            return; // the device path is what this host uses; covered in the VM test
        }
        let mut spec = spec_with(&[(SOFT_MIB, "32"), (HARD_MIB, "64")]);
        let req = request(&spec).unwrap();
        assert!(matches!(plan(&mut spec, &req).unwrap(), Plan::Cgroup));
        let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let mem = res.memory().unwrap();
        assert_eq!(mem.limit(), Some(64 * MIB as i64));
        match crate::cgroup::Cgroup::detect().unwrap() {
            crate::cgroup::Version::V1 => assert_eq!(mem.reservation(), Some(32 * MIB as i64)),
            crate::cgroup::Version::V2 => {
                assert_eq!(res.unified().as_ref().unwrap()["memory.high"], (32 * MIB).to_string())
            }
        }
    }
}

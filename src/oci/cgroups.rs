//! What the OCI verbs read and write in a container's cgroups beyond what the core manages: the
//! freezer (`pause`, `resume`, the `paused` status), the member pids (`ps`, `kill --all`) and
//! limits changed after create (`update`).
//!
//! All of it goes through the cgroup module's OCI API: `Cgroup::open_oci` by the absolute
//! cgroupsPath that create recorded.
use super::error::{OciError, Result};
use crate::cgroup::{Cgroup, CgroupError, FreezerState};

/// The container's group as the cgroup module opens it (by its recorded cgroupsPath), for every
/// verb after create: `update`, `events`, `pause`/`resume`, `ps`, `kill --all`, `delete`.
pub fn open(rec: &super::state::Record) -> Result<Cgroup> {
    if rec.cgroup_path.is_empty() {
        return Err(OciError::Unsupported(format!("container \"{}\" has no cgroup on record", rec.id)));
    }
    Cgroup::open_oci(&rec.cgroup_path).map_err(cgroup_error(rec, "opening"))
}

fn cgroup_error<'a>(rec: &'a super::state::Record, step: &'a str) -> impl FnOnce(CgroupError) -> OciError + 'a {
    move |source| OciError::Cgroup { step: format!("{step} the cgroup {} of \"{}\"", rec.cgroup_path, rec.id), source }
}

/// Whether the container's group is frozen or freezing (the `paused` status); no group, no freezer.
pub fn is_frozen(rec: &super::state::Record) -> bool {
    open(rec)
        .and_then(|cg| cg.state().map_err(cgroup_error(rec, "reading the freezer of")))
        .is_ok_and(|s| s != FreezerState::Thawed)
}

/// Freezes (`true`) or thaws the container's processes and waits until the kernel says it is done.
pub fn set_frozen(rec: &super::state::Record, frozen: bool) -> Result<()> {
    let cg = open(rec)?;
    if frozen {
        cg.freeze().map_err(cgroup_error(rec, "pause: freezing"))
    } else {
        cg.thaw().map_err(cgroup_error(rec, "resume: thawing"))
    }
}

/// The pids in the container's group and the groups below it, sorted.
pub fn procs(rec: &super::state::Record) -> Result<Vec<i32>> {
    open(rec)?.pids().map_err(cgroup_error(rec, "listing the processes of"))
}

/// `kill --all`: `signal` to every process of the group, frozen meanwhile so none forks past it.
pub fn kill_all(rec: &super::state::Record, signal: i32) -> Result<()> {
    open(rec)?.kill_all(signal).map_err(cgroup_error(rec, "signalling the processes of"))
}

/// Removes the container's group (sub-groups first): what is still inside is SIGKILLed and
/// waited for. A group already gone (or never made) is no error.
pub fn remove(rec: &super::state::Record) -> Result<()> {
    match open(rec) {
        Ok(cg) => cg.remove().map_err(cgroup_error(rec, "removing")),
        Err(OciError::Unsupported(_)) | Err(OciError::Cgroup { source: CgroupError::NotFound { .. }, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

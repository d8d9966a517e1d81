//! The cgroups of the next containers, made ahead (cgroup v1; see `cgroup::ahead`): a start
//! renames one to its name instead of making six directories and writing its cpuset and
//! device rules on its path.
use std::sync::Arc;

use super::made_ahead::MadeAhead;
use crate::cgroup::ahead::{self, AheadGroup};

/// Groups kept ready: a start takes one.
const KEPT: usize = 4;

pub struct CgroupsAhead {
    /// None on cgroup v2 (a group cannot be renamed there) or an undetectable layout.
    groups: Option<Arc<MadeAhead<AheadGroup>>>,
}

impl CgroupsAhead {
    /// Removes the groups a dead supervisor made ahead under `parent`, and starts the thread
    /// that makes them.
    /// `ENGINE_CGROUPS_AHEAD=0` makes none (every group on its start's path): to measure what they
    /// save, and to test the path a burst that empties the pool takes.
    pub fn start(parent: &str) -> CgroupsAhead {
        ahead::remove_leftovers(parent);
        let wanted = std::env::var_os("ENGINE_CGROUPS_AHEAD").is_none_or(|v| v != "0");
        if !wanted || crate::cgroup::Cgroup::detect().ok() != Some(crate::cgroup::Version::V1) {
            return CgroupsAhead { groups: None };
        }
        let (parent, mut next) = (parent.to_string(), 0u64);
        let groups = MadeAhead::start("cgroups-ahead", KEPT, move || {
            next += 1;
            match ahead::make(&parent, next) {
                Ok(made) => made,
                Err(e) => {
                    crate::warn!("making a cgroup ahead: {e}");
                    None
                }
            }
        });
        CgroupsAhead { groups: Some(groups) }
    }

    /// A group made ahead, if one is ready.
    pub fn take(&self) -> Option<AheadGroup> {
        self.groups.as_ref()?.take()
    }

    /// Removes the groups still ready (the supervisor is stopping).
    pub fn clear(&self) {
        if let Some(groups) = &self.groups {
            drop(groups.clear());
        }
    }
}

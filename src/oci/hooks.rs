//! The OCI verbs' hooks: each kind in order with the container's state, through the core's
//! runner [`run_hook`] (`crate::container::hooks`, which the container's init uses too).
use oci_spec::runtime::Hook;

pub use crate::container::hooks::{run_hook, HookError};

use super::error::OciError;
use super::state::SpecState;

/// Runs `hooks` of `kind` in order; the first failure stops the rest (the spec's rule for every
/// kind but poststart and poststop, whose callers log and go on).
pub fn run_all(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &SpecState) -> Result<(), OciError> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else { return Ok(()) };
    let json =
        serde_json::to_vec(state).map_err(|e| OciError::Other(format!("{kind} hook: encoding the state: {e}")))?;
    for hook in hooks {
        super::log::debug(&format!("running {kind} hook {}", hook.path().display()));
        run_hook(hook, &json).map_err(|source| OciError::Hook { kind, source })?;
    }
    Ok(())
}

/// Runs every hook of `kind`; a failure is logged as a warning and the next hook runs (the
/// spec's rule for poststart and poststop).
pub fn run_all_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &SpecState) {
    let Some(hooks) = hooks else { return };
    let Ok(json) = serde_json::to_vec(state) else { return };
    for hook in hooks {
        if let Err(source) = run_hook(hook, &json) {
            super::log::warn(&OciError::Hook { kind, source }.to_string());
        }
    }
}

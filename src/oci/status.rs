//! `state ID`: the runtime-spec state JSON (the verb's file is status.rs: state.rs is the state
//! directory). runc's extra fields (rootfs, created, owner) are kept, podman reads `created`.
use super::error::Result;
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let c = ctx.root.open(&args.id)?;
    let state = c.record()?.spec_state(c.status());
    print_json(&state)?;
    Ok(0)
}

/// Pretty JSON on stdout, as runc prints it (two-space indent, trailing newline).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| super::OciError::Other(format!("encoding the output: {e}")))?;
    write_stdout(format!("{text}\n").as_bytes())
}

/// stdout without println!'s panic on a closed pipe (`engine-oci list | head`).
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(super::OciError::io("writing to stdout")(e)),
    }
}

//! `engine exec [-it] [-e K=V] [-w DIR] [-u USER] NAME CMD...`: run a command in a running
//! container and exit with its code, like `docker exec`. The command writes straight to this
//! process's own stdout and stderr (passed to the supervisor over the socket); its stdin is
//! /dev/null, or this process's own with `-i`. With `-t` it gets a pty opened in the container
//! and this terminal is attached to it (`attach::session`).
use std::io::IoSlice;
use std::os::fd::AsRawFd;

use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response, EXEC_FDS_BYTE};

#[derive(clap::Args)]
pub struct Args {
    /// KEY=VALUE over the container's environment (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory of the command inside the container (default: the container's)
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// uid[:gid] or names from the container's /etc/passwd and /etc/group (default: the container's)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Keep stdin open: the command reads this process's stdin
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal inside the container
    #[arg(short, long)]
    tty: bool,
    name: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let (tty, interactive) = (args.tty, args.interactive);
    super::attach::check_tty(tty, interactive)?;
    let mut conn = client.send(Request::Exec {
        name: args.name,
        command: args.command,
        env: args.env,
        workdir: args.workdir,
        user: args.user,
        tty,
        interactive,
    })?;
    if tty {
        return super::attach::session(conn, true, interactive);
    }
    let (out, err) = (std::io::stdout().as_raw_fd(), std::io::stderr().as_raw_fd());
    let fds: &[i32] = if interactive { &[std::io::stdin().as_raw_fd(), out, err] } else { &[out, err] };
    conn.send_fds(&[EXEC_FDS_BYTE], fds)?;
    match conn.next()? {
        Response::Exited { code } => Ok(code),
        other => Err(unexpected(other)),
    }
}

/// For [`super::client::Connection::send_fds`].
pub fn send_fds(sock: &impl AsRawFd, byte: &[u8], fds: &[i32]) -> nix::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(byte)],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::empty(),
        None,
    )
}

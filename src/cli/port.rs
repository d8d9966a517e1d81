//! `engine port NAME [CTRPORT[/PROTO]]`: the container's published ports, one
//! `CTRPORT/PROTO -> HOSTIP:HOSTPORT` line each, as `docker port` prints them.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    name: String,
    /// Only this container port (80 or 80/tcp)
    #[arg(value_name = "CTRPORT[/PROTO]")]
    port: Option<String>,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let record = match client.call(Request::Inspect { name: args.name.clone() })? {
        Response::Record { container } => container,
        other => return Err(unexpected(other)),
    };
    let wanted = match &args.port {
        None => None,
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            match (port.parse::<u16>(), proto) {
                (Ok(n), "tcp" | "udp") => Some((n, proto.to_string())),
                _ => return Err(format!("invalid port {p:?}: expected CTRPORT[/tcp|udp]").into()),
            }
        }
    };
    let ports: Vec<_> = record
        .spec
        .ports
        .iter()
        .filter(|m| wanted.as_ref().is_none_or(|(n, proto)| m.container_port == *n && m.proto.to_string() == *proto))
        .collect();
    if ports.is_empty() && args.port.is_some() {
        return Err(format!("no public port {} published for {}", args.port.unwrap_or_default(), args.name).into());
    }
    for m in ports {
        println!("{m}");
    }
    Ok(0)
}

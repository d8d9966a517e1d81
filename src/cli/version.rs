//! `engine version`: the client's and the supervisor's releases, commits and wire protocols.
//!
//! The `version` request is the one whose shape never changes (see protocol::VERSION_OP), so it
//! works against a supervisor of any protocol version and can say when the two differ.
use super::{CliResult, Client};
use crate::protocol::{Request, Response, ENGINE_COMMIT, ENGINE_VERSION, PROTOCOL_VERSION};

#[derive(clap::Args)]
pub struct Args {
    /// Print the versions as JSON
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let answer = client.call(Request::Version);
    let server = match &answer {
        Ok(Response::Version { version, commit, protocol }) => {
            Ok(serde_json::json!({ "version": version, "commit": commit, "protocol": protocol }))
        }
        // A supervisor from before `version` existed turns the request down as unknown.
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) if e.message.contains("unknown variant") => {
            Err("the supervisor does not know the version request: it is older than this client".to_string())
        }
        Err(e) => Err(e.message.clone()),
    };
    let client_json =
        serde_json::json!({ "version": ENGINE_VERSION, "commit": ENGINE_COMMIT, "protocol": PROTOCOL_VERSION });
    if args.json {
        let server_json = server.as_ref().map_or_else(|e| serde_json::json!({ "error": e }), Clone::clone);
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "client": client_json, "supervisor": server_json }))?
        );
    } else {
        println!(
            "Client:\n  Version:   {ENGINE_VERSION}\n  Commit:    {ENGINE_COMMIT}\n  Protocol:  {PROTOCOL_VERSION}"
        );
        if let Ok(s) = &server {
            println!(
                "Supervisor:\n  Version:   {}\n  Commit:    {}\n  Protocol:  {}",
                s["version"].as_str().unwrap_or("?"),
                s["commit"].as_str().unwrap_or("?"),
                s["protocol"]
            );
        }
    }
    match server {
        Ok(s) if s["protocol"].as_u64() != Some(PROTOCOL_VERSION as u64) => {
            // The one line the issue asks for: every other command would be refused.
            Err(format!(
                "the supervisor speaks wire protocol {} and this client {PROTOCOL_VERSION}: use an engine client of the supervisor's release",
                s["protocol"]
            )
            .into())
        }
        Ok(_) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

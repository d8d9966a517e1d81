//! `engine login [-u USER] [-p PASSWORD | --password-stdin] REGISTRY`: check the credentials
//! against the registry, then keep them (0600) for pulls from it.
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use super::CliResult;
use crate::image::{self, registry::AuthFile, registry::Registry, Reference, Store};
use crate::supervisor::DEFAULT_ROOT;

#[derive(clap::Args)]
pub struct Args {
    /// The supervisor's root; credentials live in ROOT/images/auth.json
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    #[arg(short, long)]
    username: Option<String>,
    /// The password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
    /// Speak plain HTTP to this registry (loopback registries always are)
    #[arg(long)]
    insecure_registry: bool,
    /// Registry host[:port] (docker.io if omitted)
    registry: Option<String>,
}

fn ask(prompt: &str) -> Result<String, std::io::Error> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn execute(args: Args) -> CliResult {
    super::pull::require_root()?;
    let host = args.registry.unwrap_or_else(|| image::reference::DOCKER_HUB.to_string());
    let host = host.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string();
    let user = match args.username {
        Some(u) => u,
        None if args.password_stdin => return Err("--password-stdin needs --username".into()),
        None => ask("Username: ")?,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => return Err("--password and --password-stdin exclude each other".into()),
        (Some(p), false) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().lock().read_line(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => ask("Password: ")?,
    };
    if user.is_empty() || password.is_empty() {
        return Err("a user name and a password are needed".into());
    }
    // Any repository name will do to reach the API root; the reference only carries the host.
    let reference = Reference::parse(&format!("{host}/login-check"))?;
    Registry::new(&reference, args.insecure_registry, Some((user.clone(), password.clone()))).check_login()?;
    let store = Store::open(&image::store_dir(&args.root))?;
    let path = store.auth_path();
    let _lock = store.lock_exclusive()?;
    let mut auths = AuthFile::load(&path)?;
    auths.set(&reference.registry, &user, &password);
    auths.save(&path)?;
    println!("Login Succeeded");
    Ok(0)
}

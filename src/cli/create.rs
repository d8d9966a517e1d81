//! What `start` and `run` share: the container options, and reading them after the command too.
use std::path::PathBuf;

use clap::{Args, Parser};

use super::CliError;
use crate::supervisor::spec::{ContainerSpec, NetMode};
use crate::supervisor::volumes::{self, VolumeMount};

#[derive(Args, Clone, Debug, Default)]
pub struct CreateOptions {
    /// Host name inside the container (default: the container name)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set an environment variable (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory of the command inside the container
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workdir: Option<String>,
    /// Scheduling niceness of the command (-20..19)
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub nice: Option<i32>,
    /// RSS in MiB above which the kernel monitor warns
    #[arg(long, value_name = "MIB")]
    pub soft_mib: Option<u64>,
    /// RSS in MiB above which the container is killed
    #[arg(long, value_name = "MIB")]
    pub hard_mib: Option<u64>,
    /// Signal sent to the command when RSS crosses --soft-mib (TERM, USR1, 15, ...), once per crossing
    #[arg(long, value_name = "SIG", value_parser = crate::supervisor::spec::parse_soft_signal)]
    pub soft_signal: Option<i32>,
    /// Memory limit (cgroup), Docker's forms: 10m, 1g, bytes
    #[arg(long, short = 'm', value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPU quota in CPUs, e.g. 0.5
    #[arg(long, value_name = "N.N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Maximum number of processes
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<u64>,
    /// CPUs the command may run on, e.g. 0-2,4
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Network: a veth on the supervisor's bridge (default), or only loopback
    #[arg(long, value_enum, default_value_t = NetMode::Bridge)]
    pub net: NetMode,
    /// Static address on the bridge (default: the next free one)
    #[arg(long, value_name = "ADDR", value_parser = parse_ip)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Docker's security options: no-new-privileges[:true|false], seccomp=unconfined
    #[arg(long = "security-opt", value_name = "OPT", value_parser = parse_security_opt)]
    pub security_opt: Vec<SecurityOpt>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Run as this user: uid[:gid] or name[:group] of the container's /etc/passwd (default: the image's User, else root)
    #[arg(long, short = 'u', value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Replace the image's entrypoint ("" runs the command alone)
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// Bind a host path or a named volume: HOST-PATH:CTR[:ro|rw] or NAME:CTR[:ro|rw] (repeatable)
    #[arg(long = "volume", short = 'v', value_name = "SRC:CTR[:ro]", value_parser = volumes::parse_volume_flag)]
    pub volume: Vec<VolumeMount>,
    /// Mount a tmpfs: PATH[:size=64m,mode=1777,ro,exec] (repeatable)
    #[arg(long, value_name = "PATH[:OPTS]", value_parser = volumes::parse_tmpfs_flag)]
    pub tmpfs: Vec<VolumeMount>,
    /// Docker's --mount: type=bind|volume|tmpfs,source=..,target=..[,readonly] (repeatable)
    #[arg(long, value_name = "SPEC", value_parser = volumes::parse_mount_flag)]
    pub mount: Vec<VolumeMount>,
    /// Log rotation as Docker's json-file: max-size=SIZE (default 100m, -1 unlimited), max-file=N (default 5)
    #[arg(long = "log-opt", value_name = "KEY=VALUE", value_parser = parse_log_opt)]
    pub log_opt: Vec<String>,
    /// Keep the command's stdin open; run/attach forward the client's stdin (Docker's -i)
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Allocate a pseudo-terminal inside the container for the command (Docker's -t)
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Restart policy when the container ends: no, on-failure[:N], always, unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no", value_parser = crate::supervisor::restart::parse_flag)]
    pub restart: crate::supervisor::restart::RestartPolicy,
    /// Publish a container port on the host: [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp] (repeatable)
    #[arg(long = "publish", short = 'p', value_name = "[IP:]HOST:CTR[/PROTO]")]
    pub publish: Vec<crate::net::PortMapping>,
    /// Nameserver for the container's /etc/resolv.conf (repeatable; default: the host's)
    #[arg(long, value_name = "IP")]
    pub dns: Vec<std::net::IpAddr>,
}

fn parse_log_opt(s: &str) -> Result<String, String> {
    crate::supervisor::logs::rotate::LogConfig::default().apply(s).map(|()| s.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    NoNewPrivileges(bool),
    SeccompUnconfined,
}

/// Docker's spellings: `no-new-privileges`, `no-new-privileges:true|false`, `seccomp=unconfined`
/// (`:` and `=` alike).
fn parse_security_opt(s: &str) -> Result<SecurityOpt, String> {
    let (key, value) = match s.split_once([':', '=']) {
        Some((k, v)) => (k, Some(v)),
        None => (s, None),
    };
    match (key, value) {
        ("no-new-privileges", None | Some("true")) => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", Some("false")) => Ok(SecurityOpt::NoNewPrivileges(false)),
        ("seccomp", Some("unconfined")) => Ok(SecurityOpt::SeccompUnconfined),
        ("seccomp", _) => Err(format!("unsupported security option {s:?} (engine has one built-in seccomp profile; seccomp=unconfined turns it off)")),
        _ => Err(format!("unsupported security option {s:?} (engine knows no-new-privileges[:true|false] and seccomp=unconfined)")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::cgroup::parse_size(s).map_err(|e| e.to_string())
}

fn parse_cpus(s: &str) -> Result<f64, String> {
    crate::cgroup::parse_cpus(s).map_err(|e| e.to_string())
}

fn parse_ip(s: &str) -> Result<std::net::Ipv4Addr, String> {
    crate::net::parse_ip(s).map_err(|e| e.to_string())
}

#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Container name: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}
    pub name: String,
    /// An image (busybox, 127.0.0.1:5000/app:v1, an image ID) or a root filesystem directory
    /// (a path: /srv/rootfs, ./rootfs; a bare name is an image when the store has one, else the
    /// directory of that name)
    #[arg(value_name = "IMAGE|ROOTFS")]
    pub rootfs: PathBuf,
    /// The command and its arguments (default: the image's entrypoint and command)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// How the ROOTFS argument reads: a path (`/x`, `./x`, `../x`, `.`, `..`) is a directory, always;
/// anything else is an image reference or ID, and also the directory of that name if one exists
/// here, which the supervisor uses only when its store has no such image (today's
/// `engine run NAME rootfs CMD` keeps working). A relative path is read from `cwd` (empty: this
/// process's own). Returns (image, directory).
fn image_or_dir(arg: &std::path::Path, cwd: &std::path::Path) -> Result<(Option<String>, PathBuf), CliError> {
    let text = arg.to_string_lossy();
    let path_like =
        arg.is_absolute() || text == "." || text == ".." || text.starts_with("./") || text.starts_with("../");
    // The supervisor runs elsewhere: hand it an absolute path, and name a missing rootfs here.
    let at = cwd.join(arg);
    let dir = || std::fs::canonicalize(&at).map_err(|e| CliError::from(format!("rootfs {}: {e}", arg.display())));
    if path_like {
        return Ok((None, dir()?));
    }
    let fallback = if at.is_dir() { dir()? } else { PathBuf::new() };
    Ok((Some(text.into_owned()), fallback))
}

impl CreateOptions {
    /// The spec these options and `target` ask for; a relative ROOTFS is read from `cwd` (empty:
    /// this process's own).
    pub fn into_spec(self, target: Target, cwd: &std::path::Path) -> Result<ContainerSpec, CliError> {
        crate::container::name::validate(&target.name)?;
        let (image, rootfs) = image_or_dir(&target.rootfs, cwd)?;
        if image.is_none() && target.command.is_empty() {
            return Err(
                format!("no command given: a directory root {} has no default command", rootfs.display()).into()
            );
        }
        let spec = ContainerSpec {
            name: target.name,
            rootfs,
            image,
            command: target.command,
            entrypoint: self.entrypoint,
            user: self.user,
            hostname: self.hostname,
            env: self.env,
            workdir: self.workdir,
            nice: self.nice,
            soft_mib: self.soft_mib,
            hard_mib: self.hard_mib,
            soft_signal: self.soft_signal,
            memory: self.memory,
            cpus: self.cpus,
            pids_limit: self.pids_limit,
            cpuset_cpus: self.cpuset_cpus,
            net: self.net,
            ip: self.ip,
            // The last one given wins, as in Docker.
            no_new_privileges: self
                .security_opt
                .iter()
                .rev()
                .find_map(|o| match o {
                    SecurityOpt::NoNewPrivileges(on) => Some(*on),
                    _ => None,
                })
                .unwrap_or(false),
            seccomp_unconfined: self.security_opt.contains(&SecurityOpt::SeccompUnconfined),
            read_only: self.read_only,
            log: {
                let mut log = crate::supervisor::logs::rotate::LogConfig::default();
                self.log_opt.iter().try_for_each(|o| log.apply(o))?;
                log
            },
            volumes: self.volume.into_iter().chain(self.tmpfs).chain(self.mount).collect(),
            tty: self.tty,
            interactive: self.interactive,
            restart: self.restart,
            ports: self.publish,
            dns: self.dns,
        };
        spec.validate_request()?;
        Ok(spec)
    }
}

/// Options that may follow the command (`engine start m rootfs /memory_hog 1 500 --hard-mib 6`).
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct TrailingOptions {
    #[command(flatten)]
    options: CreateOptions,
    #[arg(long)]
    rm: bool,
}

/// Docker's order is options, NAME, ROOTFS, CMD...; users also put engine's own options after
/// the command. When the arguments of `start`/`run` end with a run of engine options (and no
/// `--` protects the command), they are moved before the name, so clap sees Docker's order.
pub fn hoist_trailing_options(argv: &[String]) -> Vec<String> {
    let mut trailing = |tail: &[String]| TrailingOptions::try_parse_from(tail).ok().map(|t| t.rm);
    hoist_trailing_options_with(argv, &mut trailing, &mut |head| super::parse(head).is_ok())
}

/// [`hoist_trailing_options`] with its two parsers given (the supervisor keeps its clap commands
/// built, see `thin`): `trailing(tail)` is Some(whether `--rm` is among them) when `tail` is a run
/// of engine options only, `whole(head)` whether `head` is a whole command line.
pub fn hoist_trailing_options_with(
    argv: &[String],
    trailing: &mut dyn FnMut(&[String]) -> Option<bool>,
    whole: &mut dyn FnMut(&[String]) -> bool,
) -> Vec<String> {
    let Some(sub) = subcommand_index(argv) else { return argv.to_vec() };
    let verb = argv[sub].as_str();
    if !matches!(verb, "start" | "run") || argv[sub + 1..].iter().any(|a| a == "--") {
        return argv.to_vec();
    }
    // A tail of options, each taking one value at most, never ends in two words that are not
    // options (`ROOTFS CMD`, `CMD ARG`): no parse is tried then (each costs the supervisor ~35 µs
    // for a `Request::Cli`).
    if let [.., a, b] = &argv[sub + 1..] {
        if !a.starts_with('-') && !b.starts_with('-') {
            return argv.to_vec();
        }
    }
    for j in sub + 2..argv.len() {
        if !argv[j].starts_with("--") {
            continue;
        }
        let Some(rm) = trailing(&argv[j..]) else { continue };
        if rm && verb != "run" {
            continue;
        }
        // The part before must still be a whole command (name, rootfs and a command).
        if !whole(&argv[..j]) {
            continue;
        }
        let mut out = argv[..=sub].to_vec();
        out.extend_from_slice(&argv[j..]);
        out.extend_from_slice(&argv[sub + 1..j]);
        return out;
    }
    argv.to_vec()
}

/// The clap command of the options [`hoist_trailing_options`] moves, and what its matches say:
/// Some(whether `--rm` is among them).
pub fn trailing_options_command() -> clap::Command {
    <TrailingOptions as clap::CommandFactory>::command()
}

pub fn trailing_options_rm(matches: &clap::ArgMatches) -> Option<bool> {
    <TrailingOptions as clap::FromArgMatches>::from_arg_matches(matches).ok().map(|t| t.rm)
}

/// Position of the verb: the first argument that is not the global `--socket` option.
pub(super) fn subcommand_index(argv: &[String]) -> Option<usize> {
    let mut i = 1;
    while i < argv.len() {
        match argv[i].as_str() {
            "--socket" => i += 2,
            a if a.starts_with("--socket=") => i += 1,
            _ => return Some(i),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opt_takes_dockers_spellings_of_no_new_privileges() {
        assert_eq!(parse_security_opt("no-new-privileges"), Ok(SecurityOpt::NoNewPrivileges(true)));
        assert_eq!(parse_security_opt("no-new-privileges:true"), Ok(SecurityOpt::NoNewPrivileges(true)));
        assert_eq!(parse_security_opt("no-new-privileges=false"), Ok(SecurityOpt::NoNewPrivileges(false)));
        assert!(parse_security_opt("no-new-privileges:yes").is_err());
        assert!(parse_security_opt("apparmor=unconfined").is_err());
        assert_eq!(parse_security_opt("seccomp=unconfined"), Ok(SecurityOpt::SeccompUnconfined));
        assert!(parse_security_opt("seccomp=/etc/profile.json").is_err());
    }

    fn hoist(args: &str) -> String {
        let argv: Vec<String> = args.split(' ').map(String::from).collect();
        hoist_trailing_options(&argv).join(" ")
    }

    #[test]
    fn trailing_engine_options_move_before_the_name() {
        assert_eq!(
            hoist("engine start m rootfs /memory_hog 1 500 --soft-mib 3 --hard-mib 6"),
            "engine start --soft-mib 3 --hard-mib 6 m rootfs /memory_hog 1 500"
        );
        assert_eq!(hoist("engine --socket s run x r /bin/true --rm"), "engine --socket s run --rm x r /bin/true");
    }

    /// What lets `hoist_trailing_options_with` skip its parses for a command line that ends in
    /// two words that are not options.
    #[test]
    fn no_trailing_option_takes_more_than_one_value() {
        let mut cmd = trailing_options_command();
        cmd.build();
        for arg in cmd.get_arguments() {
            let most = arg.get_num_args().map_or(1, |n| n.max_values());
            assert!(most <= 1, "--{:?} takes up to {most} values", arg.get_long());
        }
    }

    #[test]
    fn commands_keep_their_own_options() {
        for args in [
            "engine start m rootfs /bin/ls --color",
            "engine start m rootfs -- /bin/prog --nice 5",
            "engine start m rootfs /bin/sh -c --env",
            "engine start --nice 5 m rootfs /bin/true",
            "engine start m rootfs /bin/true --rm",
            "engine ps -a",
        ] {
            assert_eq!(hoist(args), args);
        }
    }
}

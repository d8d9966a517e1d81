//! A bridged container's /etc/resolv.conf, as Docker writes it: the `--dns` servers if given,
//! else the host's, in both cases with the host's `search` and `options` lines. Loopback servers
//! (127.0.0.0/8, ::1) are dropped, since inside the container they are its own loopback, and so are IPv6
//! ones (the bridge is IPv4 only). Unlike Docker, no public resolver is added when none is left:
//! the container gets no nameserver rather than one nobody chose.

use std::net::IpAddr;

const HOST_FILE: &str = "/etc/resolv.conf";
/// systemd-resolved's upstream list, used when the host's file points at its 127.0.0.53 stub
/// (Docker does the same).
const RESOLVED_FILE: &str = "/run/systemd/resolve/resolv.conf";

/// The file for a container with `--dns servers` (empty: the host's).
pub fn resolv_conf(servers: &[IpAddr]) -> String {
    let host = std::fs::read_to_string(HOST_FILE).unwrap_or_default();
    let host = if uses_resolved_stub(&host) { std::fs::read_to_string(RESOLVED_FILE).unwrap_or(host) } else { host };
    render(&host, servers)
}

fn uses_resolved_stub(host: &str) -> bool {
    let servers = nameservers(host);
    !servers.is_empty() && servers.iter().all(|s| *s == IpAddr::from([127, 0, 0, 53]))
}

fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        // A zone suffix (fe80::1%eth0) cannot be used from the container.
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `host`'s file with its nameservers replaced by `servers` (or filtered, when none are given).
fn render(host: &str, servers: &[IpAddr]) -> String {
    let usable = |ip: &IpAddr| ip.is_ipv4() && !ip.is_loopback();
    let chosen: Vec<IpAddr> =
        if servers.is_empty() { nameservers(host).into_iter().filter(usable).collect() } else { servers.to_vec() };
    let mut out = String::new();
    for ip in &chosen {
        out.push_str(&format!("nameserver {ip}\n"));
    }
    for line in host.lines() {
        let word = line.split_whitespace().next().unwrap_or("");
        if matches!(word, "search" | "domain" | "options") {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_ipv6_servers_are_dropped_search_kept() {
        let host = "# a comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fd00::1\n\
                    search example.org\noptions edns0 trust-ad\n";
        assert_eq!(render(host, &[]), "nameserver 10.0.0.2\nsearch example.org\noptions edns0 trust-ad\n");
    }

    #[test]
    fn given_servers_replace_the_hosts() {
        let host = "nameserver 10.0.0.2\nsearch lan\n";
        let servers = ["192.0.2.53".parse().unwrap(), "198.51.100.1".parse().unwrap()];
        assert_eq!(render(host, &servers), "nameserver 192.0.2.53\nnameserver 198.51.100.1\nsearch lan\n");
    }

    #[test]
    fn a_host_with_only_loopback_leaves_no_server() {
        assert_eq!(render("nameserver 127.0.0.1\n", &[]), "");
        assert!(uses_resolved_stub("nameserver 127.0.0.53\noptions edns0\n"));
        assert!(!uses_resolved_stub("nameserver 127.0.0.53\nnameserver 10.0.0.1\n"));
    }
}

//! IP address management: the subnet type, address parsing, and the lease
//! file. Leases live in one JSON file (`<state_dir>/leases.json`) that is
//! rewritten atomically (temp file, rename) while holding an exclusive flock
//! on `<state_dir>/leases.lock`, because several supervisor threads may
//! attach at once and a crash must never leave a torn file. No fsync: a
//! killed supervisor's successor reads the renamed file from the page cache,
//! and after a power loss no container holds its address any more (the
//! restart's stale sweep releases every lease whose container is not running,
//! and a lease lost with the cache was one of those).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::NetError;

const LEASES: &str = "leases.json";
const LOCK: &str = "leases.lock";

/// An IPv4 network: its (masked) network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// Host bits of `addr` are cleared. Prefixes longer than /30 leave no
    /// room for a gateway and a container, so they are refused.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, NetError> {
        if !(1..=30).contains(&prefix) {
            return Err(NetError::InvalidSubnet {
                input: format!("{addr}/{prefix}"),
                reason: "the prefix length must be between 1 and 30".into(),
            });
        }
        let addr = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        Ok(Ipv4Net { addr, prefix })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Why `ip` cannot be leased to a container in this network with this
    /// gateway, or Ok.
    pub fn check_host(&self, ip: Ipv4Addr, gateway: Ipv4Addr) -> Result<(), NetError> {
        let reserved = |what| NetError::ReservedAddress { ip, what, subnet: self.to_string() };
        if !self.contains(ip) {
            return Err(NetError::OutsideSubnet { ip, subnet: self.to_string() });
        }
        if ip == self.network() {
            return Err(reserved("network"));
        }
        if ip == self.broadcast() {
            return Err(reserved("broadcast"));
        }
        if ip == gateway {
            return Err(reserved("gateway"));
        }
        Ok(())
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Ipv4Net, NetError> {
        let bad = |reason: String| NetError::InvalidSubnet { input: s.to_string(), reason };
        let (addr, prefix) =
            s.split_once('/').ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.88.0.0/16".into()))?;
        let addr = parse_ip(addr).map_err(|e| bad(e.to_string()))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad(format!("prefix length {prefix:?} is not a number")))?;
        let net = Ipv4Net::new(addr, prefix).map_err(|e| bad(e.to_string()))?;
        if net.network() != addr {
            return Err(bad(format!("host bits are set (did you mean {net}?)")));
        }
        Ok(net)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a dotted-quad IPv4 address (as given to `--ip`) with a message
/// that says what is wrong.
pub fn parse_ip(s: &str) -> Result<Ipv4Addr, NetError> {
    let bad = |reason: &str| NetError::InvalidAddress { input: s.to_string(), reason: reason.into() };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("the address is empty"));
    }
    if t.contains('/') {
        return Err(bad("give the address without a prefix length (the network's prefix is used)"));
    }
    if t.contains(':') {
        return Err(bad("only IPv4 addresses are supported"));
    }
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() != 4 {
        return Err(bad("expected four numbers separated by dots, e.g. 10.88.0.2"));
    }
    for p in &parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("each part must be a decimal number"));
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err(bad("leading zeros are ambiguous (octal?); write e.g. 10.88.0.2"));
        }
        if p.parse::<u32>().map_or(true, |n| n > 255) {
            return Err(bad("each number must be between 0 and 255"));
        }
    }
    t.parse().map_err(|_| bad("not an IPv4 address"))
}

/// One leased address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub container: String,
    /// The host end of the container's veth (for cleanup after a crash).
    pub host_veth: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    leases: BTreeMap<Ipv4Addr, Lease>,
}

/// The lease file, opened and locked. Dropping it releases the lock.
pub(crate) struct Leases {
    dir: PathBuf,
    _lock: File,
    file: LeaseFile,
}

impl Leases {
    /// Takes the lock (blocking) and reads the current leases.
    pub(crate) fn open(dir: &Path) -> Result<Leases, NetError> {
        fs::create_dir_all(dir).map_err(|e| NetError::io("create state directory", dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| NetError::io("open lock file", &lock_path, e))?;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(NetError::io("lock", &lock_path, e));
            }
        }
        let path = dir.join(LEASES);
        let file = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| NetError::CorruptLeases { path: path.clone(), detail: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LeaseFile::default(),
            Err(e) => return Err(NetError::io("read", &path, e)),
        };
        Ok(Leases { dir: dir.to_path_buf(), _lock: lock, file })
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = (Ipv4Addr, &Lease)> {
        self.file.leases.iter().map(|(ip, l)| (*ip, l))
    }

    pub(crate) fn of(&self, container: &str) -> Option<(Ipv4Addr, &Lease)> {
        self.all().find(|(_, l)| l.container == container)
    }

    /// Chooses `requested` (checked) or the lowest free address, records the
    /// lease and writes the file.
    pub(crate) fn acquire(
        &mut self,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        lease: Lease,
    ) -> Result<Ipv4Addr, NetError> {
        if let Some((ip, _)) = self.of(&lease.container) {
            return Err(NetError::AlreadyAttached { container: lease.container, ip });
        }
        let ip = match requested {
            Some(ip) => {
                subnet.check_host(ip, gateway)?;
                if let Some(holder) = self.file.leases.get(&ip) {
                    return Err(NetError::AddressInUse { ip, holder: holder.container.clone() });
                }
                ip
            }
            None => {
                let first = u32::from(subnet.network()) + 1;
                let last = u32::from(subnet.broadcast()) - 1;
                (first..=last)
                    .map(Ipv4Addr::from)
                    .find(|ip| *ip != gateway && !self.file.leases.contains_key(ip))
                    .ok_or_else(|| NetError::PoolExhausted { subnet: subnet.to_string() })?
            }
        };
        self.file.leases.insert(ip, lease);
        if let Err(e) = self.save() {
            self.file.leases.remove(&ip);
            return Err(e);
        }
        Ok(ip)
    }

    /// Drops the lease of `container` (if any) and writes the file.
    pub(crate) fn release(&mut self, container: &str) -> Result<Option<Ipv4Addr>, NetError> {
        let Some((ip, _)) = self.of(container) else {
            return Ok(None);
        };
        let lease = self.file.leases.remove(&ip);
        if let Err(e) = self.save() {
            if let Some(lease) = lease {
                self.file.leases.insert(ip, lease);
            }
            return Err(e);
        }
        Ok(Some(ip))
    }

    fn save(&self) -> Result<(), NetError> {
        let path = self.dir.join(LEASES);
        let tmp = self.dir.join(format!("{LEASES}.tmp"));
        let data = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| NetError::CorruptLeases { path: path.clone(), detail: e.to_string() })?;
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&data)
        };
        write().map_err(|e| NetError::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| NetError::io("rename into place", &path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_math() {
        let n: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(n.contains(Ipv4Addr::new(10, 88, 3, 4)));
        assert!(!n.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert!("10.88.0.1/16".parse::<Ipv4Net>().is_err());
        assert!("10.88.0.0/31".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn parse_ip_messages() {
        assert_eq!(parse_ip("10.88.0.2").unwrap(), Ipv4Addr::new(10, 88, 0, 2));
        for bad in ["", "10.88.0", "10.88.0.256", "10.88.0.2/16", "a.b.c.d", "010.1.1.1", "::1"] {
            let e = parse_ip(bad).unwrap_err().to_string();
            assert!(e.contains("invalid IPv4 address"), "{bad}: {e}");
        }
    }
}

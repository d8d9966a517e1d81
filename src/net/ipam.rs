//! IP address management: the subnet type, address parsing, and the leases. Each lease is an
//! empty file `<state_dir>/leases.d/<ip>@<container>@<host veth>`, made with O_EXCL (or an empty
//! file made ahead renamed there with RENAME_NOREPLACE: never over another lease) and
//! removed with unlink while holding an exclusive flock on `<state_dir>/leases.lock` (several
//! supervisor threads may attach at once). A directory read gives every lease. No file is ever
//! rewritten: replacing one shared file by rename (or truncating it) makes ext4 start writing
//! the new data back at once (its auto_da_alloc rule), a few milliseconds on every start and
//! end, and it grew with the number of containers. No fsync: a killed supervisor's successor
//! reads the directory from the cache, and after a power loss no container holds its address
//! any more (the restart's stale sweep releases every lease whose container is not running).
//! A `leases.json` of an older engine is read once into the directory and removed.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::NetError;

const LEGACY: &str = "leases.json";
const DIR: &str = "leases.d";
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

/// The lease file of an older engine (one JSON file for all).
#[derive(Debug, Default, Deserialize)]
struct LegacyFile {
    leases: BTreeMap<Ipv4Addr, Lease>,
}

/// The leases, read and locked. Dropping it releases the lock.
pub(crate) struct Leases {
    dir: PathBuf,
    lock: File,
    leases: BTreeMap<Ipv4Addr, Lease>,
    /// The lock file's count of changes when these were read (see `CACHE`).
    generation: Generation,
    changed: bool,
}

/// The leases this process last held, per directory, with the generation they were read at.
/// Reading the directory is O(leases) (0.35 ms of getdents and 0.2 ms of parsing at 1,000, on every
/// start and every release); under the lock, the lock file's first 8 bytes count the changes
/// every writer made (each bumps them before letting go), so an unchanged count means the
/// directory is as this process left it. A writer that does not count (an engine from before
/// the count, run beside this one) is not seen until the next count changes.
static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);

/// A directory, the generation its leases were held at, the leases.
type Cached = (PathBuf, Generation, BTreeMap<Ipv4Addr, Lease>);

/// The lock file's identity (a lock file made again starts its count again) and its count.
type Generation = (u64, u64, u64);

fn read_generation(lock: &File) -> Generation {
    use std::os::unix::fs::MetadataExt;
    let id = lock.metadata().map(|m| (m.dev(), m.ino())).unwrap_or((0, 0));
    let mut b = [0u8; 8];
    match std::os::unix::fs::FileExt::read_at(lock, &mut b, 0) {
        Ok(8) => (id.0, id.1, u64::from_le_bytes(b)),
        _ => (id.0, id.1, 0),
    }
}

/// The file name of a lease (container names have no '@', nor have veth names).
fn file_name(ip: Ipv4Addr, lease: &Lease) -> String {
    format!("{ip}@{}@{}", lease.container, lease.host_veth)
}

fn parse_file_name(name: &str) -> Option<(Ipv4Addr, Lease)> {
    let mut parts = name.splitn(3, '@');
    let ip = parts.next()?.parse().ok()?;
    let container = parts.next().filter(|c| !c.is_empty())?.to_string();
    let host_veth = parts.next()?.to_string();
    Some((ip, Lease { container, host_veth }))
}

impl Leases {
    /// Takes the lock (blocking) and reads the current leases.
    pub(crate) fn open(state_dir: &Path) -> Result<Leases, NetError> {
        let dir = state_dir.join(DIR);
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                fs::create_dir_all(&dir).map_err(|e| NetError::io("create state directory", &dir, e))?;
            }
        }
        let lock_path = state_dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
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
        let generation = read_generation(&lock);
        let cached = CACHE.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((cached_dir, g, leases)) = cached {
            if cached_dir == dir && g == generation && !state_dir.join(LEGACY).exists() {
                return Ok(Leases { dir, lock, leases, generation, changed: false });
            }
        }
        let mut leases = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(|e| NetError::io("read", &dir, e))? {
            let entry = entry.map_err(|e| NetError::io("read", &dir, e))?;
            // Anything else in the directory is not a lease (and never made by engine).
            if let Some((ip, lease)) = entry.file_name().to_str().and_then(parse_file_name) {
                leases.insert(ip, lease);
            }
        }
        let mut this = Leases { dir, lock, leases, generation, changed: false };
        this.import_legacy(state_dir)?;
        Ok(this)
    }

    /// Moves the leases of an older engine's `leases.json` into the directory.
    fn import_legacy(&mut self, state_dir: &Path) -> Result<(), NetError> {
        let path = state_dir.join(LEGACY);
        let old: LegacyFile = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| NetError::CorruptLeases { path: path.clone(), detail: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NetError::io("read", &path, e)),
        };
        for (ip, lease) in old.leases {
            if !self.leases.contains_key(&ip) && self.of(&lease.container).is_none() {
                self.create(ip, &lease)?;
                self.changed = true;
                self.leases.insert(ip, lease);
            }
        }
        fs::remove_file(&path).map_err(|e| NetError::io("remove", &path, e))
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = (Ipv4Addr, &Lease)> {
        self.leases.iter().map(|(ip, l)| (*ip, l))
    }

    pub(crate) fn of(&self, container: &str) -> Option<(Ipv4Addr, &Lease)> {
        self.all().find(|(_, l)| l.container == container)
    }

    /// Chooses `requested` (checked) or the lowest free address that `avoid` does not reject,
    /// and records the lease.
    pub(crate) fn acquire(
        &mut self,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        avoid: &dyn Fn(Ipv4Addr) -> bool,
        lease: Lease,
        place: &dyn Fn(&Path) -> bool,
    ) -> Result<Ipv4Addr, NetError> {
        if let Some((ip, _)) = self.of(&lease.container) {
            return Err(NetError::AlreadyAttached { container: lease.container, ip });
        }
        let ip = match requested {
            Some(ip) => {
                subnet.check_host(ip, gateway)?;
                if let Some(holder) = self.leases.get(&ip) {
                    return Err(NetError::AddressInUse { ip, holder: holder.container.clone() });
                }
                ip
            }
            None => {
                let first = u32::from(subnet.network()) + 1;
                let last = u32::from(subnet.broadcast()) - 1;
                (first..=last)
                    .map(Ipv4Addr::from)
                    .find(|ip| *ip != gateway && !self.leases.contains_key(ip) && !avoid(*ip))
                    .ok_or_else(|| NetError::PoolExhausted { subnet: subnet.to_string() })?
            }
        };
        let path = self.dir.join(file_name(ip, &lease));
        self.changed = true;
        if !place(&path) {
            self.create(ip, &lease)?;
        }
        self.leases.insert(ip, lease);
        Ok(ip)
    }

    /// Drops the lease of `container` (if any) and returns its address.
    pub(crate) fn release(&mut self, container: &str) -> Result<Option<Ipv4Addr>, NetError> {
        let Some((ip, lease)) = self.of(container) else {
            return Ok(None);
        };
        let path = self.dir.join(file_name(ip, lease));
        self.changed = true;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::io("remove lease", &path, e)),
        }
        self.leases.remove(&ip);
        Ok(Some(ip))
    }

    /// Counts this holder's changes in the lock file (while still holding it); what this process
    /// holds now goes to `CACHE` if the count is written, else nothing does.
    fn settle(&mut self) {
        let (dev, ino, count) = self.generation;
        let generation = (dev, ino, if self.changed { count.wrapping_add(1) } else { count });
        if self.changed {
            let written = std::os::unix::fs::FileExt::write_all_at(&self.lock, &generation.2.to_le_bytes(), 0);
            if written.is_err() {
                // Not counted: the next open of any process reads the directory again. A stale
                // cache elsewhere is the risk; dropping ours is all this process can do.
                *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return;
            }
        }
        let leases = std::mem::take(&mut self.leases);
        *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some((self.dir.clone(), generation, leases));
    }

    fn create(&self, ip: Ipv4Addr, lease: &Lease) -> Result<(), NetError> {
        let path = self.dir.join(file_name(ip, lease));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map(drop)
            .map_err(|e| NetError::io("create lease", &path, e))
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        // Before the lock goes (fields drop after this).
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_read_again_only_when_the_lock_files_count_of_changes_moved() {
        let d = tempfile::tempdir().unwrap();
        let sub: Ipv4Net = "10.77.0.0/16".parse().unwrap();
        let gw = Ipv4Addr::new(10, 77, 0, 1);
        let lease = |c: &str| Lease { container: c.into(), host_veth: format!("v{c}") };
        let first = Leases::open(d.path()).unwrap().acquire(sub, gw, None, &|_| false, lease("a"), &|_| false).unwrap();
        assert_eq!(first, Ipv4Addr::new(10, 77, 0, 2));
        // A file put there without counting (no engine writes so) is not read: the cache holds.
        let planted = d.path().join(DIR).join(file_name(Ipv4Addr::new(10, 77, 0, 3), &lease("x")));
        fs::write(&planted, "").unwrap();
        assert!(Leases::open(d.path()).unwrap().of("x").is_none(), "the directory was read again");
        // Counted by another writer (the count moved): read again.
        let lock = OpenOptions::new().read(true).write(true).open(d.path().join(LOCK)).unwrap();
        let (_, _, g) = read_generation(&lock);
        std::os::unix::fs::FileExt::write_all_at(&lock, &(g + 1).to_le_bytes(), 0).unwrap();
        let leases = Leases::open(d.path()).unwrap();
        assert_eq!(leases.of("x").map(|(ip, _)| ip), Some(Ipv4Addr::new(10, 77, 0, 3)));
        drop(leases);
        // This process's own changes count: a release, then a new lease, both seen.
        assert_eq!(Leases::open(d.path()).unwrap().release("a").unwrap(), Some(first));
        let next = Leases::open(d.path()).unwrap().acquire(sub, gw, None, &|_| false, lease("b"), &|_| false).unwrap();
        assert_eq!(next, first, "the released address is free again");
        let all: Vec<String> = Leases::open(d.path()).unwrap().all().map(|(_, l)| l.container.clone()).collect();
        assert_eq!(all, ["b", "x"]);
    }

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

//! Paths inside a container root, resolved without ever leaving it.
//!
//! Everything here runs as real root before pivot_root, on a tree the container controls: an
//! earlier container (or anyone who can write the rootfs) may have planted symlinks for the next
//! start and may swap them while we work (CVE-2021-30465). So every rule below holds for every
//! path the runtime touches inside a root (mount targets now; volumes and image mounts later):
//! - a path is resolved by openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from an fd of the
//!   root: a symlink is followed as the container would see it, never out to the host;
//! - a missing component is created relative to its resolved parent's fd (mkdirat, or
//!   openat(O_CREAT | O_EXCL), which never follows a link), never by path, and never truncated;
//! - the result is an O_PATH fd whose type is checked, and a mount goes onto that fd through
//!   `/proc/self/fd/N` (as runc does), so what was checked is what gets mounted on.
//!
//! Trees the runtime itself has just mounted (a fresh /dev tmpfs, a fresh proc) are walked even
//! more strictly: beneath the directory, no symlinks at all.
use crate::sys::check;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// What the caller expects to find at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// An O_PATH fd of a directory, and the rule for resolving paths below it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    resolve: u64,
    path: PathBuf,
}

/// An O_PATH fd of whatever a path resolved to, checked to be of the expected kind.
#[derive(Debug)]
pub struct Entry {
    /// Held, not read: `path` names it.
    _fd: OwnedFd,
    path: PathBuf,
}

/// Symlinks followed inside the root as the container sees them; /proc magic links refused.
const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
/// For trees the runtime mounted itself: nothing in them may be a link. (Crossing mounts is
/// allowed: the runtime mounts over /proc paths and reopens them.)
const STRICT: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The components of `path` taken relative to the root, lexically cleaned (`..` can not climb
/// above the root, as RESOLVE_IN_ROOT would do too).
fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// How many times a scoped lookup is retried after EAGAIN (see `openat2`).
const SCOPED_LOOKUP_TRIES: u32 = 128;

fn openat2(dirfd: RawFd, path: &str, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let path = cstr(if path.is_empty() { "." } else { path })?;
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // A scoped lookup (RESOLVE_IN_ROOT/BENEATH) fails with EAGAIN when a rename or a mount
    // happened anywhere on the system while it stepped over "..": openat2(2) says to retry, as
    // libpathrs does. The supervisor's own threads rename and mount (spare layers, fresh files),
    // so it is not rare: a start failed on it in CI.
    let mut tries = 0;
    let fd = loop {
        // SAFETY: valid pointers for the duration of the call; the result is a fresh fd we own.
        match check(unsafe {
            libc::syscall(libc::SYS_openat2, dirfd, path.as_ptr(), &how as *const libc::open_how, size_of_val(&how))
        }) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < SCOPED_LOOKUP_TRIES => tries += 1,
            done => break done?,
        }
    };
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn file_type(fd: RawFd) -> io::Result<libc::mode_t> {
    // SAFETY: fstat fills the struct; the fd is valid while borrowed.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT)
}

fn check_kind(fd: RawFd, kind: Kind, path: &str) -> io::Result<()> {
    let want = match kind {
        Kind::Dir => libc::S_IFDIR,
        Kind::File => libc::S_IFREG,
    };
    if file_type(fd)? == want {
        Ok(())
    } else {
        let what = if kind == Kind::Dir { "a directory" } else { "a regular file" };
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{path} is not {what}")))
    }
}

/// `/proc/self/fd/N`: the path the mount calls take to reach exactly the fd's object. Handed
/// out only as a borrow of the fd's owner, so the fd cannot close (and its number be reused)
/// while the path is in use.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Dir {
    fn new(fd: OwnedFd, resolve: u64) -> Dir {
        Dir { path: fd_path(&fd), fd, resolve }
    }
}

impl Entry {
    fn new(fd: OwnedFd) -> Entry {
        Entry { path: fd_path(&fd), _fd: fd }
    }
}

impl Dir {
    /// The root of a container tree. `path` itself is trusted (the runtime chose it); everything
    /// below it is not.
    pub fn root(path: &Path) -> io::Result<Dir> {
        let p = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: a plain open; the fd is ours.
        let fd = check(unsafe {
            libc::open(p.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        })?;
        // SAFETY: the kernel just gave us this fd.
        Ok(Dir::new(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }, IN_ROOT))
    }

    /// The directory at `path` below this one (created, with missing parents, if `create`), under
    /// the same resolution rule.
    pub fn dir(&self, path: &str, create: bool) -> io::Result<Dir> {
        let fd = self.resolve(&components(path), Kind::Dir, create)?;
        Ok(Dir::new(fd, self.resolve))
    }

    /// The directory `name` directly below this one, created if absent, which must be a real
    /// directory and not a link (runc refuses a linked /proc or /dev too): a mount on it then
    /// lands where the container sees it, and two of them cannot be made to land on each other.
    pub fn real_dir(&self, name: &str) -> io::Result<Dir> {
        let no_links = Dir {
            fd: self.fd.try_clone()?,
            resolve: self.resolve | libc::RESOLVE_NO_SYMLINKS,
            path: self.path.clone(),
        };
        single(name)?;
        let fd = no_links.resolve(&[name], Kind::Dir, true)?;
        Ok(Dir::new(fd, self.resolve))
    }

    /// The file at `path` below this one, created empty (mode 0644, missing parents 0755) if
    /// `create` and absent. An existing file is left as it is: never truncated.
    pub fn file(&self, path: &str, create: bool) -> io::Result<Entry> {
        Ok(Entry::new(self.resolve(&components(path), Kind::File, create)?))
    }

    /// The directory, regular file or character device at `path` below this directory, if any; for masking paths
    /// that may be files or directories.
    pub fn entry(&self, path: &str) -> io::Result<Option<(Entry, Kind)>> {
        match openat2(self.fd.as_raw_fd(), &components(path).join("/"), libc::O_NOFOLLOW, self.resolve) {
            Ok(fd) => {
                // A link (O_NOFOLLOW hands out the link itself), a socket or a fifo is refused;
                // a character device counts as a file (/dev/null, the masks' source).
                let kind = match file_type(fd.as_raw_fd())? {
                    libc::S_IFDIR => Kind::Dir,
                    libc::S_IFREG | libc::S_IFCHR => Kind::File,
                    _ => {
                        let msg = format!("/{path} is not a directory, a regular file or a character device");
                        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
                    }
                };
                Ok(Some((Entry::new(fd), kind)))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whatever `path` resolves to below this directory, links followed under this directory's
    /// rule (inside the root, as the container sees them): `None` only if nothing is there
    /// (ENOENT); any other failure (ELOOP of a link looping on itself, ENOTDIR, EACCES) is an
    /// error, as runc and crun treat their mount call's. Any type: Kind::Dir for a directory,
    /// Kind::File for anything else (file, device node, fifo, socket). For the masked and
    /// read-only paths.
    pub fn node(&self, path: &str) -> io::Result<Option<(Entry, Kind)>> {
        match openat2(self.fd.as_raw_fd(), &components(path).join("/"), 0, self.resolve) {
            Ok(fd) => {
                let kind = if file_type(fd.as_raw_fd())? == libc::S_IFDIR { Kind::Dir } else { Kind::File };
                Ok(Some((Entry::new(fd), kind)))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// From here on nothing below may be a symlink or another mount: for trees the runtime
    /// has just mounted itself.
    pub fn strict(self) -> Dir {
        Dir { resolve: STRICT, ..self }
    }

    /// The filesystem magic number (statfs f_type): proves a fresh mount is the one we made.
    pub fn fs_type(&self) -> io::Result<i64> {
        // SAFETY: fstatfs fills the struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstatfs(self.fd.as_raw_fd(), &mut st) })?;
        Ok(st.f_type as i64)
    }

    /// The path a mount call uses to reach this very directory.
    pub fn mount_path(&self) -> &Path {
        &self.path
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// mknodat a single name in this directory (never through a link: mknod does not follow).
    pub fn mknod(&self, name: &str, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
        let n = single(name)?;
        // SAFETY: plain syscall on a valid dirfd and C string.
        check(unsafe { libc::mknodat(self.fd.as_raw_fd(), n.as_ptr(), mode, dev) })?;
        // mknod applies the umask; set the mode exactly, on the node itself (no link to follow).
        // SAFETY: as above.
        check(unsafe { libc::fchmodat(self.fd.as_raw_fd(), n.as_ptr(), mode & 0o7777, 0) }).map(drop)
    }

    pub fn mkdir(&self, name: &str, mode: libc::mode_t) -> io::Result<()> {
        let n = single(name)?;
        // SAFETY: plain syscall on a valid dirfd and C string.
        match check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), n.as_ptr(), mode) }) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    pub fn symlink(&self, target: &str, name: &str) -> io::Result<()> {
        let (t, n) = (cstr(target)?, single(name)?);
        // SAFETY: plain syscall on a valid dirfd and C strings.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.fd.as_raw_fd(), n.as_ptr()) }).map(drop)
    }

    /// Creates `name` (it must not exist yet) and writes `content` to it.
    pub fn write_new(&self, name: &str, content: &[u8], mode: libc::mode_t) -> io::Result<()> {
        let n = single(name)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: plain syscall; the fd is ours.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), n.as_ptr(), flags, mode as libc::c_uint) })?;
        // SAFETY: the kernel just gave us this fd.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        io::Write::write_all(&mut file, content)?;
        // Exact mode whatever the umask.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
    }

    /// Resolves `parts`, creating what is missing when asked: the missing component is made
    /// relative to its parent's fd, then the whole path is resolved again under the rule, so a
    /// link planted or swapped meanwhile is still followed only inside the root.
    fn resolve(&self, parts: &[&str], kind: Kind, create: bool) -> io::Result<OwnedFd> {
        let path = parts.join("/");
        let flags = if kind == Kind::Dir { libc::O_DIRECTORY } else { 0 };
        let fd = match openat2(self.fd.as_raw_fd(), &path, flags, self.resolve) {
            Err(e) if create && !parts.is_empty() && e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = self.resolve(&parts[..parts.len() - 1], Kind::Dir, true)?;
                let name = single(parts[parts.len() - 1])?;
                // SAFETY: plain syscalls on a valid dirfd and C string. EEXIST means something
                // (maybe a dangling link) is there already: the re-resolve below decides.
                let rc = unsafe {
                    match kind {
                        Kind::Dir => libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755),
                        Kind::File => {
                            let f = libc::openat(
                                parent.as_raw_fd(),
                                name.as_ptr(),
                                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                                0o644 as libc::c_uint,
                            );
                            if f >= 0 {
                                libc::close(f);
                            }
                            f.min(0)
                        }
                    }
                };
                if let Err(e) = check(rc) {
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                openat2(self.fd.as_raw_fd(), &path, flags, self.resolve)?
            }
            other => other?,
        };
        check_kind(fd.as_raw_fd(), kind, &format!("/{path}"))?;
        Ok(fd)
    }
}

/// A single path component: no slash, not `.` or `..`.
fn single(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a single path component")));
    }
    cstr(name)
}

impl Entry {
    /// The path a mount call uses to reach this very file or directory.
    pub fn mount_path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_never_climb_above_the_root() {
        assert_eq!(components("/etc/hosts"), ["etc", "hosts"]);
        assert_eq!(components("../../etc/./hosts/"), ["etc", "hosts"]);
        assert_eq!(components("/a/../../b"), ["b"]);
        assert!(components("/").is_empty());
    }

    #[test]
    fn a_lookup_over_dotdot_survives_renames_elsewhere_on_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        std::fs::create_dir_all(root_path.join("etc")).unwrap();
        std::fs::create_dir_all(root_path.join("tmp")).unwrap();
        std::fs::write(root_path.join("tmp/target"), "").unwrap();
        // As an image's /etc/resolv.conf may be: a link climbing with "..".
        std::os::unix::fs::symlink("../../../../tmp/target", root_path.join("etc/link")).unwrap();
        let root = Dir::root(&root_path).unwrap();
        // Renames elsewhere while the lookups run (the kernel answers a scoped ".." with EAGAIN
        // when one happened meanwhile).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, busy) = (stop.clone(), dir.path().join("busy"));
        let renamer = std::thread::spawn(move || {
            std::fs::write(&busy, "").unwrap();
            let other = busy.with_extension("other");
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::rename(&busy, &other).unwrap();
                std::fs::rename(&other, &busy).unwrap();
            }
        });
        let failed = (0..20_000).filter(|_| root.file("etc/link", false).is_err()).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert_eq!(failed, 0, "lookups failed while another thread renamed files");
    }

    #[test]
    fn links_are_followed_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root_path.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("etc/escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("x"), root_path.join("etc/hostname")).unwrap();
        let root = Dir::root(&root_path).unwrap();
        // The absolute link resolves inside the root, where its target does not exist.
        assert!(root.file("etc/hostname", false).is_err());
        // Creating through a dangling link is refused rather than creating its target.
        assert!(root.file("etc/hostname", true).is_err());
        assert!(!outside.join("x").exists());
        // A directory link to the host resolves inside the root: nothing is made on the host.
        assert!(root.dir("etc/escape/sub", true).is_err());
        assert!(!outside.join("sub").exists());
        std::fs::create_dir_all(root_path.join(outside.strip_prefix("/").unwrap())).unwrap();
        root.dir("etc/escape/sub", true).unwrap();
        assert!(root_path.join(outside.strip_prefix("/").unwrap()).join("sub").is_dir());
        assert!(!outside.join("sub").exists());
        // A file where a directory is expected is refused.
        std::fs::write(root_path.join("f"), "x").unwrap();
        assert!(root.dir("f", false).is_err());
        let e = root.file("f", true).unwrap();
        assert_eq!(std::fs::read_to_string(e.mount_path()).unwrap(), "x");
    }
}

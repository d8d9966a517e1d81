//! Unpacks one layer tarball into its own empty directory, verifying the blob's digest (over the
//! compressed bytes) and its diff ID (over the tar) in the same pass as the download.
//!
//! The archive is hostile until its digest has checked out, and even then it is only as honest as
//! whoever pushed it: no entry may land outside the layer directory (the tar-slip class). So every
//! entry is created by an fd-relative walk from the layer's directory fd: names are cleaned
//! lexically (an absolute path or a `..` refuses the archive), each parent is opened with
//! O_NOFOLLOW (a symlink planted by an earlier entry refuses the archive instead of being
//! followed), files are created with O_EXCL|O_NOFOLLOW, and a hard link's target is resolved by
//! the same walk. The layer is written into a temp dir that the caller renames into place only
//! after both digests match, so nothing half-unpacked is ever visible.
//!
//! Docker/OCI whiteouts become what overlayfs reads: `.wh.NAME` a character device 0:0 named NAME,
//! `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Error;
use crate::sys::check;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// Decided from the stream's first bytes (archives whose layers carry no media type).
    Sniff,
}

/// Reads through to `inner`, hashing and counting every byte.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    progress: Option<Box<dyn FnMut(u64) + Send>>,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> HashReader<R> {
        HashReader { inner, hasher: Sha256::new(), count: 0, progress: None }
    }

    pub fn with_progress(mut self, progress: Box<dyn FnMut(u64) + Send>) -> HashReader<R> {
        self.progress = Some(progress);
        self
    }

    /// Reads what is left (a tar's trailing padding, a decoder's tail) so the digest covers it all.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format!("sha256:{}", hex::encode(self.hasher.finalize())), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(p) = self.progress.as_mut() {
            p(n as u64);
        }
        Ok(n)
    }
}

/// What a layer blob must turn out to be.
pub struct Expect<'a> {
    /// The blob's digest (compressed bytes); None when the source gives none (docker-archive).
    pub digest: Option<&'a str>,
    pub size: Option<u64>,
    /// The tar's digest, from the image config's rootfs.diff_ids.
    pub diff_id: &'a str,
}

/// Streams `blob` into `dest` (an existing empty directory), checking `expect`. On error the
/// caller removes `dest`; it must never have been visible.
pub fn unpack_layer(
    blob: impl Read,
    compression: Compression,
    expect: &Expect,
    dest: &Path,
    layer: &str,
    progress: Option<Box<dyn FnMut(u64) + Send>>,
) -> Result<(), Error> {
    let archive_err = |source| Error::Archive { layer: layer.to_string(), source };
    let mut outer = HashReader::new(BufReader::with_capacity(256 * 1024, blob));
    outer.progress = progress;
    let mut compression = compression;
    if compression == Compression::Sniff {
        let mut head = [0u8; 4];
        let n = peek(&mut outer.inner, &mut head).map_err(archive_err)?;
        compression = match &head[..n] {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
            _ => Compression::None,
        };
    }
    let diff = {
        let decoded: Box<dyn Read + '_> = match compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut outer)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut outer).map_err(archive_err)?),
            Compression::None | Compression::Sniff => Box::new(&mut outer),
        };
        let mut tar_stream = HashReader::new(decoded);
        let root = open_root(dest).map_err(Error::io(format!("layer {layer}: open {}", dest.display())))?;
        let result = unpack_entries(&mut tar_stream, &root, layer);
        // A digest mismatch explains a broken archive better than the archive error does: when the
        // stream is bad, finish reading it and compare before reporting the unpack error.
        let diff = tar_stream.finish();
        match (result, diff) {
            (Ok(()), Ok(d)) => d,
            (Err(e), _) => {
                let rest = outer.finish();
                if let (Some(want), Ok((_, got))) = (expect.size, &rest) {
                    if want != *got {
                        return Err(Error::SizeMismatch {
                            what: format!("layer {layer}"),
                            expected: want,
                            actual: *got,
                        });
                    }
                }
                if let (Some(want), Ok((got, _))) = (expect.digest, rest) {
                    if want != got {
                        return Err(Error::DigestMismatch {
                            what: format!("layer {layer}"),
                            expected: want.into(),
                            actual: got,
                        });
                    }
                }
                return Err(e);
            }
            (Ok(()), Err(e)) => return Err(archive_err(e)),
        }
    };
    let (digest, size) = outer.finish().map_err(archive_err)?;
    if let Some(want) = expect.size {
        if want != size {
            return Err(Error::SizeMismatch { what: format!("layer {layer}"), expected: want, actual: size });
        }
    }
    if let Some(want) = expect.digest {
        if want != digest {
            return Err(Error::DigestMismatch {
                what: format!("layer {layer}"),
                expected: want.into(),
                actual: digest,
            });
        }
    }
    if diff.0 != expect.diff_id {
        return Err(Error::DigestMismatch {
            what: format!("layer {layer} (uncompressed, the config's diff ID)"),
            expected: expect.diff_id.into(),
            actual: diff.0,
        });
    }
    Ok(())
}

fn peek<R: BufRead>(r: &mut R, head: &mut [u8]) -> io::Result<usize> {
    let buf = r.fill_buf()?;
    let n = buf.len().min(head.len());
    head[..n].copy_from_slice(&buf[..n]);
    Ok(n)
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn open_root(dest: &Path) -> io::Result<OwnedFd> {
    let p = cstr(dest.as_os_str().as_bytes())?;
    // SAFETY: valid C string; the fd returned is ours.
    let fd = check(unsafe { libc::open(p.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: fresh fd from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat_dir(dir: RawFd, name: &CString) -> io::Result<OwnedFd> {
    // SAFETY: as above. O_NOFOLLOW: a symlink where a directory should be is an error, never followed.
    let fd = check(unsafe {
        libc::openat(dir, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    })?;
    // SAFETY: fresh fd from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A tar name split into cleaned components; refuses what could leave the layer.
fn clean(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.starts_with(b"/") {
        return Err("absolute path");
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path climbs out with .."),
            c => out.push(c),
        }
    }
    Ok(out)
}

struct Unpacker<'a> {
    root: &'a OwnedFd,
    layer: &'a str,
    /// The last parent opened: consecutive entries share their directory.
    cached: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes, set once their contents are in.
    dir_times: Vec<(Vec<u8>, i64)>,
    buf: Vec<u8>,
}

fn unpack_entries<R: Read>(stream: R, root: &OwnedFd, layer: &str) -> Result<(), Error> {
    let mut archive = tar::Archive::new(stream);
    let mut u = Unpacker { root, layer, cached: None, dir_times: Vec::new(), buf: vec![0; 1 << 20] };
    let entries = archive.entries().map_err(|source| Error::Archive { layer: layer.into(), source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| Error::Archive { layer: layer.into(), source })?;
        let raw = entry.path_bytes().into_owned();
        u.entry(&mut entry, &raw)?;
    }
    // Deepest first, and after every entry: creating a file in a directory changes its mtime.
    for (path, mtime) in u.dir_times.iter().rev() {
        let comps = clean(path).unwrap_or_default();
        let name = comps.last().copied().unwrap_or(b".");
        let parent = if comps.len() > 1 { u.parent(&comps[..comps.len() - 1], false, path).ok() } else { None };
        let dirfd = parent.as_ref().map_or(root.as_raw_fd(), |p| p.as_raw_fd());
        let _ = set_times(dirfd, name, *mtime); // cosmetic: never fails a pull
    }
    Ok(())
}

impl Unpacker<'_> {
    fn unsafe_entry(&self, raw: &[u8], why: impl Into<String>) -> Error {
        Error::Unsafe { layer: self.layer.into(), entry: String::from_utf8_lossy(raw).into_owned(), why: why.into() }
    }

    fn entry_err(&self, raw: &[u8]) -> impl FnOnce(io::Error) -> Error {
        let layer = self.layer.to_string();
        let entry = String::from_utf8_lossy(raw).into_owned();
        move |source| Error::Entry { layer, entry, source }
    }

    /// Opens (creating if asked) the directory made of `comps` below the root, never following a link.
    fn parent(&self, comps: &[&[u8]], create: bool, raw: &[u8]) -> Result<OwnedFd, Error> {
        let mut cur = self.root.try_clone().map_err(self.entry_err(raw))?;
        for c in comps {
            let name = cstr(c).map_err(self.entry_err(raw))?;
            let next = match openat_dir(cur.as_raw_fd(), &name) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    // SAFETY: valid fd and C string.
                    match check(unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o755) }) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(self.entry_err(raw)(e)),
                    }
                    openat_dir(cur.as_raw_fd(), &name)
                }
                r => r,
            };
            cur = match next {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    let why = format!("its parent {} is a symlink or not a directory", String::from_utf8_lossy(c));
                    return Err(self.unsafe_entry(raw, why));
                }
                Err(e) => return Err(self.entry_err(raw)(e)),
            };
        }
        Ok(cur)
    }

    fn cached_parent(&mut self, comps: &[&[u8]], raw: &[u8]) -> Result<RawFd, Error> {
        let key = comps.join(&b'/');
        if let Some((k, fd)) = &self.cached {
            if *k == key {
                return Ok(fd.as_raw_fd());
            }
        }
        let fd = self.parent(comps, true, raw)?;
        let raw_fd = fd.as_raw_fd();
        self.cached = Some((key, fd));
        Ok(raw_fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>, raw: &[u8]) -> Result<(), Error> {
        let comps = clean(raw).map_err(|why| self.unsafe_entry(raw, why))?;
        let header = entry.header();
        let kind = header.entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let Some((&name, parents)) = comps.split_last() else {
            // The layer's root itself ("./"): only its metadata applies.
            if kind.is_dir() {
                let meta = Meta::of(entry).map_err(self.entry_err(raw))?;
                meta.apply(self.root.as_raw_fd(), None).map_err(self.entry_err(raw))?;
            }
            return Ok(());
        };
        let parent = self.cached_parent(parents, raw)?;
        if name == b".wh..wh..opq" {
            return set_xattr(parent, None, "trusted.overlay.opaque", b"y").map_err(self.entry_err(raw));
        }
        if name.starts_with(b".wh..wh.") {
            return Ok(()); // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing for overlay
        }
        if let Some(target) = name.strip_prefix(b".wh.") {
            // `.wh..` and `.wh...` would name the directory itself or its parent.
            if matches!(target, b"" | b"." | b"..") {
                return Err(self.unsafe_entry(raw, "whiteout of nothing, . or .."));
            }
            let target = cstr(target).map_err(self.entry_err(raw))?;
            remove_existing(parent, &target).map_err(self.entry_err(raw))?;
            // SAFETY: valid fd and C string. A 0:0 character device is overlayfs' whiteout.
            check(unsafe { libc::mknodat(parent, target.as_ptr(), libc::S_IFCHR, 0) }).map_err(self.entry_err(raw))?;
            return Ok(());
        }
        let cname = cstr(name).map_err(self.entry_err(raw))?;
        let meta = Meta::of(entry).map_err(self.entry_err(raw))?;
        let err = self.entry_err(raw);
        match kind {
            tar::EntryType::Directory => {
                // SAFETY: valid fd and C string.
                if let Err(e) = check(unsafe { libc::mkdirat(parent, cname.as_ptr(), 0o700) }) {
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(err(e));
                    }
                    if !is_dir(parent, &cname).map_err(self.entry_err(raw))? {
                        remove_existing(parent, &cname).map_err(self.entry_err(raw))?;
                        // SAFETY: as above.
                        check(unsafe { libc::mkdirat(parent, cname.as_ptr(), 0o700) }).map_err(self.entry_err(raw))?;
                    }
                }
                let dir = openat_dir(parent, &cname).map_err(self.entry_err(raw))?;
                meta.apply(dir.as_raw_fd(), None).map_err(self.entry_err(raw))?;
                self.dir_times.push((raw.to_vec(), meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = match create_excl(parent, &cname) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        remove_existing(parent, &cname).map_err(self.entry_err(raw))?;
                        create_excl(parent, &cname)
                    }
                    r => r,
                }
                .map_err(self.entry_err(raw))?;
                // Whole buffers: a decoder hands out a few kB per read, and a write per few kB is
                // most of an unpack's system time.
                loop {
                    let n = read_full(entry, &mut self.buf)
                        .map_err(|e| Error::Archive { layer: self.layer.into(), source: e })?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n]).map_err(self.entry_err(raw))?;
                    if n < self.buf.len() {
                        break;
                    }
                }
                meta.apply(file.as_raw_fd(), None).map_err(self.entry_err(raw))?;
                set_times_fd(file.as_raw_fd(), meta.mtime).map_err(self.entry_err(raw))?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| self.unsafe_entry(raw, "symlink without target"))?;
                let target = cstr(&target).map_err(self.entry_err(raw))?;
                remove_existing(parent, &cname).map_err(self.entry_err(raw))?;
                // SAFETY: valid C strings and fd. The target is stored, never resolved here.
                check(unsafe { libc::symlinkat(target.as_ptr(), parent, cname.as_ptr()) })
                    .map_err(self.entry_err(raw))?;
                meta.apply(parent, Some(&cname)).map_err(self.entry_err(raw))?;
                let _ = set_times(parent, name, meta.mtime);
            }
            tar::EntryType::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| self.unsafe_entry(raw, "hard link without target"))?;
                let tcomps = clean(&target).map_err(|why| self.unsafe_entry(raw, format!("hard link target {why}")))?;
                let Some((&tname, tparents)) = tcomps.split_last() else {
                    return Err(self.unsafe_entry(raw, "hard link to the layer's root"));
                };
                let tdir = self.parent(tparents, false, raw)?;
                let tname = cstr(tname).map_err(self.entry_err(raw))?;
                remove_existing(parent, &cname).map_err(self.entry_err(raw))?;
                // SAFETY: valid fds and C strings; no AT_SYMLINK_FOLLOW: a link to a symlink links
                // the symlink itself, never what it points at.
                check(unsafe { libc::linkat(tdir.as_raw_fd(), tname.as_ptr(), parent, cname.as_ptr(), 0) })
                    .map_err(self.entry_err(raw))?;
                // The link's own header applies to the shared inode, as Docker's and podman's
                // unpackers do (a tar writer gives it the target's metadata anyway).
                meta.apply(parent, Some(&cname)).map_err(self.entry_err(raw))?;
                let _ = set_times(parent, name, meta.mtime);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let (major, minor) = (meta.dev.0, meta.dev.1);
                remove_existing(parent, &cname).map_err(self.entry_err(raw))?;
                // SAFETY: valid fd and C string.
                check(unsafe { libc::mknodat(parent, cname.as_ptr(), fmt | 0o600, libc::makedev(major, minor)) })
                    .map_err(self.entry_err(raw))?;
                meta.apply(parent, Some(&cname)).map_err(self.entry_err(raw))?;
                let _ = set_times(parent, name, meta.mtime);
            }
            other => {
                return Err(self.unsafe_entry(raw, format!("unsupported entry type {other:?}")));
            }
        }
        Ok(())
    }
}

/// An entry's ownership, mode, times, device numbers and xattrs.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    dev: (u32, u32),
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<Meta> {
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    // overlayfs reads trusted.overlay.* as instructions (redirects, opaque dirs):
                    // only the whiteout entries above may set them, never a layer directly.
                    if name.starts_with("trusted.overlay.") {
                        continue;
                    }
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = entry.header();
        Ok(Meta {
            uid: h.uid()? as u32,
            gid: h.gid()? as u32,
            mode: h.mode()? & 0o7777,
            mtime: h.mtime().unwrap_or(0) as i64,
            // Device numbers mean something only for devices (other writers leave the fields blank).
            dev: if matches!(h.entry_type(), tar::EntryType::Char | tar::EntryType::Block) {
                (h.device_major()?.unwrap_or(0), h.device_minor()?.unwrap_or(0))
            } else {
                (0, 0)
            },
            xattrs,
        })
    }

    /// Applies ownership, then mode (chown clears set-id bits), then xattrs: on `fd` itself, or on
    /// `name` in directory `fd` (links and devices, never followed).
    fn apply(&self, fd: RawFd, name: Option<&CString>) -> io::Result<()> {
        match name {
            None => {
                // SAFETY: valid fd.
                check(unsafe { libc::fchown(fd, self.uid, self.gid) })?;
                check(unsafe { libc::fchmod(fd, self.mode) })?;
            }
            Some(n) => {
                // SAFETY: valid fd and C string; NOFOLLOW: a symlink's own owner.
                check(unsafe { libc::fchownat(fd, n.as_ptr(), self.uid, self.gid, libc::AT_SYMLINK_NOFOLLOW) })?;
                if !is_symlink(fd, n)? {
                    // Devices, fifos and hard links get here, never a symlink: fchmodat follows
                    // nothing.
                    check(unsafe { libc::fchmodat(fd, n.as_ptr(), self.mode, 0) })?;
                }
            }
        }
        for (k, v) in &self.xattrs {
            match set_xattr(fd, name, k, v) {
                // A store filesystem without that xattr namespace, or user.* on a symlink: the
                // file is still right, as containerd and podman also carry on.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EPERM)) => {}
                r => r?,
            }
        }
        Ok(())
    }
}

/// Creates a new file; O_EXCL|O_NOFOLLOW never opens what is already there (a planted link).
fn create_excl(dir: RawFd, name: &CString) -> io::Result<File> {
    // SAFETY: valid fd and C string.
    let fd = check(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    })?;
    // SAFETY: fresh fd from the kernel.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Reads until `buf` is full or the stream ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn stat_at(dir: RawFd, name: &CString) -> io::Result<Option<libc::stat>> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    match check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_dir(dir: RawFd, name: &CString) -> io::Result<bool> {
    Ok(stat_at(dir, name)?.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR))
}

fn is_symlink(dir: RawFd, name: &CString) -> io::Result<bool> {
    Ok(stat_at(dir, name)?.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK))
}

/// A later entry replaces an earlier one of the same name (tar semantics); a non-empty directory
/// in the way is an error (rare in practice).
fn remove_existing(dir: RawFd, name: &CString) -> io::Result<()> {
    let Some(st) = stat_at(dir, name)? else { return Ok(()) };
    let flags = if st.st_mode & libc::S_IFMT == libc::S_IFDIR { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and C string.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(|_| ())
}

/// Sets an xattr on `fd` itself, or on `name` in directory `fd` without following it: through
/// /proc/self/fd/N/name, which resolves N's directory exactly (no path walk from the host).
fn set_xattr(fd: RawFd, name: Option<&CString>, key: &str, value: &[u8]) -> io::Result<()> {
    let k = cstr(key.as_bytes())?;
    match name {
        // SAFETY: valid fd, C string and buffer.
        None => check(unsafe { libc::fsetxattr(fd, k.as_ptr(), value.as_ptr().cast(), value.len(), 0) })?,
        Some(n) => {
            let mut p = format!("/proc/self/fd/{fd}/").into_bytes();
            p.extend_from_slice(n.as_bytes());
            let p = cstr(&p)?;
            // SAFETY: as above; lsetxattr never follows the final symlink.
            check(unsafe { libc::lsetxattr(p.as_ptr(), k.as_ptr(), value.as_ptr().cast(), value.len(), 0) })?
        }
    };
    Ok(())
}

fn times(mtime: i64) -> [libc::timespec; 2] {
    let t = libc::timespec { tv_sec: mtime, tv_nsec: 0 };
    [t, t]
}

fn set_times(dir: RawFd, name: &[u8], mtime: i64) -> io::Result<()> {
    let n = cstr(name)?;
    let ts = times(mtime);
    // SAFETY: valid fd, C string and array of two timespecs.
    check(unsafe { libc::utimensat(dir, n.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(|_| ())
}

fn set_times_fd(fd: RawFd, mtime: i64) -> io::Result<()> {
    let ts = times(mtime);
    // SAFETY: valid fd and array.
    check(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::{clean, unpack_layer, Compression, Expect};
    use crate::image::Error;

    /// A tar of one empty file per name (names the tar crate itself would refuse are avoided).
    fn tar_of(names: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for n in names {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            // A fresh GNU header's uid, gid and mtime are blank, which the reader refuses.
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, n, &[][..]).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn whiteout_of_dot_or_dotdot_is_refused() {
        for name in ["d/.wh..", "d/.wh...", ".wh..."] {
            let dir = tempfile::tempdir().expect("tempdir");
            let tar = tar_of(&["d/f", name]);
            let expect = Expect { digest: None, size: None, diff_id: "sha256:0" };
            let r = unpack_layer(&tar[..], Compression::None, &expect, dir.path(), "t", None);
            assert!(matches!(r, Err(Error::Unsafe { .. })), "{name}: {r:?}");
        }
    }

    #[test]
    fn clean_refuses_escapes() {
        assert_eq!(clean(b"./a/./b/"), Ok(vec![&b"a"[..], &b"b"[..]]));
        assert!(clean(b"/etc/passwd").is_err());
        assert!(clean(b"a/../../x").is_err());
        assert_eq!(clean(b"./"), Ok(vec![]));
    }
}

//! `engine export`: a container's root as overlayfs shows it (its upper dir over the image's
//! layers), as a tar, without mounting anything: the supervisor is multi-threaded and cannot
//! take a mount namespace of its own, and a stopped container has no mount to read.
//!
//! overlayfs' rules, applied in user space, top layer first: the topmost entry of a name wins; a
//! 0:0 character device (whiteout) hides the name below; a directory merges with the directories of
//! that name below it until a layer where it is opaque (`trusted.overlay.opaque=y`) or not a
//! directory. The upper dir is the container's: it may hold any link, so everything is opened
//! relative to directory fds with O_NOFOLLOW, never by a path a link could redirect.
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Error;

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_at(dir: Option<&OwnedFd>, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a valid C string; the fd returned is ours.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_at(dir: &OwnedFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and buffer.
    if unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0 {
        return Ok(Some(st));
    }
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) {
        Ok(None)
    } else {
        Err(e)
    }
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 2];
    // SAFETY: valid fd, name and buffer.
    let n = unsafe {
        libc::fgetxattr(dir.as_raw_fd(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    n == 1 && buf[0] == b'y'
}

fn names(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    // nix's Dir takes the fd over (and closes it): hand it a duplicate.
    let dup = dir.try_clone()?;
    let mut d = nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(dup)).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

fn header(st: &libc::stat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(size);
    h
}

struct Walk<W: Write> {
    tar: tar::Builder<W>,
}

impl<W: Write> Walk<W> {
    /// Writes the merged contents of `rel` (each `dirs` entry: that directory in one layer, top
    /// first, all of them visible).
    fn dir(&mut self, dirs: &[OwnedFd], rel: &Path) -> Result<(), Error> {
        let step = |what: &str, p: &Path| format!("export: {what} {}", p.display());
        let mut all = std::collections::BTreeSet::new();
        for d in dirs {
            all.extend(names(d).map_err(Error::io(step("reading", rel)))?);
        }
        for name in all {
            let path = rel.join(&name);
            let c = cstr(&name).map_err(Error::io(step("naming", &path)))?;
            let mut top: Option<(usize, libc::stat)> = None;
            let mut merged = Vec::new();
            for (i, d) in dirs.iter().enumerate() {
                let Some(st) = stat_at(d, &c).map_err(Error::io(step("reading", &path)))? else { continue };
                if top.is_some() && !is_dir(&st) {
                    break; // a file or whiteout below a directory: hidden, and so is all below it
                }
                if top.is_none() {
                    top = Some((i, st));
                }
                if !is_dir(&st) {
                    break;
                }
                let sub = open_at(Some(d), &c, libc::O_RDONLY | libc::O_DIRECTORY)
                    .map_err(Error::io(step("opening", &path)))?;
                let stop = opaque(&sub);
                merged.push(sub);
                if stop {
                    break;
                }
            }
            let Some((i, st)) = top else { continue };
            if is_whiteout(&st) {
                continue;
            }
            self.entry(&dirs[i], &c, &st, &path)?;
            if is_dir(&st) {
                self.dir(&merged, &path)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, dir: &OwnedFd, name: &CStr, st: &libc::stat, path: &Path) -> Result<(), Error> {
        let wrap = |e: io::Error| Error::io(format!("export: writing {}", path.display()))(e);
        let fmt = st.st_mode & libc::S_IFMT;
        match fmt {
            libc::S_IFREG => {
                let fd = open_at(Some(dir), name, libc::O_RDONLY | libc::O_NONBLOCK).map_err(wrap)?;
                let file = File::from(fd);
                // The size of what is read now (a running container may be writing to it),
                // padded or cut to it so the archive stays whole.
                let size = file.metadata().map_err(wrap)?.len();
                let mut h = header(st, tar::EntryType::Regular, size);
                let data = file.take(size).chain(io::repeat(0)).take(size);
                self.tar.append_data(&mut h, path, data).map_err(wrap)
            }
            libc::S_IFDIR => {
                let mut h = header(st, tar::EntryType::Directory, 0);
                self.tar.append_data(&mut h, path, io::empty()).map_err(wrap)
            }
            libc::S_IFLNK => {
                let mut buf = vec![0u8; libc::PATH_MAX as usize];
                // SAFETY: valid fd, name and buffer.
                let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    return Err(wrap(io::Error::last_os_error()));
                }
                buf.truncate(n as usize);
                let mut h = header(st, tar::EntryType::Symlink, 0);
                self.tar.append_link(&mut h, path, OsStr::from_bytes(&buf)).map_err(wrap)
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match fmt {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header(st, kind, 0);
                if fmt != libc::S_IFIFO {
                    h.set_device_major(libc::major(st.st_rdev)).map_err(wrap)?;
                    h.set_device_minor(libc::minor(st.st_rdev)).map_err(wrap)?;
                }
                self.tar.append_data(&mut h, path, io::empty()).map_err(wrap)
            }
            _ => Ok(()), // sockets: nothing a tar can hold
        }
    }
}

/// Writes the root made of `layers` (top first: the container's upper dir, then the image's
/// layers or its rootfs directory) to `out` as a tar.
pub fn export<W: Write>(layers: &[PathBuf], out: W) -> Result<W, Error> {
    let mut dirs = Vec::new();
    for l in layers {
        let c = cstr(l.as_os_str()).map_err(Error::io(format!("export: opening {}", l.display())))?;
        let fd = open_at(None, &c, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(Error::io(format!("export: opening {}", l.display())))?;
        let stop = opaque(&fd);
        dirs.push(fd);
        if stop {
            break;
        }
    }
    let mut walk = Walk { tar: tar::Builder::new(out) };
    walk.dir(&dirs, Path::new(""))?;
    walk.tar.into_inner().map_err(Error::io("export: finishing the archive"))
}

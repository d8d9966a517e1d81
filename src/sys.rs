//! The one conversion of a raw syscall return into `io::Result`, shared by every module that calls
//! libc directly.

use std::io;

/// `rc` when it is not negative, else the thread's errno as an `io::Error`.
pub fn check<T: Copy + PartialOrd + Default>(rc: T) -> io::Result<T> {
    if rc < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A new filesystem of type `fstype` with `options` (a value, or None for a flag), mounted
/// nowhere (fsopen, fsconfig, fsmount): a detached mount, gone when the fd closes, that a caller
/// may attach with move_mount.
pub fn mount_detached(fstype: &std::ffi::CStr, options: &[(&str, Option<&str>)]) -> io::Result<std::os::fd::OwnedFd> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let cstr = |s: &str| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    // SAFETY: a C string that outlives the call; the fd returned is owned from here.
    let fs = unsafe {
        OwnedFd::from_raw_fd(check(libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC))? as i32)
    };
    for (key, value) in options {
        let key = cstr(key)?;
        let value = value.map(cstr).transpose()?;
        let (cmd, v) = match &value {
            Some(v) => (libc::FSCONFIG_SET_STRING, v.as_ptr()),
            None => (libc::FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: C strings that outlive the call, on an fd owned here.
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key.as_ptr(), v, 0) })?;
    }
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: as above.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), libc::FSCONFIG_CMD_CREATE, none, none, 0) })?;
    // SAFETY: as above; the mount's fd is owned from here.
    let mount = check(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(mount as i32) })
}

/// A private copy of the mount tree at `path` (it and every mount below it), mounted nowhere
/// (open_tree's clone): what a recursive bind of `path` would make, for a caller in another mount
/// namespace to attach with move_mount. Private at once: a copy of a shared mount would otherwise
/// stay in the host's peer group, and mounts made below it could reach the host.
pub fn clone_tree(path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_SIZE_VER0: usize = 32;
    /// struct mount_attr (linux/mount.h), the first version.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: a C string that outlives the call; the fd returned is owned from here.
    let tree = unsafe {
        OwnedFd::from_raw_fd(check(libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags))? as i32)
    };
    let attr = MountAttr { attr_set: 0, attr_clr: 0, propagation: libc::MS_PRIVATE, userns_fd: 0 };
    let at = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
    // SAFETY: the attr struct and the empty string outlive the call, on an fd owned here.
    check(unsafe {
        libc::syscall(libc::SYS_mount_setattr, tree.as_raw_fd(), c"".as_ptr(), at, &attr, MOUNT_ATTR_SIZE_VER0)
    })?;
    Ok(tree)
}

/// `chattr +T`'s flag (FS_TOPDIR_FL): the directory is the top of unrelated trees.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` as the top of unrelated directory trees (`chattr +T`): ext2/3/4's Orlov allocator
/// then spreads its subdirectories (and what is made in them) over the block groups instead of
/// packing each next to it. For the directories under which each container gets its own layer:
/// on ext4 without a journal, every new inode scans past the inodes of its group freed in the
/// last minutes, so packed layers that come and go make each start's inodes dearer. Other
/// filesystems refuse the flag (an error the caller may ignore) or keep it without effect.
pub fn spread_subdirs(dir: &std::path::Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(dir)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: the kernel writes one int through the pointer, which outlives the call.
    check(unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) })?;
    if flags & FS_TOPDIR_FL == 0 {
        flags |= FS_TOPDIR_FL;
        // SAFETY: the kernel reads one int through the pointer, which outlives the call.
        check(unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) })?;
    }
    Ok(())
}

/// Whether `dir` has [`spread_subdirs`]'s flag.
pub fn spreads_subdirs(dir: &std::path::Path) -> io::Result<bool> {
    Ok(inode_flags(dir)? & FS_TOPDIR_FL != 0)
}

/// The inode flags of `path` (`lsattr`), without following a symlink.
pub fn inode_flags(path: &std::path::Path) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: the kernel writes one int through the pointer, which outlives the call.
    check(unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) })?;
    Ok(flags)
}

/// Removes every extended attribute of `path` (ACLs and overlayfs's own included), without
/// following a symlink.
pub fn remove_xattrs(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut names = vec![0u8; 4096];
    // SAFETY: the kernel writes at most `names.len()` bytes into the buffer.
    let len = check(unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) })?;
    for name in names[..len as usize].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::CString::new(name).map_err(io::Error::other)?;
        // SAFETY: two C strings that outlive the call.
        check(unsafe { libc::lremovexattr(c.as_ptr(), name.as_ptr()) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_is_errno() {
        // SAFETY: close of an fd that cannot be open sets EBADF and touches nothing.
        let rc = unsafe { libc::close(-1) };
        assert_eq!(check(rc).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(check(3i64).unwrap(), 3);
    }

    /// On ext4 (this host's /tmp and /var/lib) the flag sticks.
    #[test]
    fn a_spread_directory_keeps_its_flag_on_ext4() {
        let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
        // SAFETY: a zeroed statfs is valid; the path is a C string that outlives the call.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let path = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut st) }, 0);
        const EXT4_SUPER_MAGIC: libc::c_long = 0xEF53;
        assert_eq!(st.f_type, EXT4_SUPER_MAGIC, "/tmp is not ext4 here: this test needs an ext4 /tmp");
        assert!(!spreads_subdirs(dir.path()).unwrap());
        spread_subdirs(dir.path()).unwrap();
        assert!(spreads_subdirs(dir.path()).unwrap());
        // Again: nothing to change.
        spread_subdirs(dir.path()).unwrap();
    }

    #[test]
    fn every_extended_attribute_is_removed() {
        let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
        let c = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        for (name, value) in [(c"user.a", "1"), (c"trusted.overlay.opaque", "y"), (c"user.b", "2")] {
            // SAFETY: C strings and a buffer that outlive the call.
            let rc = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
            assert_eq!(rc, 0, "{name:?}: {}", std::io::Error::last_os_error());
        }
        remove_xattrs(dir.path()).unwrap();
        let mut buf = [0u8; 256];
        // SAFETY: as above.
        let len = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(len, 0, "left: {:?}", String::from_utf8_lossy(&buf[..len.max(0) as usize]));
    }
}

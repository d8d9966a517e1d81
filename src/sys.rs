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
}

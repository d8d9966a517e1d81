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

//! The system calls the client makes, raw (there is no libc here), and the memory functions the
//! compiler expects to find (memcpy and kin: no libc provides them either).
use core::arch::asm;

pub const STDOUT: i32 = 1;
pub const STDERR: i32 = 2;

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_CLOSE: usize = 3;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_SOCKET: usize = 41;
const SYS_CONNECT: usize = 42;
const SYS_EXECVE: usize = 59;
const SYS_GETCWD: usize = 79;
const SYS_READLINK: usize = 89;
const SYS_EXIT_GROUP: usize = 231;
const SYS_PPOLL: usize = 271;
const SYS_SIGNALFD4: usize = 289;

const EINTR: isize = 4;
const AF_UNIX: usize = 1;
const SOCK_STREAM: usize = 1;
const SOCK_CLOEXEC: usize = 0o2000000;
const SIG_BLOCK: usize = 0;
const POLLIN: i16 = 1;

/// A system call with up to four arguments; its raw return (a negative errno on failure).
///
/// # Safety
/// The arguments must be what system call `n` expects (pointers valid for its use of them).
unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes what the kernel expects; rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes an int and does not return.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT_GROUP, in("rdi") code as isize, options(noreturn, nostack));
    }
}

/// read(2), retried on EINTR; bytes read (0: end of file) or -errno.
pub fn read(fd: i32, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: the buffer is valid for writes of its length.
        let n = unsafe { syscall4(SYS_READ, fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0) };
        if n != -EINTR {
            return n;
        }
    }
}

/// Reads exactly `buf.len()` bytes; false on an error or an end of file first.
pub fn read_exact(fd: i32, mut buf: &mut [u8]) -> bool {
    while !buf.is_empty() {
        let n = read(fd, buf);
        if n <= 0 {
            return false;
        }
        buf = &mut buf[n as usize..];
    }
    true
}

/// Writes all of `buf`; false on an error.
pub fn write_all(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: the buffer is valid for reads of its length.
        let n = unsafe { syscall4(SYS_WRITE, fd as usize, buf.as_ptr() as usize, buf.len(), 0) };
        if n == -EINTR {
            continue;
        }
        if n <= 0 {
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

pub fn close(fd: i32) {
    // SAFETY: closing an fd this process owns.
    unsafe { syscall4(SYS_CLOSE, fd as usize, 0, 0, 0) };
}

/// A stream socket connected to the UNIX socket at `path` (no NUL inside); None if it cannot be.
pub fn connect_unix(path: &[u8]) -> Option<i32> {
    // struct sockaddr_un: the family, then up to 108 bytes of path, NUL-terminated.
    let mut addr = [0u8; 110];
    if path.len() >= addr.len() - 2 || path.contains(&0) {
        return None;
    }
    addr[..2].copy_from_slice(&(AF_UNIX as u16).to_ne_bytes());
    addr[2..2 + path.len()].copy_from_slice(path);
    // SAFETY: socket takes integers; connect reads `addr` for its length.
    unsafe {
        let fd = syscall4(SYS_SOCKET, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, 0);
        if fd < 0 {
            return None;
        }
        if syscall4(SYS_CONNECT, fd as usize, addr.as_ptr() as usize, addr.len(), 0) != 0 {
            close(fd as i32);
            return None;
        }
        Some(fd as i32)
    }
}

/// The working directory into `buf`, without its NUL; None if there is none (deleted, too long).
pub fn getcwd(buf: &mut [u8]) -> Option<&[u8]> {
    // SAFETY: the buffer is valid for writes of its length.
    let n = unsafe { syscall4(SYS_GETCWD, buf.as_mut_ptr() as usize, buf.len(), 0, 0) };
    // The kernel's length counts the NUL; a path not reachable from the root starts "(unreachable)".
    if n <= 1 || buf[0] != b'/' {
        return None;
    }
    Some(&buf[..n as usize - 1])
}

/// The target of the symlink at `path` (NUL-terminated) into `buf`; None on a failure or if it fills `buf`.
pub fn readlink<'a>(path: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: `path` ends with a NUL (checked), the buffer is valid for writes of its length.
    let n = unsafe {
        if path.last() != Some(&0) {
            return None;
        }
        syscall4(SYS_READLINK, path.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len(), 0)
    };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    Some(&buf[..n as usize])
}

/// execve(2); returns only on a failure (its -errno).
///
/// # Safety
/// `path` ends with a NUL; `argv` and `envp` are NULL-terminated arrays of C strings.
pub unsafe fn execve(path: &[u8], argv: *const *const u8, envp: *const *const u8) -> isize {
    // SAFETY: as the caller promises.
    unsafe { syscall4(SYS_EXECVE, path.as_ptr() as usize, argv as usize, envp as usize, 0) }
}

/// Blocks `signals` (a kernel sigset: bit N-1 for signal N) and returns a signalfd that reads
/// them; None if either step fails (the signals are then left as they were).
pub fn signalfd_for(signals: u64) -> Option<i32> {
    const SFD_CLOEXEC: usize = 0o2000000;
    // SAFETY: the set is 8 bytes, as the size argument says; no old set is asked for.
    unsafe {
        let fd = syscall4(SYS_SIGNALFD4, usize::MAX, &signals as *const u64 as usize, 8, SFD_CLOEXEC);
        if fd < 0 {
            return None;
        }
        if syscall4(SYS_RT_SIGPROCMASK, SIG_BLOCK, &signals as *const u64 as usize, 0, 8) != 0 {
            close(fd as i32);
            return None;
        }
        Some(fd as i32)
    }
}

/// Waits until `a` or `b` can be read (b: -1 for none); which of them can (a first).
pub fn wait_readable(a: i32, b: i32) -> (bool, bool) {
    #[repr(C)]
    struct PollFd {
        fd: i32,
        events: i16,
        revents: i16,
    }
    let mut fds = [PollFd { fd: a, events: POLLIN, revents: 0 }, PollFd { fd: b, events: POLLIN, revents: 0 }];
    loop {
        // SAFETY: two pollfds valid for the call; no timeout, no signal mask.
        let n = unsafe { syscall4(SYS_PPOLL, fds.as_mut_ptr() as usize, 2, 0, 0) };
        if n == -EINTR {
            continue;
        }
        if n < 0 {
            // Nothing to wait on: let the caller's read find out.
            return (true, false);
        }
        return (fds[0].revents != 0, fds[1].revents != 0);
    }
}

// The memory functions the compiler's code calls. Written so that LLVM cannot turn them back into
// calls to themselves: string instructions for copies and fills, volatile reads for compares.

/// # Safety
/// As C's memcpy: `n` bytes valid at both, not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: as the caller promises; `rep movsb` copies forwards (the direction flag is clear
    // under the ABI).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// As C's memmove: `n` bytes valid at both.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: no overlap that a forward copy would spoil.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: backwards, from the last byte (std sets the direction flag, cld restores it).
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
             inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// As C's memset: `n` bytes valid at `dest`.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: as the caller promises.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// As C's memcmp: `n` bytes valid at both.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: within the `n` bytes the caller promises.
        let (x, y) = unsafe { (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i))) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// As C's bcmp: `n` bytes valid at both.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as the caller promises.
    unsafe { memcmp(a, b, n) }
}

/// The length of the C string at `p`.
///
/// # Safety
/// `p` points to a NUL-terminated string.
pub unsafe fn c_len(p: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: up to and including the NUL the caller promises.
    while unsafe { core::ptr::read_volatile(p.add(n)) } != 0 {
        n += 1;
    }
    n
}

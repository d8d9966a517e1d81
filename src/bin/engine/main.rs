//! `engine`, the command line's first step: a client with no libc and no Rust std (issue 14).
//!
//! Every process start on glibc probes the CPU (dozens of `cpuid`s, each a VM exit on a guest)
//! and a Rust program maps and relocates a few MB before `main`: ~0.5 ms before a request could
//! leave, on every `engine run`. This binary does neither. For `run` and `start` it sends the
//! command line as it is to the supervisor (`Request::Cli`: the argv and the working directory),
//! which parses it with the same clap code the front uses and answers with the output, the
//! exit code, or "hand over". Everything else, and whatever the supervisor hands back (a
//! terminal, an image to pull, a usage error, an older supervisor), goes by execve, same
//! arguments and environment, to `engine-front` (the verbs that talk to the supervisor) or
//! `engine-core` (the rest) beside this binary.
#![no_std]
#![no_main]

mod json;
mod sys;

#[allow(dead_code)]
mod shared {
    include!("../../cli/shared.rs");
}

use sys::{STDERR, STDOUT};

// The process's entry: the kernel leaves argc, argv[], NULL, envp[], NULL on the stack.
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

/// # Safety
/// Called once, by `_start`, with the stack the kernel laid out.
unsafe extern "C" fn entry(stack: *const usize) -> ! {
    // SAFETY: the kernel's layout: argc, then argc pointers and a NULL, then the environment.
    let args = unsafe {
        let argc = *stack;
        let argv = stack.add(1) as *const *const u8;
        Args { argc, argv, envp: argv.add(argc + 1) }
    };
    sys::exit(main(&args))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = sys::write_all(STDERR, b"engine: internal error in the client\n");
    sys::exit(125)
}

/// The precompiled `core` names an unwinding personality routine in its exception tables; with
/// panic=abort nothing unwinds, so nothing calls it.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// Exit code of an engine failure (Docker's).
const ENGINE_ERROR: i32 = 125;
/// The biggest request this client sends (the supervisor's cap, `MAX_REQUEST_HEADER`); a longer
/// command line is handed over.
const REQUEST_MAX: usize = 256 << 10;
/// The biggest answer header read; the supervisor's answers here are a few dozen bytes.
const HEADER_MAX: usize = 64 << 10;

struct Args {
    argc: usize,
    argv: *const *const u8,
    envp: *const *const u8,
}

impl Args {
    fn get(&self, i: usize) -> Option<&[u8]> {
        // SAFETY: argv holds argc C strings that live as long as the process.
        (i < self.argc).then(|| unsafe {
            let p = *self.argv.add(i);
            core::slice::from_raw_parts(p, sys::c_len(p))
        })
    }

    /// The value of the environment variable `name`.
    fn env(&self, name: &[u8]) -> Option<&[u8]> {
        let mut i = 0;
        loop {
            // SAFETY: envp is a NULL-terminated array of C strings that live as long as the process.
            let entry = unsafe {
                let p = *self.envp.add(i);
                if p.is_null() {
                    return None;
                }
                core::slice::from_raw_parts(p, sys::c_len(p))
            };
            if let Some(value) = entry.strip_prefix(name).and_then(|rest| rest.strip_prefix(b"=")) {
                return Some(value);
            }
            i += 1;
        }
    }
}

// Written once, by the only thread: pages of .bss are touched only as far as a request reaches.
static mut REQUEST: [u8; REQUEST_MAX] = [0; REQUEST_MAX];
static mut HEADER: [u8; HEADER_MAX] = [0; HEADER_MAX];

fn main(args: &Args) -> i32 {
    // The global --socket before the verb (as `cli::create::subcommand_index` reads it).
    let mut socket = args.env(b"ENGINE_SOCKET").unwrap_or(shared::DEFAULT_SOCKET.as_bytes());
    let mut i = 1;
    let verb = loop {
        match args.get(i) {
            Some(b"--socket") => match args.get(i + 1) {
                Some(path) => (socket, i) = (path, i + 2),
                None => hand_over(args, b""),
            },
            Some(a) if a.starts_with(b"--socket=") => (socket, i) = (&a[9..], i + 1),
            Some(verb) => break verb,
            None => hand_over(args, b""),
        }
    };
    if !shared::SENT_VERBS.iter().any(|v| v.as_bytes() == verb) {
        hand_over(args, verb);
    }
    // A --socket after the verb (a global option may come anywhere) could name another
    // supervisor: the front reads that command line.
    if (i + 1..args.argc).filter_map(|j| args.get(j)).any(|a| a == b"--socket" || a.starts_with(b"--socket=")) {
        hand_over(args, verb);
    }
    let mut cwd_buf = [0u8; 4096];
    let Some(cwd) = sys::getcwd(&mut cwd_buf) else { hand_over(args, verb) };
    // SAFETY: the only reference to REQUEST, on the only thread.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(REQUEST) };
    let Some(request) = cli_request(args, cwd, buf) else { hand_over(args, verb) };
    let Some(conn) = sys::connect_unix(socket) else { hand_over(args, verb) };
    if !sys::write_all(conn, request) {
        hand_over(args, verb);
    }
    follow(args, verb, conn, socket)
}

/// The framed `cli` request: the command line and the working directory.
fn cli_request<'a>(args: &Args, cwd: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let (header, body) = buf.split_at_mut(8);
    let mut w = json::Writer::new(body);
    w.raw(b"{\"version\":1,\"request\":{\"op\":\"cli\",\"argv\":[");
    for j in 0..args.argc {
        if j > 0 {
            w.raw(b",");
        }
        w.string(args.get(j)?);
    }
    w.raw(b"],\"cwd\":");
    w.string(cwd);
    w.raw(b"}}");
    if w.full {
        return None;
    }
    let len = w.written().len();
    header[..4].copy_from_slice(&(len as u32).to_be_bytes());
    header[4..].copy_from_slice(&0u32.to_be_bytes());
    Some(&buf[..8 + len])
}

/// Reads the supervisor's answers until the exit code: output to stdout and stderr, Ctrl-C and
/// SIGTERM passed on to the container once it runs (as `engine-front`'s `run` does).
fn follow(args: &Args, verb: &[u8], conn: i32, socket: &[u8]) -> ! {
    // SAFETY: the only reference to HEADER, on the only thread.
    let header = unsafe { &mut *core::ptr::addr_of_mut!(HEADER) };
    let mut name = [0u8; 256];
    let mut started: Option<(usize, i32)> = None;
    loop {
        if let Some((name_len, signals)) = started.filter(|(_, fd)| *fd >= 0) {
            let (answer, signal) = sys::wait_readable(conn, signals);
            if signal {
                pass_on_signal(signals, socket, &name[..name_len]);
            }
            if !answer {
                continue;
            }
        }
        let mut lens = [0u8; 8];
        if !sys::read_exact(conn, &mut lens) {
            fail(b"the supervisor closed the connection before the container's exit code");
        }
        let json_len = u32::from_be_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
        let mut payload = u32::from_be_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
        let Some(json) = header.get_mut(..json_len) else { fail(b"an answer too large for the client") };
        if !sys::read_exact(conn, json) {
            fail(b"the supervisor closed the connection before the container's exit code");
        }
        let json: &[u8] = json;
        match json::string(json, b"kind") {
            Some(b"output") => {
                let fd = if json::string(json, b"stream") == Some(b"stderr") { STDERR } else { STDOUT };
                let mut chunk = [0u8; 16 << 10];
                while payload > 0 {
                    let want = payload.min(chunk.len());
                    if !sys::read_exact(conn, &mut chunk[..want]) {
                        fail(b"the supervisor closed the connection before the container's exit code");
                    }
                    // An output that cannot be written ends the client (a closed pipe: by SIGPIPE,
                    // as a C program; the container goes on, as after the front's exit).
                    if !sys::write_all(fd, &chunk[..want]) {
                        sys::exit(0);
                    }
                    payload -= want;
                }
                continue;
            }
            Some(b"started") if started.is_none() => {
                let raw = json::string(json, b"name").unwrap_or_default();
                let len = raw.len().min(name.len());
                name[..len].copy_from_slice(&raw[..len]);
                const SIGINT: u64 = 2;
                const SIGTERM: u64 = 15;
                let fd = sys::signalfd_for((1 << (SIGINT - 1)) | (1 << (SIGTERM - 1))).unwrap_or(-1);
                started = Some((len, fd));
            }
            Some(b"exited") => sys::exit(json::integer(json, b"code").unwrap_or(ENGINE_ERROR)),
            // Before anything ran: a form the supervisor leaves to the front, or a supervisor that
            // does not know `cli` (it refuses it before doing anything); an image to pull is
            // engine-core's.
            Some(b"hand_over" | b"error") if started.is_none() => hand_over(args, verb),
            Some(b"no_such_image") if started.is_none() => hand_over(args, b""),
            Some(b"error") => {
                let mut text = [0u8; 4096];
                let n = json::unescape(json::string(json, b"message").unwrap_or_default(), &mut text);
                let _ = sys::write_all(STDERR, b"engine: ");
                let _ = sys::write_all(STDERR, &text[..n]);
                let _ = sys::write_all(STDERR, b"\n");
                sys::exit(json::integer(json, b"exit_code").unwrap_or(ENGINE_ERROR));
            }
            _ => fail(b"unexpected response from the supervisor"),
        }
        if payload > 0 {
            fail(b"unexpected response from the supervisor");
        }
    }
}

/// Reads the signal waiting on `signals` and sends it to the container named `name` (its JSON
/// string's raw bytes) on a connection of its own; a failure is not reported (as in the front).
fn pass_on_signal(signals: i32, socket: &[u8], name: &[u8]) {
    let mut info = [0u8; 128];
    if !sys::read_exact(signals, &mut info) {
        return;
    }
    let signal = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
    let mut buf = [0u8; 512];
    let (header, body) = buf.split_at_mut(8);
    let mut w = json::Writer::new(body);
    w.raw(b"{\"version\":1,\"request\":{\"op\":\"kill\",\"name\":\"");
    w.raw(name);
    w.raw(b"\",\"signal\":");
    w.number(signal);
    w.raw(b"}}");
    if w.full {
        return;
    }
    let len = w.written().len();
    header[..4].copy_from_slice(&(len as u32).to_be_bytes());
    if let Some(fd) = sys::connect_unix(socket) {
        let _ = sys::write_all(fd, &buf[..8 + len]);
        sys::close(fd);
    }
}

fn fail(what: &[u8]) -> ! {
    let _ = sys::write_all(STDERR, b"engine: ");
    let _ = sys::write_all(STDERR, what);
    let _ = sys::write_all(STDERR, b"\n");
    sys::exit(ENGINE_ERROR)
}

/// Replaces this process with `engine-front` (for its verbs) or `engine-core` (anything else, and
/// an empty `verb`) beside this binary, with the same arguments and environment.
fn hand_over(args: &Args, verb: &[u8]) -> ! {
    let target = match shared::FRONT_VERBS.iter().any(|v| v.as_bytes() == verb) {
        true => shared::FRONT,
        false => shared::CORE,
    };
    let mut exe = [0u8; 4096];
    let Some(own) = sys::readlink(b"/proc/self/exe\0", &mut exe) else {
        fail(b"cannot find this binary's directory (/proc/self/exe)")
    };
    let dir_len = own.iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1);
    let mut path = [0u8; 4096 + 32];
    let end = dir_len + target.len();
    if end + 1 > path.len() {
        fail(b"this binary's path is too long");
    }
    path[..dir_len].copy_from_slice(&exe[..dir_len]);
    path[dir_len..end].copy_from_slice(target.as_bytes());
    // SAFETY: a NUL-terminated path; the kernel's own argv and envp arrays.
    let errno = unsafe { sys::execve(&path[..=end], args.argv, args.envp) };
    let _ = sys::write_all(STDERR, b"engine: cannot run ");
    let _ = sys::write_all(STDERR, &path[..end]);
    let mut w_buf = [0u8; 16];
    let mut w = json::Writer::new(&mut w_buf);
    w.number(-errno as i32);
    let _ = sys::write_all(STDERR, b": errno ");
    let _ = sys::write_all(STDERR, w.written());
    let _ = sys::write_all(STDERR, b"\n");
    sys::exit(ENGINE_ERROR)
}

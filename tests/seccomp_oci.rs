//! OCI seccomp profiles compiled by engine and installed for real: a forked child installs the
//! filter, makes system calls and reports each errno through a pipe (no container needed).
//! Run as root (installing without no_new_privs needs CAP_SYS_ADMIN).
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use engine::container::seccomp::{compile, default_profile, install, Filter};
use oci_spec::runtime::LinuxSeccomp;

/// What the child does after the filter: numbered system calls (nr, args), each reported as its
/// errno (0: allowed); or an i386 call (`int $0x80`, getpid), which may kill it.
enum Probe {
    Calls(Vec<(i64, [u64; 3])>),
    I386Getpid,
    /// execve(argv[0], argv): the child becomes the program (its exit code is what comes back).
    Exec(&'static [&'static str]),
}

enum Outcome {
    Errnos(Vec<i32>),
    Exited(i32),
    Signalled(i32),
}

fn run(filter: &Filter, probe: &Probe) -> Outcome {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds, owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Everything the child needs is made before the fork: it only makes system calls.
    let exec: Vec<std::ffi::CString> = match probe {
        Probe::Exec(argv) => argv.iter().map(|a| std::ffi::CString::new(*a).unwrap()).collect(),
        _ => vec![],
    };
    let mut argv: Vec<*const libc::c_char> = exec.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the child calls only async-signal-safe functions (raw system calls) and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        if install(filter).is_err() {
            unsafe { libc::_exit(99) };
        }
        match probe {
            Probe::Calls(calls) => {
                for (nr, a) in calls {
                    // SAFETY: probing calls with harmless arguments; results are only reported.
                    let rc = unsafe { libc::syscall(*nr, a[0], a[1], a[2]) };
                    let err: i32 = if rc < 0 { unsafe { *libc::__errno_location() } } else { 0 };
                    let bytes = err.to_ne_bytes();
                    unsafe { libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), 4) };
                }
            }
            Probe::I386Getpid => {
                let mut r: i32 = 20;
                // SAFETY: the i386 getpid call through the compat gate; it has no memory operands.
                unsafe { std::arch::asm!("int 0x80", inout("eax") r) };
                let bytes = r.to_ne_bytes();
                unsafe { libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), 4) };
            }
            Probe::Exec(_) => unsafe {
                libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
                libc::_exit(98);
            },
        }
        unsafe { libc::_exit(0) };
    }
    drop(wr);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(rd), &mut out).unwrap();
    let mut status = 0;
    // SAFETY: reaping our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFSIGNALED(status) {
        return Outcome::Signalled(libc::WTERMSIG(status));
    }
    let code = libc::WEXITSTATUS(status);
    match probe {
        Probe::Calls(_) if code == 0 => {
            Outcome::Errnos(out.chunks(4).map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        _ => Outcome::Exited(code),
    }
}

fn errnos(filter: &Filter, calls: Vec<(i64, [u64; 3])>) -> Vec<i32> {
    match run(filter, &Probe::Calls(calls)) {
        Outcome::Errnos(e) => e,
        Outcome::Exited(c) => panic!("the child exited with {c} (99: install failed)"),
        Outcome::Signalled(s) => panic!("the child was killed by signal {s}"),
    }
}

const READ_IMPLIES_EXEC: u64 = 0x0400_0000;

/// An allow-list: EPERM for anything outside it; personality allowed only for the query.
#[test]
fn an_allow_list_refuses_what_it_does_not_name_and_checks_arguments() {
    let profile: LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
              {"names": ["write", "exit_group", "getpid", "a_call_of_a_newer_kernel"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]}]}"#,
    )
    .unwrap();
    let filter = compile(&profile).unwrap();
    let calls = vec![
        (libc::SYS_getpid, [0; 3]),
        (libc::SYS_getppid, [0; 3]),
        (libc::SYS_personality, [0xffff_ffff, 0, 0]),
        (libc::SYS_personality, [READ_IMPLIES_EXEC, 0, 0]),
        // Numbered above every call the profile names: runc's stub answers ENOSYS, not EPERM.
        (libc::SYS_getrandom, [0, 0, 0]),
    ];
    assert_eq!(errnos(&filter, calls), [0, libc::EPERM, 0, libc::EPERM, libc::ENOSYS]);
}

/// engine's default profile refuses what the container tests probe, and kills i386 calls.
#[test]
fn the_default_profile_refuses_namespaces_clone3_vsock_personality_x32_and_kills_i386() {
    let filter = compile(&default_profile()).unwrap();
    let calls = vec![
        (libc::SYS_clone, [(libc::CLONE_NEWUSER | libc::SIGCHLD) as u64, 0, 0]),
        (libc::SYS_clone3, [0, 0, 0]),
        (libc::SYS_unshare, [libc::CLONE_NEWUSER as u64, 0, 0]),
        (libc::SYS_socket, [40, libc::SOCK_STREAM as u64, 0]),
        (libc::SYS_socket, [40 | 1 << 32, libc::SOCK_STREAM as u64, 0]),
        (libc::SYS_personality, [0xffff_ffff, 0, 0]),
        (libc::SYS_personality, [READ_IMPLIES_EXEC, 0, 0]),
        (libc::SYS_keyctl, [0, 0, 0]),
        (0x4000_0000 + libc::SYS_getpid, [0, 0, 0]),
        (libc::SYS_getpid, [0, 0, 0]),
    ];
    let e = libc::EPERM;
    assert_eq!(errnos(&filter, calls), [e, libc::ENOSYS, e, e, e, 0, e, e, libc::ENOSYS, 0]);
    match run(&filter, &Probe::I386Getpid) {
        Outcome::Signalled(s) => assert_eq!(s, libc::SIGSYS),
        Outcome::Exited(c) => panic!("the i386 call was not killed (exit {c})"),
        Outcome::Errnos(_) => unreachable!(),
    }
}

/// The profile podman sends, resolved from Debian's containers-common seccomp.json as podman does
/// (x86_64 with its subarchitectures, podman's default capabilities): its rules bite, and a real
/// dynamically linked program runs under it.
#[test]
fn podmans_profile_compiles_bites_and_runs_a_shell() {
    let path = "/usr/share/containers/seccomp.json";
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (package golang-github-containers-common, `make deps`)"));
    let profile = podman_resolve(&text);
    let filter = compile(&profile).unwrap();
    assert!(filter.len() < 1000, "{} instructions", filter.len());
    let calls = vec![
        (libc::SYS_getpid, [0; 3]),
        // Not in the profile: podman's default errno, ENOSYS.
        (libc::SYS_add_key, [0; 3]),
        // Refused without CAP_SYS_ADMIN: EPERM.
        (libc::SYS_bpf, [0; 3]),
        (libc::SYS_personality, [0xffff_ffff, 0, 0]),
        (libc::SYS_personality, [READ_IMPLIES_EXEC, 0, 0]),
        // AF_NETLINK + NETLINK_AUDIT without CAP_AUDIT_WRITE: EINVAL; other netlink sockets pass.
        (libc::SYS_socket, [libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 9]),
        (libc::SYS_socket, [libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 0]),
    ];
    assert_eq!(errnos(&filter, calls), [0, libc::ENOSYS, libc::EPERM, 0, libc::ENOSYS, libc::EINVAL, 0]);
    match run(&filter, &Probe::Exec(&["/bin/sh", "-c", "exit 7"])) {
        Outcome::Exited(c) => assert_eq!(c, 7, "the shell did not run (98: execve failed)"),
        Outcome::Signalled(s) => panic!("the shell was killed by signal {s}"),
        Outcome::Errnos(_) => unreachable!(),
    }
}

/// containers/common's resolution of its profile format (archMap, includes/excludes by
/// architecture and capability) into the OCI profile podman writes to config.json.
fn podman_resolve(text: &str) -> LinuxSeccomp {
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ];
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    let list = |x: &serde_json::Value, key: &str| -> Vec<String> {
        x.get(key)
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let arches: Vec<serde_json::Value> = v["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["architecture"] == "SCMP_ARCH_X86_64")
        .map(|m| {
            std::iter::once(m["architecture"].clone())
                .chain(m["subArchitectures"].as_array().unwrap().clone())
                .collect()
        })
        .unwrap();
    let syscalls: Vec<serde_json::Value> = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let (inc, exc) = (&s["includes"], &s["excludes"]);
            let inc_arches = list(inc, "arches");
            let inc_caps = list(inc, "caps");
            (inc_arches.is_empty() || inc_arches.iter().any(|a| a == "amd64"))
                && inc_caps.iter().all(|c| caps.contains(&c.as_str()))
                && !list(exc, "arches").iter().any(|a| a == "amd64")
                && !list(exc, "caps").iter().any(|c| caps.contains(&c.as_str()))
        })
        .cloned()
        .collect();
    assert!(syscalls.len() > 10);
    v["architectures"] = serde_json::Value::Array(arches);
    v["syscalls"] = serde_json::Value::Array(syscalls);
    serde_json::from_value(v).unwrap()
}

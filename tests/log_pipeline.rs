//! The log pipeline's fast path (issue 11, log throughput): large pipes, and records encoded by the
//! reader staying lossless and bounded in memory when they are many times their payload.
mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use common::*;

fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_containers_stdout_and_stderr_pipes_hold_a_mebibyte() {
    let sup = Supervisor::start();
    sup.start_container("piped", &["/bin/sleep", "30"]);
    let init = sup.state("piped")["pid"].as_i64().unwrap();
    // The command's: the init lets go of its own copies once the command has them.
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    let pid: i32 = children.split_whitespace().next().expect("the command runs").parse().unwrap();
    for fd in [1, 2] {
        // The write end of the pipe, as the container holds it; nothing is written through it.
        let end = std::fs::File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/{pid}/fd/{fd}"))
            .unwrap();
        let size = unsafe { libc::fcntl(end.as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert_eq!(size, 1 << 20, "fd {fd} of the container: pipe of {size} bytes");
    }
    sup.ok(&["rm", "-f", "piped"]);
}

#[test]
fn a_flood_of_empty_lines_is_logged_whole_in_bounded_memory() {
    let sup = Supervisor::start();
    let hwm_before = proc_status_kib(sup.pid(), "VmHWM:");
    // Every byte a record of its own: the log is ~40 times the payload, the worst case for memory
    // held between reading and writing.
    let lines = 3_000_000;
    sup.start_container("blank", &["/bin/sh", "-c", &format!("head -c {lines} /dev/zero | tr '\\0' '\\n'")]);
    assert_eq!(sup.wait_exit("blank"), 0);
    let out = sup.engine(&["logs", "blank"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(out.stdout.len(), lines, "bytes of `engine logs`");
    assert!(out.stdout.iter().all(|&b| b == b'\n'), "`engine logs` holds other bytes than newlines");
    // Rotated past the default max-size: all of the log's files together.
    let on_disk: u64 = std::fs::read_dir(sup.root.join("logs"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("blank.log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk > 30 * lines as u64, "log file of {on_disk} bytes for {lines} records");
    let grown_mib = (proc_status_kib(sup.pid(), "VmHWM:") - hwm_before) / 1024;
    assert!(grown_mib < 48, "the supervisor's peak RSS grew by {grown_mib} MiB");
}

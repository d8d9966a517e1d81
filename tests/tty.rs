//! `-i` and `-t`: `run -it`, `exec -it`, detach (Ctrl-P Ctrl-Q) and `attach`, `start -a`, and
//! `-i` through a pipe. The client runs in a real terminal: a pty the test opens, whose slave is
//! the client's controlling terminal (what a terminal emulator, `script` or tmux give it), so
//! raw mode, the window size and SIGWINCH are the kernel's own.
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// A pty whose both ends are close-on-exec from the start: the tests run in parallel threads,
/// and an end inherited by another test's supervisor or client would keep this one open (and
/// show as a pty that supervisor holds).
fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::unlockpt(m), 0);
        let s = libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(s >= 0, "TIOCGPTPEER: {}", std::io::Error::last_os_error());
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        assert_eq!(libc::ioctl(m, libc::TIOCSWINSZ, &ws), 0);
        (master, OwnedFd::from_raw_fd(s))
    }
}

/// The engine client on a pty of the test's own.
struct Term {
    master: File,
    /// Kept open, so the terminal's modes can be read after the client has gone.
    slave: OwnedFd,
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Term {
    /// `engine run -it --net none [flags] NAME ROOTFS /bin/sh` on a new pty, once its prompt shows.
    fn shell(sup: &Supervisor, flags: &[&str], name: &str, rows: u16, cols: u16) -> Term {
        let rootfs = rootfs();
        let mut args = vec!["run", "-it", "--net", "none"];
        args.extend_from_slice(flags);
        args.extend([name, rootfs.to_str().unwrap(), "/bin/sh"]);
        let term = Term::spawn(sup, &args, rows, cols);
        term.expect_after(0, PROMPT);
        term
    }

    fn spawn(sup: &Supervisor, args: &[&str], rows: u16, cols: u16) -> Term {
        let (master, slave) = open_pty(rows, cols);
        let fd = |f: &OwnedFd| Stdio::from(f.try_clone().unwrap());
        let mut cmd = Command::new(ENGINE);
        cmd.arg("--socket").arg(&sup.socket).args(args).stdin(fd(&slave)).stdout(fd(&slave)).stderr(fd(&slave));
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the pty slave.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning engine on the pty");
        let master = File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once no process holds the slave (ours is kept, so only at the Term's drop).
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Term { master, slave, child, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `needle` (after what it showed before `since`).
    fn expect_after(&self, since: usize, needle: &str) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text();
            if let Some(i) = text.get(since..).and_then(|t| t.find(needle)) {
                return since + i + needle.len();
            }
            assert!(Instant::now() < deadline, "the terminal never showed {needle:?}; it showed {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn type_(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Types a line and waits until the shell prints `needle` after it.
    fn line(&mut self, line: &str, needle: &str) {
        let since = self.mark();
        self.type_(format!("{line}\r").as_bytes());
        self.expect_after(since, needle);
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // The kernel sends SIGWINCH to the terminal's foreground group: the client.
        assert_eq!(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0);
    }

    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the client did not exit; the terminal showed {:?}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the terminal is back in canonical mode with echo (the client restored it).
    fn cooked(&self) -> bool {
        let t = nix::sys::termios::tcgetattr(&self.slave).unwrap();
        use nix::sys::termios::LocalFlags;
        t.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn logs(sup: &Supervisor, name: &str) -> String {
    sup.ok(&["logs", name])
}

/// busybox sh's prompt as root.
const PROMPT: &str = "# ";

#[test]
fn run_it_gives_a_pty_opened_inside_with_the_terminals_size_and_returns_the_exit_code() {
    let sup = Supervisor::start();
    let mut term = Term::shell(&sup, &[], "t1", 33, 97);
    // A pty of the container's own devpts: it has a name there.
    term.line("tty", "/dev/pts/0");
    term.line("stty size", "33 97");
    // SIGWINCH on the client's terminal reaches the container's pty.
    term.resize(41, 123);
    let deadline = Instant::now() + WAIT;
    loop {
        let since = term.mark();
        term.type_(b"stty size\r");
        std::thread::sleep(Duration::from_millis(200));
        if term.text()[since..].contains("41 123") {
            break;
        }
        assert!(Instant::now() < deadline, "the new size never reached the container: {:?}", term.text());
    }
    // Raw mode: the client's terminal does not echo or edit; the container's pty does.
    assert!(!term.cooked(), "the client's terminal is not in raw mode");
    term.type_(b"exit 3\r");
    assert_eq!(term.exit_code(), 3, "terminal: {:?}", term.text());
    assert!(term.cooked(), "the client left its terminal in raw mode");
    // The pty's output is the container's stdout in its log.
    let log = logs(&sup, "t1");
    assert!(log.contains("/dev/pts/0") && log.contains("33 97"), "log: {log:?}");
    assert_eq!(sup.status("t1"), "exited");
}

#[test]
fn exec_it_enters_a_running_container_on_a_pty_of_its_own() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    sup.ok(&["start", "--net", "none", "e1", rootfs.to_str().unwrap(), "/bin/sleep", "1000"]);
    let mut term = Term::spawn(&sup, &["exec", "-it", "e1", "/bin/sh"], 25, 80);
    term.expect_after(0, PROMPT);
    term.line("tty", "/dev/pts/");
    term.line("stty size", "25 80");
    // In the container: its pid namespace (sleep is pid 1's child there).
    term.line("echo n=$((6*7)); cat /proc/1/cmdline", "n=42");
    term.type_(b"exit 5\r");
    assert_eq!(term.exit_code(), 5, "terminal: {:?}", term.text());
    assert!(term.cooked(), "the client left its terminal in raw mode");
    assert_eq!(sup.status("e1"), "running");
    // An exec's output is not the container's.
    assert!(!logs(&sup, "e1").contains("n=42"));
    // A command that is not there: Docker's 127 and one line, the terminal given back.
    let mut term = Term::spawn(&sup, &["exec", "-it", "e1", "/nonexistent"], 25, 80);
    assert_eq!(term.exit_code(), 127, "terminal: {:?}", term.text());
    term.expect_after(0, "/nonexistent");
    assert!(term.cooked(), "the client left its terminal in raw mode after a failed exec");
    sup.ok(&["rm", "-f", "e1"]);
}

#[test]
fn ctrl_p_ctrl_q_detaches_and_attach_reconnects() {
    let sup = Supervisor::start();
    let mut term = Term::shell(&sup, &[], "d1", 24, 80);
    term.line("echo one$((0+1))", "one1");
    term.type_(&[0x10, 0x11]);
    assert_eq!(term.exit_code(), 0, "terminal: {:?}", term.text());
    assert!(term.cooked(), "the client left its terminal in raw mode after the detach");
    assert_eq!(sup.status("d1"), "running");
    drop(term);

    let mut term = Term::spawn(&sup, &["attach", "d1"], 30, 100);
    // Attaching shows output from now on: ask for some.
    let deadline = Instant::now() + WAIT;
    loop {
        let since = term.mark();
        term.type_(b"echo at$((1+1))ached; stty size\r");
        std::thread::sleep(Duration::from_millis(300));
        if term.text()[since..].contains("at2ached") {
            break;
        }
        assert!(Instant::now() < deadline, "attach showed nothing: {:?}", term.text());
    }
    // The attaching client's size is the container's now.
    term.expect_after(0, "30 100");
    term.type_(b"exit 4\r");
    assert_eq!(term.exit_code(), 4, "terminal: {:?}", term.text());
    let log = logs(&sup, "d1");
    assert!(log.contains("one1") && log.contains("at2ached"), "log: {log:?}");
}

#[test]
fn start_a_attaches_from_the_start_and_stays_attached_until_the_end() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let mut term = Term::spawn(
        &sup,
        &[
            "start",
            "-a",
            "-it",
            "--net",
            "none",
            "s1",
            rootfs.to_str().unwrap(),
            "/bin/sh",
            "-c",
            "echo first; read x; echo got-$x; exit 6",
        ],
        24,
        80,
    );
    term.expect_after(0, "first");
    term.line("abc", "got-abc");
    assert_eq!(term.exit_code(), 6, "terminal: {:?}", term.text());
}

#[test]
fn i_forwards_piped_stdin_and_closes_it_at_its_end() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let mut child = sup
        .cmd(&["run", "-i", "--net", "none", "p1", rootfs.to_str().unwrap(), "/bin/sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hi\nthere\n").unwrap();
    // Its end closes the container's stdin: `cat` ends and the command goes on.
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nthere\ndone\n");
    assert_eq!(logs(&sup, "p1"), "hi\nthere\ndone\n");

    // exec -i: the client's own stdin, passed over the socket.
    sup.ok(&["start", "--net", "none", "p2", rootfs.to_str().unwrap(), "/bin/sleep", "1000"]);
    let mut child = sup
        .cmd(&["exec", "-i", "p2", "/bin/sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n", "{}", describe(&out));
    sup.ok(&["rm", "-f", "p2"]);
}

#[test]
fn it_without_a_terminal_is_refused_before_anything_starts() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let out = sup.engine(&["run", "-it", "--net", "none", "n1", rootfs.to_str().unwrap(), "/bin/sh"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a TTY"), "{}", describe(&out));
    assert!(!sup.ok(&["ps", "-a"]).contains("n1"));
}

/// Nothing of a `-t` container stays in the supervisor: no pty master once it has ended.
#[test]
fn no_pty_stays_open_in_the_supervisor_after_the_container_ends() {
    let sup = Supervisor::start();
    let ptys = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("ptmx")))
            .count()
    };
    let mut term = Term::shell(&sup, &["--rm"], "r1", 24, 80);
    assert!(ptys(sup.pid()) >= 1, "the supervisor holds no pty master while the container runs");
    term.type_(b"exit\r");
    assert_eq!(term.exit_code(), 0);
    wait_until(WAIT, || ptys(sup.pid()) == 0);
    assert!(!sup.ok(&["ps", "-a"]).contains("r1"));
}

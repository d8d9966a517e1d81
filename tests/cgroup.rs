//! cgroup limits on the real kernel (root required): each limit is enforced on a real
//! process, stats are reported, groups are removed. Works on v1 (this build host) and v2
//! (the QEMU guest): no external programs, the workloads are forked copies of this binary
//! that only make system calls.
//!
//! Every test uses its own parent group, "engine-test-<pid>-<test>", removed by a Drop
//! guard even when the test fails, so tests run in parallel and leave nothing behind.

use engine::cgroup::{Cgroup, CgroupError, Limits, Version};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------- guard

/// Removes the test's parent group (and anything left below it) in every hierarchy.
struct Guard {
    parent: String,
}

impl Guard {
    fn new(test: &str) -> Guard {
        assert_eq!(unsafe { libc::geteuid() }, 0, "cgroup tests must run as root");
        Guard { parent: format!("engine-test-{}-{test}", std::process::id()) }
    }

    fn create(&self, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(&self.parent, name, limits)
    }

    /// The parent's directory in every mounted hierarchy, existing or not.
    fn parent_dirs(&self) -> Vec<PathBuf> {
        cgroup_mounts().into_iter().map(|m| m.join(&self.parent)).collect()
    }

    /// Groups still present under the parent, in any hierarchy.
    fn leftovers(&self) -> Vec<PathBuf> {
        self.parent_dirs()
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()))
            .collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        Cgroup::cleanup_stale_in(&self.parent, &|_| false);
        for d in self.parent_dirs() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mount = PathBuf::from(pre.split(' ').nth(4)?);
            (fstype == "cgroup" || fstype == "cgroup2").then_some(mount)
        })
        .collect()
}

// ---------------------------------------------------------------- workloads

/// A forked child that waits for a byte on a pipe before it runs `work`: the parent
/// puts it in its group first, as the supervisor does with a container.
/// The child runs only system calls (the parent is multi-threaded; no malloc after fork).
struct Held {
    pid: i32,
    go: i32,
    waited: bool,
}

fn spawn_held(work: fn() -> i32) -> Held {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe {
            libc::close(fds[1]);
            let mut b = 0u8;
            // A byte means go; EOF means the test died first.
            let code = if libc::read(fds[0], &mut b as *mut u8 as *mut _, 1) == 1 { work() } else { 99 };
            libc::_exit(code);
        }
    }
    unsafe { libc::close(fds[0]) };
    Held { pid, go: fds[1], waited: false }
}

enum Exit {
    Code(i32),
    Signal(i32),
}

impl Held {
    fn release(&self) {
        let b = 1u8;
        assert_eq!(unsafe { libc::write(self.go, &b as *const u8 as *const _, 1) }, 1);
    }

    /// Waits for the child: how it ended and its CPU time.
    fn wait(&mut self) -> (Exit, Duration) {
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut ru) };
        assert_eq!(r, self.pid, "wait4");
        self.waited = true;
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
        let exit = if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        };
        (exit, cpu)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        unsafe {
            libc::close(self.go);
            if !self.waited {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn sleep_ms(ms: u64) {
    let ts = libc::timespec { tv_sec: (ms / 1000) as _, tv_nsec: ((ms % 1000) * 1_000_000) as _ };
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spins until `ms` have passed on `clock` (wall time, or CPU time used).
fn busy_ms(clock: libc::clockid_t, ms: u64) {
    let end = clock_ns(clock) + ms * 1_000_000;
    let mut x = 0u64;
    while clock_ns(clock) < end {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Maps `mib` MiB and touches every page, so it is really charged.
fn alloc_mib(mib: u64) -> bool {
    let len = (mib * MIB) as usize;
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    for off in (0..len).step_by(4096) {
        unsafe { std::ptr::write_volatile((p as *mut u8).add(off), 1) };
    }
    true
}

fn w_alloc_64() -> i32 {
    if alloc_mib(64) {
        0
    } else {
        2
    }
}

fn w_busy_1500() -> i32 {
    busy_ms(libc::CLOCK_MONOTONIC, 1500);
    0
}

fn w_sleep() -> i32 {
    sleep_ms(30_000);
    0
}

/// Allocates 16 MiB, burns 300 ms of CPU, then sleeps for the parent to read stats.
fn w_stats() -> i32 {
    if !alloc_mib(16) {
        return 2;
    }
    // CPU time, not wall: parallel tests share the cores.
    busy_ms(libc::CLOCK_PROCESS_CPUTIME_ID, 300);
    sleep_ms(30_000);
    0
}

/// Tries to fork 10 children (each sleeps 1 s); exits with how many forks succeeded.
fn w_fork_10() -> i32 {
    let mut ok = 0;
    for _ in 0..10 {
        match unsafe { libc::fork() } {
            0 => {
                sleep_ms(1000);
                unsafe { libc::_exit(0) };
            }
            n if n > 0 => ok += 1,
            _ => {}
        }
    }
    while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
    ok
}

/// Forks a child that sleeps, then sleeps itself: two processes for remove() to kill.
fn w_sleep_with_child() -> i32 {
    if unsafe { libc::fork() } == 0 {
        sleep_ms(30_000);
        unsafe { libc::_exit(0) };
    }
    sleep_ms(30_000);
    0
}

// ---------------------------------------------------------------- helpers

/// The group's directory holding `file` (v1 has one directory per controller).
fn file_of(cg: &Cgroup, file: &str) -> PathBuf {
    cg.paths()
        .into_iter()
        .map(|d| d.join(file))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no {file} in {:?}", cg.paths()))
}

fn read(cg: &Cgroup, file: &str) -> String {
    std::fs::read_to_string(file_of(cg, file)).unwrap().trim().to_string()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_gone(paths: &[PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let g = Guard::new("mem");
    let cg = g.create("hungry", &Limits { memory_max: Some(20 * MIB), ..Default::default() }).unwrap();
    assert_eq!(cg.version(), Cgroup::detect().unwrap());
    // Swap is included: memory+swap capped at the same 20 MiB where swap is accounted.
    match cg.version() {
        Version::V1 => {
            assert_eq!(read(&cg, "memory.limit_in_bytes"), (20 * MIB).to_string());
            if file_of(&cg, "memory.limit_in_bytes").with_file_name("memory.memsw.limit_in_bytes").exists() {
                assert_eq!(read(&cg, "memory.memsw.limit_in_bytes"), (20 * MIB).to_string());
            }
        }
        Version::V2 => {
            assert_eq!(read(&cg, "memory.max"), (20 * MIB).to_string());
            if file_of(&cg, "memory.max").with_file_name("memory.swap.max").exists() {
                assert_eq!(read(&cg, "memory.swap.max"), "0");
            }
        }
    }
    let mut child = spawn_held(w_alloc_64);
    cg.add_pid(child.pid).unwrap();
    assert!(!cg.oom_killed(), "no OOM before the child runs");
    child.release();
    let (exit, _) = child.wait();
    assert!(matches!(exit, Exit::Signal(libc::SIGKILL)), "64 MiB under a 20 MiB limit must be OOM-killed");
    assert!(cg.oom_killed(), "the OOM kill must be reported");
    let peak = cg.stats().unwrap().memory_peak;
    if let Some(peak) = peak {
        assert!(peak <= 20 * MIB, "peak {peak} above the limit");
    }
    let paths = cg.paths();
    cg.remove().unwrap();
    assert_gone(&paths);
}

#[test]
fn under_the_memory_limit_nothing_is_killed() {
    let g = Guard::new("memok");
    let cg = g.create("fed", &Limits { memory_max: Some(128 * MIB), ..Default::default() }).unwrap();
    let mut child = spawn_held(w_alloc_64);
    cg.add_pid(child.pid).unwrap();
    child.release();
    assert!(matches!(child.wait().0, Exit::Code(0)));
    assert!(!cg.oom_killed());
    cg.remove().unwrap();
}

/// Only the setting is checked: v1 reclaims above the soft limit only under host memory
/// pressure, and v2 throttles above memory.high (an allocation past it crawls).
#[test]
fn soft_memory_limit_is_set() {
    let g = Guard::new("soft");
    let cg = g
        .create("soft", &Limits { memory_max: Some(64 * MIB), memory_high: Some(48 * MIB), ..Default::default() })
        .unwrap();
    let file = match cg.version() {
        Version::V1 => "memory.soft_limit_in_bytes",
        Version::V2 => "memory.high",
    };
    assert_eq!(read(&cg, file), (48 * MIB).to_string());
    let only_soft = g.create("only-soft", &Limits { memory_high: Some(MIB), ..Default::default() }).unwrap();
    assert_eq!(read(&only_soft, file), MIB.to_string());
    only_soft.remove().unwrap();
    cg.remove().unwrap();
}

#[test]
fn pids_limit_refuses_fork() {
    let g = Guard::new("pids");
    let cg = g.create("forky", &Limits { pids_max: Some(5), ..Default::default() }).unwrap();
    assert_eq!(read(&cg, "pids.max"), "5");
    let mut child = spawn_held(w_fork_10);
    cg.add_pid(child.pid).unwrap();
    child.release();
    // The child itself counts: 4 more fit under 5.
    match child.wait().0 {
        Exit::Code(n) => assert_eq!(n, 4, "forks that succeeded under pids.max=5"),
        Exit::Signal(s) => panic!("forker killed by signal {s}"),
    }
    cg.remove().unwrap();
}

#[test]
fn cpus_limit_throttles() {
    let g = Guard::new("cpus");
    let cg = g.create("hog", &Limits { cpus: Some(0.2), ..Default::default() }).unwrap();
    match cg.version() {
        Version::V1 => {
            assert_eq!(read(&cg, "cpu.cfs_quota_us"), "20000");
            assert_eq!(read(&cg, "cpu.cfs_period_us"), "100000");
        }
        Version::V2 => assert_eq!(read(&cg, "cpu.max"), "20000 100000"),
    }
    let mut child = spawn_held(w_busy_1500);
    cg.add_pid(child.pid).unwrap();
    let start = Instant::now();
    child.release();
    let (exit, cpu) = child.wait();
    let wall = start.elapsed();
    assert!(matches!(exit, Exit::Code(0)));
    let group_cpu = Duration::from_nanos(cg.stats().unwrap().cpu_usage_ns);
    let ratio = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("cpus 0.2: wall {wall:?}, child cpu {cpu:?}, group cpu {group_cpu:?}, ratio {ratio:.2}");
    assert!(ratio < 0.5, "a busy loop under --cpus 0.2 used {ratio:.2} of a CPU");
    assert!(group_cpu >= cpu.mul_f64(0.8), "group CPU {group_cpu:?} should cover the child's {cpu:?}");
    cg.remove().unwrap();
}

#[test]
fn cpuset_pins_the_process() {
    let g = Guard::new("cpuset");
    let cg = g.create("pinned", &Limits { cpuset_cpus: Some("0".into()), ..Default::default() }).unwrap();
    assert_eq!(read(&cg, "cpuset.cpus"), "0");
    let mut child = spawn_held(w_sleep);
    cg.add_pid(child.pid).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid)).unwrap();
    let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
    assert_eq!(allowed, "0", "the process must be confined to CPU 0");
    child.release();
    let paths = cg.paths();
    cg.remove().unwrap();
    assert!(matches!(child.wait().0, Exit::Signal(libc::SIGKILL)));
    assert_gone(&paths);
}

#[test]
fn stats_report_memory_cpu_and_pids() {
    let g = Guard::new("stats");
    let cg = g.create("busy", &Limits::default()).unwrap();
    let mut child = spawn_held(w_stats);
    cg.add_pid(child.pid).unwrap();
    child.release();
    wait_until("16 MiB charged and 250 ms of CPU", || {
        let s = cg.stats().unwrap();
        eprintln!("{s:?}"); // shown only when the test fails
        s.memory_current >= 16 * MIB && s.cpu_usage_ns >= 250_000_000
    });
    let s = cg.stats().unwrap();
    eprintln!("stats: {s:?}");
    assert_eq!(s.pids_current, 1);
    if let Some(peak) = s.memory_peak {
        assert!(peak >= s.memory_current.min(16 * MIB), "peak {peak} below usage");
    }
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<engine::cgroup::Stats>(&json).unwrap(), s);
    cg.remove().unwrap();
    assert!(matches!(child.wait().0, Exit::Signal(libc::SIGKILL)));
}

#[test]
fn remove_kills_everything_and_leaves_no_directory() {
    let g = Guard::new("remove");
    let cg = g.create("doomed", &Limits { pids_max: Some(10), ..Default::default() }).unwrap();
    let mut child = spawn_held(w_sleep_with_child);
    cg.add_pid(child.pid).unwrap();
    child.release();
    wait_until("two processes", || cg.stats().unwrap().pids_current == 2);
    let paths = cg.paths();
    assert!(!paths.is_empty());
    cg.remove().unwrap();
    assert_gone(&paths);
    assert!(matches!(child.wait().0, Exit::Signal(libc::SIGKILL)));
    assert!(g.leftovers().is_empty(), "left: {:?}", g.leftovers());
}

#[test]
fn open_finds_an_existing_group() {
    let g = Guard::new("open");
    let cg = g.create("kept", &Limits { pids_max: Some(7), ..Default::default() }).unwrap();
    let again = Cgroup::open_in(&g.parent, "kept").expect("open an existing group");
    assert_eq!(again.paths(), cg.paths());
    assert_eq!(again.version(), cg.version());
    assert!(Cgroup::open_in(&g.parent, "missing").is_none());
    assert!(Cgroup::open_in(&g.parent, "../kept").is_none());
    again.remove().unwrap();
    assert!(Cgroup::open_in(&g.parent, "kept").is_none());
}

#[test]
fn cleanup_stale_removes_only_unkept_groups() {
    let g = Guard::new("stale");
    let keep = g.create("keepme", &Limits::default()).unwrap();
    let stale = g.create("stale", &Limits { pids_max: Some(3), ..Default::default() }).unwrap();
    let stale_paths = stale.paths();
    let mut child = spawn_held(w_sleep);
    stale.add_pid(child.pid).unwrap();
    child.release();
    drop(stale); // as if the supervisor crashed: the group outlives its handle
    let removed = Cgroup::cleanup_stale_in(&g.parent, &|n| n == "keepme");
    assert_eq!(removed, vec!["stale".to_string()]);
    assert_gone(&stale_paths);
    assert!(matches!(child.wait().0, Exit::Signal(libc::SIGKILL)), "a stale group's processes are killed");
    assert!(keep.paths().iter().all(|p| p.exists()));
    assert!(Cgroup::cleanup_stale_in(&g.parent, &|n| n == "keepme").is_empty());
    keep.remove().unwrap();
}

#[test]
fn bad_limits_are_refused_and_leave_nothing() {
    let g = Guard::new("bad");
    let cases: Vec<(Limits, &str)> = vec![
        (Limits { memory_max: Some(0), ..Default::default() }, "--memory"),
        (Limits { memory_max: Some(MIB), memory_high: Some(2 * MIB), ..Default::default() }, "--soft-mib"),
        (Limits { cpus: Some(1000.0), ..Default::default() }, "--cpus"),
        (Limits { cpus: Some(0.001), ..Default::default() }, "--cpus"),
        (Limits { pids_max: Some(0), ..Default::default() }, "--pids-limit"),
        (Limits { cpuset_cpus: Some("4095".into()), ..Default::default() }, "--cpuset-cpus"),
        (Limits { cpuset_cpus: Some("1-0".into()), ..Default::default() }, "--cpuset-cpus"),
    ];
    for (limits, flag) in cases {
        let e = g.create("bad", &limits).expect_err(&format!("{limits:?} must be refused"));
        assert!(e.to_string().contains(flag), "{limits:?}: {e} should name {flag}");
    }
    for name in ["", "../etc", "a/b", "-x", &"x".repeat(65)] {
        assert!(matches!(g.create(name, &Limits::default()), Err(CgroupError::InvalidName(_))), "{name:?}");
    }
    assert!(g.leftovers().is_empty(), "left: {:?}", g.leftovers());
}

#[test]
fn this_host_has_every_controller_the_flags_need() {
    // Both the build host (v1) and the QEMU guest (v2) have memory, cpu, pids and cpuset.
    let all = Limits {
        memory_max: Some(64 * MIB),
        memory_high: Some(32 * MIB),
        cpus: Some(1.0),
        pids_max: Some(10),
        cpuset_cpus: Some("0".into()),
    };
    assert_eq!(Cgroup::unsupported(&all).unwrap(), Vec::<&str>::new());
    assert!(Cgroup::unsupported(&Limits { cpus: Some(0.0), ..Default::default() }).is_err());
}

#[test]
fn an_existing_group_is_refused_not_adopted() {
    let g = Guard::new("dup");
    let first = g.create("twin", &Limits { pids_max: Some(9), ..Default::default() }).unwrap();
    let e = g.create("twin", &Limits { pids_max: Some(3), ..Default::default() }).unwrap_err();
    assert!(matches!(e, CgroupError::AlreadyExists { .. }), "{e}");
    // The failed create must not have removed or changed the first group.
    assert!(first.paths().iter().all(|p| p.exists()));
    assert_eq!(read(&first, "pids.max"), "9");
    first.remove().unwrap();
}

#[test]
fn removing_a_group_already_gone_is_not_an_error() {
    let g = Guard::new("gone");
    let cg = g.create("x", &Limits::default()).unwrap();
    for p in cg.paths() {
        std::fs::remove_dir(&p).unwrap();
    }
    cg.remove().unwrap();
}

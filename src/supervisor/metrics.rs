//! `engine supervisor --metrics-addr ADDR`: Prometheus text format (version 0.0.4) over plain
//! HTTP/1.1 at `GET /metrics`, as dockerd's flag of the same name. Hand-written: one request per
//! connection, served in turn by one thread; a client that does not send its request within a
//! few seconds is dropped, so a stuck scraper cannot hold up the next one.
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::record::{ContainerRecord, KillReason, State};
use super::Supervisor;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// `--metrics-addr`: `HOST:PORT`, or a bare `PORT` on loopback (never all interfaces unless asked).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("--metrics-addr {s:?}: expected HOST:PORT (e.g. 127.0.0.1:9323) or PORT"))
}

/// Binds now (so a taken port fails the start) and serves on a thread of its own.
pub fn spawn(sup: &Arc<Supervisor>, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: binding: {e}"))?;
    let weak = Arc::downgrade(sup);
    let started = Instant::now();
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            if let Err(e) = serve(&weak, conn, started) {
                crate::warn!("metrics: {e}");
            }
        }
    })?;
    Ok(())
}

fn serve(sup: &Weak<Supervisor>, mut conn: TcpStream, started: Instant) -> std::io::Result<()> {
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    // One deadline for the whole request: a client trickling bytes cannot hold the (single)
    // metrics thread longer than IO_TIMEOUT.
    let mut reader = super::server::Deadline { conn: &conn, until: Instant::now() + IO_TIMEOUT };
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req).lines().next().unwrap_or_default().to_string();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => match sup.upgrade() {
            Some(sup) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(&sup, started)),
            None => ("503 Service Unavailable", "text/plain", "shutting down\n".to_string()),
        },
        ("GET", _) => ("404 Not Found", "text/plain", "only /metrics is served here\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

fn render(sup: &Supervisor, started: Instant) -> String {
    let records: Vec<ContainerRecord> = sup
        .registry
        .list()
        .into_iter()
        .map(|r| if r.state.is_terminal() { r } else { super::stats::inspect(sup, r.name()).unwrap_or(r) })
        .collect();
    let fam = |name, help, kind| Family { name, help, kind, samples: Vec::new() };
    let mut rss = fam("engine_container_memory_rss_bytes", "Memory of the container now (its cgroup).", "gauge");
    let mut peak = fam("engine_container_memory_peak_bytes", "Highest memory seen for the container.", "gauge");
    let mut soft = fam("engine_container_memory_soft_limit_bytes", "--soft-mib in bytes.", "gauge");
    let mut hard = fam("engine_container_memory_hard_limit_bytes", "--hard-mib in bytes.", "gauge");
    let mut crossings =
        fam("engine_container_soft_limit_crossings_total", "Times RSS went above the soft limit.", "counter");
    let mut signals = fam("engine_container_soft_signals_total", "Times the --soft-signal was sent.", "counter");
    let mut kills = fam("engine_container_kills_total", "Kills not asked for, by reason.", "counter");
    let mut cpu = fam("engine_container_cpu_seconds_total", "CPU time of the container's cgroup.", "counter");
    let mut pids = fam("engine_container_pids", "Processes in the container's cgroup now.", "gauge");
    let mut logs = fam("engine_container_log_bytes", "Size of the container's log file.", "gauge");
    let mut running = fam("engine_container_running", "1 while the container runs.", "gauge");
    for r in &records {
        let l = format!("name=\"{}\"", esc(r.name()));
        if let Some(s) = &r.stats {
            rss.samples.push((format!("{{{l}}}"), s.memory_current as f64));
            cpu.samples.push((format!("{{{l}}}"), s.cpu_usage_ns as f64 / 1e9));
            pids.samples.push((format!("{{{l}}}"), s.pids_current as f64));
        }
        if let Some(p) = r.peak_rss_bytes.or(r.stats.as_ref().and_then(|s| s.memory_peak)) {
            peak.samples.push((format!("{{{l}}}"), p as f64));
        }
        if let Some(b) = r.spec.soft_bytes() {
            soft.samples.push((format!("{{{l}}}"), b as f64));
        }
        if let Some(b) = r.spec.hard_bytes() {
            hard.samples.push((format!("{{{l}}}"), b as f64));
        }
        let n = r.events.iter().filter(|e| e.contains("soft limit exceeded")).count();
        crossings.samples.push((format!("{{{l}}}"), n as f64));
        signals.samples.push((format!("{{{l}}}"), r.soft_signals_sent as f64));
        for (reason, label) in
            [(KillReason::HardLimit, "hard_limit"), (KillReason::Oom, "oom"), (KillReason::Signal, "signal")]
        {
            let hit = matches!(r.state, State::Killed { reason: got, .. } if got == reason);
            kills.samples.push((format!("{{{l},reason=\"{label}\"}}"), if hit { 1.0 } else { 0.0 }));
        }
        let size = std::fs::metadata(&r.log_path).map(|m| m.len()).unwrap_or(0);
        logs.samples.push((format!("{{{l}}}"), size as f64));
        running.samples.push((format!("{{{l}}}"), if r.state == State::Running { 1.0 } else { 0.0 }));
    }
    let mut own = fam("engine_supervisor_containers", "Containers the supervisor knows.", "gauge");
    own.samples.push((String::new(), records.len() as f64));
    let mut up = fam("engine_supervisor_uptime_seconds", "Time since the supervisor started.", "gauge");
    up.samples.push((String::new(), started.elapsed().as_secs_f64()));
    let mut mem = fam("engine_supervisor_resident_memory_bytes", "The supervisor's own RSS.", "gauge");
    let mut threads = fam("engine_supervisor_threads", "The supervisor's own threads.", "gauge");
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        };
        if let Some(kib) = field("VmRSS:") {
            mem.samples.push((String::new(), kib * 1024.0));
        }
        if let Some(n) = field("Threads:") {
            threads.samples.push((String::new(), n));
        }
    }
    let mut monitor =
        fam("engine_supervisor_kernel_monitor_abi", "ABI of /dev/container_monitor; 0 without it.", "gauge");
    monitor.samples.push((String::new(), sup.monitor.as_ref().map_or(0.0, |d| d.version().abi as f64)));

    let mut out = String::new();
    for f in
        [rss, peak, soft, hard, crossings, signals, kills, cpu, pids, logs, running, own, up, mem, threads, monitor]
    {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
        for (labels, v) in f.samples {
            let _ = writeln!(out, "{}{labels} {v}", f.name);
        }
    }
    out
}

//! `engine supervisor --metrics-addr`: Prometheus text format, read back with a real parser
//! (`prometheus_client` from PyPI, in a venv this test makes once under target/), not by string
//! matching.
mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A venv with prometheus_client, made once per target dir (pip from PyPI).
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/metrics-venv");
    let py = venv.join("bin/python");
    let ready =
        || Command::new(&py).args(["-c", "import prometheus_client.parser"]).status().is_ok_and(|s| s.success());
    if !ready() {
        let st = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap();
        assert!(st.success(), "python3 -m venv");
        let st = Command::new(venv.join("bin/pip")).args(["install", "-q", "prometheus_client"]).status().unwrap();
        assert!(st.success(), "pip install prometheus_client");
        assert!(ready());
    }
    py
}

/// GET http://addr/metrics, parsed by prometheus_client: (metric family type, sample name,
/// labels as "k=v,k=v" sorted) → value.
fn scrape(addr: &str) -> (BTreeMap<String, String>, BTreeMap<(String, String), f64>) {
    let script = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
body = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=10).read().decode()
out = {"types": {}, "samples": []}
for fam in text_string_to_metric_families(body):
    out["types"][fam.name] = fam.type
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        out["samples"].append([s.name, labels, s.value])
print(json.dumps(out))
"#;
    let out = Command::new(python()).args(["-c", script, addr]).output().unwrap();
    assert!(out.status.success(), "scrape failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = v["types"].as_object().unwrap().iter().map(|(k, t)| (k.clone(), t.as_str().unwrap().into())).collect();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| ((s[0].as_str().unwrap().into(), s[1].as_str().unwrap().into()), s[2].as_f64().unwrap()))
        .collect();
    (types, samples)
}

/// A supervisor like `Supervisor::start()`, with `--metrics-addr`.
fn supervisor_with_metrics(addr: &str) -> Supervisor {
    let mut sup = Supervisor::start();
    sup.signal_and_wait(libc::SIGTERM);
    sup.spawn_with(&["--metrics-addr", addr], Stdio::inherit());
    sup
}

#[test]
fn metrics_are_prometheus_text_with_per_container_figures() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let sup = supervisor_with_metrics(&addr);
    let rootfs = rootfs();
    let rootfs = rootfs.to_str().unwrap();
    // One killed at its hard limit (the cgroup fallback on this host), one running.
    let out =
        sup.engine(&["run", "--soft-mib", "4", "--hard-mib", "8", "hog", rootfs, "/memory_hog", "1", "10", "100"]);
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    sup.ok(&["start", "--hard-mib", "64", "calm", rootfs, "/bin/sh", "-c", "echo hello; exec sleep 60"]);
    wait_until(Duration::from_secs(5), || sup.ok(&["logs", "calm"]).contains("hello"));

    let (types, s) = scrape(&addr);
    let get = |name: &str, labels: &str| {
        *s.get(&(name.to_string(), labels.to_string())).unwrap_or_else(|| panic!("no {name}{{{labels}}} in {s:?}"))
    };
    assert_eq!(types["engine_container_memory_rss_bytes"], "gauge");
    assert_eq!(types["engine_container_soft_signals"], "counter");
    assert_eq!(get("engine_container_memory_hard_limit_bytes", "name=hog"), (8u64 << 20) as f64);
    assert_eq!(get("engine_container_memory_soft_limit_bytes", "name=hog"), (4u64 << 20) as f64);
    assert_eq!(get("engine_container_kills_total", "name=hog,reason=hard_limit"), 1.0);
    assert_eq!(get("engine_container_kills_total", "name=hog,reason=oom"), 0.0);
    assert_eq!(get("engine_container_kills_total", "name=calm,reason=hard_limit"), 0.0);
    assert!(get("engine_container_memory_peak_bytes", "name=hog") > (4u64 << 20) as f64);
    assert_eq!(get("engine_container_soft_limit_crossings_total", "name=hog"), 1.0);
    assert_eq!(get("engine_container_soft_signals_total", "name=hog"), 0.0);
    assert_eq!(get("engine_container_running", "name=calm"), 1.0);
    assert_eq!(get("engine_container_running", "name=hog"), 0.0);
    assert!(get("engine_container_pids", "name=calm") >= 2.0);
    assert!(get("engine_container_memory_rss_bytes", "name=calm") > 0.0);
    assert!(get("engine_container_cpu_seconds_total", "name=calm") > 0.0);
    assert!(get("engine_container_log_bytes", "name=calm") >= "hello\n".len() as f64);
    assert_eq!(get("engine_supervisor_containers", ""), 2.0);
    assert!(get("engine_supervisor_resident_memory_bytes", "") > 1e6);
    assert!(get("engine_supervisor_threads", "") >= 3.0);
    // No module on this host.
    assert_eq!(get("engine_supervisor_kernel_monitor_abi", ""), 0.0);

    // Anything but GET /metrics is refused; the server goes on serving.
    let curl = |args: &[&str]| {
        let out =
            Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&[&format!("http://{addr}/")]), "404");
    assert_eq!(curl(&["-X", "POST", &format!("http://{addr}/metrics")]), "405");
    assert_eq!(scrape(&addr).1.len(), s.len());
}

#[test]
fn metrics_addr_defaults_to_loopback_and_refuses_garbage() {
    assert_eq!(engine::supervisor::metrics::parse_addr("9323").unwrap().to_string(), "127.0.0.1:9323");
    assert_eq!(engine::supervisor::metrics::parse_addr("0.0.0.0:9323").unwrap().to_string(), "0.0.0.0:9323");
    assert!(engine::supervisor::metrics::parse_addr("localhost").is_err());
    let out = Command::new(ENGINE).args(["supervisor", "--metrics-addr", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"), "{}", describe(&out));
}

/// The one metrics thread gives a client the whole request at most a few seconds, however slowly
/// it trickles its bytes: a scrape right behind it is still answered.
#[test]
fn a_trickling_client_does_not_hold_up_the_next_scrape() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let _sup = supervisor_with_metrics(&addr);
    let mut slow = TcpStream::connect(&addr).unwrap();
    let trickler = std::thread::spawn(move || {
        // A byte a second for 15 s, never ending the request; stops once the server hangs up.
        for b in b"GET /metrics HTTP" {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut fast = TcpStream::connect(&addr).unwrap();
    fast.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    fast.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = fast.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert!(t.elapsed() < Duration::from_secs(9), "the scrape waited {:?} behind a trickling client", t.elapsed());
    trickler.join().unwrap();
}

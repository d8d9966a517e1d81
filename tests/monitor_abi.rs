//! ABI drift check: compiles a C program against kmod/monitor_uapi.h that prints every
//! struct size, field offset, ioctl number and constant, and compares them with the Rust
//! mirror in src/monitor/abi.rs. Any difference fails, listing every mismatch.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use engine::monitor::abi::*;

/// (C struct, Rust struct, C field, offset in Rust) for every field of every struct.
macro_rules! layout {
    ($map:ident, $( $cs:ident => $rs:ty { $( $cf:ident : $rf:ident ),* $(,)? } )*) => {
        $(
            $map.insert(format!("sizeof {}", stringify!($cs)), size_of::<$rs>() as u64);
            $( $map.insert(format!("offsetof {}.{}", stringify!($cs), stringify!($cf)),
                           offset_of!($rs, $rf) as u64); )*
        )*
    };
}

fn rust_side() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    layout!(m,
        cm_register => CmRegister { pid: pid, flags: flags, soft_bytes: soft_bytes,
                                    hard_bytes: hard_bytes, name: name }
        cm_unregister => CmUnregister { pid: pid, reserved: reserved }
        cm_query => CmQuery { pid: pid, flags: flags, rss_bytes: rss_bytes,
                              peak_rss_bytes: peak_rss_bytes, soft_bytes: soft_bytes,
                              hard_bytes: hard_bytes, nr_procs: nr_procs, reserved: reserved,
                              next_check_ms: next_check_ms, name: name }
        cm_stats => CmStats { nr_entries: nr_entries, reserved: reserved, runs: runs,
                              checks: checks, total_ns: total_ns, max_run_ns: max_run_ns,
                              events_dropped: events_dropped }
        cm_version => CmVersion { abi: abi, features: features }
        cm_event => CmEvent { type: kind, pid: pid, rss_bytes: rss_bytes,
                              limit_bytes: limit_bytes, timestamp_ns: timestamp_ns, name: name }
    );
    for (k, v) in [
        ("CM_IOC_REGISTER", CM_IOC_REGISTER as u64),
        ("CM_IOC_UNREGISTER", CM_IOC_UNREGISTER as u64),
        ("CM_IOC_QUERY", CM_IOC_QUERY as u64),
        ("CM_IOC_STATS", CM_IOC_STATS as u64),
        ("CM_IOC_VERSION", CM_IOC_VERSION as u64),
        ("CM_ABI_VERSION", CM_ABI_VERSION as u64),
        ("CM_FEATURE_SOFT_SIGNAL", CM_FEATURE_SOFT_SIGNAL as u64),
        ("CM_REGISTER_SOFT_SIGNAL", CM_REGISTER_SOFT_SIGNAL as u64),
        ("CM_REGISTER_SIGNAL_SHIFT", CM_REGISTER_SIGNAL_SHIFT as u64),
        ("CM_REGISTER_SIGNAL_MASK", CM_REGISTER_SIGNAL_MASK as u64),
        ("CM_REGISTER_SIGNAL(15)", cm_register_signal(15) as u64),
        ("CM_REGISTER_SIGNAL(300)", cm_register_signal(300) as u64),
        ("CM_SOFT_REARM_PERCENT", CM_SOFT_REARM_PERCENT as u64),
        ("CM_FLAG_SOFT_SIGNALLED", CM_FLAG_SOFT_SIGNALLED as u64),
        ("CM_EVENT_SOFT_SIGNAL", CM_EVENT_SOFT_SIGNAL as u64),
        ("CM_IOC_MAGIC", CM_IOC_MAGIC as u64),
        ("CM_NAME_LEN", CM_NAME_LEN as u64),
        ("CM_FLAG_SOFT_EXCEEDED", CM_FLAG_SOFT_EXCEEDED as u64),
        ("CM_FLAG_HARD_KILLED", CM_FLAG_HARD_KILLED as u64),
        ("CM_FLAG_PIDNS", CM_FLAG_PIDNS as u64),
        ("CM_EVENT_SOFT_LIMIT", CM_EVENT_SOFT_LIMIT as u64),
        ("CM_EVENT_HARD_KILL", CM_EVENT_HARD_KILL as u64),
        ("CM_EVENT_GONE", CM_EVENT_GONE as u64),
    ] {
        m.insert(k.to_string(), v);
    }
    m
}

/// C source printing the same keys; derived from the Rust keys so both sides cover the same
/// ground, with the C names taken from the header.
fn c_program(keys: &BTreeMap<String, u64>) -> String {
    let mut s =
        String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"monitor_uapi.h\"\nint main(void)\n{\n");
    for key in keys.keys() {
        let expr = if let Some(t) = key.strip_prefix("sizeof ") {
            format!("sizeof(struct {t})")
        } else if let Some(f) = key.strip_prefix("offsetof ") {
            let (t, field) = f.split_once('.').unwrap();
            format!("offsetof(struct {t}, {field})")
        } else {
            key.clone()
        };
        s += &format!("\tprintf(\"%s=%llu\\n\", \"{key}\", (unsigned long long)({expr}));\n");
    }
    // The device path is a string: compare it too.
    s += "\tprintf(\"path=%s\\n\", \"/dev/\" CM_DEVICE_NAME);\n\treturn 0;\n}\n";
    s
}

#[test]
fn rust_mirror_matches_monitor_uapi_h() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header_dir = root.join("kmod");
    assert!(header_dir.join("monitor_uapi.h").exists(), "no {}/monitor_uapi.h", header_dir.display());

    let rust = rust_side();
    let dir = std::env::temp_dir().join(format!("monitor-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("abi.c");
    let bin = dir.join("abi");
    std::fs::write(&src, c_program(&rust)).unwrap();

    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let out = Command::new(&cc)
        .args(["-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg("-I")
        .arg(&header_dir)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e} (a C compiler is required)"));
    assert!(out.status.success(), "{cc} failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    let mut c = BTreeMap::new();
    let mut path = String::new();
    for line in text.lines() {
        let (k, v) = line.split_once('=').unwrap();
        if k == "path" {
            path = v.to_string();
        } else {
            c.insert(k.to_string(), v.parse::<u64>().unwrap());
        }
    }
    assert_eq!(c.len(), rust.len(), "the C program printed a different set of keys");

    let mismatches: Vec<String> = rust
        .iter()
        .filter(|(k, v)| c.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: C {:?}, Rust {v}", c.get(k)))
        .collect();
    assert!(mismatches.is_empty(), "ABI drift between monitor_uapi.h and abi.rs:\n{}", mismatches.join("\n"));
    assert_eq!(path, CM_DEVICE_PATH);
    // Sanity: the comparison really covered the structs and the ioctls.
    assert!(rust.len() > 40);
    assert_eq!(c["sizeof cm_event"], 96);
}

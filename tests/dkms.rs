//! The monitor's DKMS source tree as `make install` lays it out (issue 12): `dkms build` against
//! the QEMU guest's kernel headers (`make vm-kernel` unpacks Debian's cloud kernel and headers
//! under build/vm), with private DKMS trees so the host's /var/lib/dkms is never touched; and a
//! missing headers directory refused with dkms's one clear error.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{describe, ENGINE};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// (KVER, KDIR) of the guest kernel, fetched and unpacked by `make vm-kernel` (cached).
fn guest_kernel() -> (String, PathBuf) {
    let out = Command::new("make").args(["-s", "--no-print-directory", "-C", ROOT, "vm-kernel"]).output().unwrap();
    assert!(out.status.success(), "make vm-kernel: {}", describe(&out));
    let env = std::fs::read_to_string(Path::new(ROOT).join("build/vm/kernel.env")).unwrap();
    let get = |key: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in {env}"))
            .to_string()
    };
    (get("KVER"), PathBuf::from(get("KDIR")))
}

/// `dkms ACTION -m monitor -v VERSION` on private source and DKMS trees.
fn dkms(tmp: &Path, action: &str, extra: &[&str]) -> Output {
    Command::new("dkms")
        .args([action, "-m", "monitor", "-v", VERSION])
        .arg(format!("--sourcetree={}", tmp.join("dest/usr/src").display()))
        .arg(format!("--dkmstree={}", tmp.join("dkms").display()))
        .arg(format!("--installtree={}", tmp.join("modules").display()))
        .args(extra)
        .output()
        .expect("dkms (make deps installs it)")
}

fn installed_tree(tmp: &Path) {
    let out = Command::new("make")
        .args(["-s", "--no-print-directory", "-C", ROOT, "install", "CARGO=true"])
        .arg(format!("ENGINE={ENGINE}"))
        .arg(format!("DESTDIR={}", tmp.join("dest").display()))
        .arg(format!("STAGE={}", tmp.join("stage").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "make install: {}", describe(&out));
    std::fs::create_dir_all(tmp.join("dkms")).unwrap();
    let out = dkms(tmp, "add", &[]);
    assert!(out.status.success(), "dkms add: {}", describe(&out));
}

#[test]
fn dkms_builds_the_installed_tree_against_the_guest_headers() {
    let (kver, kdir) = guest_kernel();
    let tmp = tempfile::tempdir().unwrap();
    installed_tree(tmp.path());
    let out = dkms(tmp.path(), "build", &["-k", &kver, "--kernelsourcedir", kdir.to_str().unwrap()]);
    assert!(out.status.success(), "dkms build: {}", describe(&out));
    let ko = tmp.path().join(format!("dkms/monitor/{VERSION}/{kver}/x86_64/module/monitor.ko"));
    let modinfo = Command::new("modinfo").args(["-F", "vermagic"]).arg(&ko).output().unwrap();
    assert!(modinfo.status.success(), "{}: {}", ko.display(), describe(&modinfo));
    assert!(String::from_utf8_lossy(&modinfo.stdout).starts_with(&format!("{kver} ")), "{}", describe(&modinfo));
    let status = dkms(tmp.path(), "status", &[]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains(&format!("monitor/{VERSION}, {kver}, x86_64: built")), "{status}");
}

#[test]
fn dkms_without_kernel_headers_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    installed_tree(tmp.path());
    let missing = tmp.path().join("no-headers");
    let out =
        dkms(tmp.path(), "build", &["-k", "6.1.0-999-cloud-amd64", "--kernelsourcedir", missing.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", describe(&out));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error!")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("kernel headers for kernel 6.1.0-999-cloud-amd64 cannot be found"), "{text}");
}

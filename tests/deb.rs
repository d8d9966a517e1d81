//! `make deb` (issue 12): both packages lintian-clean (no error or warning), then installed,
//! upgraded and purged with `dpkg --root` in a throwaway root (a copy of the busybox rootfs,
//! whose /bin/sh runs the maintainer scripts chrooted, plus a fake deb-systemd-helper that logs
//! its calls), leaving the root as it was.
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{describe, ENGINE};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn make_deb(out: &Path, version: &str) -> (PathBuf, PathBuf) {
    ok(Command::new("make")
        .args(["-s", "--no-print-directory", "-C", ROOT, "deb", "CARGO=true"])
        .arg(format!("ENGINE={ENGINE}"))
        .arg(format!("DEB_OUT={}", out.display()))
        .arg(format!("DEB_VERSION={version}")));
    (out.join(format!("engine_{version}_amd64.deb")), out.join(format!("engine-monitor-dkms_{version}_all.deb")))
}

/// Every path under `root` but dpkg's own database, sorted.
fn tree(root: &Path) -> Vec<String> {
    let out = ok(Command::new("find").arg(".").current_dir(root));
    let mut paths: Vec<String> = out.lines().filter(|p| !p.starts_with("./var/lib/dpkg")).map(String::from).collect();
    paths.sort();
    paths
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    // The throwaway root has no libc6 or dkms packages: their dependencies are not met there.
    ok(Command::new("dpkg").arg(format!("--root={}", root.display())).arg("--force-depends").args(args))
}

#[test]
fn packages_are_lintian_clean_and_install_upgrade_purge_in_a_throwaway_root() {
    let tmp = tempfile::Builder::new().prefix("engine-test-deb-").tempdir_in("/tmp").unwrap();
    let (engine_deb, dkms_deb) = make_deb(&tmp.path().join("v1"), VERSION);
    let next = format!("{VERSION}+test2");
    let (engine_deb2, dkms_deb2) = make_deb(&tmp.path().join("v2"), &next);

    // lintian: no error, no warning (the info-level tags left are explained in the README).
    let lint = Command::new("lintian").args(["--fail-on", "error,warning"]).arg(&engine_deb).arg(&dkms_deb).output();
    let lint = lint.expect("lintian (make deps installs it)");
    let tags: Vec<String> = String::from_utf8_lossy(&lint.stdout)
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .map(String::from)
        .collect();
    assert!(lint.status.success() && tags.is_empty(), "{}", describe(&lint));

    // What each package holds.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&engine_deb));
    for f in [
        "./usr/bin/engine",
        "./usr/bin/engine-front",
        "./usr/bin/engine-core",
        "./usr/lib/systemd/system/engine.service",
        "./usr/lib/systemd/system/engine.socket",
        "./usr/share/bash-completion/completions/engine",
        "./usr/share/zsh/vendor-completions/_engine",
        "./usr/share/fish/vendor_completions.d/engine.fish",
        "./usr/share/man/man1/engine-start.1.gz",
        "./usr/share/doc/engine/copyright",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(f)), "{f} not in engine.deb:\n{listing}");
    }
    assert!(!listing.contains("/usr/src/") && !listing.contains("installed-files"), "{listing}");
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&dkms_deb));
    assert!(listing.contains(&format!("./usr/src/monitor-{VERSION}/dkms.conf")), "{listing}");
    let unit = ok(Command::new("dpkg-deb").arg("--fsys-tarfile").arg(&engine_deb));
    assert!(unit.contains("ExecStart=/usr/bin/engine supervisor"), "the unit names /usr/bin/engine");

    // The throwaway root.
    let root = tmp.path().join("root");
    ok(Command::new("cp")
        .arg("-a")
        .arg(std::env::var_os("ENGINE_TEST_ROOTFS").unwrap_or_else(|| format!("{ROOT}/rootfs").into()))
        .arg(&root));
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The maintainer scripts write to /dev/null, as on any real system.
    ok(Command::new("mknod").args(["-m", "666"]).arg(root.join("dev/null")).args(["c", "1", "3"]));
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("var/lib/dpkg/available"), "").unwrap();
    let helper = root.join("usr/bin/deb-systemd-helper");
    std::fs::write(&helper, "#!/bin/sh\necho \"$*\" >> /deb-systemd-helper.log\n[ \"$1\" != --quiet ]\n").unwrap();
    ok(Command::new("chmod").arg("755").arg(&helper));
    let before = tree(&root);

    dpkg(&root, &["-i", engine_deb.to_str().unwrap(), dkms_deb.to_str().unwrap()]);
    let status = dpkg(&root, &["-l", "engine", "engine-monitor-dkms"]);
    assert!(status.lines().filter(|l| l.starts_with("ii ")).count() == 2, "{status}");
    let installed = root.join("usr/bin/engine");
    let run = ok(Command::new(&installed).arg("--version"));
    assert!(run.starts_with(&format!("engine {VERSION}")), "{run}");
    assert!(root.join(format!("usr/src/monitor-{VERSION}/monitor.c")).exists());
    let log = std::fs::read_to_string(root.join("deb-systemd-helper.log")).unwrap();
    assert!(
        log.lines().any(|l| l == "unmask engine.socket") && log.lines().any(|l| l == "update-state engine.socket"),
        "{log}"
    );

    // Upgrade: the new version replaces the old one's files.
    dpkg(&root, &["-i", engine_deb2.to_str().unwrap(), dkms_deb2.to_str().unwrap()]);
    let status = dpkg(&root, &["-s", "engine"]);
    assert!(status.lines().any(|l| l == format!("Version: {next}")), "{status}");
    let changelog = ok(Command::new("zcat").arg(root.join("usr/share/doc/engine/changelog.gz")));
    assert!(changelog.starts_with(&format!("engine ({next})")), "{changelog}");

    // Purge: nothing of ours is left.
    dpkg(&root, &["--purge", "engine", "engine-monitor-dkms"]);
    let log = std::fs::read_to_string(root.join("deb-systemd-helper.log")).unwrap();
    assert!(log.lines().any(|l| l == "purge engine.socket engine.service"), "{log}");
    std::fs::remove_file(root.join("deb-systemd-helper.log")).unwrap();
    assert_eq!(tree(&root), before);
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(!status.contains("Package: engine"), "{status}");
}

//! `make install` / `make uninstall` into a DESTDIR (issue 12): the files, completions that load
//! in bash, man pages that `man -l` renders, unit files `systemd-analyze verify` accepts, an
//! install over a running supervisor, and an uninstall that leaves nothing.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{describe, ENGINE};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The verbs `engine --help` lists; each gets a man page.
/// The verbs `engine --help` lists (and the subcommands of those that have some, as
/// "image-ls"), so a new verb without its man page fails here without editing a list.
fn verbs() -> Vec<String> {
    fn commands(args: &[&str]) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_engine")).args(args).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|v| v != "help")
            .collect()
    }
    let mut all = Vec::new();
    for verb in commands(&[]) {
        all.extend(commands(&[&verb]).into_iter().map(|sub| format!("{verb}-{sub}")));
        all.push(verb);
    }
    for core in ["supervisor", "start", "run", "stop", "ps", "logs", "rm", "pull", "image-ls"] {
        assert!(all.iter().any(|v| v == core), "`engine --help` lists no {core}: {all:?}");
    }
    all
}

/// `make TARGET` with the test's binary (CARGO=true: no cargo build inside a cargo test) and a
/// staging directory of its own.
fn make(target: &str, destdir: &Path, stage: &Path, extra: &[&str]) -> Output {
    Command::new("make")
        .args(["-s", "--no-print-directory", "-C", ROOT, target, "CARGO=true"])
        .arg(format!("ENGINE={ENGINE}"))
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("STAGE={}", stage.display()))
        .args(extra)
        .output()
        .unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let out = Command::new("find").arg(dir).args(["-mindepth", "1"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).collect()
}

/// man's output without its overstrike bold and underline ("S\x08S", "_\x08x").
fn plain(bytes: &[u8]) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn install_into_destdir_then_uninstall_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dest, stage) = (tmp.path().join("dest"), tmp.path().join("stage"));
    let out = make("install", &dest, &stage, &[]);
    assert!(out.status.success(), "make install: {}", describe(&out));
    let version = env!("CARGO_PKG_VERSION");
    let p = |rel: &str| dest.join(rel.trim_start_matches('/'));

    // The binary, and the files around it, with their modes.
    assert_eq!(mode(&p("/usr/local/bin/engine")), 0o755);
    assert_eq!(mode(&p("/usr/local/bin/engine-front")), 0o755);
    assert_eq!(mode(&p("/usr/local/bin/engine-core")), 0o755);
    assert_eq!(mode(&p("/usr/local/bin/engine-oci")), 0o755);
    // --version is engine-core's: the client hands it over to the engine-core installed beside it.
    let run = Command::new(p("/usr/local/bin/engine")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&run.stdout).starts_with(&format!("engine {version}")), "{}", describe(&run));
    for f in [
        "/usr/local/share/bash-completion/completions/engine",
        "/usr/local/share/zsh/site-functions/_engine",
        "/usr/local/share/fish/vendor_completions.d/engine.fish",
        "/usr/lib/systemd/system/engine.service",
        "/usr/lib/systemd/system/engine.socket",
        "/usr/local/share/engine/monitor.modules-load.conf",
    ] {
        assert_eq!(mode(&p(f)), 0o644, "{f}");
    }
    assert_eq!(mode(&p("/usr/local/share/engine/mkrootfs.sh")), 0o755);
    // The DKMS tree: the module's sources and a dkms.conf of this version.
    let src = p(&format!("/usr/src/monitor-{version}"));
    for f in ["Makefile", "Kbuild", "monitor.c", "monitor_uapi.h"] {
        assert_eq!(
            std::fs::read(src.join(f)).unwrap(),
            std::fs::read(Path::new(ROOT).join("kmod").join(f)).unwrap(),
            "{f}"
        );
    }
    let dkms = std::fs::read_to_string(src.join("dkms.conf")).unwrap();
    for line in [
        "PACKAGE_NAME=\"monitor\"",
        &format!("PACKAGE_VERSION=\"{version}\""),
        "BUILT_MODULE_NAME[0]=\"monitor\"",
        "DEST_MODULE_LOCATION[0]=\"/updates/dkms\"",
        "AUTOINSTALL=\"yes\"",
    ] {
        assert!(dkms.lines().any(|l| l == line), "{line} not in dkms.conf:\n{dkms}");
    }
    assert!(dkms.contains("KDIR=${kernel_source_dir}"), "{dkms}");
    let unit = std::fs::read_to_string(p("/usr/lib/systemd/system/engine.service")).unwrap();
    assert!(unit.lines().any(|l| l == "ExecStart=/usr/local/bin/engine supervisor"), "{unit}");
    assert!(!unit.contains('@'), "unsubstituted placeholder:\n{unit}");

    // Completions: bash loads them and completes verbs; zsh's and fish's are theirs.
    let bash = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && complete -p engine && COMP_WORDS=(engine st) COMP_CWORD=1 && _engine engine st engine && echo "${COMPREPLY[*]}""#)
        .arg("bash")
        .arg(p("/usr/local/share/bash-completion/completions/engine"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bash.stdout);
    assert!(bash.status.success() && stdout.contains("-F _engine engine"), "{}", describe(&bash));
    let replies: Vec<&str> = stdout.lines().last().unwrap_or("").split_whitespace().collect();
    assert!(replies.contains(&"start") && replies.contains(&"stop"), "{stdout}");
    assert!(!replies.contains(&"completions"), "hidden verbs are not offered: {stdout}");
    let zsh = std::fs::read_to_string(p("/usr/local/share/zsh/site-functions/_engine")).unwrap();
    assert!(zsh.starts_with("#compdef engine"), "{}", &zsh[..40.min(zsh.len())]);
    let fish = std::fs::read_to_string(p("/usr/local/share/fish/vendor_completions.d/engine.fish")).unwrap();
    assert!(fish.contains("complete -c engine"), "{fish}");

    // One man page per verb, plus engine(1), each rendered by man -l.
    let man1 = p("/usr/local/share/man/man1");
    let mut pages: Vec<String> =
        std::fs::read_dir(&man1).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    pages.sort();
    // engine-oci(1) (its verbs are runc's), engine-core(1) and engine-front(1) are written by
    // hand, the others generated from clap.
    let mut want: Vec<String> = verbs()
        .iter()
        .map(|v| format!("engine-{v}.1"))
        .chain(["engine.1", "engine-oci.1", "engine-core.1", "engine-front.1"].map(String::from))
        .collect();
    want.sort();
    assert_eq!(pages, want);
    for page in &pages {
        let out = Command::new("man")
            .arg("-l")
            .arg(man1.join(page))
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        let text = plain(&out.stdout);
        let title = page.trim_end_matches(".1");
        assert!(
            out.status.success() && text.contains("SYNOPSIS") && text.contains(title),
            "man -l {page}: {}",
            describe(&out)
        );
    }
    let start = Command::new("man").arg("-l").arg(man1.join("engine-start.1")).output().unwrap();
    assert!(plain(&start.stdout).contains("--memory"), "{}", describe(&start));

    // The units as systemd reads them (with ExecStart pointing into the DESTDIR, since verify
    // checks that the binary exists; man pages looked up in the DESTDIR too).
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    for u in ["engine.service", "engine.socket"] {
        let text = std::fs::read_to_string(p(&format!("/usr/lib/systemd/system/{u}"))).unwrap();
        let bin = p("/usr/local/bin/engine");
        std::fs::write(units.join(u), text.replace("/usr/local/bin/engine", bin.to_str().unwrap())).unwrap();
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("engine.service"))
        .arg(units.join("engine.socket"))
        .env("MANPATH", p("/usr/local/share/man"))
        .output()
        .expect("systemd-analyze (make deps installs systemd)");
    // verify exits 0 on a unit it had to ignore lines of: its output must be empty too.
    assert!(verify.status.success() && verify.stdout.is_empty() && verify.stderr.is_empty(), "{}", describe(&verify));

    // Installing again is fine, and uninstall takes everything, directories it made included.
    let again = make("install", &dest, &stage, &[]);
    assert!(again.status.success(), "second make install: {}", describe(&again));
    let out = make("uninstall", &dest, &stage, &[]);
    assert!(out.status.success(), "make uninstall: {}", describe(&out));
    assert_eq!(files_under(&dest), Vec::<PathBuf>::new());
    // A second uninstall: one line, nothing installed.
    let out = make("uninstall", &dest, &stage, &[]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing of engine is installed"), "{}", describe(&out));
}

#[test]
fn uninstall_keeps_what_others_put_in_shared_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (dest, stage) = (tmp.path().join("dest"), tmp.path().join("stage"));
    let theirs = dest.join("usr/local/bin/someone-else");
    std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    std::fs::write(&theirs, b"not ours").unwrap();
    let out = make("install", &dest, &stage, &["PREFIX=/usr/local"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = make("uninstall", &dest, &stage, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(files_under(&dest), [dest.join("usr"), dest.join("usr/local"), dest.join("usr/local/bin"), theirs]);
}

#[test]
fn install_over_a_running_supervisor_says_so_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (dest, stage) = (tmp.path().join("dest"), tmp.path().join("stage"));
    let out = make("install", &dest, &stage, &["PREFIX=/opt/engine"]);
    assert!(out.status.success(), "{}", describe(&out));
    let bin = dest.join("opt/engine/bin/engine");
    let tag = format!("{}i", std::process::id() % 100_000);
    let (bridge, parent) = (format!("eb{tag}"), format!("engine-test-{tag}"));
    let socket = tmp.path().join("s.sock");
    let mut sup = Command::new(&bin)
        .args(["supervisor", "--root"])
        .arg(tmp.path().join("root"))
        .arg("--socket")
        .arg(&socket)
        .args(["--bridge", &bridge, "--cgroup-parent", &parent, "--subnet", "10.203.7.0/24"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until(std::time::Duration::from_secs(10), || std::os::unix::net::UnixStream::connect(&socket).is_ok());

    let out = make("install", &dest, &stage, &["PREFIX=/opt/engine"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The old supervisor keeps serving; the new binary is in place.
    let ps = Command::new(&bin).arg("--socket").arg(&socket).arg("ps").output().unwrap();
    unsafe { libc::kill(sup.id() as i32, libc::SIGTERM) };
    let _ = sup.wait();
    let _ = engine::net::remove_bridge(&bridge);
    for ctrl in ["memory", "cpu", "cpuacct", "pids", "cpuset", "devices", "blkio", "unified", ""] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(&parent));
    }
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("a supervisor (pid {}) is running", sup.id())), "{stderr}");
    assert!(ps.status.success(), "{}", describe(&ps));
    let out = make("uninstall", &dest, &stage, &["PREFIX=/opt/engine"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(files_under(&dest), Vec::<PathBuf>::new());
}

//! Images against software no one here wrote: Debian's docker-registry on loopback (own config,
//! own port, own storage), images built by umoci from a copy of the busybox rootfs and pushed by
//! skopeo, archives written by skopeo, overlayfs mounting the unpacked layers. Root only.
mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{rootfs, ENGINE};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A docker-registry of the test's own, stopped (and waited for) on drop.
struct Registry {
    child: Child,
    /// The token server of a token-auth registry.
    tokens: Option<Child>,
    dir: tempfile::TempDir,
    host: String,
    creds: Option<String>,
}

fn wait_listening(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(host).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {host}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Registry {
    fn start(auth: Option<(&str, &str)>) -> Registry {
        Registry::start_with(auth, false)
    }

    /// `token`: the registry trusts a token server of the test's own (anonymous pull, push with
    /// the credentials), instead of htpasswd.
    fn start_with(auth: Option<(&str, &str)>, token: bool) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let t = dir.path();
        let mut yml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            t.join("reg").display()
        );
        let mut tokens = None;
        if let (Some((user, pass)), true) = (auth, token) {
            let ok = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=token", "-keyout"])
                .arg(t.join("key.pem"))
                .arg("-out")
                .arg(t.join("cert.pem"))
                .stderr(Stdio::null())
                .status()
                .expect("openssl");
            assert!(ok.success(), "openssl req");
            let tport = free_port();
            let server = Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/image/token_server.py"))
                .arg(tport.to_string())
                .arg(t.join("key.pem"))
                .arg(t.join("cert.pem"))
                .args(["test-issuer", "test-registry", &format!("{user}:{pass}")])
                .spawn()
                .expect("token server");
            tokens = Some(server);
            wait_listening(&format!("127.0.0.1:{tport}"));
            yml += &format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                t.join("cert.pem").display()
            );
        } else if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd").args(["-Bbn", user, pass]).output().expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(t.join("htpasswd"), &out.stdout).expect("write htpasswd");
            yml += &format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", t.join("htpasswd").display());
        }
        std::fs::write(t.join("reg.yml"), yml).expect("write reg.yml");
        let log = std::fs::File::create(t.join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(t.join("reg.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry (make deps installs it)");
        let host = format!("127.0.0.1:{port}");
        wait_listening(&host);
        Registry { child, tokens, dir, host, creds: auth.map(|(u, p)| format!("{u}:{p}")) }
    }

    /// An open registry holding `fixtures`.
    fn with(fixtures: &[&str]) -> Registry {
        let reg = Registry::start(None);
        reg.push(fixtures);
        reg
    }

    fn push(&self, fixtures: &[&str]) {
        let t = self.dir.path();
        let work = t.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/image/fixtures.py"))
            .arg(&work)
            .arg(&self.host)
            .arg(rootfs())
            .args(fixtures)
            .arg("--regroot")
            .arg(t.join("reg"));
        if let Some(c) = &self.creds {
            cmd.args(["--creds", c]);
        }
        let out = cmd.output().expect("python3");
        assert!(out.status.success(), "fixtures {fixtures:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        if let Some(mut t) = self.tokens.take() {
            let _ = t.kill();
            let _ = t.wait();
        }
    }
}

/// An engine root of the test's own: the store is ROOT/images.
struct Engine {
    dir: tempfile::TempDir,
}

impl Engine {
    fn new() -> Engine {
        Engine { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn store(&self) -> PathBuf {
        self.root().join("images")
    }

    fn run(&self, args: &[&str]) -> Output {
        let (verb, rest) = args.split_first().expect("a verb");
        let mut cmd = Command::new(ENGINE);
        cmd.arg(verb);
        if *verb == "image" {
            cmd.arg(rest[0]).arg("--root").arg(self.root()).args(&rest[1..]);
        } else {
            cmd.arg("--root").arg(self.root()).args(rest);
        }
        cmd.stdin(Stdio::null()).output().expect("engine")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "engine {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a verb that must fail: returns its one stderr line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "engine {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
        err.trim_end().to_string()
    }

    fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.store().join(sub))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Pulls `reference`, then resolves it as the supervisor would.
    fn pull(&self, reference: &str) -> engine::image::ResolvedImage {
        self.ok(&["pull", reference]);
        self.resolve(reference)
    }

    fn resolve(&self, reference: &str) -> engine::image::ResolvedImage {
        engine::image::resolve(&self.store(), reference).expect("resolve")
    }
}

/// `diff -r` of two trees, links not followed: the unpacked layer must be the rootfs exactly.
fn same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff").arg("-r").arg("--no-dereference").arg(a).arg(b).output().expect("diff");
    assert!(out.status.success(), "trees differ:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn pull_oci_and_schema2_share_layers_and_rmi_leaves_nothing() {
    let reg = Registry::with(&["oci", "v2s2"]);
    let e = Engine::new();
    let oci = format!("{}/busybox:oci", reg.host);
    let v2 = format!("{}/busybox:v2s2", reg.host);

    let out = e.ok(&["pull", &oci]);
    let id = out.lines().last().unwrap_or_default().to_string();
    assert!(id.starts_with("sha256:"), "{out}");
    let img = e.resolve(&oci);
    assert_eq!(img.lower_dirs.len(), 1);
    same_tree(&img.lower_dirs[0], &rootfs());
    assert_eq!(img.config.cmd, ["/bin/sh"]);
    assert_eq!(img.config.working_dir, "/tmp");
    assert!(img.config.env.iter().any(|v| v.starts_with("PATH=")));
    let mode = std::fs::metadata(e.store()).expect("store").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "store readable by others");

    // The schema-2 tag of the same rootfs: the layer is already there, nothing fetched.
    let out = e.ok(&["pull", &v2]);
    assert!(out.contains("0 layers fetched, 1 present"), "{out}");

    // A second pull of the same image fetches nothing and is quick.
    let t = Instant::now();
    let out = e.ok(&["pull", &oci]);
    let second = t.elapsed();
    assert!(out.contains("0 layers fetched"), "{out}");
    eprintln!("second pull of {oci}: {:.1} ms", second.as_secs_f64() * 1000.0);
    assert!(second < Duration::from_millis(500), "second pull took {second:?}");

    let json: serde_json::Value = serde_json::from_str(&e.ok(&["images", "--format", "json"])).expect("json");
    let names: Vec<String> = json
        .as_array()
        .expect("array")
        .iter()
        .flat_map(|i| i["Names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    assert!(names.contains(&oci) && names.contains(&v2), "{names:?}");

    let inspect: serde_json::Value = serde_json::from_str(&e.ok(&["image", "inspect", &oci])).expect("json");
    let c = &inspect[0]["Config"];
    assert_eq!(c["ExposedPorts"], serde_json::json!(["8080/tcp"]), "{inspect}");
    assert_eq!(c["Labels"]["org.example.test"], "yes", "{inspect}");
    assert_eq!(inspect[0]["Id"], id.as_str());

    // Removing one name keeps the shared layer; removing the other empties the store.
    e.ok(&["rmi", &oci]);
    assert_eq!(e.entries("layers").len(), 1);
    assert!(e.fails(&["rmi", &oci]).contains("not found"));
    e.ok(&["rmi", &v2]);
    for sub in ["layers", "images", "refs", "blobs/sha256", "tmp", "locks"] {
        assert!(e.entries(sub).is_empty(), "{sub} not empty: {:?}", e.entries(sub));
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

#[test]
fn whiteouts_and_opaque_dirs_work_in_a_real_overlay() {
    let reg = Registry::with(&["wh"]);
    let e = Engine::new();
    let name = format!("{}/wh:latest", reg.host);
    let img = e.pull(&name);
    assert_eq!(img.lower_dirs.len(), 3);
    let top = &img.lower_dirs[0];
    let wh = std::fs::symlink_metadata(top.join("data/gone")).expect("whiteout");
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "data/gone is not a 0:0 char device");
    assert!(!top.join("data/.wh.gone").exists());
    assert_eq!(xattr(&top.join("opq"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(!top.join("opq/.wh..wh..opq").exists());

    // The real proof: overlayfs itself, in a private mount namespace that dies with the shell.
    let mnt = e.dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let lower = img.lower_dirs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let script = format!(
        "mount -t overlay overlay -o lowerdir={lower} {m} && ls {m}/data && echo -- && ls {m}/opq && echo -- && cat {m}/data/keep && ls {m}/bin/busybox",
        m = mnt.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "overlay: {}{}", text, String::from_utf8_lossy(&out.stderr));
    let parts: Vec<&str> = text.split("--\n").collect();
    assert_eq!(parts[0].split_whitespace().collect::<Vec<_>>(), ["keep"], "deleted file still visible: {text}");
    assert_eq!(parts[1].split_whitespace().collect::<Vec<_>>(), ["new"], "opaque dir shows lower content: {text}");
    assert!(parts[2].starts_with("keep\n"), "{text}");

    // Two pulls of one image at once: both succeed, each layer stored once.
    let e2 = Engine::new();
    let pulls: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(ENGINE)
                .args(["pull", "--root"])
                .arg(e2.root())
                .arg(&name)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("engine")
        })
        .collect();
    for p in pulls {
        let out = p.wait_with_output().expect("wait");
        assert!(out.status.success(), "concurrent pull: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(e2.entries("layers").len(), 3);
    assert!(e2.entries("tmp").is_empty());
}

#[test]
fn multi_platform_index_picks_the_platform() {
    let reg = Registry::with(&["index"]);
    let e = Engine::new();
    let multi = format!("{}/multi:latest", reg.host);
    assert_eq!(e.pull(&multi).config.architecture, "amd64");
    let e2 = Engine::new();
    e2.ok(&["pull", "--platform", "linux/arm64", &multi]);
    let arm = e2.resolve(&multi);
    assert_eq!(arm.config.architecture, "arm64");
    assert!(arm.lower_dirs[0].join("arm-only").exists());

    let e3 = Engine::new();
    let err = e3.fails(&["pull", &format!("{}/multi:armonly", reg.host)]);
    assert!(err.contains("no image for linux/amd64") && err.contains("linux/arm64, linux/arm/v7"), "{err}");
    let err = e3.fails(&["pull", "--platform", "linux", &multi]);
    assert!(err.contains("invalid platform"), "{err}");
    assert!(e3.entries("layers").is_empty() && e3.entries("images").is_empty());
}

#[test]
fn bad_input_fails_in_one_line_and_leaves_nothing() {
    let reg = Registry::with(&["bad"]);
    let e = Engine::new();
    let _ = std::fs::remove_file("/tmp/escaped-absolute");
    let _ = std::fs::remove_file("/tmp/escaped-symlink");
    let down = free_port();
    let cases = [
        ("bad:digest", "digest mismatch"),
        ("bad:truncated", "size mismatch: expected"),
        ("bad:mediatype", "unsupported media type \"application/vnd.example.layer+weird\""),
        ("bad:dotdot", "unsafe entry \"../escaped-dotdot\": path climbs out with .."),
        ("bad:absolute", "unsafe entry \"/tmp/escaped-absolute\": absolute path"),
        ("bad:symlink", "unsafe entry \"link/escaped-symlink\": its parent link is a symlink"),
        ("bad:hardlink", "unsafe entry \"h\": hard link target path climbs out"),
        ("bad:missing", "not found"),
        ("nosuchrepo:latest", "not found"),
    ];
    for (tag, want) in cases {
        let err = e.fails(&["pull", &format!("{}/{tag}", reg.host)]);
        assert!(err.contains(want), "{tag}: {err}");
        eprintln!("{tag}: {err}");
        for sub in ["layers", "images", "refs", "tmp"] {
            assert!(e.entries(sub).is_empty(), "{tag} left {sub}: {:?}", e.entries(sub));
        }
    }
    let err = e.fails(&["pull", &format!("127.0.0.1:{down}/busybox")]);
    assert!(err.contains("cannot reach registry") && err.contains("refused"), "{err}");
    let err = e.fails(&["pull", "Not/A/Ref"]);
    assert!(err.contains("invalid reference"), "{err}");
    assert!(!Path::new("/tmp/escaped-absolute").exists() && !Path::new("/tmp/escaped-symlink").exists());
    assert!(!e.store().join("escaped-dotdot").exists() && !e.store().join("tmp/escaped-dotdot").exists());
}

#[test]
fn basic_auth_registry_needs_login() {
    let reg = Registry::start(Some(("tester", "s3cret")));
    reg.push(&["oci"]);
    let e = Engine::new();
    let name = format!("{}/busybox:oci", reg.host);
    let err = e.fails(&["pull", &name]);
    assert!(err.contains("asks for credentials") && err.contains("engine login"), "{err}");
    let err = e.fails(&["login", "-u", "tester", "-p", "wrong", &reg.host]);
    assert!(err.contains("refused the credentials"), "{err}");
    let mut login = Command::new(ENGINE)
        .args(["login", "--root"])
        .arg(e.root())
        .args(["-u", "tester", "--password-stdin", &reg.host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("engine login");
    login.stdin.take().expect("stdin").write_all(b"s3cret\n").expect("write");
    assert!(login.wait().expect("wait").success());
    let mode = std::fs::metadata(e.store().join("auth.json")).expect("auth.json").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    same_tree(&e.pull(&name).lower_dirs[0], &rootfs());
}

#[test]
fn token_auth_registry_gives_anonymous_pulls_a_token() {
    let reg = Registry::start_with(Some(("pusher", "pushpass")), true);
    reg.push(&["oci"]); // skopeo pushes with the credentials, through the token server
    let e = Engine::new();
    let name = format!("{}/busybox:oci", reg.host);
    // Anonymous: the challenge's realm hands out a pull token.
    same_tree(&e.pull(&name).lower_dirs[0], &rootfs());
    let err = e.fails(&["login", "-u", "pusher", "-p", "wrong", &reg.host]);
    assert!(err.contains("refused the credentials"), "{err}");
}

#[test]
fn import_docker_and_oci_archives_from_skopeo() {
    let reg = Registry::with(&["oci"]); // builds the umoci layout under the registry's work dir
    let layout = reg.dir.path().join("work/oci");
    let t = reg.dir.path();
    let docker_tar = t.join("docker.tar");
    let oci_tar = t.join("oci.tar");
    for dest in [
        format!("docker-archive:{}:localhost/busybox:docker", docker_tar.display()),
        format!("oci-archive:{}:localhost/busybox:oci", oci_tar.display()),
    ] {
        let st = Command::new("skopeo")
            .args(["copy", "--quiet", &format!("oci:{}:busybox", layout.display()), &dest])
            .status()
            .expect("skopeo");
        assert!(st.success(), "skopeo copy to {dest}");
    }
    let e = Engine::new();
    let id_d = e.ok(&["import", docker_tar.to_str().unwrap_or_default()]);
    let id_o = e.ok(&["import", oci_tar.to_str().unwrap_or_default()]);
    assert_eq!(id_d.lines().last(), id_o.lines().last(), "same config, same image ID");
    let img = e.resolve("localhost/busybox:docker");
    same_tree(&img.lower_dirs[0], &rootfs());
    assert_eq!(e.resolve("localhost/busybox:oci").lower_dirs, img.lower_dirs);
    assert_eq!(e.entries("layers").len(), 1);
    let err = e.fails(&["import", "/etc/hostname"]);
    assert!(err.contains("unreadable archive") || err.contains("neither"), "{err}");
}

#[test]
fn zstd_and_plain_layers_and_special_files_survive() {
    let reg = Registry::with(&["formats"]);
    let e = Engine::new();
    let name = format!("{}/formats:latest", reg.host);
    let img = e.pull(&name);
    assert_eq!(img.lower_dirs.len(), 3);
    let (top, zst, gz) = (&img.lower_dirs[0], &img.lower_dirs[1], &img.lower_dirs[2]);
    assert_eq!(std::fs::read_to_string(gz.join("gz")).ok().as_deref(), Some("gz\n"));
    assert_eq!(std::fs::read_to_string(zst.join("zst")).ok().as_deref(), Some("zst\n"));
    let meta = |p: &str| std::fs::symlink_metadata(top.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3) && null.mode() & 0o7777 == 0o666);
    assert!(meta("fifo").file_type().is_fifo());
    let suid = meta("suid");
    assert_eq!((suid.mode() & 0o7777, suid.uid(), suid.gid(), suid.mtime()), (0o4755, 1000, 1000, 1600000000));
    assert_eq!(meta("suid-link").ino(), suid.ino(), "hard link not kept");
    let sym = meta("sym");
    assert!(sym.file_type().is_symlink() && sym.uid() == 1000);
    assert_eq!(std::fs::read_link(top.join("sym")).ok(), Some(PathBuf::from("/nowhere")));
    assert_eq!(xattr(&top.join("xattr"), "user.test").as_deref(), Some(&b"value"[..]));
    assert_eq!(meta("xattr").mode() & 0o7777, 0o640);
}

#[test]
fn interrupted_pull_leaves_nothing_visible_and_a_rerun_completes() {
    let reg = Registry::with(&["big"]);
    let e = Engine::new();
    let name = format!("{}/big:latest", reg.host);
    let mut child = Command::new(ENGINE)
        .args(["pull", "--root"])
        .arg(e.root())
        .arg(&name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("engine");
    // Killed while the layer is being unpacked: its temp dir exists, the layer does not yet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.entries("tmp").is_empty() {
        assert!(Instant::now() < deadline, "pull never started unpacking");
        assert!(child.try_wait().ok().flatten().is_none(), "pull finished before it could be interrupted");
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(e.entries("layers").is_empty(), "half a layer visible: {:?}", e.entries("layers"));
    assert!(e.entries("images").is_empty() && e.entries("refs").is_empty());
    assert!(e.fails(&["image", "inspect", &name]).contains("not found"));
    e.ok(&["pull", &name]);
    assert!(e.entries("tmp").is_empty(), "the rerun did not sweep tmp/: {:?}", e.entries("tmp"));
    assert_eq!(e.entries("layers").len(), 1);
    assert_eq!(std::fs::metadata(e.resolve(&name).lower_dirs[0].join("blob")).map(|m| m.len()).ok(), Some(48 << 20));
}

#[test]
fn prune_removes_dangling_images_and_their_layers() {
    let reg = Registry::with(&["oci", "formats"]);
    let e = Engine::new();
    let name = format!("{}/app:v1", reg.host);
    let retag = |src: &str| {
        let st = Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{}/{src}", reg.host))
            .arg(format!("docker://{name}"))
            .status()
            .expect("skopeo");
        assert!(st.success(), "skopeo copy {src}");
    };
    retag("busybox:oci");
    let old = e.ok(&["pull", "-q", &name]).trim().to_string();
    retag("formats:latest"); // the tag moves: the first image is left without a name
    let new = e.ok(&["pull", "-q", &name]).trim().to_string();
    assert_ne!(old, new);
    let table = e.ok(&["images"]);
    assert!(table.contains("<none>") && table.contains(&old[7..19]), "{table}");
    let out = e.ok(&["image", "prune"]);
    assert!(out.contains(&format!("Deleted: {old}")), "{out}");
    assert_eq!(e.entries("images"), [format!("{}.json", &new[7..])]);
    assert_eq!(e.entries("layers").len(), 3, "the busybox layer should be gone: {:?}", e.entries("layers"));
    assert_eq!(e.resolve(&name).digest, new);
}

#[test]
fn full_disk_fails_in_one_line_and_leaves_nothing() {
    let reg = Registry::with(&["oci"]);
    let e = Engine::new();
    // A 3 MiB tmpfs as the root, in a mount namespace that dies with the shell: the 7 MB
    // busybox layer cannot fit.
    let dir = e.dir.path().join("small");
    std::fs::create_dir(&dir).expect("dir");
    let script = format!(
        "mount -t tmpfs -o size=3m tmpfs {d} && {engine} pull --root {d}/root {host}/busybox:oci; echo rc=$?; \
         ls -A {d}/root/images/layers {d}/root/images/tmp {d}/root/images/images {d}/root/images/refs",
        d = dir.display(),
        engine = ENGINE,
        host = reg.host
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("rc=125"), "{stdout}{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    eprintln!("full disk: {}", stderr.trim_end());
    let listed: Vec<&str> =
        stdout.lines().filter(|l| !l.is_empty() && !l.ends_with(':') && !l.starts_with("rc=")).collect();
    assert!(listed.is_empty(), "left in the store: {listed:?}");
}

/// Every entry's path, type, mode, owner and size under `dir`, as `find` prints them.
const LISTING: &str = r#"find . -printf "%p %y %m %U %G %s %l\n" | grep -v '^\. ' | sort"#;

#[test]
fn podman_sees_the_same_files_as_an_overlay_of_our_layers() {
    let reg = Registry::with(&["wh", "formats"]);
    let e = Engine::new();
    let t = e.dir.path();
    let containers_existed = Path::new("/var/lib/containers").exists();
    // No systemd here: cgroupfs, and events to a file of the test's own.
    let conf = format!(
        "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{0}/events.log\"\ntmp_dir = \"{0}/tmp\"\n",
        t.display()
    );
    std::fs::write(t.join("containers.conf"), conf).expect("containers.conf");
    for image in ["wh:latest", "formats:latest"] {
        let name = format!("{}/{image}", reg.host);
        let lower = e.pull(&name).lower_dirs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        let mnt = t.join("mnt");
        std::fs::create_dir_all(&mnt).expect("mnt");
        // Podman with storage of its own; both trees mounted in a mount namespace that dies with
        // the shell, so nothing stays mounted whatever happens.
        let script = format!(
            r#"set -e
P="podman --root {t}/p/root --runroot {t}/p/run --storage-driver overlay"
$P pull -q --tls-verify=false {name} >/dev/null
M=$($P image mount {name})
mount -t overlay overlay -o lowerdir={lower} {mnt}
(cd $M && {LISTING}) > {t}/podman.txt
(cd {mnt} && {LISTING}) > {t}/engine.txt
umount {mnt}
$P image unmount {name} >/dev/null
diff {t}/podman.txt {t}/engine.txt
wc -l < {t}/engine.txt"#,
            t = t.display(),
            mnt = mnt.display()
        );
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "bash", "-c", &script])
            .env("CONTAINERS_CONF", t.join("containers.conf"))
            .output()
            .expect("unshare");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{image}: podman and engine differ:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entries: usize = stdout.trim().parse().unwrap_or(0);
        assert!(entries > 3, "{image}: only {entries} entries compared");
        eprintln!("{image}: {entries} entries alike");
    }
    if !containers_existed {
        let _ = std::fs::remove_dir_all("/var/lib/containers");
    }
}

/// A supervisor of the test's own whose store (ROOT/images) holds `images`, pulled from `reg`.
fn supervisor_with(reg: &Registry, images: &[&str]) -> common::Supervisor {
    let sup = common::Supervisor::start();
    for image in images {
        let out = Command::new(ENGINE)
            .args(["pull", "-q", "--root"])
            .arg(&sup.root)
            .arg(format!("{}/{image}", reg.host))
            .output()
            .expect("engine pull");
        assert!(out.status.success(), "pull {image}: {}", common::describe(&out));
    }
    sup
}

/// `engine OPTIONS` against `sup` that must fail: its one stderr line.
fn sup_fails(sup: &common::Supervisor, args: &[&str]) -> String {
    let out = sup.engine(args);
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert!(!out.status.success(), "engine {args:?} succeeded: {}", common::describe(&out));
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    err
}

fn image_cmd(sup: &common::Supervisor, verb: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(ENGINE);
    match verb.split_once(' ') {
        Some((v, sub)) => cmd.args([v, sub]),
        None => cmd.arg(verb),
    };
    cmd.arg("--root").arg(&sup.root).args(args).output().expect("engine")
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn run_an_image_applies_its_config_on_a_root_of_its_own() {
    let reg = Registry::with(&["oci", "app"]);
    let sup = supervisor_with(&reg, &["busybox:oci", "app:latest"]);
    let app = format!("{}/app:latest", reg.host);
    let busybox = format!("{}/busybox:oci", reg.host);

    // No command: Entrypoint + Cmd, as User nobody, in WorkingDir, with the image's Env.
    let out = sup.ok(&["run", "--rm", "c1", &app]);
    assert_eq!(out, "default\n65534\n65534\n/etc\nhello\n");
    // A command replaces Cmd (the Entrypoint stays); -e overrides the image's Env; --user, -w win.
    let out = sup.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=bye",
        "--user",
        "0:0",
        "-w",
        "/",
        "c2",
        &app,
        "echo $GREETING; id -u; pwd",
    ]);
    assert_eq!(out, "bye\n0\n/\n");
    // A working directory the image lacks is made in the container's own layer, as Docker does.
    let out = sup.ok(&["run", "--rm", "-w", "/app/work", "--entrypoint", "", "c6", &app, "/bin/pwd"]);
    assert_eq!(out, "/app/work\n");
    let out = sup.ok(&["run", "--rm", "--entrypoint", "/bin/echo", "c3", &app, "plain"]);
    assert_eq!(out, "plain\n");
    let out = sup.ok(&["run", "--rm", "--entrypoint", "", "c5", &app, "/bin/sh", "-c", "echo $HOME"]);
    assert_eq!(out, "/nonexistent\n", "HOME from nobody's passwd line");
    let err = sup_fails(&sup, &["run", "--rm", "--user", "nosuchuser", "c4", &app]);
    assert!(err.contains("no such user"), "{err}");

    // Writes stay in the container: the image, and every other container of it, see none.
    sup.ok(&["run", "w1", &busybox, "/bin/sh", "-c", "rm /bin/ls && echo mine > /etc/written"]);
    let out =
        sup.ok(&["run", "--rm", "w2", &busybox, "/bin/sh", "-c", "ls /bin/ls && test ! -e /etc/written && echo clean"]);
    assert!(out.ends_with("clean\n"), "{out}");
    let inspect = sup.state("w1");
    assert_eq!(inspect["image"]["reference"], busybox.as_str(), "{inspect}");
    assert!(inspect["image"]["id"].as_str().is_some_and(|i| i.starts_with("sha256:")), "{inspect}");
    assert_eq!(inspect["image"]["config"]["ExposedPorts"], serde_json::json!(["8080/tcp"]), "{inspect}");
    let layers: Vec<PathBuf> = inspect["image"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l.as_str().map(PathBuf::from))
        .collect();
    assert_eq!(layers.len(), 1);
    same_tree(&layers[0], &rootfs());
    let upper = sup.root.join("overlay/w1/upper");
    assert_eq!(std::fs::read_to_string(upper.join("etc/written")).ok().as_deref(), Some("mine\n"));

    // export: the root w1 saw (its writes, not what it deleted), as GNU tar reads it.
    let tar = sup.dir.path().join("w1.tar");
    sup.ok(&["export", "-o", tar.to_str().expect("path"), "w1"]);
    let listing = Command::new("tar").arg("-tvf").arg(&tar).output().expect("tar");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{}", common::describe(&listing));
    let has = |p: &str| text.lines().any(|l| l.ends_with(&format!(" {p}")) || l.contains(&format!(" {p} -> ")));
    assert!(has("etc/written") && has("bin/busybox") && has("bin/sh") && !has("bin/ls"), "{text}");
    let content = Command::new("tar").arg("-xOf").arg(&tar).arg("etc/written").output().expect("tar");
    assert_eq!(String::from_utf8_lossy(&content.stdout), "mine\n");

    // Two containers of one image at once, each with its own root.
    sup.ok(&["start", "a1", &busybox, "/bin/sh", "-c", "echo a1 > /tmp/who; sleep 30"]);
    sup.ok(&["start", "a2", &busybox, "/bin/sh", "-c", "sleep 1; cat /tmp/who 2>&1; echo done"]);
    assert_eq!(sup.wait_exit("a2"), 0);
    let logs = sup.ok(&["logs", "a2"]);
    assert!(logs.contains("No such file") && logs.contains("done"), "a2 saw a1's file: {logs}");
    sup.ok(&["rm", "-f", "a1"]);
    // rm takes the container's upper and work dirs with it.
    sup.ok(&["rm", "w1"]);
    sup.ok(&["rm", "a2"]);
    assert!(dir_entries(&sup.root.join("overlay")).is_empty(), "{:?}", dir_entries(&sup.root.join("overlay")));

    // A bare name the store does not know is the directory of that name here (today's form).
    let rootfs = rootfs();
    let (parent, base) = (rootfs.parent().expect("parent"), rootfs.file_name().expect("name"));
    let out = Command::new(ENGINE)
        .current_dir(parent)
        .arg("--socket")
        .arg(&sup.socket)
        .args(["run", "--rm", "d1"])
        .arg(base)
        .args(["/bin/echo", "dir"])
        .output()
        .expect("engine");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dir\n", "{}", common::describe(&out));
}

#[test]
fn rmi_refuses_an_image_a_container_uses_and_force_keeps_its_layers() {
    let reg = Registry::with(&["oci"]);
    let sup = supervisor_with(&reg, &["busybox:oci"]);
    let busybox = format!("{}/busybox:oci", reg.host);
    let id = engine::image::resolve(&sup.root.join("images"), &busybox).expect("resolve").digest;
    sup.ok(&["run", "s1", &busybox, "/bin/true"]);
    sup.ok(&["start", "r1", &busybox, "/bin/sleep", "60"]);
    for query in [busybox.as_str(), &id[7..19]] {
        let out = image_cmd(&sup, "rmi", &[query]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim_end().lines().count() == 1, "{}", common::describe(&out));
        assert!(err.contains("used by container(s) r1, s1"), "{err}");
    }
    // -f: the name goes, the image stays (as <none>) with its layers while containers use it.
    let out = image_cmd(&sup, "rmi", &["-f", &busybox]);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("Untagged: {busybox}\n"));
    let listing = String::from_utf8_lossy(&image_cmd(&sup, "images", &[]).stdout).into_owned();
    assert!(listing.contains("<none>") && listing.contains(&id[7..19]), "{listing}");
    assert_eq!(sup.ok(&["run", "--rm", "by-id", &id[7..19], "/bin/echo", "still runs"]), "still runs\n");
    let out = image_cmd(&sup, "image prune", &[]);
    assert!(out.status.success() && out.stdout.is_empty(), "prune removed a used image: {}", common::describe(&out));
    let err = String::from_utf8_lossy(&image_cmd(&sup, "rmi", &["-f", &id]).stderr).into_owned();
    assert!(err.contains("cannot be removed before them") && err.contains("r1, s1"), "{err}");
    assert_eq!(dir_entries(&sup.root.join("images/layers")).len(), 1);

    // Once the containers are gone, prune removes the image and its layers.
    sup.ok(&["rm", "-f", "r1"]);
    sup.ok(&["rm", "s1"]);
    let out = image_cmd(&sup, "image prune", &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Deleted: {id}")), "{}", common::describe(&out));
    for sub in ["layers", "images", "refs"] {
        assert!(dir_entries(&sup.root.join("images").join(sub)).is_empty(), "{sub} not empty");
    }
}

#[test]
fn a_supervisor_restart_keeps_the_overlay_and_the_image_reference() {
    let reg = Registry::with(&["oci"]);
    let mut sup = supervisor_with(&reg, &["busybox:oci"]);
    let busybox = format!("{}/busybox:oci", reg.host);
    sup.ok(&["start", "k1", &busybox, "/bin/sh", "-c", "echo kept > /kept; sleep 60"]);
    let upper = sup.root.join("overlay/k1/upper");
    common::wait_until(Duration::from_secs(10), || upper.join("kept").exists());
    sup.signal_and_wait(libc::SIGKILL);
    sup.spawn();
    let state = sup.state("k1");
    assert_eq!(state["state"]["status"], "lost", "{state}");
    assert_eq!(state["image"]["reference"], busybox.as_str(), "{state}");
    assert_eq!(std::fs::read_to_string(upper.join("kept")).ok().as_deref(), Some("kept\n"));
    let out = image_cmd(&sup, "rmi", &[&busybox]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("used by container(s) k1"), "{}", common::describe(&out));
    sup.ok(&["rm", "k1"]);
    assert!(!sup.root.join("overlay/k1").exists(), "rm left the overlay");
    let out = image_cmd(&sup, "rmi", &[&busybox]);
    assert!(out.status.success(), "{}", common::describe(&out));
}

#[test]
fn an_unknown_image_or_a_broken_layer_fails_in_one_line_and_leaves_nothing() {
    let reg = Registry::with(&["oci"]);
    let sup = supervisor_with(&reg, &["busybox:oci"]);
    let busybox = format!("{}/busybox:oci", reg.host);
    // What a container named `name` left: files, cgroups, a mount in the supervisor's table
    // (where a leaked overlay would stay, not the test's own).
    let leftovers = |name: &str| {
        let mut left: Vec<String> = ["overlay", "containers", "logs"]
            .iter()
            .flat_map(|dir| {
                dir_entries(&sup.root.join(dir))
                    .into_iter()
                    .filter(|e| e.contains(name))
                    .map(move |e| format!("{dir}/{e}"))
            })
            .collect();
        for ctrl in ["memory", "pids", "cpu", "unified", ""] {
            let cg = Path::new("/sys/fs/cgroup").join(ctrl).join(&sup.cgroup_parent).join(name);
            if cg.exists() {
                left.push(cg.display().to_string());
            }
        }
        let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", sup.pid())).expect("supervisor's mountinfo");
        if mounts.contains(&format!("overlay/{name}/")) {
            left.push(format!("a mount of overlay/{name}"));
        }
        left
    };
    // A `run --rm` answers at its command's end and gives back the cgroups and the layer just
    // after (DESIGN.md), so what it held must be gone within a moment, not at the answer.
    let nothing_left = |name: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut left = leftovers(name);
        while !left.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = leftovers(name);
        }
        assert!(left.is_empty(), "{name} left {left:?}");
    };
    // --pull never: the store's answer itself (a pull, and its failure, is run_pulls_...'s; a
    // bare name would be pulled from Docker Hub, which tests never reach for).
    let err = sup_fails(&sup, &["run", "--rm", "--pull", "never", "u1", &format!("{}/nosuch:latest", reg.host)]);
    assert!(err.contains("no such image or directory"), "{err}");
    nothing_left("u1");
    let err = sup_fails(&sup, &["run", "--rm", "--pull", "never", "u2", "no-such-image-or-dir"]);
    assert!(err.contains("no such image or directory: no-such-image-or-dir"), "{err}");
    nothing_left("u2");

    // A layer gone from the store under the image.
    let layers = sup.root.join("images/layers");
    let layer = dir_entries(&layers).pop().expect("a layer");
    std::fs::rename(layers.join(&layer), layers.join(format!(".{layer}"))).expect("hide the layer");
    let err = sup_fails(&sup, &["run", "--rm", "b1", &busybox, "/bin/true"]);
    assert!(err.contains("image store damaged") && err.contains("is missing"), "{err}");
    nothing_left("b1");
    std::fs::rename(layers.join(format!(".{layer}")), layers.join(&layer)).expect("restore the layer");
    assert_eq!(sup.ok(&["run", "--rm", "b2", &busybox, "/bin/echo", "ok"]), "ok\n");
    nothing_left("b2");
}

/// `run` of an image the store lacks pulls it first, as `docker run` does: progress on stderr,
/// only the container's output on stdout, and no pull the second time. `--pull never` and an
/// image the registry lacks fail in one line and leave no container.
#[test]
fn run_pulls_an_image_the_store_lacks() {
    let reg = Registry::with(&["oci"]);
    let sup = supervisor_with(&reg, &[]);
    let busybox = format!("{}/busybox:oci", reg.host);
    let err = sup_fails(&sup, &["run", "--rm", "--pull", "never", "n1", &busybox, "/bin/true"]);
    assert!(err.contains("no such image or directory"), "{err}");

    let out = sup.engine(&["run", "--rm", "p1", &busybox, "/bin/echo", "pulled"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pulled\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("Unable to find image '{busybox}' locally\n")), "{stderr}");
    let listed = image_cmd(&sup, "images", &[]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("busybox"), "{}", common::describe(&listed));

    let out = sup.engine(&["start", "p2", &busybox, "/bin/true"]);
    assert!(out.status.success() && out.stderr.is_empty(), "a second pull: {}", common::describe(&out));
    assert_eq!(sup.wait_exit("p2"), 0);

    let missing = format!("{}/nosuch:latest", reg.host);
    // Docker's notice, then the one line of the error.
    let out = sup.engine(&["run", "--rm", "p3", &missing, "/bin/true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", common::describe(&out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("Unable to find image") && lines[1].contains("nosuch:latest not found"), "{stderr}");
    let ps = sup.ok(&["ps", "-a"]);
    assert!(!ps.contains("n1") && !ps.contains("p3"), "{ps}");
}

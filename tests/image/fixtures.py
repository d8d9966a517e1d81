#!/usr/bin/env python3
"""Builds the image tests' images and pushes them to a registry on loopback.

usage: fixtures.py WORKDIR HOST:PORT ROOTFS FIXTURE... [--creds USER:PASS] [--regroot DIR]

Good images are made by umoci from a copy of the busybox rootfs and pushed by skopeo (software no
one here wrote); the index and the broken images are pushed through the distribution API by hand,
because no tool would produce them. Prints nothing on success; exits non-zero naming the step.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


class Registry:
    def __init__(self, host, creds):
        self.base = f"http://{host}"
        self.host = host
        self.auth = None
        if creds:
            self.auth = "Basic " + base64.b64encode(creds.encode()).decode()

    def req(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.base + path
        r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if self.auth:
            r.add_header("Authorization", self.auth)
        return urllib.request.urlopen(r)

    def blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = self.req("POST", f"/v2/{repo}/blobs/uploads/")
        loc = resp.headers["Location"]
        sep = "&" if "?" in loc else "?"
        self.req("PUT", f"{loc}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo, ref, obj, media_type):
        data = json.dumps(obj).encode()
        self.req("PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

    def get_manifest(self, repo, ref):
        resp = self.req("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        data = resp.read()
        return json.loads(data), {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

    def image(self, repo, ref, tars, arch="amd64", layer_type=LAYER_GZ, cmd=None, compress=None):
        """Pushes an image of the given uncompressed layer tars (gzip, or per layer as `compress`
        says: gzip, zstd, none); returns the manifest descriptor and the layer descriptors."""
        layers, diff_ids = [], []
        for i, t in enumerate(tars):
            diff_ids.append("sha256:" + hashlib.sha256(t).hexdigest())
            how = compress[i] if compress else "gzip"
            if how == "gzip":
                d, mt = self.blob(repo, gzip.compress(t, compresslevel=1, mtime=0)), layer_type
            elif how == "zstd":
                z = subprocess.run(["zstd", "-q", "-c"], input=t, stdout=subprocess.PIPE, check=True).stdout
                d, mt = self.blob(repo, z), "application/vnd.oci.image.layer.v1.tar+zstd"
            else:
                d, mt = self.blob(repo, t), "application/vnd.oci.image.layer.v1.tar"
            d["mediaType"] = mt
            layers.append(d)
        config = {"architecture": arch, "os": "linux", "config": {"Cmd": cmd or ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        c = self.blob(repo, json.dumps(config).encode())
        c["mediaType"] = OCI_CONFIG
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": layers}
        return self.manifest(repo, ref, m, OCI_MANIFEST), layers


def tar_of(entries):
    """entries: (name, kind, arg) with kind file/dir/symlink/hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                data = arg.encode() if isinstance(arg, str) else arg
                ti.size = len(data)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(data))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            t.addfile(ti)
    return buf.getvalue()


def umoci_layout(work, rootfs):
    """oci layout WORK/oci with images busybox (one layer) and wh (two layers: whiteouts)."""
    layout = os.path.join(work, "oci")
    if os.path.isdir(layout):
        return layout
    copy = os.path.join(work, "rootfs-copy")
    run("cp", "-a", rootfs, copy)
    base_tar = os.path.join(work, "rootfs.tar")
    run("tar", "-C", copy, "-cf", base_tar, ".")
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:busybox")
    run("umoci", "raw", "add-layer", "--image", f"{layout}:busybox", base_tar)
    run("umoci", "config", "--image", f"{layout}:busybox", "--config.cmd", "/bin/sh",
        "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--config.workingdir", "/tmp",
        "--config.exposedports", "8080/tcp", "--config.label", "org.example.test=yes")
    # wh: the base plus data the second layer deletes (a whiteout) and replaces (an opaque dir).
    lower = os.path.join(work, "lower.tar")
    with open(lower, "wb") as f:
        f.write(tar_of([("data", "dir", None), ("data/keep", "file", "keep\n"), ("data/gone", "file", "gone\n"),
                        ("opq", "dir", None), ("opq/old1", "file", "old\n"), ("opq/sub", "dir", None),
                        ("opq/sub/old2", "file", "old\n")]))
    upper = os.path.join(work, "upper.tar")
    with open(upper, "wb") as f:
        f.write(tar_of([("data", "dir", None), ("data/.wh.gone", "file", ""), ("opq", "dir", None),
                        ("opq/.wh..wh..opq", "file", ""), ("opq/new", "file", "new\n")]))
    run("umoci", "new", "--image", f"{layout}:wh")
    for t in (base_tar, lower, upper):
        run("umoci", "raw", "add-layer", "--image", f"{layout}:wh", t)
    run("umoci", "config", "--image", f"{layout}:wh", "--config.cmd", "/bin/sh")
    run("umoci", "gc", "--layout", layout)
    shutil.rmtree(copy)
    return layout


def skopeo_push(layout, image, dest, creds, fmt=None):
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        cmd += ["--dest-creds", creds]
    if fmt:
        cmd += ["--format", fmt]
    run(*cmd, f"oci:{layout}:{image}", f"docker://{dest}")


def blob_path(regroot, digest):
    h = digest.split(":", 1)[1]
    return os.path.join(regroot, "docker/registry/v2/blobs/sha256", h[:2], h, "data")


def main():
    args = sys.argv[1:]
    creds = None
    regroot = None
    if "--creds" in args:
        i = args.index("--creds")
        creds = args[i + 1]
        del args[i:i + 2]
    if "--regroot" in args:
        i = args.index("--regroot")
        regroot = args[i + 1]
        del args[i:i + 2]
    work, host, rootfs, fixtures = args[0], args[1], args[2], args[3:]
    reg = Registry(host, creds)
    for fx in fixtures:
        if fx in ("oci", "v2s2", "wh"):
            layout = umoci_layout(work, rootfs)
            if fx == "oci":
                skopeo_push(layout, "busybox", f"{host}/busybox:oci", creds)
            elif fx == "v2s2":
                skopeo_push(layout, "busybox", f"{host}/busybox:v2s2", creds, "v2s2")
            else:
                skopeo_push(layout, "wh", f"{host}/wh:latest", creds)
        elif fx == "app":
            # The busybox image with a config that exercises every field a container takes from it.
            layout = umoci_layout(work, rootfs)
            run("umoci", "config", "--image", f"{layout}:busybox", "--tag", "app",
                "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
                "--config.cmd", "echo default; id -u; id -g; pwd; echo $GREETING",
                "--config.env", "GREETING=hello", "--config.workingdir", "/etc", "--config.user", "nobody")
            skopeo_push(layout, "app", f"{host}/app:latest", creds)
        elif fx == "index":
            # linux/amd64 is the umoci image; linux/arm64 a config that says so over the same layers.
            layout = umoci_layout(work, rootfs)
            skopeo_push(layout, "busybox", f"{host}/multi:amd64", creds)
            m, amd = reg.get_manifest("multi", "amd64")
            tar = tar_of([("arm-only", "file", "arm\n")])
            arm, _ = reg.image("multi", "arm64", [tar], arch="arm64")
            armv7, _ = reg.image("multi", "armv7", [tar], arch="arm")
            entries = [dict(amd, platform={"os": "linux", "architecture": "amd64"}),
                       dict(arm, platform={"os": "linux", "architecture": "arm64"})]
            reg.manifest("multi", "latest", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
            entries = [dict(arm, platform={"os": "linux", "architecture": "arm64"}),
                       dict(armv7, platform={"os": "linux", "architecture": "arm", "variant": "v7"})]
            reg.manifest("multi", "armonly", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
        elif fx == "big":
            reg.image("big", "latest", [tar_of([("blob", "file", os.urandom(48 << 20))])])
        elif fx == "formats":
            # One layer per compression: gzip, zstd, none; plus a device node, a fifo, a hard link,
            # a symlink, an xattr and odd modes and owners that must survive the unpack.
            special = io.BytesIO()
            with tarfile.open(fileobj=special, mode="w", format=tarfile.PAX_FORMAT) as t:
                def add(name, **kw):
                    ti = tarfile.TarInfo(name)
                    data = kw.pop("data", None)
                    for k, v in kw.items():
                        setattr(ti, k, v)
                    ti.mtime = 1600000000
                    if data is not None:
                        ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data) if data is not None else None)
                add("dev", type=tarfile.DIRTYPE, mode=0o755)
                add("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
                add("fifo", type=tarfile.FIFOTYPE, mode=0o600)
                add("suid", data=b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1000)
                add("suid-link", type=tarfile.LNKTYPE, linkname="suid", mode=0o4755, uid=1000, gid=1000)
                add("sym", type=tarfile.SYMTYPE, linkname="/nowhere", uid=1000, gid=1000)
                add("xattr", data=b"x\n", mode=0o640, pax_headers={"SCHILY.xattr.user.test": "value"})
            reg.image("formats", "latest", [tar_of([("gz", "file", "gz\n")]), tar_of([("zst", "file", "zst\n")]),
                                            special.getvalue()], compress=["gzip", "zstd", "none"])
        elif fx == "bad":
            # Each broken image has layers of its own: blobs are shared registry-wide by digest.
            _, layers = reg.image("bad", "digest", [tar_of([("digest-victim", "file", "x" * 4000)])])
            p = blob_path(regroot, layers[0]["digest"])
            data = bytearray(open(p, "rb").read())
            data[len(data) // 2] ^= 0xFF
            open(p, "wb").write(bytes(data))
            _, layers = reg.image("bad", "truncated", [tar_of([("trunc-victim", "file", os.urandom(20000))])])
            p = blob_path(regroot, layers[0]["digest"])
            data = open(p, "rb").read()
            open(p, "wb").write(data[: len(data) // 2])
            reg.image("bad", "mediatype", [tar_of([("m", "file", "m\n")])], layer_type="application/vnd.example.layer+weird")
            reg.image("bad", "dotdot", [tar_of([("ok", "file", "ok\n"), ("../escaped-dotdot", "file", "pwned\n")])])
            reg.image("bad", "absolute", [tar_of([("/tmp/escaped-absolute", "file", "pwned\n")])])
            reg.image("bad", "symlink", [tar_of([("link", "symlink", "/tmp"), ("link/escaped-symlink", "file", "pwned\n")])])
            reg.image("bad", "hardlink", [tar_of([("h", "hardlink", "../../../../../../etc/passwd")])])
        else:
            sys.exit(f"fixtures.py: unknown fixture {fx}")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(f"fixtures.py: {' '.join(e.cmd)} failed ({e.returncode})")
    except urllib.error.HTTPError as e:
        sys.exit(f"fixtures.py: {e.url}: {e.code} {e.read()[:300]!r}")

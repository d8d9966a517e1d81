#!/usr/bin/env python3
"""Pull + unpack of a ~100 MB 4-layer image (half of it random bytes) from a loopback
docker-registry: engine vs `podman pull` (own storage under a temp dir) vs `skopeo copy` +
`umoci unpack`; then a second engine pull of the same image (nothing to fetch).
Writes benches/results/image-pull.md. One run per tool by default (--runs N: the median).

usage: ENGINE=target/release/engine python3 benches/image_bench.py [--runs N] [--mib 100]
"""
import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "image"))
import fixtures  # noqa: E402  (the tests' registry client)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def layer_tar(i, size):
    """Half random bytes, half text that compresses (as real layers mix binaries and text)."""
    half = size // 2
    text = b"".join(b"line %d of layer %d: the quick brown fox jumps over the lazy dog\n" % (n, i)
                    for n in range(half // 60 + 1))[:half]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in ((f"layer{i}/random.bin", os.urandom(half)), (f"layer{i}/text.txt", text)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            t.addfile(ti, io.BytesIO(data))
        for n in range(200):  # and many small files, as real layers have
            data = b"small %d\n" % n
            ti = tarfile.TarInfo(f"layer{i}/small/{n}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def timed(cmd, env=None):
    t = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "image-pull.md"))
    a = ap.parse_args()
    engine = os.environ.get("ENGINE", os.path.join(HERE, "..", "target", "release", "engine"))
    t = tempfile.mkdtemp(prefix="image-bench-")
    port = free_port()
    host = f"127.0.0.1:{port}"
    with open(f"{t}/reg.yml", "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {t}/reg\nhttp:\n  addr: {host}\n")
    reg = subprocess.Popen(["docker-registry", "serve", f"{t}/reg.yml"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        size = a.mib * 1024 * 1024 // 4
        tars = [layer_tar(i, size) for i in range(4)]
        fixtures.Registry(host, None).image("big", "latest", tars, cmd=["/bin/true"])
        ref = f"{host}/big:latest"
        rows = {"engine": [], "podman": [], "skopeo+umoci": [], "engine second pull": []}
        for run in range(a.runs):
            root = f"{t}/engine-{run}"
            rows["engine"].append(timed([engine, "pull", "--root", root, "-q", ref]))
            rows["engine second pull"].append(timed([engine, "pull", "--root", root, "-q", ref]))
            shutil.rmtree(root)
            p = f"{t}/podman-{run}"
            env = dict(os.environ, CONTAINERS_CONF=f"{t}/containers.conf", TMPDIR=f"{t}/tmp")
            os.makedirs(f"{t}/tmp", exist_ok=True)
            with open(f"{t}/containers.conf", "w") as f:
                f.write(f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{t}/tmp"\n')
            podman = ["podman", "--root", f"{p}/root", "--runroot", f"{p}/run", "--storage-driver", "overlay"]
            rows["podman"].append(timed(podman + ["pull", "-q", "--tls-verify=false", ref], env))
            subprocess.run(podman + ["rmi", "-a", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            subprocess.run(["umount", "-R", f"{p}/root/overlay"], stderr=subprocess.DEVNULL)
            shutil.rmtree(p, ignore_errors=True)
            s = f"{t}/skopeo-{run}"
            os.makedirs(s)
            t0 = time.monotonic()
            timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{s}/oci:big"])
            timed(["umoci", "unpack", "--image", f"{s}/oci:big", f"{s}/bundle"])
            rows["skopeo+umoci"].append(time.monotonic() - t0)
            shutil.rmtree(s)
        med = {k: statistics.median(v) for k, v in rows.items()}
        load = os.getloadavg()[0]
        lines = [
            "# Image pull: engine vs podman vs skopeo + umoci",
            "",
            f"`python3 benches/image_bench.py --runs {a.runs} --mib {a.mib}` (`make image-bench`): a {a.mib} MiB image of "
            "4 gzip layers (each half random bytes, half text, plus 200 small files) on Debian's docker-registry on "
            "loopback; each tool pulls into empty storage of its own and unpacks every layer. Median of "
            f"{a.runs} run(s); load average {load:.1f} on {os.cpu_count()} CPUs at the end.",
            "",
            "| tool | wall time (s) | vs podman |",
            "| --- | ---: | ---: |",
        ]
        for k in ("engine", "podman", "skopeo+umoci"):
            lines.append(f"| {k} | {med[k]:.2f} | {med[k] / med['podman']:.2f}× |")
        lines += ["", f"Second `engine pull` of the same image (manifest fetched, nothing else): "
                      f"{med['engine second pull'] * 1000:.0f} ms (goal ≤ 50 ms).",
                  "", f"Goal: engine ≤ 0.5× podman: {'met' if med['engine'] <= 0.5 * med['podman'] else 'NOT met'}.", ""]
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            f.write("\n".join(lines))
        print("\n".join(lines))
        print(json.dumps(rows))
    finally:
        reg.send_signal(signal.SIGTERM)
        reg.wait()
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    main()

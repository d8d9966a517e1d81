#!/usr/bin/env python3
"""`make oci-bench` (part of `make bench`): engine's OCI runtime binary next to crun and runc, as the
tools that drive a runtime see it (issue 9, part 4). Three rows per runtime:

  bundle  RUNTIME --root R run --bundle B ID, of /bin/true, one bundle (a copy of the rootfs)
  podman  podman --runtime RUNTIME run --rm --network none IMAGE /bin/true
  ctr     ctr run --rm --runc-binary RUNTIME IMAGE ID /bin/true (containerd started here)

Runs alternate between the runtimes (the order rotates each round), after warm-ups, so a drift in
the host's load falls on all alike. Everything runs in one private mount namespace without
/sys/fs/cgroup/unified (crun refuses this host's hybrid cgroups otherwise): the same for every
runtime. Writes benches/results/oci-bench.md and .json: median, p10, p90 (ms) and the ratio to
crun, beside the goals of issue 9 (bundle <= 0.8x crun; podman and ctr <= 1.0x crun). A runtime that
is not built is reported in one line; the other rows are still measured.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BUILD, oci_bundle, ROOT, ROOTFS, BenchError, dump_json, fmt, host_info, log, md_table, run,  # noqa: E402
                    summary, write_report)

GOALS = {"bundle": 0.8, "podman": 1.0, "ctr": 1.0}
CG_PREFIXES = ("libpod_parent", "default", "oci-bench")
IMAGE = "localhost/busybox:t"


def in_private_namespace():
    """Re-executes this script in a private mount namespace without the cgroup2 mount (once)."""
    if os.environ.get("OCI_BENCH_IN_NS") == "1":
        return
    os.environ["OCI_BENCH_IN_NS"] = "1"
    script = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"'
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                          sys.executable, os.path.abspath(__file__)] + sys.argv[1:])


def cgroup_dirs():
    found = set()
    for ctl in os.listdir("/sys/fs/cgroup"):
        for prefix in CG_PREFIXES:
            base = os.path.join("/sys/fs/cgroup", ctl, prefix)
            for dirpath, _, _ in os.walk(base):
                found.add(dirpath)
        try:
            found.update(os.path.join("/sys/fs/cgroup", ctl, d) for d in os.listdir(f"/sys/fs/cgroup/{ctl}")
                         if d.startswith("oci-bench"))
        except OSError:
            pass
    return found


def rmdir_quiet(d):
    try:
        os.rmdir(d)
    except OSError:
        pass


def timed(cmd, env=None):
    """Wall time (ms) of one run; a failure raises BenchError with the last line of its stderr."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    ms = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        err = p.stderr.strip().splitlines()
        raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode}: {err[-1] if err else 'no stderr'}")
    return ms


def alternate(cmds, runs, warmup, env=None):
    """{name: [ms]} of `runs` runs each, order rotating per round; a failing runtime drops out with
    its error as the value."""
    names = list(cmds)
    times = {n: [] for n in names}
    for i in range(warmup + runs):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            if isinstance(times[n], BenchError):
                continue
            try:
                ms = timed(cmds[n](i), env)
            except BenchError as e:
                times[n] = e
                continue
            if i >= warmup:
                times[n].append(ms)
    return times


class Bench:
    def __init__(self, args, runtimes):
        self.args, self.runtimes = args, runtimes
        self.w = tempfile.mkdtemp(prefix="oci-bench-", dir=BUILD)
        os.chmod(self.w, 0o755)
        self.containerd = None
        self.podman_env = None

    # --- setups ---------------------------------------------------------------------------

    def bundle(self):
        # A copy of the rootfs, so no runtime can touch the shared one.
        rootfs = os.path.join(self.w, "rootfs")
        run(["cp", "-a", ROOTFS, rootfs])
        return oci_bundle(self.w, rootfs)

    def image_archive(self):
        """An OCI archive of the rootfs (umoci + skopeo), for ctr; podman imports the tar."""
        img = os.path.join(self.w, "img")
        os.makedirs(img)
        tar = os.path.join(self.w, "rootfs.tar")
        if not os.path.exists(tar):
            run(["tar", "-C", ROOTFS, "-cf", tar, "."])
        layout = os.path.join(img, "oci")
        run(["umoci", "init", "--layout", layout])
        run(["umoci", "new", "--image", f"{layout}:busybox"])
        run(["umoci", "raw", "add-layer", "--image", f"{layout}:busybox", tar])
        run(["umoci", "config", "--image", f"{layout}:busybox", "--config.cmd", "/bin/sh",
             "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        run(["umoci", "gc", "--layout", layout])
        archive = os.path.join(img, "busybox-oci.tar")
        run(["skopeo", "copy", "-q", f"oci:{layout}:busybox", f"oci-archive:{archive}:{IMAGE}"])
        return archive, tar

    def setup_podman(self, tar):
        p = os.path.join(self.w, "podman")
        for d in ("cni", "tmp", "storage", "run"):
            os.makedirs(os.path.join(p, d))
        with open(os.path.join(p, "containers.conf"), "w") as f:
            f.write(f'[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    f'[network]\nnetwork_config_dir = "{p}/cni"\n'
                    f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{p}/tmp"\n'
                    f'runtime_supports_json = ["crun", "runc", "engine", "engine-oci"]\n')
        with open(os.path.join(p, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{p}/run"\ngraphroot = "{p}/storage"\n')
        self.podman_env = dict(os.environ, CONTAINERS_CONF=f"{p}/containers.conf",
                               CONTAINERS_STORAGE_CONF=f"{p}/storage.conf")
        run(["podman", "import", "-q", "--change", 'CMD ["/bin/sh"]', tar, IMAGE], env=self.podman_env)

    def start_containerd(self, archive):
        c = os.path.join(self.w, "ctrd")
        os.makedirs(c)
        self.sock = f"{c}/containerd.sock"
        with open(f"{c}/config.toml", "w") as f:
            f.write(f'version = 2\nroot = "{c}/root"\nstate = "{c}/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", '
                    '"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", '
                    '"io.containerd.snapshotter.v1.aufs"]\n'
                    f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n'
                    f'[debug]\n  address = "{c}/debug.sock"\n'
                    f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{c}/opt"\n')
        self.ctrd_log = open(f"{c}/containerd.log", "w")
        self.containerd = subprocess.Popen(["containerd", "--config", f"{c}/config.toml"],
                                           stdout=self.ctrd_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.containerd.poll() is not None:
                raise BenchError(f"containerd exited {self.containerd.returncode}: see {c}/containerd.log")
            if run(["ctr", "--address", self.sock, "version"], check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise BenchError("containerd did not answer in 20 s")
        run(["ctr", "--address", self.sock, "image", "import", archive])

    # --- measuring --------------------------------------------------------------------------

    def measure(self):
        a, rt = self.args, self.runtimes
        results = {}
        bundle = self.bundle()
        results["bundle"] = alternate(
            {n: (lambda i, n=n, p=p: [p, "--root", f"{self.w}/state-{n}", "run", "--bundle", bundle, f"oci-bench-{n}"])
             for n, p in rt.items()}, a.runs, a.warmup)
        archive, tar = self.image_archive()
        if "podman" in a.only:
            self.setup_podman(tar)
            results["podman"] = alternate(
                {n: (lambda i, p=p: ["podman", "--runtime", p, "run", "--rm", "--network", "none", IMAGE, "/bin/true"])
                 for n, p in rt.items()}, a.eco_runs, a.warmup, env=self.podman_env)
        if "ctr" in a.only:
            self.start_containerd(archive)
            results["ctr"] = alternate(
                {n: (lambda i, n=n, p=p: ["ctr", "--address", self.sock, "run", "--rm", "--runc-binary", p,
                                          "--runc-root", f"{self.w}/rt-{n}", "--fifo-dir", f"{self.w}/fifo",
                                          IMAGE, f"b-{n}-{i}", "/bin/true"])
                 for n, p in rt.items()}, a.eco_runs, a.warmup)
        return results

    def close(self):
        if self.podman_env:
            run(["podman", "rm", "-af", "-t", "0"], check=False, env=self.podman_env)
            run(["podman", "rmi", "-af"], check=False, env=self.podman_env)
        if self.containerd:
            self.containerd.send_signal(signal.SIGTERM)
            try:
                self.containerd.wait(10)
            except subprocess.TimeoutExpired:
                self.containerd.kill()
                self.containerd.wait()
            self.ctrd_log.close()
        # Shims and conmons left by a failed run hold mounts under the workdir.
        for pid in [d for d in os.listdir("/proc") if d.isdigit() and int(d) != os.getpid()]:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if (self.w + "/").encode() in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        with open("/proc/self/mountinfo") as f:
            mnts = [line.split()[4] for line in f]
        for m in sorted((m for m in mnts if m == self.w or m.startswith(self.w + "/")), reverse=True):
            run(["umount", "-l", m], check=False)
        shutil.rmtree(self.w, ignore_errors=True)


def report(args, runtimes, missing, results, data_path, md_path):
    rows, data = [], {"host": host_info(), "runtimes": runtimes, "missing": missing, "goals": GOALS, "rows": {}}
    titles = {"bundle": "`RUNTIME run --bundle B ID` (/bin/true)",
              "podman": "`podman --runtime RUNTIME run --rm --network none IMAGE /bin/true`",
              "ctr": "`ctr run --rm --runc-binary RUNTIME IMAGE ID /bin/true`"}
    for scenario, times in results.items():
        crun = times.get("crun")
        crun_med = summary(crun)["median"] if isinstance(crun, list) and len(crun) > 1 else None
        data["rows"][scenario] = {}
        for name, t in times.items():
            if isinstance(t, BenchError):
                rows.append([titles[scenario], name, f"FAILED: {t}", "", "", "", "", ""])
                data["rows"][scenario][name] = {"error": str(t)}
                continue
            s = summary(t)
            ratio = s["median"] / crun_med if crun_med else None
            goal = f"≤ {GOALS[scenario]:.1f}× crun" if name == "engine" else ""
            if goal and ratio is not None:
                goal += " — met" if ratio <= GOALS[scenario] else " — NOT met"
            rows.append([titles[scenario], name, fmt(s["median"], 1), fmt(s["p10"], 1), fmt(s["p90"], 1),
                         s["n"], fmt(ratio), goal])
            data["rows"][scenario][name] = dict(s, ratio_to_crun=ratio, times_ms=t)
        for name in missing:
            rows.append([titles[scenario], name, "not built", "", "", "", "",
                         f"≤ {GOALS[scenario]:.1f}× crun"])
    text = ["# engine's OCI runtime next to crun and runc", "",
            f"`make oci-bench` (`python3 benches/oci_bench.py`), {host_info()}.", "",
            "Each runtime's runs alternate with the others' (the order rotates every round) after "
            f"{args.warmup} warm-up rounds; {args.runs} runs per runtime for the bundle, {args.eco_runs} for "
            "podman and ctr. All in one private mount namespace without `/sys/fs/cgroup/unified` (crun "
            "refuses this host's hybrid cgroups otherwise), for every runtime alike. The bundle is `crun "
            "spec` with a read-only copy of the busybox rootfs, `terminal: false`, args `/bin/true`; podman "
            "and containerd run from configs of their own under a temporary directory (podman 4.3.1, "
            "containerd 1.6.20, image imported offline). Goals (issue 9, part 4): bundle ≤ 0.8× crun, "
            "podman and ctr ≤ 1.0× crun.", ""]
    for name in missing:
        text.append(f"**{name}: not built ({runtimes.get(name) or missing[name]}): its rows are missing.**")
        text.append("")
    text.append(md_table(["command", "runtime", "median ms", "p10 ms", "p90 ms", "runs", "× crun", "goal"], rows))
    text.append("")
    for n, p in runtimes.items():
        v = run([p, "--version"], check=False).stdout.strip().splitlines()
        text.append(f"- {n}: `{p}` ({v[0] if v else '?'})")
    write_report(os.path.basename(md_path), "\n".join(text) + "\n")
    dump_json(data_path, data)
    print("\n".join(text))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", default=os.path.join(ROOT, "target/release/engine-oci"),
                   help="engine's OCI binary (default target/release/engine-oci)")
    p.add_argument("--runs", type=int, default=50, help="runs per runtime, bundle (default 50)")
    p.add_argument("--eco-runs", type=int, default=30, help="runs per runtime, podman and ctr (default 30)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--only", default="bundle,podman,ctr")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("oci_bench: must run as root")
    in_private_namespace()
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(f"oci_bench: terminated by signal {sig}"))
    runtimes, missing = {}, {}
    for name, path in (("engine", args.runtime), ("crun", shutil.which("crun")), ("runc", shutil.which("runc"))):
        if path and os.access(path, os.X_OK):
            runtimes[name] = os.path.abspath(path)
        else:
            missing[name] = path or name
            log(f"oci_bench: {name} not built ({path}): its rows are missing")
    if "crun" not in runtimes:
        sys.exit("oci_bench: crun not installed (make oci-deps)")
    os.makedirs(BUILD, exist_ok=True)
    before = cgroup_dirs()
    # podman's blob cache and the shims' socket folder are made outside any configured root.
    made_outside = [d for d in ("/var/lib/containers/cache", "/var/lib/containers", "/var/lib/cni", "/run/containerd/s",
                                "/run/containerd") if not os.path.exists(d)]
    bench = Bench(args, runtimes)
    try:
        results = bench.measure()
    except BenchError as e:
        sys.exit(f"oci_bench: {e}")
    finally:
        bench.close()
        for d in sorted(cgroup_dirs() - before, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError as e:
                log(f"oci_bench: cgroup left: {d}: {e}")
        for d in made_outside:
            if d.endswith("/cache"):
                shutil.rmtree(d, ignore_errors=True)
            else:
                rmdir_quiet(d)  # only if empty: another tool may use it by now
    report(args, runtimes, missing, results, os.path.join(ROOT, "benches/results/oci-bench.json"),
           os.path.join(ROOT, "benches/results/oci-bench.md"))
    failed = [f"{s}/{n}" for s, t in results.items() for n, v in t.items() if isinstance(v, BenchError)]
    if failed:
        sys.exit(f"oci_bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`make bench`: engine next to crun, runc, bubblewrap and bare unshare+chroot, in one run.

Sections (all by default; --only picks some):
  startup  /bin/true on the same busybox rootfs, N timed runs each with hyperfine
  logs     a container writing 1 GB to stdout vs `cat` through a pipe into a file
  scale    1,000 sleeping containers through one supervisor
  dd       1 GB written with dd inside a container vs on the host
  exec     `engine exec` latency vs `podman exec` (crun) and `nsenter -a`
  net      ping host -> container through engine's bridge vs a bare veth pair made by hand
  ports    TCP throughput through a published port (-p, DNAT) vs a bare veth pair
Writes benches/results/bench.md (+ startup.svg) and prints the tables. A section that cannot be
measured (engine not built, a command failing) is reported as FAILED with the reason and makes
the script exit 1; the other sections still run. The startup section also checks engine's ratios
against issue 14's goals (STARTUP_GOALS): each ratio above its goal prints a `REGRESSION:` line
and makes the script exit 1 as well (--no-goals: measure only).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BUILD, ENGINE, oci_bundle, ROOTFS, RESULTS, BenchError, Supervisor, dump_json, fmt,
                    host_info, log, md_table, mounts, plot, proc_stat, processes_matching,
                    require_root, rss_kib, run, summary, write_report)

# crun refuses the hybrid cgroup layout (v1 controllers + an empty v2 tree at
# /sys/fs/cgroup/unified); inside a private mount namespace without that mount it takes v1.
PRIVATE_NS = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh"]


# --- startup --------------------------------------------------------------------------------

def hyperfine(cmd, runs, workdir, ns=None):
    """Wall times (ms) of `runs` runs of cmd, after 3 warm-ups, in the private mount namespace
    (`ns`: another command prefix that puts hyperfine in one)."""
    out = os.path.join(workdir, "hyperfine.json")
    run((ns or PRIVATE_NS) + ["hyperfine", "-N", "--style", "none", "--warmup", "3", "--runs", str(runs),
                      "--export-json", out, " ".join(cmd)])
    with open(out) as f:
        return [t * 1000 for t in json.load(f)["results"][0]["times"]]


# Issue 14's start-up goals: (row, reference row, the most row/reference may be).
STARTUP_GOALS = [
    ("engine run", "crun", 0.8),
    ("engine run", "unshare+chroot", 1.5),
    ("engine run (bridge)", "engine run", 2.0),
    # Issue 10: an image's overlay root against crun on a plain bundle.
    ("engine run (image)", "crun", 1.2),
]


def check_goals(data, report):
    """The goals table; a `REGRESSION:` line (printed, and kept for the exit status) per ratio
    above its goal. A row that was not measured cannot be checked: that is said, not passed."""
    rows = []
    for row, ref, goal in STARTUP_GOALS:
        if row not in data or ref not in data:
            rows.append([f"{row} / {ref}", "not measured", f"≤ {goal}", "UNCHECKED"])
            report.regressions.append(f"REGRESSION: {row} / {ref} could not be checked: "
                                      f"{row if row not in data else ref} was not measured")
            continue
        a, b = data[row]["median"], data[ref]["median"]
        ratio = a / b
        ok = ratio <= goal
        rows.append([f"{row} / {ref}", f"{ratio:.2f}", f"≤ {goal}", "ok" if ok else "REGRESSION"])
        if not ok:
            report.regressions.append(f"REGRESSION: {row} median {a:.2f} ms is {ratio:.2f}x {ref} "
                                      f"({b:.2f} ms); the goal is <= {goal}x")
    for line in report.regressions:
        print(line, flush=True)
    return ["", "Goals (issues 14, 11 and 10; medians of this run):", "",
            md_table(["ratio", "measured", "goal", "verdict"], rows)]


def bench_exec(sup, name, runs, workdir):
    """`engine exec NAME /bin/true` into a running container next to `podman exec` into a podman
    container run by crun (issue 11's peer) and `nsenter -a` into engine's container's namespaces
    (the floor: setns and an exec, nothing else), alternating. A podman that cannot be set up here
    gives a row saying why, not a number."""
    sup.engine("start", "--net", "none", name, ROOTFS, "/bin/sleep", "3600")
    podman = None
    try:
        pid = json.loads(sup.engine("inspect", name).stdout)["pid"]
        cmds = [("engine exec", sup.cli("exec", name, "/bin/true")),
                ("nsenter -a", ["nsenter", "-t", str(pid), "-a", "/bin/true"])]
        failed = []
        try:
            podman = PodmanExec(workdir)
            cmds.insert(1, ("podman exec (crun)", podman.exec_cmd))
        except BenchError as e:
            failed.append(("podman exec (crun)", ["podman", "exec", "CTR", "/bin/true"], e))
        # podman reads its private configuration from the environment; engine and nsenter ignore it.
        saved = dict(os.environ)
        os.environ.update(podman.env if podman else {})
        try:
            # All three from podman's mount namespace when there is one (crun needs it; the
            # other two run in any), so they are measured alike.
            return measure_interleaved(cmds, runs, workdir, ns=podman.enter if podman else None) + failed
        finally:
            os.environ.clear()
            os.environ.update(saved)
    finally:
        if podman:
            podman.close()
        sup.engine("rm", "-f", name, check=False)


class PodmanExec:
    """A podman 4 of its own (configuration, storage and state under a temporary directory, as
    benches/oci_bench.py sets it up) running one busybox container with crun, for `podman exec`.
    podman and crun run in a persistent private mount namespace without /sys/fs/cgroup/unified
    (crun refuses this host's hybrid cgroups), entered with `nsenter --mount=FILE` (`enter`); the
    exec rows' hyperfine runs in it. (A namespace copied from the host's has no such file: the
    kernel does not copy a mount namespace's nsfs mount into a new namespace.)"""

    IMAGE = "localhost/bench-busybox-podman:t"
    NAME = "bench-podman-exec"

    def __init__(self, workdir):
        from oci_bench import cgroup_dirs
        self.cgroups_before = cgroup_dirs()
        self.made_outside = [d for d in ("/var/lib/containers/cache", "/var/lib/containers", "/var/lib/cni")
                             if not os.path.exists(d)]
        self.dir = os.path.join(workdir, "podman")
        self.mntns = os.path.join(self.dir, "mntns")
        self.enter = ["nsenter", f"--mount={self.mntns}"]
        self.ns_made = False
        for tool in ("podman", "crun", "conmon"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} is not installed (apt-get install podman crun conmon)")
        try:
            self.setup()
        except BenchError:
            self.close()
            raise

    def setup(self):
        d = self.dir
        for sub in ("cni", "tmp", "storage", "run"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "containers.conf"), "w") as f:
            f.write(f'[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    f'[network]\nnetwork_config_dir = "{d}/cni"\n'
                    f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{d}/tmp"\n')
        with open(os.path.join(d, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{d}/run"\ngraphroot = "{d}/storage"\n')
        self.env = {"CONTAINERS_CONF": f"{d}/containers.conf", "CONTAINERS_STORAGE_CONF": f"{d}/storage.conf"}
        open(self.mntns, "w").close()
        run(["unshare", f"--mount={self.mntns}", "--propagation", "private", "sh", "-c",
             "umount /sys/fs/cgroup/unified 2>/dev/null; true"])
        self.ns_made = True
        tar = os.path.join(d, "rootfs.tar")
        run(["tar", "-C", ROOTFS, "-cf", tar, "."])
        self.podman("import", "-q", "--change", 'CMD ["/bin/sh"]', tar, self.IMAGE)
        self.podman("--runtime", shutil.which("crun"), "run", "-d", "--name", self.NAME, "--network", "none",
                    self.IMAGE, "/bin/sleep", "3600")
        self.exec_cmd = ["podman", "exec", self.NAME, "/bin/true"]

    def podman(self, *args, check=True):
        return run(self.enter + ["podman", *args], check=check, env=dict(os.environ, **self.env))

    def close(self):
        from oci_bench import cgroup_dirs
        if self.ns_made:
            self.podman("rm", "-f", "-t", "0", self.NAME, check=False)
            self.podman("rmi", "-af", check=False)
        # A conmon left by a failed run holds the namespace and mounts under the directory.
        for pid in processes_matching(self.dir + "/"):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.ns_made:
            run(["umount", self.mntns], check=False)
        for m in sorted((m for m in mounts() if m.startswith(self.dir + "/")), reverse=True):
            run(["umount", "-l", m], check=False)
        for d in sorted(cgroup_dirs() - self.cgroups_before, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError as e:
                log(f"bench: podman's cgroup left: {d}: {e}")
        for d in self.made_outside:
            if d.endswith("/cache"):
                shutil.rmtree(d, ignore_errors=True)
            else:
                try:
                    os.rmdir(d)  # only if empty: another tool may use it by now
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_exec_section(args, report):
    """Its own section (`--only exec`): exec latency against podman exec and nsenter."""
    runs = args.runs
    workdir = tempfile.mkdtemp(prefix="bench-exec-", dir=BUILD)
    try:
        with Supervisor() as sup:
            execs = bench_exec(sup, "bench-exec", runs, workdir)
    finally:
        run(["rm", "-rf", workdir])
    nsenter = next((r for n, _, r in execs if n == "nsenter -a" and isinstance(r, dict)), None)
    podman = next((r for n, _, r in execs if n.startswith("podman") and isinstance(r, dict)), None)
    rows = []
    for name, cmd, r in execs:
        if isinstance(r, BenchError):
            rows.append([name, "FAILED", "", "", "", "", f"{r}"])
            report.failed.append(f"exec/{name}: {r}")
            continue
        rows.append([name, fmt(r["median"]), fmt(r["p10"]), fmt(r["p90"]),
                     fmt(r["median"] / nsenter["median"] if nsenter else None),
                     fmt(r["median"] / podman["median"] if podman else None), show(cmd, workdir)])
    report.data["exec"] = {n: r for n, _, r in execs if isinstance(r, dict)}
    report.add("\n".join([
        f"## `exec` into a running container (`/bin/true`, {runs} runs each, hyperfine -N, alternating blocks)", "",
        md_table(["command", "median ms", "p10 ms", "p90 ms", "× nsenter", "× podman", "command line"], rows), "",
        "engine's container: `engine start --net none bench-exec rootfs /bin/sleep 3600`. podman's: "
        "`podman --runtime crun run -d --network none` of the same rootfs imported as an image, podman "
        "4.3.1 with crun and conmon, its configuration, storage and state in a temporary directory; it "
        "runs in a private mount namespace without `/sys/fs/cgroup/unified` (crun refuses this host's "
        "hybrid cgroups); hyperfine runs all three rows in that namespace. `nsenter -a` enters the "
        "namespaces of engine's container: the floor for any exec. Load average at the end "
        f"{os.getloadavg()[0]:.2f}."]))


def rootfs_archive(workdir, rootfs, tag):
    """A docker-archive (as `docker save` writes) of `rootfs` as one uncompressed layer, tagged
    `tag`: the image row of the startup table runs the same files from an image's overlay."""
    import hashlib
    import tarfile
    layer = os.path.join(workdir, "layer.tar")
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as t:
        for entry in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, entry), arcname=entry)
    digest = hashlib.sha256()
    with open(layer, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]}}
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(workdir, "manifest.json"), "w") as f:
        json.dump([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}], f)
    archive = os.path.join(workdir, "image.tar")
    with tarfile.open(archive, "w") as t:
        for name in ("manifest.json", "config.json", "layer.tar"):
            t.add(os.path.join(workdir, name), arcname=name)
    return archive


def bench_startup(args, report):
    runs = args.runs
    workdir = tempfile.mkdtemp(prefix="bench-startup-", dir=BUILD)
    rows, data = [], {}
    try:
        bundle = oci_bundle(workdir, ROOTFS)
        peers = [
            ("crun", ["crun", "--root", f"{workdir}/crun", "run", "--bundle", bundle, "bench-crun"]),
            ("runc", ["runc", "--root", f"{workdir}/runc", "run", "--bundle", bundle, "bench-runc"]),
            ("bwrap", ["bwrap", "--unshare-all", "--ro-bind", ROOTFS, "/", "--proc", "/proc",
                       "--dev", "/dev", "/bin/true"]),
            ("unshare+chroot", ["unshare", "--pid", "--uts", "--mount", "--ipc", "--net", "--fork",
                                "chroot", ROOTFS, "/bin/true"]),
        ]
        measured = []
        # Like the peers (and `unshare --net`), a container with only loopback; with a build that
        # has networking, the default bridge (a veth per container) is measured as its own row.
        engine_rows = [("engine run", [])]
        run_help = run([ENGINE, "run", "--help"], check=False).stdout
        if "--net" in run_help:
            engine_rows = [("engine run", ["--net", "none"]), ("engine run (bridge)", ["--net", "bridge"])]
        if "--security-opt" in run_help:
            engine_rows.append(("engine run (seccomp=unconfined)", ["--net", "none", "--security-opt", "seccomp=unconfined"]))
        try:
            with Supervisor() as sup:
                cmds = [(name, sup.cli("run", "--rm", *extra, "bench-true", ROOTFS, "/bin/true")) for name, extra in engine_rows]
                # The same files from an image (issue 10: an image's overlay root vs the directory root).
                if "--pull" in run_help:
                    tag = "localhost/bench-busybox:latest"
                    imgdir = os.path.join(workdir, "image")
                    os.makedirs(imgdir)
                    sup.engine("import", "--root", sup.root, "--quiet", rootfs_archive(imgdir, ROOTFS, tag))
                    cmds.append(("engine run (image)", sup.cli("run", "--rm", "--net", "none", "--pull", "never",
                                                                "bench-true", tag, "/bin/true")))
                # The peers in the same alternating blocks: the goals' ratios compare runs made
                # under the same load.
                measured += measure_interleaved(cmds + peers, runs, workdir)
                peers = []
                leftover = sup.engine("ps", "-a", check=False).stdout.strip().splitlines()[1:]
                if leftover:
                    report.failed.append(f"startup: `engine run --rm` left containers behind: {leftover}")
        except BenchError as e:
            measured.append(("engine run", [ENGINE, "run", "--rm", "bench-true", ROOTFS, "/bin/true"], e))
        for name, cmd in peers:
            measured.append((name, cmd, measure(cmd, runs, workdir)))
    finally:
        run(["rm", "-rf", workdir])

    crun = next((r for n, _, r in measured if n == "crun" and isinstance(r, dict)), None)

    def table(results, base):
        """Rows of name, median, p10, p90, ratio to `base`'s median, command; failures reported."""
        out = []
        for name, cmd, r in results:
            if isinstance(r, BenchError):
                out.append([name, "FAILED", "", "", "", f"{r}"])
                report.failed.append(f"startup/{name}: {r}")
                continue
            data[name] = r
            ratio = r["median"] / base["median"] if base else None
            out.append([name, fmt(r["median"]), fmt(r["p10"]), fmt(r["p90"]), fmt(ratio), show(cmd, workdir)])
        return out

    rows.extend(table(measured, crun))

    text = [f"## Startup: `/bin/true` on the busybox rootfs ({runs} runs each, 3 warm-ups, hyperfine -N; "
            "all rows in 5 alternating blocks)",
            "",
            md_table(["runtime", "median ms", "p10 ms", "p90 ms", "× crun", "command"], rows),
            "",
            "Every command ran in a private mount namespace with `/sys/fs/cgroup/unified` unmounted: "
            "crun refuses this host's hybrid cgroup layout (v1 controllers plus a v2 mount) and takes "
            "plain v1 without it. crun and runc also create and remove a cgroup per container; the "
            "engine supervisor itself runs in the host mount namespace, the CLI in the private one. "
            "`engine run` rows other than (bridge) use `--net none` (loopback only), as the peers have."]
    if "engine run" in data and "unshare+chroot" in data:
        e, u = data["engine run"]["median"], data["unshare+chroot"]["median"]
        text += ["", f"engine run median {e:.2f} ms vs unshare+chroot {u:.2f} ms: ratio {e / u:.2f}."]
    if "engine run (bridge)" in data and "engine run" in data:
        b = data["engine run (bridge)"]["median"] - data["engine run"]["median"]
        text += [f"Bridge networking (veth pair, address, route) adds {b:.2f} ms to the median."]
    if "engine run (seccomp=unconfined)" in data and "engine run" in data:
        s = data["engine run"]["median"] - data["engine run (seccomp=unconfined)"]["median"]
        text += [f"The default seccomp profile (compiled and installed by every container's init) "
                 f"adds {s:.2f} ms to the median."]
    if "engine run (image)" in data and "engine run" in data:
        i = data["engine run (image)"]["median"] - data["engine run"]["median"]
        text += [f"An image's root (its layer as the overlay's lower dir, from the store) instead of the directory "
                 f"adds {i:.2f} ms to the median (the image row also has `--net none`)."]
    if args.goals:
        text += check_goals(data, report)
    report.add("\n".join(text))
    if data:
        names = [n for n, _, r in measured if isinstance(r, dict)]
        plot(os.path.join(RESULTS, "startup.svg"), f"Startup of /bin/true (median, p10-p90, {runs} runs)",
             "milliseconds", ["runtime", "ms", "ms_lo", "ms_hi"],
             [[n, f"{data[n]['median']:.3f}", f"{data[n]['p10']:.3f}", f"{data[n]['p90']:.3f}"] for n in names])
        report.plots.append("startup.svg")
    report.data["startup"] = data


def show(cmd, workdir=None):
    """A command line for the report: temporary and checkout paths shortened."""
    text = " ".join(cmd)
    if workdir:
        text = text.replace(workdir, "$TMP")
    text = re.sub(r"\S*/engine-bench-\w+", "$SUP", text)  # the supervisor's temporary dir
    return "`" + text.replace(ROOTFS, "rootfs").replace(ENGINE, "engine") + "`"


def measure(cmd, runs, workdir):
    times = measure_times(cmd, runs, workdir)
    return times if isinstance(times, BenchError) else summary(times)


def measure_times(cmd, runs, workdir, ns=None):
    try:
        return hyperfine(cmd, runs, workdir, ns)
    except BenchError:
        # hyperfine hides the command's output; one more run shows why it failed.
        p = run((ns or PRIVATE_NS) + cmd, check=False)
        err = (p.stderr or p.stdout).strip().splitlines()
        return BenchError(f"{show(cmd, workdir)} failed under hyperfine; run again it exited "
                          f"{p.returncode}: {err[-1] if err else 'no output'}")


def measure_interleaved(cmds, runs, workdir, blocks=5, ns=None):
    """measure() for commands compared with one another (engine's variants): their runs go in
    alternating blocks, so a drift in the host's load falls on all of them alike."""
    times = {name: [] for name, _ in cmds}
    for _ in range(blocks):
        for name, cmd in cmds:
            if isinstance(times[name], list):
                got = measure_times(cmd, max(1, runs // blocks), workdir, ns)
                times[name] = got if isinstance(got, BenchError) else times[name] + got
    return [(name, cmd, times[name] if isinstance(times[name], BenchError) else summary(times[name]))
            for name, cmd in cmds]


# --- log throughput -------------------------------------------------------------------------

LINE = "engine log throughput 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789"


def md5_and_size(cmd):
    """md5 and byte count of a command's stdout, streamed (never held in memory)."""
    import hashlib
    h, n = hashlib.md5(), 0
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
        h.update(chunk)
        n += len(chunk)
    err = p.stderr.read().decode().strip()
    if p.wait() != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode}: {err}")
    return h.hexdigest(), n


def settled_mtime(path, quiet=1.0, timeout=120):
    """The time of the last write to path, once it has not grown for `quiet` seconds."""
    deadline, size = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        st = os.stat(path)
        if st.st_size == size and time.time() - st.st_mtime > quiet:
            return st.st_mtime
        size = st.st_size
        time.sleep(0.2)
    raise BenchError(f"{path} still growing after {timeout} s")


LOG_GOAL = 0.8  # issue 11: engine's log throughput at least this fraction of the host pipeline's


def bench_logs(args, report):
    """The same bytes from the same producer (the rootfs's busybox cat reading a file from the
    page cache) once into `cat > FILE` on the host, once as a container's stdout into its log.
    A generator such as busybox `yes` would be the bottleneck itself (about 100 MB/s here).
    BENCH_LOG_ROUNDS rounds (default 3) of host then engine: the ratio of each round compares two
    runs made under the same load, and the medians are reported."""
    size = args.log_bytes
    rounds = max(1, int(os.environ.get("BENCH_LOG_ROUNDS", 3)))
    payload_name = f".bench-log-payload-{os.getpid()}"
    payload = os.path.join(ROOTFS, "tmp", payload_name)
    busybox = os.path.join(ROOTFS, "bin/busybox")
    out = os.path.join(BUILD, f"bench-cat-{os.getpid()}.out")
    host_times, eng_times, ratios, sup_cpus, on_disk = [], [], [], [], 0
    host_ok, problems, error = True, [], None
    load_before = os.getloadavg()[0]
    try:
        run(["sh", "-c", f"yes '{LINE}' | head -c {size} > {payload}"])
        want = md5_and_size(["cat", payload])
        run(["cat", payload], stdout=subprocess.DEVNULL)  # into the page cache for both sides
        with Supervisor() as sup:
            for i in range(rounds):
                t0 = time.monotonic()
                run(["sh", "-c", f"{busybox} cat {payload} | cat > {out}"])
                host_s = time.monotonic() - t0
                host_ok &= md5_and_size(["cat", out]) == want
                os.unlink(out)

                name = f"logflood{i}"
                t0, cpu0 = time.time(), proc_stat(sup.pid())[1]
                sup.engine("start", "--log-opt", "max-size=-1", name, ROOTFS, "/bin/cat", f"/tmp/{payload_name}")
                sup.engine("wait", name)
                sup_cpus.append(proc_stat(sup.pid())[1] - cpu0)  # before `logs` makes it read 1.4 GB back
                # What a user sees right after `wait` (Docker's wait-then-logs promise).
                after_wait = md5_and_size(sup.cli("logs", name))
                logfile = os.path.join(sup.root, "logs", f"{name}.log")
                eng_s = settled_mtime(logfile) - t0
                got = md5_and_size(sup.cli("logs", name))
                on_disk = os.path.getsize(logfile)
                sup.engine("rm", name)
                if got != want:
                    problems.append(f"logs: round {i + 1}: payload differs: want md5/bytes {want}, got {got}")
                if after_wait != want:
                    problems.append(f"logs: round {i + 1}: `engine logs` right after `engine wait` returned "
                                    f"{after_wait[1]} of {size} bytes; the rest reached the log later")
                host_times.append(host_s)
                eng_times.append(eng_s)
                ratios.append(host_s / eng_s)
                log(f"bench: logs round {i + 1}: host {size / host_s / 1e6:.0f} MB/s, "
                    f"engine {size / eng_s / 1e6:.0f} MB/s, ratio {host_s / eng_s:.2f}")
    except BenchError as e:
        error = str(e)
        report.failed.append(f"logs: {e}")
    finally:
        for path in (payload, out):
            if os.path.exists(path):
                os.unlink(path)
    report.failed.extend(problems)
    rows = []
    if host_times:
        host_s = statistics.median(host_times)
        rows.append(["host: busybox cat PAYLOAD | cat > FILE", fmt(size / host_s / 1e6, 0), fmt(host_s),
                     "yes" if host_ok else "NO", "`sh -c \"rootfs/bin/busybox cat PAYLOAD | cat > FILE\"`"])
    if eng_times:
        eng_s = statistics.median(eng_times)
        rows.append(["engine: container stdout → log", fmt(size / eng_s / 1e6, 0), fmt(eng_s),
                     "yes" if not problems else "NO (see below)",
                     "`engine start logflood rootfs /bin/cat /tmp/PAYLOAD; engine wait logflood` "
                     f"(log file {on_disk / 1e6:.0f} MB on disk; supervisor CPU until `wait` returned "
                     f"{statistics.median(sup_cpus):.2f} s)"])
    else:
        rows.append(["engine: container stdout → log", "FAILED", "", "", error or ""])
    ratio = statistics.median(ratios) if ratios else None
    verdict = ""
    if ratio is not None:
        verdict = (f" engine / host throughput: {ratio:.2f} (median of the rounds' ratios "
                   f"{', '.join(f'{r:.2f}' for r in ratios)}; issue 11's goal ≥ {LOG_GOAL}: "
                   f"{'met' if ratio >= LOG_GOAL else 'NOT met'}; load average {load_before:.2f} "
                   f"before, {os.getloadavg()[0]:.2f} after).")
    report.add("\n".join([
        f"## Log throughput: {size / 1e9:g} GB of text lines to stdout",
        "",
        md_table(["path", "MB/s", "seconds", "byte-identical", "command"], rows),
        "",
        f"PAYLOAD is `yes '{LINE}' | head -c {size}`, a temporary file in rootfs/tmp. Medians of "
        f"{len(eng_times)} rounds, each the host pipeline then the engine. "
        "The engine time runs from `start` to the last write to the log file (its mtime once it "
        "stopped growing); identity is checked on `engine logs` output, which strips the CRI prefixes, "
        "right after `wait` and again once the file settled." + verdict]))


# --- scale ----------------------------------------------------------------------------------

def bench_scale(args, report):
    n = args.scale
    # A sleep length no other process on the host uses, to find leftovers by command line.
    marker = str(90000000 + os.getpid())
    text = [f"## Scale: {n} sleeping containers through one supervisor", ""]
    try:
        sup = Supervisor().__enter__()
        try:
            start_ms = []
            t0 = time.monotonic()
            cpu0 = proc_stat(sup.pid())[1]
            for i in range(n):
                t = time.monotonic()
                sup.engine("start", f"s{i}", ROOTFS, "/bin/sleep", marker)
                start_ms.append((time.monotonic() - t) * 1000)
            start_all = time.monotonic() - t0
            start_cpu = proc_stat(sup.pid())[1] - cpu0

            ps_ms = []
            for _ in range(10):
                t = time.monotonic()
                out = sup.engine("ps").stdout
                ps_ms.append((time.monotonic() - t) * 1000)
            running = sum(1 for line in out.splitlines()[1:] if "running" in line)
            alive = len(processes_matching(marker, "sleep"))

            # The supervisor's own cost with n containers up and idle, over 10 s.
            cpu0, t = proc_stat(sup.pid())[1], time.monotonic()
            time.sleep(10)
            idle_cpu = (proc_stat(sup.pid())[1] - cpu0) / (time.monotonic() - t) * 100
            rss = rss_kib(sup.pid())
            with open("/proc/meminfo") as f:
                mem_total = int(f.readline().split()[1])

            # A few individual stops, to set the shutdown of the rest against.
            stop_ms = []
            for i in range(min(10, n)):
                t = time.monotonic()
                sup.engine("stop", f"s{i}")
                stop_ms.append((time.monotonic() - t) * 1000)
        finally:
            # SIGTERM to the supervisor stops every container (that is what it promises).
            t = time.monotonic()
            sup.__exit__(None, None, None)
            stop_all = time.monotonic() - t
        left = processes_matching(marker)
        left_mounts = [m for m in mounts() if ROOTFS in m or sup.dir in m]
        s, p = summary(start_ms), summary(ps_ms)
        rows = [
            [f"start {n} containers (sequential `engine start`)", f"{start_all:.2f} s total, "
             f"median {s['median']:.1f} ms, p90 {s['p90']:.1f} ms per start"],
            ["containers running (ps / host processes)", f"{running} / {alive}"],
            [f"`engine ps` with {n} present (10 runs)", f"median {p['median']:.1f} ms, p90 {p['p90']:.1f} ms"],
            ["supervisor CPU while starting them", f"{start_cpu:.2f} s ({start_cpu / start_all * 100:.1f} %CPU)"],
            ["supervisor %CPU, idle with them running (10 s)", f"{idle_cpu:.2f} %"],
            ["supervisor RSS (%MEM)", f"{rss / 1024:.1f} MiB ({rss / mem_total * 100:.2f} %)"],
            [f"`engine stop` of one container ({len(stop_ms)} of them, one by one)",
             f"median {statistics.median(stop_ms):.1f} ms, max {max(stop_ms):.1f} ms"],
            [f"stop the other {n - len(stop_ms)} (SIGTERM to the supervisor until it exited)", f"{stop_all:.2f} s"],
            ["left behind: processes / mounts", f"{len(left)} / {len(left_mounts)}"],
        ]
        if running != n or alive != n or left or left_mounts:
            report.failed.append(f"scale: running {running}, alive {alive} of {n}; left {left} {left_mounts}")
        text.append(md_table(["measure", "value"], rows))
        net = ("; engine's default network, so each has a veth on the bridge"
               if "--net" in run([ENGINE, "start", "--help"], check=False).stdout else "")
        text += ["", f"Each container: `engine start sI rootfs /bin/sleep {marker}`{net}."]
    except BenchError as e:
        report.failed.append(f"scale: {e}")
        left = processes_matching(marker)
        text.append(f"FAILED: {e} (left behind: {len(left)} processes)")
    report.add("\n".join(text))


# --- dd ---------------------------------------------------------------------------------------

# busybox dd prints no timing, so both sides time it with the shell's `time` (10 ms resolution,
# about 1 % of a 1 GB write): the same binary, the same file, the same instrument.
DD_REAL = re.compile(r"real\s+(\d+)m\s*([\d.]+)s")


def dd_rate(output, mib):
    m = DD_REAL.search(output)
    if not m:
        raise BenchError(f"no timing in dd output: {output.strip()[-200:]!r}")
    seconds = int(m.group(1)) * 60 + float(m.group(2))
    return mib * 1048576 / max(seconds, 0.01) / 1e6


def bench_dd(args, report):
    mib, reps = args.dd_mib, 5
    dd = f"dd if=/dev/zero of=/tmp/.bench-dd bs=1M count={mib} conv=fsync"
    # %t as well: busybox names no overlayfs (%T says UNKNOWN; its magic is 794c7630).
    script = f"stat -f -c 'fs=%T/0x%t' /tmp; time {dd}; r=$?; rm -f /tmp/.bench-dd; exit $r"
    host, inside, fstype = [], [], "?"
    sup = None
    try:
        try:
            sup = Supervisor().__enter__()
        except BenchError as e:
            report.failed.append(f"dd/engine: {e}")
        # Round 0 is a warm-up on both sides (the first large write on this VM is often far
        # slower); then alternate, so drift in the disk affects both sides alike.
        for i in range(reps + 1):
            # chroot needs /dev/zero: the host /dev bound in a private mount namespace (gone after).
            p = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     f'mount --bind /dev "$0/dev" && exec chroot "$0" /bin/sh -c "$1"', ROOTFS, script],
                    stderr=subprocess.STDOUT)
            if i:
                host.append(dd_rate(p.stdout, mib))
            if sup:
                try:
                    # A kept layer: a `--rm` one is mounted volatile, where fsync is a no-op.
                    p = sup.engine("run", f"dd{i}", ROOTFS, "/bin/sh", "-c", script, stderr=subprocess.STDOUT)
                    sup.engine("rm", f"dd{i}")
                    if i:
                        inside.append(dd_rate(p.stdout, mib))
                    fstype = (re.search(r"fs=(\S+)", p.stdout) or [None, "?"])[1]
                except BenchError as e:
                    report.failed.append(f"dd/engine: {e}")
                    sup.__exit__(None, None, None)
                    sup = None
    finally:
        if sup:
            sup.__exit__(None, None, None)
        run(["rm", "-f", os.path.join(ROOTFS, "tmp/.bench-dd")])
    rows = [["host (chroot, host /dev)", fmt(statistics.median(host), 0), ", ".join(f"{x:.0f}" for x in host),
             f"`chroot rootfs /bin/sh -c 'time {dd}'`"]]
    if inside:
        rows.append(["engine container", fmt(statistics.median(inside), 0), ", ".join(f"{x:.0f}" for x in inside),
                     f"`engine run ddI rootfs /bin/sh -c 'time {dd}'; engine rm ddI` (/tmp is {fstype})"])
        ratio = statistics.median(inside) / statistics.median(host)
    else:
        rows.append(["engine container", "FAILED", "", ""])
        ratio = None
    report.add("\n".join([f"## Disk: busybox dd of {mib} MiB with fsync, {reps} runs each after a warm-up (median MB/s)", "",
                          md_table(["where", "MB/s", "runs", "command"], rows), "",
                          "Both run the rootfs's busybox dd: the host into rootfs/tmp, the container into its overlay's"
                          " upper dir (under the supervisor's root, on the same disk here). The container's layer is a kept"
                          " one (`run` without `--rm`): a `--rm` layer is mounted volatile, where fsync does nothing."
                          + (f" container / host: {ratio:.2f}." if ratio else "")]))


# --- network --------------------------------------------------------------------------------

PING_RTT = re.compile(r"min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+) ms")


def ping(addr, count):
    """busybox ping from the host (Debian's iputils is not installed here; busybox-static is):
    back-to-back echo requests (-A), returns (min, avg, max) round trip in ms."""
    p = run(["busybox", "ping", "-q", "-A", "-c", str(count), "-W", "2", addr], check=False)
    m = PING_RTT.search(p.stdout)
    if p.returncode != 0 or not m:
        raise BenchError(f"ping {addr} failed: {(p.stdout + p.stderr).strip()[-200:]!r}")
    return tuple(float(x) for x in m.groups())


def ifindexes():
    return {int(l.split(":")[0]) for l in run(["ip", "-o", "link"]).stdout.splitlines()}


def host_peer(pid):
    """Host ifindex of the veth peer of a container's eth0 (`eth0@ifN` seen from inside)."""
    out = run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show", "eth0"]).stdout
    m = re.search(r"eth0@if(\d+)", out)
    if not m:
        raise BenchError(f"no veth peer for eth0 in {out.strip()!r}")
    return int(m.group(1))


def make_veth_namespace(ns, host_if, ns_if, host_ip, ns_ip):
    """Namespace `ns` joined to the host by a veth pair (`host_ip`/30 on the host's end, `ns_ip`/30
    on its own, its loopback up): the bare baseline of the net and ports sections. The caller
    deletes `ns` and `host_if`."""
    for cmd in (["ip", "netns", "add", ns],
                ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
                ["ip", "link", "set", ns_if, "netns", ns],
                ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
                ["ip", "link", "set", host_if, "up"],
                ["ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if],
                ["ip", "-n", ns, "link", "set", ns_if, "up"],
                ["ip", "-n", ns, "link", "set", "lo", "up"]):
        run(cmd)


def bench_net(args, report):
    count, rows = args.pings, []
    # Baseline: a veth pair to a namespace made by hand, the least a bridge-less setup needs.
    ns, host_if, ns_if, net = f"enginebench{os.getpid()}", f"eb{os.getpid()}h", f"eb{os.getpid()}c", "10.250.0"
    if f"{net}." in run(["ip", "route"]).stdout:
        raise BenchError(f"{net}.0/30 is already routed on this host; not touching it")
    try:
        make_veth_namespace(ns, host_if, ns_if, f"{net}.1", f"{net}.2")
        lo, avg, hi = ping(f"{net}.2", count)
        rows.append(["bare veth pair into a namespace", fmt(avg, 3), fmt(lo, 3), fmt(hi, 3),
                     f"`ip link add … type veth`; `busybox ping -q -A -c {count} {net}.2`"])
    finally:
        run(["ip", "netns", "del", ns], check=False)
        run(["ip", "link", "del", host_if], check=False)  # gone with the namespace normally

    addr = args.net_ip
    # Networking is its own issue; until `engine start` has --net the row says so (not a failure).
    if "--net" not in run([ENGINE, "start", "--help"], check=False).stdout:
        rows.append(["engine container on its bridge", "not measured", "", "",
                     "this engine build has no `start --net` yet"])
        log("bench: net: engine has no --net option yet; engine row not measured")
        report.add("\n".join([f"## Network: ping round trip from the host ({count} back-to-back echoes)", "",
                              md_table(["path", "avg ms", "min ms", "max ms", "command"], rows)]))
        return
    try:
        with Supervisor() as sup:
            sup.engine("start", "--net", "bridge", "--ip", addr, "netping", ROOTFS, "/bin/sleep", "3600")
            lo, avg, hi = ping(addr, count)
            rows.append(["engine container on its bridge", fmt(avg, 3), fmt(lo, 3), fmt(hi, 3),
                         f"`engine start --net bridge --ip {addr} netping rootfs /bin/sleep 3600`; "
                         f"`busybox ping -q -A -c {count} {addr}`"])
            peer = host_peer(json.loads(sup.engine("inspect", "netping").stdout)["pid"])
            sup.engine("rm", "-f", "netping")
        # The bridge may stay for the next container; the container's veth must be gone.
        if peer in ifindexes():
            report.failed.append(f"net: the container's host veth (ifindex {peer}) outlived it")
    except BenchError as e:
        report.failed.append(f"net/engine: {e}")
        rows.append(["engine container on its bridge", "FAILED", "", "", str(e)])
    report.add("\n".join([f"## Network: ping round trip from the host ({count} back-to-back echoes)", "",
                          md_table(["path", "avg ms", "min ms", "max ms", "command"], rows)]))


# --- published ports ------------------------------------------------------------------------

# The client of the throughput rows, run as `python3 -c` (inside the "other host" namespace too,
# with `ip netns exec`): connects, streams BYTES to the echo server while it reads them back,
# and prints the seconds from connect to the last byte echoed.
BULK_CLIENT = r"""
import socket, sys, threading, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
s = socket.create_connection((host, port), timeout=20)
chunk, errors = memoryview(bytes(1 << 20)), []
def send():
    try:
        left = total
        while left:
            left -= s.send(chunk[:min(left, len(chunk))])
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        errors.append(e)
sender = threading.Thread(target=send)
sender.start()
got, buf = 0, bytearray(1 << 20)
while got < total:
    n = s.recv_into(buf)
    if not n:
        break
    got += n
seconds = time.perf_counter() - t0
sender.join()
if errors or got != total:
    sys.exit(f"echoed {got} of {total} bytes: {errors}")
print(f"{seconds:.6f}")
"""

PORTS_NET = "10.250.1"  # the bare veth's /30 (bench_net uses 10.250.0)
ECHO_PORT = 5001


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bulk(prefix, host, port, nbytes):
    """MB/s of one echoed transfer (bytes sent and received back, counted once)."""
    p = run(prefix + ["python3", "-c", BULK_CLIENT, host, str(port), str(nbytes)], check=False)
    if p.returncode != 0:
        raise BenchError(f"bulk transfer to {host}:{port} failed: {(p.stderr or p.stdout).strip()[-200:]}")
    return nbytes / float(p.stdout.strip()) / 1e6


def wait_for_echo(prefix, host, port, timeout=15):
    """Until an echo server answers there (a container's server needs a moment after start)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            bulk(prefix, host, port, 4096)
            return
        except BenchError as e:
            if time.monotonic() > deadline:
                raise BenchError(f"no echo server at {host}:{port} after {timeout} s: {e}")
            time.sleep(0.2)


def bench_ports(args, report):
    """TCP bulk throughput into the same echo server (the rootfs's static /bin/server, from
    workloads/server.c): over a bare veth pair into a namespace made here, and into an engine
    container: at its bridge address (no NAT), and through a published port (`-p`) reached via
    127.0.0.1 (the output chain's DNAT, route_localnet, masquerade) and from "another host" (the
    namespace, through the host's address on the veth: prerouting DNAT and forwarding). Rounds
    alternate between the paths; medians of MB/s, and each path's ratio to the bare veth."""
    mib, rounds = args.ports_mib, args.ports_rounds
    nbytes = mib * 1048576
    server = os.path.join(ROOTFS, "server")  # /bin/server is a link to it, inside the root
    if not os.access(server, os.X_OK):
        raise BenchError(f"{server} is missing (make rootfs builds workloads/server.c into it)")
    pid = os.getpid()
    ns, host_if, ns_if = f"enginebenchp{pid}", f"ebp{pid}h", f"ebp{pid}c"
    host_ip, ns_ip = f"{PORTS_NET}.1", f"{PORTS_NET}.2"
    if f"{PORTS_NET}." in run(["ip", "route"]).stdout:
        raise BenchError(f"{PORTS_NET}.0/30 is already routed on this host; not touching it")
    in_ns = ["ip", "netns", "exec", ns]
    hport = free_tcp_port()
    paths, results, errors, by_round = [], {}, {}, {}
    echo = None
    try:
        make_veth_namespace(ns, host_if, ns_if, host_ip, ns_ip)
        echo = subprocess.Popen(in_ns + [server, str(ECHO_PORT)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for_echo([], ns_ip, ECHO_PORT)
        paths.append(("bare veth: host → namespace", [], ns_ip, ECHO_PORT,
                      f"`ip netns exec NS rootfs/bin/server {ECHO_PORT}`; client → {ns_ip}:{ECHO_PORT}"))
        with Supervisor() as sup:
            sup.engine("start", "-p", f"{hport}:{ECHO_PORT}", "portbench", ROOTFS, "/bin/server", str(ECHO_PORT))
            ctr_ip = json.loads(sup.engine("inspect", "portbench").stdout)["network"]["ip"]
            start = f"`engine start -p {hport}:{ECHO_PORT} portbench rootfs /bin/server {ECHO_PORT}`"
            paths += [
                ("engine: host → container's bridge address (no NAT)", [], ctr_ip, ECHO_PORT,
                 f"{start}; client → {ctr_ip}:{ECHO_PORT}"),
                ("engine -p: host → 127.0.0.1:HOSTPORT", [], "127.0.0.1", hport,
                 f"client → 127.0.0.1:{hport} (output DNAT, masquerade)"),
                ("engine -p: other host (namespace) → host address:HOSTPORT", in_ns, host_ip, hport,
                 f"`ip netns exec NS` client → {host_ip}:{hport} (prerouting DNAT, forwarded)"),
            ]
            for name, prefix, host, port, _ in paths[1:]:
                wait_for_echo(prefix, host, port)
            for name, *_ in paths:
                results[name] = []
            # A warm-up round, then the paths in turn each round (the order rotating), so a
            # drift in the host's load falls on all of them alike.
            for r in range(rounds + 1):
                for name, prefix, host, port, _ in paths[r % len(paths):] + paths[:r % len(paths)]:
                    if name in errors:
                        continue
                    try:
                        rate = bulk(prefix, host, port, nbytes)
                    except BenchError as e:
                        errors[name] = e
                        continue
                    if r:
                        results[name].append(rate)
                        by_round.setdefault(r, {})[name] = rate
            rules = sup.engine("port", "portbench").stdout.strip()
            sup.engine("rm", "-f", "portbench")
    finally:
        if echo:
            echo.kill()
            echo.wait()
        run(["ip", "netns", "del", ns], check=False)
        run(["ip", "link", "del", host_if], check=False)  # gone with the namespace normally
    base = results.get(paths[0][0]) if paths[0][0] not in errors else None
    base_med = statistics.median(base) if base else None
    rows, data = [], {}
    for name, _, _, _, how in paths:
        if name in errors:
            rows.append([name, "FAILED", "", "", "", str(errors[name])])
            report.failed.append(f"ports/{name}: {errors[name]}")
            continue
        med = statistics.median(results[name])
        # Each round's ratio compares two runs made moments apart, under the same load.
        ratios = [r[name] / r[paths[0][0]] for r in by_round.values() if name in r and paths[0][0] in r]
        per_round = statistics.median(ratios) if ratios else None
        data[name] = {"median_mbs": med, "runs_mbs": results[name], "ratio_per_round_median": per_round}
        rows.append([name, fmt(med, 0), fmt(med / base_med if base_med else None), fmt(per_round),
                     ", ".join(f"{x:.0f}" for x in results[name]), how])
    report.data["ports"] = data
    report.add("\n".join([
        f"## Published ports: TCP bulk throughput, {mib} MiB echoed per run ({rounds} rounds after a warm-up; "
        "median MB/s)", "",
        md_table(["path", "MB/s", "× bare veth", "× bare veth (median of rounds)", "runs", "how"], rows), "",
        f"The same static echo server (`workloads/server.c`, the rootfs's `/bin/server`) everywhere; the client "
        f"(`python3`, in bench.py) streams {mib} MiB to it while reading the echo back, and the time runs from "
        "connect to the last byte back; MB/s counts each byte once (it crossed the path both ways). The bare "
        "veth is a pair into a namespace made here, with no bridge, no NAT and no nf_tables rule. The engine "
        f"container is on engine's bridge with `-p {hport}:{ECHO_PORT}` (`engine port`: {rules or '?'}); the "
        "\"other host\" is that namespace again, its client connecting to the host's end of the veth. Paths "
        "alternate within each round (the order rotates); load average at the end "
        f"{os.getloadavg()[0]:.2f}."]))


# --- driver -----------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.sections, self.failed, self.plots, self.data = [], [], [], {}
        # Start-up ratios above issue 14's goals (check_goals): the run exits 1 for them too.
        self.regressions = []

    def add(self, text):
        self.sections.append(text)
        print(text + "\n", flush=True)


SECTIONS = {"startup": bench_startup, "exec": bench_exec_section, "logs": bench_logs, "scale": bench_scale,
            "dd": bench_dd, "net": bench_net, "ports": bench_ports}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 50)))
    ap.add_argument("--log-bytes", type=int, default=int(os.environ.get("BENCH_LOG_BYTES", 10**9)))
    ap.add_argument("--scale", type=int, default=int(os.environ.get("BENCH_SCALE", 1000)))
    ap.add_argument("--dd-mib", type=int, default=int(os.environ.get("BENCH_DD_MIB", 1024)))
    ap.add_argument("--pings", type=int, default=int(os.environ.get("BENCH_PINGS", 200)))
    ap.add_argument("--ports-mib", type=int, default=int(os.environ.get("BENCH_PORTS_MIB", 512)),
                    help="MiB echoed per run in the published-ports section")
    ap.add_argument("--ports-rounds", type=int, default=int(os.environ.get("BENCH_PORTS_ROUNDS", 5)))
    ap.add_argument("--net-ip", default=os.environ.get("BENCH_NET_IP", "10.88.0.250"),
                    help="address for the engine container in the network section")
    ap.add_argument("--name", default="bench", help="report name: benches/results/NAME.md")
    ap.add_argument("--no-goals", dest="goals", action="store_false",
                    help="measure only: no REGRESSION check of the start-up ratios against issue 14's goals")
    args = ap.parse_args()
    require_root()
    os.makedirs(BUILD, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    report = Report()
    for name in args.only.split(","):
        if name not in SECTIONS:
            sys.exit(f"bench: unknown section {name!r} (known: {', '.join(SECTIONS)})")
        log(f"bench: {name} ...")
        try:
            SECTIONS[name](args, report)
        except BenchError as e:
            report.failed.append(f"{name}: {e}")
            report.add(f"## {name}\n\nFAILED: {e}")
    head = [f"# engine benchmarks ({args.name})", "", f"Host: {host_info()}.",
            f"Produced by `make bench` (`python3 benches/bench.py --only {args.only}`).", ""]
    head += [f"![{p}]({p})\n" for p in report.plots]
    tail = []
    if report.failed:
        tail.append("## Failures\n\n" + "\n".join(f"- {f}" for f in report.failed))
    path = write_report(f"{args.name}.md", "\n".join(head).rstrip("\n") + "\n\n"
                        + "\n\n".join(report.sections + tail) + "\n")
    dump_json(os.path.join(RESULTS, f"{args.name}.json"), report.data)
    log(f"bench: wrote {path}")
    if report.regressions:
        log("bench: start-up above its goals:\n  " + "\n  ".join(report.regressions))
    if report.failed:
        log("bench: FAILED:\n  " + "\n  ".join(report.failed))
    if report.failed or report.regressions:
        sys.exit(1)


if __name__ == "__main__":
    main()

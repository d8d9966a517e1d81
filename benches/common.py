"""Shared pieces of the benchmark and experiment scripts (python3 standard library only).

Each script starts its own engine supervisor on a private --root and --socket, so a bench never
touches the default /var/lib/engine or a supervisor someone else is running, and everything it
started is stopped and removed when it ends, also when it fails.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.environ.get("ENGINE", os.path.join(ROOT, "target/release/engine"))
ROOTFS = os.environ.get("ROOTFS", os.path.join(ROOT, "rootfs"))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
RESULTS = os.path.join(ROOT, "benches/results")
PLOT_MANIFEST = os.path.join(ROOT, "benches/plot/Cargo.toml")
PLOT_TARGET = os.path.join(BUILD, "plot-target")


class BenchError(Exception):
    """A measurement that could not be made; the report shows the sentence instead of a number."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def require_root():
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (containers need namespaces and mounts)")
    # SIGTERM (timeout, make interrupted) becomes an exception, so the `finally` clean-ups still
    # stop the supervisor and remove temporary directories.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(f"bench: terminated by signal {sig}"))


def run(cmd, check=True, **kw):
    """subprocess.run with text output captured; a failure raises BenchError naming the command."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, text=True, **kw)
    if check and p.returncode != 0:
        err = (p.stderr or "").strip().splitlines()
        raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode}: {err[-1] if err else 'no stderr'}")
    return p


def oci_bundle(workdir, rootfs):
    """An OCI bundle in workdir/bundle: `crun spec` defaults (pid, net, ipc, uts, mount namespaces,
    like engine), no terminal, `rootfs` read-only, /bin/true. Shared by bench.py and oci_bench.py."""
    bundle = os.path.join(workdir, "bundle")
    os.makedirs(bundle)
    run(["crun", "spec"], cwd=bundle)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"] = {"path": rootfs, "readonly": True}
    with open(path, "w") as f:
        json.dump(spec, f)
    return bundle


# --- statistics -----------------------------------------------------------------------------

def summary(samples):
    """median, p10, p90 of a list of numbers (deciles by linear interpolation)."""
    if len(samples) < 2:
        raise BenchError("need at least two samples")
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return {"median": statistics.median(samples), "p10": deciles[0], "p90": deciles[8], "n": len(samples)}


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


# --- the engine under test ------------------------------------------------------------------

class Supervisor:
    """`engine supervisor` on a temporary --root and --socket, stopped with SIGTERM on exit.

    Without --detach it stays our child, so we know its pid and can wait for it; `taskset`
    (a list like ["taskset", "-c", "0"]) is put in front to pin it and what it spawns.
    """

    def __init__(self, prefix=None):
        self.prefix = prefix or []
        self.dir = None
        self.proc = None

    def __enter__(self):
        if not os.access(ENGINE, os.X_OK):
            raise BenchError(f"{ENGINE} is not built (make build)")
        self.dir = tempfile.mkdtemp(prefix="engine-bench-", dir=BUILD if os.path.isdir(BUILD) else None)
        self.root = os.path.join(self.dir, "root")
        self.socket = os.path.join(self.dir, "engine.sock")
        self.errlog = open(os.path.join(self.dir, "supervisor.log"), "w+")
        self.proc = subprocess.Popen(
            # The names the default root uses, as benches always had (a temporary root would get
            # derived ones, e.g. a new bridge per run); refused if a real supervisor holds them.
            self.prefix + [ENGINE, "supervisor", "--root", self.root, "--socket", self.socket,
                           "--cgroup-parent", "engine", "--bridge", "engine0", "--subnet", "10.88.0.0/16"],
            stdin=subprocess.DEVNULL, stdout=self.errlog, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                err = self.tail_log()
                self.__exit__(None, None, None)
                raise BenchError(f"engine supervisor exited {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BenchError("engine supervisor did not create its socket within 10 s")
            time.sleep(0.02)
        return self

    def tail_log(self):
        self.errlog.seek(0)
        lines = self.errlog.read().strip().splitlines()
        return lines[-1] if lines else "no output"

    def cli(self, *args):
        """The engine CLI command line for this supervisor."""
        return [ENGINE, "--socket", self.socket, *args]

    def engine(self, *args, check=True, **kw):
        return run(self.cli(*args), check=check, **kw)

    def pid(self):
        return self.proc.pid

    def __exit__(self, *exc):
        # SIGTERM makes the supervisor stop every container and exit; SIGKILL only if it hangs.
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log("bench: supervisor ignored SIGTERM for 60 s, killing it")
                self.proc.kill()
                self.proc.wait()
        if self.dir:
            leftover = [m for m in mounts() if m.startswith(self.dir)]
            if leftover:
                log(f"bench: supervisor left mounts under {self.dir}: {leftover}; not removing it")
            else:
                self.errlog.close()
                shutil.rmtree(self.dir, ignore_errors=True)
        return False


def mounts():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


# --- host process accounting ----------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(ppid, utime+stime seconds, nice) of a host pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": state ppid ... utime(12) stime(13) ... nice(17), 0-based from state.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[16])


def subtree(pid):
    """pid and all its descendants (a container's init and what it runs)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(proc_stat(int(entry))[0], []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def argv_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return [""]


def processes_matching(needle, program=None):
    """Host pids whose command line contains needle (to find our workloads and prove a bench
    left nothing running); with program, only those whose argv[0] ends with it, so wrappers
    (a container's init, the CLI, taskset) are not counted."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            argv = argv_of(entry)
            if needle in "\0".join(argv) and (program is None or argv[0].endswith(program)):
                found.append(int(entry))
    return found


# --- reports --------------------------------------------------------------------------------

def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A "|" inside a cell (shell pipelines) would end the cell: GitHub tables take "\\|".
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(svg, title, y_label, header, rows):
    """Draws a grouped bar chart with benches/plot (built on first use into build/plot-target)."""
    binary = os.path.join(PLOT_TARGET, "release/engine-bench-plot")
    run(["cargo", "build", "--quiet", "--release", "--manifest-path", PLOT_MANIFEST,
         "--target-dir", PLOT_TARGET], stdout=None, stderr=None)
    table = "\t".join(header) + "\n" + "".join("\t".join(str(c) for c in r) + "\n" for r in rows)
    run([binary, svg, title, y_label], input=table)


def host_info():
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    # The load average says how much other work shared the machine when the run began.
    return (f"{os.uname().sysname} {os.uname().release}, {os.cpu_count()} CPUs ({model}), "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average {load} at the start")


def write_report(name, text):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
    return path


def dump_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1)

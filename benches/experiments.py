#!/usr/bin/env python3
"""`make experiments`: scheduling experiments, engine containers next to plain host processes.

1. Nice sweep: cpu_hog at nice 0 against cpu_hog at nice 0/5/10/15/19, both pinned to CPU 0
   (on two CPUs each hog would get its own and nice would mean nothing). The CPU time each one
   gets over a fixed window, read from /proc by the host, is its measured share; the kernel's
   weight table predicts w(n) / (w(0) + w(n)).
2. CPU-bound vs I/O-bound: cpu_hog against io_pulse on one CPU, each also alone.

Every case runs twice: as plain host processes (the control: what the kernel does with nice
inside one session) and as engine containers (`engine start --nice N`). Writes
benches/results/experiments.md and nice.svg; exits 1 if the engine side could not be measured.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ENGINE, RESULTS, ROOT, ROOTFS, BenchError, Supervisor, host_info, log, md_table, plot,
                    proc_stat, processes_matching, require_root, run, write_report)

WORKLOADS = os.path.join(ROOT, "workloads/bin")
# kernel/sched/core.c sched_prio_to_weight[] for the nice values we test.
WEIGHT = {0: 1024, 5: 335, 10: 110, 15: 36, 19: 15}
CPU = "0"


def pin(pids):
    """Pin already running processes to CPU 0 from outside (sched_setaffinity), in case the
    engine resets the affinity its children inherit from the pinned supervisor."""
    for pid in pids:
        os.sched_setaffinity(pid, {int(CPU)})


def find(marker, count=1, timeout=10):
    """Host pids of the cpu_hog processes whose arguments hold marker, waiting until count exist
    (argv[0] is checked so a wrapper such as a container init is not taken for the hog)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = processes_matching(marker, "cpu_hog")
        if len(pids) >= count:
            return pids
        if time.monotonic() > deadline:
            raise BenchError(f"process {marker!r} did not appear within {timeout} s")
        time.sleep(0.02)


def describe(pid):
    """What the kernel applies to a process: nice, allowed CPUs, autogroup, cpu cgroup."""
    nice = proc_stat(pid)[2]
    with open(f"/proc/{pid}/status") as f:
        cpus = next(l.split()[1] for l in f if l.startswith("Cpus_allowed_list"))
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            autogroup = f.read().split()[0]
    except OSError:
        autogroup = "-"
    with open(f"/proc/{pid}/cgroup") as f:
        cg = next((l.strip().split(":", 2)[2] for l in f if re.match(r"\d+:[^:]*\bcpu\b", l)), "?")
    return {"nice": nice, "cpus": cpus, "autogroup": autogroup, "cpu_cgroup": cg}


# --- runners: the same experiment through host processes or engine containers ----------------

class HostRunner:
    label = "host processes"
    pin_how = "`taskset -c 0 nice -n N cpu_hog`"

    def __init__(self):
        self.procs = {}

    def pin(self, pids):
        pin(pids)

    def start(self, name, nice, argv):
        self.procs[name] = subprocess.Popen(
            ["taskset", "-c", CPU, "nice", "-n", str(nice), *argv],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def output(self, name):
        out, _ = self.procs.pop(name).communicate(timeout=300)
        return out

    def kill(self, name):
        p = self.procs.pop(name)
        p.kill()
        p.wait()

    def close(self):
        for name in list(self.procs):
            self.kill(name)


class EngineRunner:
    label = "engine containers"

    def __init__(self, extra=()):
        # engine pins with --cpuset-cpus where it has it; an older build gets a pinned supervisor
        # (children inherit the affinity) and pin() from outside.
        self.extra = list(extra)
        self.cpuset = "--cpuset-cpus" in run([ENGINE, "start", "--help"], check=False).stdout
        self.pin_how = " ".join(["`engine start"] + ([f"--cpuset-cpus {CPU}"] if self.cpuset else [])
                                + self.extra + ["--nice N`"])
        if not self.cpuset:
            self.pin_how += ", supervisor under `taskset -c 0`"
        self.sup = Supervisor(prefix=[] if self.cpuset else ["taskset", "-c", CPU]).__enter__()
        self.names = set()
        self.seq = 0

    def pin(self, pids):
        if not self.cpuset:
            pin(pids)

    def start(self, name, nice, argv):
        self.seq += 1
        cname = f"{name}-{self.seq}"
        pinning = ["--cpuset-cpus", CPU] if self.cpuset else []
        self.sup.engine("start", *pinning, *self.extra, "--nice", str(nice), cname, ROOTFS,
                        f"/{os.path.basename(argv[0])}", *argv[1:])
        self.names.add(name)
        self.current = getattr(self, "current", {})
        self.current[name] = cname

    def output(self, name):
        cname = self.current.pop(name)
        self.sup.engine("wait", cname)
        out = self.sup.engine("logs", cname).stdout
        self.sup.engine("rm", cname)
        return out

    def kill(self, name):
        cname = self.current.pop(name)
        self.sup.engine("rm", "-f", cname)

    def close(self):
        for name in list(getattr(self, "current", {})):
            try:
                self.kill(name)
            except BenchError as e:
                log(f"experiments: {e}")
        self.sup.__exit__(None, None, None)


# --- experiment 1: nice sweep ----------------------------------------------------------------

def nice_sweep(runner, window, warmup):
    rows = []
    for n in WEIGHT:
        # Unique CPU budgets make each hog findable by its command line; far longer than the window.
        ref_mark, nice_mark = f"3600.{os.getpid()}1", f"3600.{os.getpid()}2"
        runner.start("ref", 0, [f"{WORKLOADS}/cpu_hog", ref_mark])
        runner.start("niced", n, [f"{WORKLOADS}/cpu_hog", nice_mark])
        try:
            ref, niced = find(ref_mark)[0], find(nice_mark)[0]
            runner.pin([ref, niced])
            time.sleep(warmup)
            c0, t0 = (proc_stat(ref)[1], proc_stat(niced)[1]), time.monotonic()
            time.sleep(window)
            c1, elapsed = (proc_stat(ref)[1], proc_stat(niced)[1]), time.monotonic() - t0
            facts = describe(niced), describe(ref)
        finally:
            runner.kill("ref")
            runner.kill("niced")
        d_ref, d_nice = c1[0] - c0[0], c1[1] - c0[1]
        total = d_ref + d_nice
        predicted = WEIGHT[n] / (WEIGHT[0] + WEIGHT[n])
        rows.append({
            "nice": n, "measured": d_nice / total, "predicted": predicted,
            "cpu_ref": d_ref, "cpu_nice": d_nice, "busy": total / elapsed,
            "seen_nice": facts[0]["nice"], "cpus": f"{facts[1]['cpus']}/{facts[0]['cpus']}",
            "same_autogroup": facts[0]["autogroup"] == facts[1]["autogroup"],
            "same_cgroup": facts[0]["cpu_cgroup"] == facts[1]["cpu_cgroup"],
        })
        log(f"experiments: {runner.label} nice {n}: measured {d_nice / total:.3f} predicted {predicted:.3f}")
    # Killed processes take a moment to be reaped; give them 5 s before calling them leftovers.
    deadline = time.monotonic() + 5
    while (leftovers := processes_matching(f"3600.{os.getpid()}", "cpu_hog")) and time.monotonic() < deadline:
        time.sleep(0.1)
    if leftovers:
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        raise BenchError(f"{runner.label}: {len(leftovers)} cpu_hog processes outlived their kill")
    return rows


# --- experiment 2: CPU-bound vs I/O-bound ------------------------------------------------------

DONE = re.compile(r"done .*cpu=([\d.]+)s wall=([\d.]+)s")
FSYNC = re.compile(r"write\+fsync ([\d.]+) ms")


def parse_done(name, out):
    m = DONE.search(out)
    if not m:
        raise BenchError(f"{name}: no summary line in output: {out.strip()[-200:]!r}")
    res = {"cpu": float(m.group(1)), "wall": float(m.group(2))}
    lat = [float(x) for x in FSYNC.findall(out)]
    if lat:
        res["fsync_ms"] = sum(lat) / len(lat)
    return res


def cpu_vs_io(runner, hog_s, iters, sleep_ms):
    hog = [f"{WORKLOADS}/cpu_hog", str(hog_s)]
    pulse = [f"{WORKLOADS}/io_pulse", str(iters), str(sleep_ms), "/tmp/io_pulse.dat"]
    results = {}
    for case, argvs in (("alone", {"cpu_hog": hog}), ("alone ", {"io_pulse": pulse}),
                        ("together", {"cpu_hog": hog, "io_pulse": pulse})):
        for name, argv in argvs.items():
            runner.start(name, 0, argv)
        for name in argvs:
            results[(case.strip(), name)] = parse_done(name, runner.output(name))
    return results


# --- report ----------------------------------------------------------------------------------

def nice_table(rows):
    return md_table(
        ["nice", "measured share", "predicted share", "CPU s (nice 0 / niced)", "CPU busy",
         "nice seen by kernel", "CPUs allowed", "same autogroup", "same cpu cgroup"],
        [[r["nice"], f"{r['measured'] * 100:.1f} %", f"{r['predicted'] * 100:.1f} %",
          f"{r['cpu_ref']:.2f} / {r['cpu_nice']:.2f}", f"{r['busy'] * 100:.0f} %", r["seen_nice"],
          r["cpus"], "yes" if r["same_autogroup"] else "no", "yes" if r["same_cgroup"] else "no"]
         for r in rows])


def io_table(res):
    rows = []
    for (case, name), r in res.items():
        rows.append([name, case, f"{r['cpu']:.2f}", f"{r['wall']:.2f}",
                     f"{r['fsync_ms']:.2f}" if "fsync_ms" in r else ""])
    return md_table(["process", "run", "CPU s", "wall s", "mean write+fsync ms"], rows)


def io_numbers(res, hog_s, iters, sleep_ms):
    hog_alone, hog_tog = res[("alone", "cpu_hog")], res[("together", "cpu_hog")]
    io_alone, io_tog = res[("alone", "io_pulse")], res[("together", "io_pulse")]
    late = lambda r: (r["wall"] * 1000 - (iters - 1) * sleep_ms) / iters
    return (
        f"cpu_hog needs {hog_s} s of CPU: alone it took {hog_alone['wall']:.2f} s of wall time, next to "
        f"io_pulse {hog_tog['wall']:.2f} s. io_pulse ({iters} × write 4 KiB, fsync, sleep {sleep_ms} ms) "
        f"took {io_alone['wall']:.2f} s alone and {io_tog['wall']:.2f} s next to the hog, that is "
        f"{late(io_alone):.2f} ms vs {late(io_tog):.2f} ms per iteration beyond its sleep (write, fsync "
        f"and wake-up delay), and used {io_tog['cpu']:.2f} s of CPU.")


WHY_IO = (
    "Why: the I/O-bound process is asleep (in fsync or nanosleep) nearly all the time. The fair "
    "scheduler (EEVDF since Linux 6.6, CFS before) shares by virtual runtime, not by turns: a task "
    "that slept has used less than its share, so when it wakes it is eligible with an earlier "
    "virtual deadline than the hog and preempts it almost at once, runs for microseconds and "
    "blocks again. Its wall time is set by its sleeps and the disk, not by the competition, and the "
    "hog loses only the CPU the I/O-bound process really uses; wall time the hog lost beyond that "
    "is other work on the same CPU during the run (this machine is shared: compare the `alone` "
    "rows, where the hog had the CPU to itself and still waited). When io_pulse is faster per "
    "iteration next to the hog than alone, that is the cost of waking an idle CPU (idle-state exit "
    "and, on this VM, the hypervisor waking the halted vCPU) that a busy CPU does not pay: it only "
    "switches tasks.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=float, default=5.0, help="seconds of CPU sampling per nice value")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--hog", type=int, default=5, help="cpu_hog seconds in the CPU vs I/O experiment")
    ap.add_argument("--iters", type=int, default=60, help="io_pulse iterations (outlasting the hog)")
    ap.add_argument("--sleep-ms", type=int, default=100)
    ap.add_argument("--host-only", action="store_true", help="skip the engine side (development)")
    args = ap.parse_args()
    require_root()
    for w in ("cpu_hog", "io_pulse"):
        if not os.access(os.path.join(WORKLOADS, w), os.X_OK):
            sys.exit(f"experiments: {WORKLOADS}/{w} missing (make workloads)")

    sections, failed, sweeps, pin_how = [], [], {}, {}
    runners = [("host", HostRunner)]
    if not args.host_only:
        runners.append(("engine", EngineRunner))
        # With a CPU quota each container gets its own cpu cgroup: the group level shows.
        if "--cpus" in run([ENGINE, "start", "--help"], check=False).stdout:
            runners.append(("engine --cpus 1", lambda: EngineRunner(["--cpus", "1"])))
    io_results = {}
    for key, make in runners:
        runner = None
        try:
            runner = make()
            pin_how[key] = runner.pin_how
            sweeps[key] = nice_sweep(runner, args.window, args.warmup)
            if key in ("host", "engine"):
                io_results[key] = cpu_vs_io(runner, args.hog, args.iters, args.sleep_ms)
        except BenchError as e:
            failed.append(f"{key}: {e}")
            log(f"experiments: {key} FAILED: {e}")
        finally:
            if runner:
                runner.close()

    out = [f"# Scheduling experiments", "", f"Host: {host_info()}.",
           "Produced by `make experiments` (`python3 benches/experiments.py`). "
           f"Both processes of each case are pinned to CPU {CPU}.", ""]
    if sweeps:
        out += ["![nice sweep](nice.svg)", ""]
    out += ["## Nice sweep: cpu_hog at nice 0 against cpu_hog at nice N on one CPU", "",
            f"Share of CPU {CPU} the niced hog got over {args.window:g} s (after {args.warmup:g} s warm-up), "
            "from utime+stime in /proc; predicted from the kernel weight table "
            "(sched_prio_to_weight: " + ", ".join(f"nice {n} = {w}" for n, w in WEIGHT.items()) +
            ") as w(N) / (1024 + w(N)). CPU busy is the two hogs' CPU time over the window: below "
            f"100 % means other work ran on CPU {CPU} too (this machine is shared); the shares are "
            "taken between the two hogs, so it does not skew them.", ""]
    for key, label in (("host", "Host processes"), ("engine", "engine containers"),
                       ("engine --cpus 1", "engine containers, each with a CPU quota (own cpu cgroup)")):
        if key in sweeps:
            out += [f"### {label} ({pin_how[key]})", "", nice_table(sweeps[key]), ""]
    out += ["Nice is a weight inside one run queue level. The kernel divides CPU first between "
            "scheduling groups (cpu cgroups and, with `kernel.sched_autogroup_enabled=1` "
            f"(here: {open('/proc/sys/kernel/sched_autogroup_enabled').read().strip()}), one autogroup "
            "per session) and only then by nice between tasks of the same group: two hogs in different "
            "groups split the CPU evenly whatever their nice values. The last columns show whether the "
            "two hogs shared a group in each run.", ""]
    if "engine --cpus 1" in sweeps:
        r = sweeps["engine --cpus 1"]
        out += [f"With `--cpus 1` each container sat in its own cpu cgroup "
                f"(same cpu cgroup: {'yes' if r[-1]['same_cgroup'] else 'no'}) and the niced hog got "
                + ", ".join(f"{x['measured'] * 100:.1f} %" for x in r)
                + f" at nice {', '.join(str(x['nice']) for x in r)}: the groups are weighted by their cpu.shares, "
                "not by the nice values of the tasks inside them.", ""]
    for key in ("host", "engine"):
        if key in io_results:
            out += [f"## CPU-bound vs I/O-bound ({'host processes' if key == 'host' else 'engine containers'})", "",
                    io_table(io_results[key]), "", io_numbers(io_results[key], args.hog, args.iters, args.sleep_ms), ""]
    if io_results:
        out += [WHY_IO, ""]
    if failed:
        out += ["## Failures", ""] + [f"- {f}" for f in failed]
    path = write_report("experiments.md", "\n".join(out) + "\n")
    if sweeps:
        header = ["nice", "predicted"] + [f"{k} measured" for k in sweeps]
        plot(os.path.join(RESULTS, "nice.svg"), "CPU share of cpu_hog at nice N vs nice 0 (one CPU)",
             "% of the pair's CPU time", header,
             [[f"nice {r['nice']}", f"{r['predicted'] * 100:.2f}"] +
              [f"{sweeps[k][i]['measured'] * 100:.2f}" for k in sweeps]
              for i, r in enumerate(next(iter(sweeps.values())))])
    print(open(path).read())
    if failed:
        log("experiments: FAILED:\n  " + "\n  ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()

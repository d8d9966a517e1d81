#!/usr/bin/env python3
"""`make softlimit` (part of `make experiments`): RSS over time of workloads/soft_trap, an
application that traps SIGTERM, writes a checkpoint line and exits 0, growing 2 MiB every 100 ms
toward its hard limit, with soft 16 MiB and hard 48 MiB:

  a  the hard limit only                      b  --soft-signal TERM via the kernel monitor
  c  --soft-signal TERM via the cgroup fallback (module absent)
  d  --soft-mib alone, cgroup fallback: memory.high = soft throttles (v2); no signal

The module only loads in the QEMU guest, so a-d (c and d on cgroup v2) come from
tests/vm/softlimit.sh (`make softlimit-vm`, its output given with --guest). This host has
cgroup v1 and no module: the v1 fallback cases run here. RSS is the sum of the resident pages of
the container's processes (cgroup.procs -> /proc/PID/statm), sampled every 20 ms: the same sum
the kernel monitor compares with the limits. Writes benches/results/softlimit.md, softlimit.svg
(the guest) and softlimit-v1.svg (this host).
"""
import argparse
import datetime
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (PLOT_MANIFEST, PLOT_TARGET, RESULTS, ROOTFS, BenchError, Supervisor, host_info, log,
                    md_table, require_root, run, write_report)

SOFT_MIB, HARD_MIB = 16, 48
WORKLOAD = ["/soft_trap", "2", "100", "200"]
SAMPLE_S = 0.02
MAX_S = 8.0
HOST_CASES = [
    ("a1", "hard limit only (cgroup v1 memory.limit_in_bytes)", ["--hard-mib", str(HARD_MIB)]),
    ("c1", "--soft-signal TERM + hard (cgroup v1 eventfd threshold)",
     ["--soft-mib", str(SOFT_MIB), "--hard-mib", str(HARD_MIB), "--soft-signal", "TERM"]),
    ("d1", "--soft-mib alone (v1 soft_limit_in_bytes: no throttling)",
     ["--soft-mib", str(SOFT_MIB), "--hard-mib", str(HARD_MIB)]),
]


def parse_time(s):
    """RFC 3339 with nanoseconds (the supervisor's event and start times) -> epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        raise BenchError(f"unreadable time {s!r}")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()


def parse_guest(path):
    cases, order = {}, []
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 3)
            if parts[0] != "SL" or len(parts) < 2:
                continue
            if parts[1] == "error":
                raise BenchError(f"guest: {line.strip()}")
            if len(parts) < 3:
                continue
            name, rest = parts[2], parts[3] if len(parts) > 3 else ""
            c = cases.setdefault(name, {"samples": [], "logs": [], "inspect": None, "state": "", "label": name})
            if name not in order:
                order.append(name)
            if parts[1] == "case":
                c["label"] = rest
            elif parts[1] == "sample":
                t, rss, cur, n = rest.split()
                c["samples"].append((int(t) / 1000, int(rss), int(cur), int(n)))
            elif parts[1] == "inspect":
                try:
                    c["inspect"] = json.loads(rest)
                except json.JSONDecodeError:
                    c["inspect"] = None
            elif parts[1] == "log":
                c["logs"].append(rest)
            elif parts[1] == "state":
                c["state"] = ps_state(rest)
    if not cases:
        raise BenchError(f"{path}: no SL lines (did the guest run tests/vm/softlimit.sh?)")
    return [dict(cases[n], name=n) for n in order]


def cgroup_rss(d):
    """(sum of resident KiB, memory usage KiB, processes) of cgroup dir d, or None once empty."""
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return None
    total = n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
                n += 1
        except (OSError, IndexError, ValueError):
            pass
    if n == 0:
        return None
    cur = -1
    for usage in ("memory.current", "memory.usage_in_bytes"):
        try:
            with open(os.path.join(d, usage)) as f:
                cur = int(f.read()) // 1024
                break
        except OSError:
            pass
    return total, cur, n


def host_case(sup, name, label, flags):
    """One curve on this host (cgroup v1, no module): start, sample until the group empties."""
    cg = f"/sys/fs/cgroup/memory/engine/{name}"
    sup.engine("start", name, ROOTFS, *WORKLOAD, *flags)
    c = {"name": name, "label": label, "samples": [], "logs": [], "state": ""}
    deadline = time.monotonic() + MAX_S
    while time.monotonic() < deadline:
        s = cgroup_rss(cg)
        if s is None:
            if c["samples"]:
                break
        else:
            c["samples"].append((time.time(), *s))
        time.sleep(SAMPLE_S)
    if "running" in state_of(sup, name):
        sup.engine("stop", name, check=False)
    for _ in range(100):
        if "running" not in state_of(sup, name):
            break
        time.sleep(0.1)
    c["inspect"] = json.loads(sup.engine("inspect", name).stdout)
    logs = sup.engine("logs", name, check=False).stdout
    c["logs"] = [l for l in logs.splitlines() if "checkpoint" in l or "failed" in l]
    c["state"] = state_of(sup, name)
    sup.engine("rm", name, check=False)
    return c


def ps_state(rest):
    """The STATE column of an `engine ps -a` line without its name (it holds spaces: "exited (0)
    after soft-limit signal"); PID, STARTED and EXIT follow it."""
    m = re.match(r"\s*(.*?)\s+(?:-|\d+)\s+\d{4}-\d\d-\d\d", rest)
    return m.group(1) if m else rest.strip()


def state_of(sup, name):
    for line in sup.engine("ps", "-a", check=False).stdout.splitlines():
        f = line.split(None, 1)
        if f and f[0] == name:
            return ps_state(f[1]) if len(f) > 1 else ""
    return ""


def analyse(c):
    """Times relative to the container's start; the signal and kill moments from its events."""
    rec = c["inspect"][0] if isinstance(c["inspect"], list) else c["inspect"] or {}
    samples = c["samples"]
    if not samples:
        raise BenchError(f"case {c['name']}: no RSS samples")
    t0 = parse_time(rec["started_at"]) if rec.get("started_at") else samples[0][0]
    events = []
    for e in rec.get("events", []):
        when, what = e.split(" ", 1)
        events.append((parse_time(when) - t0, what))
    pts = [(t - t0, rss / 1024) for t, rss, _cur, _n in samples]

    def rss_at(t):
        before = [p for p in pts if p[0] <= t]
        return (before[-1] if before else pts[0])[1]

    sig = next(((t, w) for t, w in events if "soft-limit signal" in w), None)
    sig_rss = re.search(r"rss (\d+) KiB", sig[1]) if sig else None
    kill = next(((t, w) for t, w in events if "hard limit" in w), None)
    state = c["state"]
    checkpoint = next((l for l in c["logs"] if "checkpoint" in l), None)
    cp_ms = re.search(r"at t=(\d+) ms", checkpoint or "")
    r = {
        "name": c["name"], "label": c["label"], "points": pts, "state": state,
        "enforcement": rec.get("memory_enforcement") or "-",
        "signal_t": sig[0] if sig else None, "signal_rss": rss_at(sig[0]) if sig else None,
        "signal_event_rss": int(sig_rss.group(1)) / 1024 if sig_rss else None,
        "checkpoint_t": int(cp_ms.group(1)) / 1000 if cp_ms else None,
        "end_t": pts[-1][0], "peak": max(p[1] for p in pts),
        "kill_t": kill[0] if kill else (pts[-1][0] if "killed" in state else None),
        "soft_t": next((t for t, w in events if "soft limit exceeded" in w), None),
    }
    return r


def plot_lines(svg, title, results):
    binary = os.path.join(PLOT_TARGET, "release/engine-bench-plot")
    run(["cargo", "build", "--quiet", "--release", "--manifest-path", PLOT_MANIFEST,
         "--target-dir", PLOT_TARGET], stdout=None, stderr=None)
    rows = [f"hline\tsoft {SOFT_MIB} MiB\t{SOFT_MIB}", f"hline\thard {HARD_MIB} MiB\t{HARD_MIB}"]
    for r in results:
        series = f"{r['name']}: {r['label']}"
        rows += [f"point\t{series}\t{t:.3f}\t{m:.2f}" for t, m in r["points"]]
        if r["signal_t"] is not None:
            rows.append(f"mark\t{series}\t{r['signal_t']:.3f}\t{r['signal_rss']:.2f}\tsignal")
        if r["kill_t"] is not None:
            rows.append(f"mark\t{series}\t{r['kill_t']:.3f}\t{r['points'][-1][1]:.2f}\tkill")
        elif "exited" in r["state"]:
            rows.append(f"mark\t{series}\t{r['end_t']:.3f}\t{r['points'][-1][1]:.2f}\texit")
    run([binary, "--lines", svg, title, "time since start (s)", "RSS of the container (MiB)"],
        input="\n".join(rows) + "\n")


def table(results):
    def s(x, unit=" s", d=2):
        return "-" if x is None else f"{x:.{d}f}{unit}"
    rows = [[f"{r['name']}: {r['label']}", r["enforcement"], s(r["soft_t"]), s(r["signal_t"]),
             s(r["signal_event_rss"], " MiB", 1), s(r["checkpoint_t"]), r["state"] or "-", s(r["end_t"]),
             s(r["peak"], " MiB", 1)] for r in results]
    return md_table(["case", "enforced by", "soft crossing event", "signal sent", "RSS at signal (event)",
                     "checkpoint (soft_trap's clock)", "end state", "last sample", "peak RSS"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guest", help="output of `make softlimit-vm` (build/vm/softlimit.out)")
    ap.add_argument("--no-host", action="store_true", help="skip the cgroup v1 runs on this host")
    args = ap.parse_args()
    require_root()
    out = [f"# Soft limit: RSS over time of soft_trap (signal, checkpoint, exit 0)\n",
           f"Produced by `make softlimit` (part of `make experiments`): `make softlimit-vm` runs "
           f"tests/vm/softlimit.sh in the QEMU guest (TCG), then `python3 benches/softlimit.py --guest "
           f"build/vm/softlimit.out` parses it and runs the cgroup v1 cases on this host.\n",
           f"Workload: `soft_trap 2 100 200` (2 MiB more, touched, every 100 ms), soft {SOFT_MIB} MiB, hard "
           f"{HARD_MIB} MiB. RSS: sum of the resident pages (statm) of the processes in the container's "
           f"cgroup (init + command), sampled every 20 ms; t = 0 is the container's `started_at`. "
           f"The signal moment is the supervisor's \"soft-limit signal sent\" event (when it learnt of "
           f"it: the module sends the signal itself, just before); the kill moment is the hard-limit "
           f"event, or the last sample of a container that ended killed.\n"]
    failed = False
    if args.guest:
        try:
            guest = [analyse(c) for c in parse_guest(args.guest)]
            svg = os.path.join(RESULTS, "softlimit.svg")
            plot_lines(svg, f"soft_trap, soft {SOFT_MIB} / hard {HARD_MIB} MiB (QEMU guest, cgroup v2)", guest)
            out += ["## QEMU guest (Debian cloud kernel, cgroup v2, monitor.ko for a and b)\n",
                    "![soft limit](softlimit.svg)\n", table(guest) + "\n"]
        except (BenchError, OSError) as e:
            out.append(f"## QEMU guest\n\nNot measured: {e}\n")
            failed = True
    if not args.no_host:
        try:
            host = []
            with Supervisor() as sup:
                for name, label, flags in HOST_CASES:
                    log(f"softlimit: host case {name}: {label}")
                    host.append(analyse(host_case(sup, f"sl{os.getpid()}-{name}", label, flags)))
            for r in host:
                r["name"] = r["name"].split("-", 1)[1]
            plot_lines(os.path.join(RESULTS, "softlimit-v1.svg"),
                       f"soft_trap, soft {SOFT_MIB} / hard {HARD_MIB} MiB (this host, cgroup v1, no module)", host)
            out += [f"## This host: cgroup v1, no kernel module\n\n{host_info()}.\n",
                    "![soft limit, cgroup v1](softlimit-v1.svg)\n", table(host) + "\n",
                    "On cgroup v1, `memory.soft_limit_in_bytes` only steers reclaim under global memory "
                    "pressure: it does not throttle, so d1 grows like a1 until the hard limit kills it. "
                    "The v2 `memory.high` (guest case d) holds the group near soft by reclaim and "
                    "allocation stalls instead.\n"]
        except (BenchError, OSError) as e:
            out.append(f"## This host (cgroup v1)\n\nNot measured: {e}\n")
            failed = True
    path = write_report("softlimit.md", "\n".join(out))
    log(f"softlimit: wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

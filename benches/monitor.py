#!/usr/bin/env python3
"""`make bench-monitor`'s report: turns the guest's output (build/vm/bench.out, from
tests/vm/bench.sh and tests/vm/bench-latency.sh) into benches/results/monitor.md.

  python3 benches/monitor.py build/vm/bench.out

Three figures, all measured inside the QEMU guest: the hard-limit detection delay
(cm_test hog), the idle cost of the periodic check for 1,000 registered containers
(cm_test idlecost / idlecost-sig) and the --soft-signal latency from the container's RSS
crossing soft to the signal's arrival in the command (soft_trap latency, through engine),
kernel monitor vs the cgroup v2 fallback. Exits 1 if the output holds none of them.
"""
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import md_table, write_report


def kv(line):
    return dict(re.findall(r"([\w/]+)=(\S+)", line))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: monitor.py BENCH_OUT")
    with open(sys.argv[1], errors="replace") as f:
        lines = [l.rstrip("\n") for l in f]
    head = [l for l in lines if l.startswith(("clocksource:", "params:"))]
    hog = [l for l in lines if l.startswith("hog: workload=")]
    hog_summary = [l for l in lines if re.match(r"hog: \d+ runs", l)]
    idle = [kv(l) | {"line": l} for l in lines if l.startswith("idlecost: containers=")]
    idle_verdict = [l for l in lines if "of a CPU:" in l]
    lat = [kv(l) for l in lines if l.startswith("latency mechanism=")]
    if not (hog or idle or lat):
        sys.exit(f"monitor.py: {sys.argv[1]} holds no bench lines (did the guest run?)")

    out = ["# Kernel monitor: detection delay, idle cost, soft-signal latency\n",
           "Measured in the QEMU guest (TCG, 2 vCPUs, Debian cloud kernel) by `make bench-monitor`: "
           "tests/vm/bench.sh, then tests/vm/bench-latency.sh, booted with tests/vm/boot.sh; this "
           f"report from `python3 benches/monitor.py build/vm/bench.out` ({time.strftime('%Y-%m-%d %H:%M %Z')}). "
           "Under TCG every figure is slower than on real hardware: read them as upper bounds.\n",
           "\n".join(f"- {l}" for l in head) + "\n"]

    out.append("## --soft-signal latency: crossing soft -> signal delivered\n")
    out.append("`soft_trap latency SOFT_KIB STEP_KIB PAUSE_MS MAX_MIB` in an engine container "
               "(`--soft-mib 32 --hard-mib 256 --soft-signal TERM`) grows by STEP_KIB every PAUSE_MS "
               "and after each step adds up the RSS of every process in its PID namespace (init + "
               "itself: the sum the module compares with soft); the crossing is the first step where "
               "the sum exceeds soft, the delivery is CLOCK_MONOTONIC read in its SIGTERM handler, "
               "same process, same clock. The resolution is one step (its time is in the rate). "
               "Rates: full-speed = 64 KiB steps without pause, steady = 1 MiB every 10 ms, "
               "slow = 2 MiB every 100 ms.\n")
    groups = {}
    for l in lat:
        groups.setdefault((l.get("mechanism", "?"), l.get("rate", "?")), []).append(l)
    rows = []
    for (mech, rate), ls in groups.items():
        d = [float(l["delay_ms"]) for l in ls if "delay_ms" in l]
        alloc_rates = sorted(float(l["alloc_mib_s"]) for l in ls if "alloc_mib_s" in l)
        rows.append([
            "kernel monitor" if mech == "module" else "cgroup v2 fallback (memory.events)",
            rate, f"{len(d)}/{len(ls)}",
            f"{statistics.median(alloc_rates):.0f} MiB/s" if alloc_rates else "-",
            f"{statistics.median(d):.1f}" if d else "-",
            f"{min(d):.1f}" if d else "-", f"{max(d):.1f}" if d else "-"])
    out.append(md_table(["mechanism", "allocation", "runs signalled", "measured rate",
                         "median ms", "min ms", "max ms"], rows) + "\n" if rows else "Not measured.\n")
    out.append("The cgroup v2 fallback is told by `memory.events` (`high`), i.e. when "
               "`memory.current` passes `memory.high` = soft; `memory.current` also counts page "
               "tables, kernel stacks and cache, so it passes soft before the RSS sum does: a "
               "fallback latency measured from the RSS crossing can be small or negative, and "
               "`memory.high` throttles the allocation meanwhile. The fallback's latency is far longer than the "
               "module's all the same: the likely cause is that throttling itself (the over-high "
               "penalty sleep on return to user space, which only a fatal signal cuts short) holds "
               "back the delivery of a caught SIGTERM, on top of the supervisor's poll wake-up.\n")

    out.append("## Idle cost of the periodic check\n")
    out.append("`cm_test idlecost N SECONDS HARD_MIB`: N sleeping containers registered with the "
               "module, the module's own accounting (CM_IOC_STATS total_ns) over SECONDS; "
               "`idlecost-sig` registers each with soft = hard/2 and SIGTERM as soft-limit signal "
               "(the ABI 2 path). cpu = check time / wall time, in % of one CPU.\n")
    rows = [[i.get("containers"), i.get("soft_signal", "none").replace("Terminated", "SIGTERM"), i.get("hard"), i.get("checks/s", "-"),
             i.get("ns/check"), i.get("max_run_us"), i.get("cpu")] for i in idle]
    out.append(md_table(["containers", "soft signal", "hard MiB", "checks/s", "ns/check",
                         "longest run µs", "CPU"], rows) + "\n" if rows else "Not measured.\n")
    out += [f"- {l}" for l in idle_verdict]
    out.append("\nUnder TCG each check is emulated (several times slower than on hardware), so "
               "these percentages overstate the cost; the gate the issue asks for (under 1 % of a "
               "CPU for 1,000 containers) is judged on the line above as measured, not adjusted.")
    out.append("")

    out.append("## Hard-limit detection delay (cm_test hog)\n")
    out.append("Full-speed allocation against a 256 MiB hard limit; delay = overshoot / allocation "
               "rate (cm_test.c).\n")
    out += ["```"] + hog + hog_summary + ["```", ""]
    path = write_report("monitor.md", "\n".join(out))
    print(f"monitor.py: wrote {path}")


if __name__ == "__main__":
    main()

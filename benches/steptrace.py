#!/usr/bin/env python3
"""Median time of each step in an ENGINE_STEP_TRACE file (see src/container/trace.rs).

Each line is `NAME +MICROSECONDS STEP [PID]`; a run starts at its `request parsed` line.
Usage: ENGINE_STEP_TRACE=/tmp/steps engine supervisor ...; (runs); python3 benches/steptrace.py /tmp/steps
"""
import collections
import statistics
import sys


def main(path):
    runs, current = [], None
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 4 or not parts[1].startswith("+"):
                continue
            us, step = int(parts[1][1:]), " ".join(parts[2:-1])
            if step == "request parsed":
                current = []
                runs.append(current)
            if current is not None:
                current.append((step, us))
    times = collections.defaultdict(list)
    for run in runs:
        for step, us in run:
            times[step].append(us)
    for step in sorted(times, key=lambda s: statistics.median(times[s])):
        print(f"{statistics.median(times[step]):8.0f} µs  {step}  (n={len(times[step])})")


if __name__ == "__main__":
    main(sys.argv[1])

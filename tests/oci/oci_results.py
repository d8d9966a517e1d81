#!/usr/bin/env python3
"""The OCI conformance suite's results: parse run.sh's output, check it against the known failures,
and build the per-test table of several runtimes.

  oci_results.py parse LOG OUT --runtime PATH --duration S   run.sh's output -> a result file
  oci_results.py check RESULT KNOWN                          exit 1 on a failure not in KNOWN
  oci_results.py table DIR OUT.md                            DIR/*.txt side by side (engine first)

A result file (benches/results/oci-validation/NAME.txt) is plain text:
  # runtime PATH / version / date / duration_s     header lines
  test NAME OK NOTOK SKIPPED EXIT                    one per test of the suite
  fail NAME NUMBER DESCRIPTION                       one per failing TAP point
A test that crashed or timed out without a TAP line is `fail NAME - (no TAP line: exit RC)`, as
run.sh counts it as one failed point. run.sh shows at most 200 TAP lines of a test: failing points
past those are `fail NAME ? (N not-ok points past run.sh's first 200 lines)`.

A known-failures file has one entry a line, `TEST | DESCRIPTION | REASON` (# comments); an entry
covers every failing point of TEST whose description is DESCRIPTION (the TAP number is not part
of it: numbers move when a test gains a point). REASON starts with `host:` (this host cannot do it),
`gap:` (the runtime does not do it yet) or `suite:` (the suite or run.sh miscounts it).
"""
import argparse
import datetime
import os
import re
import sys

HEADER = re.compile(r"^# ---- (\S+) \(exit (\d+)\)$")
TABLE = re.compile(r"^(\S+)\s+(\d+) ok\s+(\d+) not ok(\s+\(skipped: plan 1\.\.0\))?$")
TOTALS = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$")
NOT_OK = re.compile(r"^not ok (\d+)\s*(?:- )?(.*)$")


def parse_log(text):
    """{test: {ok, bad, skip, exit, fails: [(num, desc)]}} and the totals line, from run.sh's output."""
    tests, shown, current, totals = {}, {}, None, None
    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            current = m.group(1)
            shown[current] = {"exit": int(m.group(2)), "fails": []}
            continue
        m = NOT_OK.match(line)
        if m and current:
            shown[current]["fails"].append((m.group(1), m.group(2).strip()))
            continue
        m = TABLE.match(line)
        if m and m.group(1) in shown:
            t = m.group(1)
            tests[t] = {"ok": int(m.group(2)), "bad": int(m.group(3)), "skip": 1 if m.group(4) else 0,
                        "exit": shown[t]["exit"], "fails": list(shown[t]["fails"])}
            continue
        m = TOTALS.match(line)
        if m:
            totals = tuple(int(x) for x in m.groups())
    for t, r in tests.items():
        missing = r["bad"] - len(r["fails"])
        if missing > 0 and not r["fails"] and r["ok"] == 0:
            r["fails"].append(("-", f"(no TAP line: exit {r['exit']})"))
        elif missing > 0 and r["exit"] >= 124:
            r["fails"].append(("-", f"(timed out or killed: exit {r['exit']})"))
        elif missing > 0:
            r["fails"].append(("?", f"({missing} not-ok points past run.sh's first 200 lines)"))
    return tests, totals


def write_result(path, tests, totals, runtime, version, duration):
    with open(path, "w") as f:
        f.write(f"# runtime {runtime}\n# version {version}\n")
        f.write(f"# date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n")
        f.write(f"# duration_s {duration}\n")
        if totals:
            f.write(f"# totals {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped\n")
        for t in sorted(tests):
            r = tests[t]
            f.write(f"test {t} {r['ok']} {r['bad']} {r['skip']} {r['exit']}\n")
        for t in sorted(tests):
            for num, desc in tests[t]["fails"]:
                f.write(f"fail {t} {num} {desc}\n")


def read_result(path):
    meta, tests = {}, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# "):
                k, _, v = line[2:].partition(" ")
                meta[k] = v
            elif line.startswith("test "):
                _, t, ok, bad, skip, rc = line.split(" ")
                tests[t] = {"ok": int(ok), "bad": int(bad), "skip": int(skip), "exit": int(rc), "fails": []}
            elif line.startswith("fail "):
                _, t, num, desc = (line.split(" ", 3) + [""])[:4]
                tests.setdefault(t, {"ok": 0, "bad": 0, "skip": 0, "exit": 0, "fails": []})["fails"].append((num, desc))
    return meta, tests


def read_known(path):
    known = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(" | ")]
            if len(parts) != 3 or not re.match(r"^(host|gap|suite):", parts[2]):
                sys.exit(f"{path}:{n}: want `TEST | DESCRIPTION | host:/gap:/suite: REASON`, got: {line}")
            known[(parts[0], parts[1])] = parts[2]
    return known


def cmd_parse(a):
    with open(a.log, errors="replace") as f:
        tests, totals = parse_log(f.read())
    if not tests:
        sys.exit(f"oci_results: no test results in {a.log}")
    write_result(a.out, tests, totals, a.runtime, a.version, a.duration)
    if totals:
        print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")


def cmd_check(a):
    _, tests = read_result(a.result)
    known = read_known(a.known)
    seen, new = set(), []
    for t in sorted(tests):
        for num, desc in tests[t]["fails"]:
            if (t, desc) in known:
                seen.add((t, desc))
            else:
                new.append(f"{t} #{num}: {desc}")
    fixed = sorted(k for k in known if k not in seen)
    for t, desc in fixed:
        print(f"now passes (remove it from {os.path.basename(a.known)}): {t} | {desc}")
    for line in new:
        print(f"REGRESSION (not in {os.path.basename(a.known)}): {line}")
    if new:
        print(f"oci-conformance: {len(new)} failing point(s) not in the known failures")
        sys.exit(1)
    print(f"oci-conformance: no failure beyond the {len(known)} known ({len(fixed)} of them now pass)")


def cmd_table(a):
    files = sorted(f for f in os.listdir(a.dir) if f.endswith(".txt"))
    order = {"engine": 0, "crun": 1, "runc": 2}
    names = sorted(set(f[:-4] for f in files) | {"engine", "crun", "runc"}, key=lambda n: (order.get(n, 9), n))
    # A runtime without a result file yet (engine before its first run) keeps its column, empty.
    results = {n: read_result(os.path.join(a.dir, n + ".txt")) if n + ".txt" in files else
               ({"version": "not run yet (make oci-conformance)"}, {}) for n in names}
    all_tests = sorted(set(t for _, tests in results.values() for t in tests))

    def cell(n, t):
        r = results[n][1].get(t)
        if r is None:
            return "–"
        if r["skip"]:
            return "skipped"
        return f"{r['ok']} / {r['bad']}" if r["bad"] else f"{r['ok']}"

    out = ["# OCI runtime conformance (opencontainers/runtime-tools 260e151)", "",
           "`make oci-conformance` (engine) or `bash tests/oci/conformance.sh RUNTIME` writes "
           "`benches/results/oci-validation/NAME.txt`; `make oci-validation-table` rebuilds this page "
           "from those files. A cell is `passed` or `passed / failed` TAP points of that test "
           "(a test that crashed or timed out counts as one failed point, as in run.sh).", ""]
    out.append("| runtime | version | passed | failed | skipped | run time | date |")
    out.append("|---|---|---:|---:|---:|---:|---|")
    for n in names:
        meta, tests = results[n]
        ok = sum(r["ok"] for r in tests.values())
        bad = sum(r["bad"] for r in tests.values())
        skip = sum(r["skip"] for r in tests.values())
        dur = meta.get("duration_s", "")
        dur = f"{float(dur):.0f} s" if dur else ""
        if not tests:
            out.append(f"| {n} | {meta['version']} | – | – | – | | |")
            continue
        out.append(f"| {n} | {meta.get('version', '')} | {ok} | {bad} | {skip} | {dur} | {meta.get('date', '')[:10]} |")
    out += ["", "| test | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for t in all_tests:
        out.append(f"| {t} | " + " | ".join(cell(n, t) for n in names) + " |")
    out.append("| **total** | " + " | ".join(
        f"**{sum(r['ok'] for r in results[n][1].values())} / {sum(r['bad'] for r in results[n][1].values())}**"
        if results[n][1] else "–" for n in names) + " |")
    out += ["", "## Failing points", ""]
    for n in names:
        out.append(f"### {n}")
        out.append("")
        fails = [(t, num, d) for t in sorted(results[n][1]) for num, d in results[n][1][t]["fails"]]
        if not results[n][1]:
            out += ["- not run yet", ""]
            continue
        out += [f"- `{t}` #{num}: {d}" for t, num, d in fails] or ["- none"]
        out.append("")
    if a.known and os.path.exists(a.known):
        out += ["## Failures engine may have (tests/oci/known-failures.txt)", "",
                "`make oci-conformance` fails on any failing point not listed here.", "",
                "| test | point | reason |", "|---|---|---|"]
        out += [f"| {t} | {d.replace('|', '/')} | {r.replace('|', '/')} |" for (t, d), r in read_known(a.known).items()]
        out.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {a.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("parse")
    s.add_argument("log"), s.add_argument("out")
    s.add_argument("--runtime", required=True), s.add_argument("--version", default="")
    s.add_argument("--duration", default="")
    s = sub.add_parser("check")
    s.add_argument("result"), s.add_argument("known")
    s = sub.add_parser("table")
    s.add_argument("dir"), s.add_argument("out")
    s.add_argument("--known", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "known-failures.txt"))
    a = p.parse_args()
    {"parse": cmd_parse, "check": cmd_check, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak: many start/stop cycles with random SIGKILLs of the supervisor, then a leak audit.

Each cycle starts a container (`sleep`) and removes it (`rm -f`); about one cycle in
--kill-every has the supervisor SIGKILLed at a random moment of the start or of the removal, and
restarted. At the end, after a stretch of cycles with no kill (to compare the supervisor's fds),
it checks that nothing leaked: processes, mounts, cgroups, veths, files under the root, fds of the
supervisor, and that every record is true. Writes benches/results/soak.md; exits 1 on a leak.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BUILD, ENGINE, ROOTFS, host_info, log, require_root, write_report  # noqa: E402


def stat_of(pid):
    """(state, ppid, start ticks) of a host pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), fields[19]


def alive(pid, ticks):
    s = stat_of(pid)
    return s is not None and s[0] not in "ZX" and s[2] == ticks


def children_of(parent):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            s = stat_of(int(e))
            if s and s[1] == parent and s[0] not in "ZX":
                out.append((int(e), s[2]))
    return out


def cmdline_pids(needle):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != os.getpid():
            try:
                with open(f"/proc/{e}/cmdline", "rb") as f:
                    if needle in f.read().replace(b"\0", b" ").decode(errors="replace"):
                        out.append(int(e))
            except OSError:
                pass
    return out


class Soak:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="engine-soak-", dir=BUILD if os.path.isdir(BUILD) else None)
        self.root = os.path.join(self.dir, "root")
        self.socket = os.path.join(self.dir, "engine.sock")
        tag = os.getpid() % 100000
        self.parent, self.bridge = f"engine-soak-{tag}", f"ensoak{tag}"
        self.secs = str(200000 + tag)
        self.errlog = open(os.path.join(self.dir, "supervisor.log"), "w+")
        self.proc = None
        self.kills = 0
        self.inits = []
        self.failures = {}

    def spawn(self):
        self.proc = subprocess.Popen(
            [ENGINE, "supervisor", "--root", self.root, "--socket", self.socket, "--cgroup-parent", self.parent,
             "--bridge", self.bridge, "--subnet", "10.203.0.0/24"],
            stdin=subprocess.DEVNULL, stdout=self.errlog, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if subprocess.run(self.cli("ps"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.errlog.seek(0)
                raise RuntimeError(f"supervisor did not come up: {self.errlog.read()[-500:]}")
            time.sleep(0.02)

    def kill(self):
        # Frozen first, so the inits it has cloned can all be listed before it dies.
        pid = self.proc.pid
        os.kill(pid, signal.SIGSTOP)
        self.inits += children_of(pid)
        os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def cli(self, *args):
        return [ENGINE, "--socket", self.socket, *args]

    def engine(self, *args):
        return subprocess.run(self.cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)

    def note(self, what, detail):
        self.failures.setdefault(what, detail)

    def cycle(self, i, kill):
        name = f"s{i}"
        start = self.cli("start", name, ROOTFS, "sleep", self.secs)
        remove = self.cli("rm", "-f", name)
        if kill:
            victim = random.choice([start, remove])
            if victim is remove:
                self.engine(*start[3:])
            p = subprocess.Popen(victim, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(random.uniform(0, 0.25))
            self.kill()
            p.wait()
            self.spawn()
            # What the crash left is now `lost` (or nothing): removing it must work.
            r = self.engine("rm", "-f", name)
            if r.returncode != 0 and "no such container" not in r.stderr:
                self.note("rm after a crash", r.stderr.strip())
            return
        r = self.engine(*start[3:])
        if r.returncode != 0:
            self.note("start", r.stderr.strip())
        r = self.engine("rm", "-f", name)
        if r.returncode != 0:
            self.note("rm -f", r.stderr.strip())

    def fds(self):
        """The supervisor's open fds once its threads have made what they keep ready (spare
        overlays, cgroups made ahead: each holds fds), i.e. once the count held for 0.5 s."""
        count = lambda: len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        last, since, deadline = count(), time.monotonic(), time.monotonic() + 10
        while time.monotonic() - since < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
            now = count()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def audit(self, fd_before, fd_after):
        """What the live supervisor shows (records, ps, files, fds), then what is left once it has
        stopped (SIGTERM): processes, cgroups (its groups made ahead are its own while it runs),
        veths (the kernel deletes a pair with its namespace, in the background: given 5 s), mounts."""
        checks = []

        def check(what, leaked):
            checks.append((what, "ok" if not leaked else f"LEAK: {leaked}"))

        records = {}
        cdir = os.path.join(self.root, "containers")
        for e in os.listdir(cdir):
            if e.endswith(".json") and not e.startswith("."):
                with open(os.path.join(cdir, e)) as f:
                    records[e[:-5]] = json.load(f)
        untrue = [n for n, r in records.items() if r["state"]["status"] in ("running", "created")
                  and not (r.get("pid") and alive(r["pid"], str(r.get("pid_start_ticks"))))]
        check("records true (none running or created without its process)", untrue)
        listed = self.engine("ps", "-a").stdout.split("\n")[1:]
        listed = {line.split()[0] for line in listed if line.strip()}
        check("records on disk match ps -a", sorted(set(records) ^ listed))
        files = []
        for sub, suffix in (("logs", ".log"), ("containers", ".etc"), ("overlay", "")):
            d = os.path.join(self.root, sub)
            for e in os.listdir(d) if os.path.isdir(d) else []:
                if e.endswith(".tmp") or (e.endswith(suffix) and not e.startswith(".")
                                          and e[:len(e) - len(suffix)] not in records):
                    files.append(f"{sub}/{e}")
        check("files without a record", files)
        check(f"supervisor fds over {self.args.fd_cycles} cycles without kills ({fd_before} before)",
              [] if fd_after <= fd_before else [f"{fd_after} after"])

        self.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (any(alive(p, t) for p, t in self.inits) or cmdline_pids(f"sleep {self.secs}")):
            time.sleep(0.1)
        check("container inits of killed supervisors", [p for p, t in self.inits if alive(p, t)])
        check("container commands", cmdline_pids(f"sleep {self.secs}"))
        groups = []
        for ctrl in os.listdir("/sys/fs/cgroup") + [""]:
            d = os.path.join("/sys/fs/cgroup", ctrl, self.parent)
            if os.path.isdir(d):
                groups += [os.path.join(d, e) for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))]
        check("cgroups (after the supervisor stopped)", sorted(set(groups)))

        def veths():
            found = []
            for link in os.listdir("/sys/class/net"):
                try:
                    with open(f"/sys/class/net/{link}/ifalias") as f:
                        if f.read().startswith(f"engine:{self.bridge}:"):
                            found.append(link)
                except OSError:
                    pass
            return found

        deadline = time.monotonic() + 5
        while veths() and time.monotonic() < deadline:
            time.sleep(0.1)
        check("veths (after the supervisor stopped)", veths())
        with open("/proc/self/mountinfo") as f:
            check("mounts", [line.split()[4] for line in f if self.dir in line])
        return checks

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        subprocess.run(["ip", "link", "del", self.bridge], stderr=subprocess.DEVNULL)
        for ctrl in os.listdir("/sys/fs/cgroup") + [""]:
            try:
                os.rmdir(os.path.join("/sys/fs/cgroup", ctrl, self.parent))
            except OSError:
                pass
        for lock in (f"cgroup-{self.parent}.lock", f"bridge-{self.bridge}.lock"):
            try:
                os.unlink(os.path.join("/run/engine/locks", lock))
            except OSError:
                pass
        self.errlog.close()
        if os.environ.get("SOAK_KEEP"):
            log(f"soak: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=int(os.environ.get("SOAK_CYCLES", 10000)))
    ap.add_argument("--kill-every", type=int, default=20, help="one cycle in N kills the supervisor")
    ap.add_argument("--fd-cycles", type=int, default=50, help="cycles without kills to compare fds over")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    require_root()
    seed = args.seed if args.seed is not None else int(time.time())
    random.seed(seed)
    soak = Soak(args)
    t0 = time.monotonic()
    try:
        soak.spawn()
        for i in range(args.cycles):
            soak.cycle(i, random.randrange(args.kill_every) == 0)
            if (i + 1) % 500 == 0:
                log(f"soak: {i + 1}/{args.cycles} cycles, {soak.kills} kills, {time.monotonic() - t0:.0f} s")
        elapsed = time.monotonic() - t0
        soak.cycle(args.cycles, False)
        fd_before = soak.fds()
        for i in range(args.fd_cycles):
            soak.cycle(args.cycles + 1 + i, False)
        fd_after = soak.fds()
        checks = soak.audit(fd_before, fd_after)
    finally:
        soak.cleanup()
    rows = "\n".join(f"| {what} | {result} |" for what, result in checks)
    errors = "\n".join(f"- {what}: {detail}" for what, detail in soak.failures.items()) or "none"
    leaked = any(r != "ok" for _, r in checks)
    report = f"""# Soak: start/stop with random supervisor SIGKILLs

Produced by `make soak` (`python3 benches/soak.py --cycles {args.cycles} --kill-every {args.kill_every} --seed {seed}`).
{host_info()}.

{args.cycles} cycles (`engine start sN rootfs sleep` then `engine rm -f sN`) in {elapsed:.0f} s
({elapsed / max(args.cycles, 1) * 1000:.0f} ms per cycle), {soak.kills} SIGKILLs of the supervisor at a random
moment (0-250 ms) of a start or of a removal, each followed by a restart and `rm -f` of the container
the crash left (`lost`). {len(soak.inits)} container inits were alive at the kills.

| check after the run | result |
|---|---|
{rows}

First error of each request kind (not leaks; a request cut by a kill is expected to fail): {errors}

Verdict: {"LEAKS FOUND" if leaked else "nothing leaked, every record true"}.
"""
    path = write_report("soak.md", report)
    log(f"soak: wrote {path}")
    print(report)
    sys.exit(1 if leaked else 0)


if __name__ == "__main__":
    main()

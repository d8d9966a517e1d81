#!/usr/bin/python3
"""A Kubernetes node's pod lifecycle through containerd's CRI plugin (gRPC, runtime.v1), the calls
a kubelet makes, each result asserted:

  cri_client.py SOCKET --handler NAME --image REF --logdir DIR

Version, RunPodSandbox, PodSandboxStatus, CreateContainer, StartContainer, ContainerStatus (running),
ExecSync (output, exit code; the pod's network and UTS namespaces joined, a pid namespace of the
container's own, its cgroup, resources and oom_score_adj), StopContainer (SIGTERM reaches the
container: its trap's exit code), ContainerStatus (exited), RemoveContainer, StopPodSandbox,
RemovePodSandbox. The requests carry what a kubelet with the cgroupfs driver sends: the pod's
cgroup parent (/oci-test-kubepods/burstable/pod<UID>, standing for /kubepods/...), pid namespace
CONTAINER (the v1.PodSpec default), the container's CPU and memory resources and oom_score_adj.
Like a kubelet it removes the pod's cgroup parent after RemovePodSandbox, and it checks that the
runtime removed each container's own cgroup. Exits 1 with one line `cri_client: STEP: reason` on
the first failure (and removes the pod). Runs with Debian's python3-grpcio; the messages of
cri.proto (beside this file) are encoded here by hand: no protoc, no generated code.
"""
import argparse
import os
import re
import subprocess
import sys
import time

import grpc

SERVICE = "/runtime.v1.RuntimeService/"


# --- protobuf wire format: varint (0) and length-delimited (2) fields are all CRI needs here ---

def _varint(n):
    n &= (1 << 64) - 1  # negative int64/int32 are ten-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc(*fields):
    """enc((num, value), ...): int -> varint, str/bytes -> length-delimited, list -> repeated."""
    out = bytearray()
    for num, value in fields:
        for v in (value if isinstance(value, list) else [value]):
            if v is None:
                continue
            if isinstance(v, bool) or isinstance(v, int):
                out += _varint(num << 3 | 0) + _varint(int(v))
            else:
                data = v.encode() if isinstance(v, str) else bytes(v)
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def dec(data):
    """{field number: [values]}; varints as int, length-delimited as bytes (decode nested with dec)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wire == 1:
            v, i = data[i:i + 8], i + 8
        elif wire == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(num, []).append(v)
    return fields


def _read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def one(fields, num, default=None):
    return fields.get(num, [default])[0]


def s(fields, num):
    return one(fields, num, b"").decode()


def signed32(n):
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >> 63 else n


class Fail(Exception):
    pass


class Cri:
    def __init__(self, sock, timeout):
        self.channel = grpc.insecure_channel("unix://" + sock)
        self.timeout = timeout

    def call(self, method, request):
        rpc = self.channel.unary_unary(SERVICE + method)  # no serializers: bytes in, bytes out
        try:
            return dec(rpc(request, timeout=self.timeout))
        except grpc.RpcError as e:
            raise Fail(f"{method} failed: {e.code().name}: {e.details()}") from None


# NamespaceMode: POD = 0, CONTAINER = 1 (NamespaceOption{network=1, pid=2, ipc=3}).
NS_CONTAINER = 1
# What the container asks for, as a kubelet sends a burstable pod's (LinuxContainerResources).
CPU_PERIOD, CPU_QUOTA, CPU_SHARES, MEMORY_LIMIT, OOM_SCORE_ADJ = 100000, 50000, 256, 64 << 20, 876
RUN_AS_USER = 1000


def pod_config(args, uid, cgroup_parent):
    # PodSandboxConfig{metadata{name, uid, namespace, attempt}, hostname, log_directory, labels,
    # linux{cgroup_parent, security_context{namespace_options{pid}}}}
    # privileged (6): the pod may hold a privileged container, as a kubelet says when one asks.
    linux = enc((1, cgroup_parent), (2, enc((1, enc((2, NS_CONTAINER))), (6, True))))
    return enc((1, enc((1, "oci-test-pod"), (2, uid), (3, "default"), (4, 0))),
               (2, "oci-test-pod"), (3, args.logdir), (6, enc((1, "app"), (2, "oci-test"))), (8, linux))


def cgroup_dirs(path):
    """The host directories of cgroup PATH: one per v1 hierarchy, or the unified one (v2)."""
    root = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return [os.path.join(root, path.lstrip("/"))]
    out = []
    for h in sorted(os.listdir(root)):
        base = os.path.join(root, h)
        # Co-mounted hierarchies appear under several names (cpu, cpuacct -> cpu,cpuacct): once each.
        if os.path.isdir(base) and not os.path.islink(base) and os.path.ismount(base):
            out.append(os.path.join(base, path.lstrip("/")))
    return out


def cgroup_file(path, v1, v2):
    """The content of a control file of cgroup PATH on the host (v1 name, else the v2 one)."""
    ctl, name = v1.split("/", 1)
    f = os.path.join("/sys/fs/cgroup", ctl, path.lstrip("/"), name)
    if os.path.exists(f):
        return read(f).strip()
    return read(os.path.join("/sys/fs/cgroup", path.lstrip("/"), v2)).strip()


def left_of(path):
    return [d for d in cgroup_dirs(path) if os.path.isdir(d)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("socket")
    p.add_argument("--handler", required=True, help="the CRI runtime handler (containerd runtime name)")
    p.add_argument("--image", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--uid", default=f"uid{os.getpid()}", help="the pod's UID (its cgroup: .../pod<UID>)")
    args = p.parse_args()
    cri = Cri(args.socket, args.timeout)
    step = "start"
    pod = ctr = None
    extra = []  # other containers of the pod, removed on failure
    vol = os.path.join(args.logdir, "vol")
    mounted = []  # the volume's mounts on the host, unmounted at the end
    uid = args.uid
    # A kubelet's pod cgroup under its QoS class (cgroupfs driver), made by the runtime on demand.
    cgroup_parent = f"/oci-test-kubepods/burstable/pod{uid}"
    t0 = time.monotonic()

    def say(msg):
        print(f"cri_client: {msg} ({time.monotonic() - t0:.2f} s)", file=sys.stderr)

    try:
        step = "Version"
        v = cri.call("Version", enc((1, "v1")))
        if s(v, 2) != "containerd" or s(v, 4) != "v1":
            raise Fail(f"runtime_name {s(v, 2)!r}, runtime_api_version {s(v, 4)!r}")
        say(f"Version: {s(v, 2)} {s(v, 3)} api {s(v, 4)}")

        step = "RunPodSandbox"
        sandbox = pod_config(args, uid, cgroup_parent)
        r = cri.call("RunPodSandbox", enc((1, sandbox), (2, args.handler)))
        pod = s(r, 1)
        if len(pod) != 64:
            raise Fail(f"pod_sandbox_id {pod!r}")
        say(f"RunPodSandbox: {pod[:12]}")

        step = "PodSandboxStatus"
        st = dec(one(cri.call("PodSandboxStatus", enc((1, pod))), 1, b""))
        if one(st, 3, 0) != 0:
            raise Fail(f"sandbox state {one(st, 3, 0)}, want SANDBOX_READY (0)")
        pod_ip = s(dec(one(st, 5, b"")), 1)
        if not pod_ip:
            raise Fail("the pod has no IP (CNI did not run in its network namespace)")
        say(f"PodSandboxStatus: ready, ip {pod_ip}")

        script = ('trap "echo got-term; exit 9" TERM; echo cri-started; '
                  'while :; do sleep 0.1; done')
        # A volume with mountPropagation: HostToContainer, Mount{container_path, host_path,
        # propagation=5: PROPAGATION_HOST_TO_CONTAINER = 1}: its source must be a shared mount
        # (a kubelet's /var/lib/kubelet is one on a systemd host; here a bind of its own).
        step = "a shared volume directory"
        os.makedirs(os.path.join(vol, "sub"), exist_ok=True)
        host(["mount", "--bind", vol, vol])
        mounted.append(vol)
        host(["mount", "--make-shared", vol])
        volume = enc((1, "/vol"), (2, vol), (5, 1))
        step = "CreateContainer"
        # LinuxContainerConfig{resources{cpu_period, cpu_quota, cpu_shares, memory_limit_in_bytes,
        # oom_score_adj}, security_context{namespace_options{pid}}}
        resources = enc((1, CPU_PERIOD), (2, CPU_QUOTA), (3, CPU_SHARES), (4, MEMORY_LIMIT), (5, OOM_SCORE_ADJ))
        # security_context{namespace_options{pid}=3, run_as_user=5, seccomp=15}: a non-root user and
        # the RuntimeDefault profile (an empty SecurityProfile: profile_type 0), containerd's default
        # seccomp allow-list with its argument conditions, as a kubelet with SeccompDefault sends it.
        security = enc((3, enc((2, NS_CONTAINER))), (5, enc((1, RUN_AS_USER))), (15, b""))
        linux = enc((1, resources), (2, security))
        config = enc((1, enc((1, "oci-test-c"), (2, 0))), (2, enc((1, args.image))),
                     (3, ["/bin/sh"]), (4, ["-c", script]), (5, "/tmp"),
                     (6, enc((1, "OCI_TEST"), (2, "cri-env"))), (7, [volume]), (11, "oci-test-c.log"), (15, linux))
        r = cri.call("CreateContainer", enc((1, pod), (2, config), (3, sandbox)))
        ctr = s(r, 1)
        if len(ctr) != 64:
            raise Fail(f"container_id {ctr!r}")
        state = container_state(cri, ctr)
        if state[0] != 0:
            raise Fail(f"state {state[0]} after create, want CONTAINER_CREATED (0)")
        say(f"CreateContainer: {ctr[:12]}")

        step = "StartContainer"
        cri.call("StartContainer", enc((1, ctr)))
        step = "ContainerStatus (running)"
        state = container_state(cri, ctr)
        if state[0] != 1:
            raise Fail(f"state {state[0]}, want CONTAINER_RUNNING (1)")
        say("StartContainer: running")

        step = "cgroup and resources (host side)"
        cg = f"{cgroup_parent}/{ctr}"
        want = {"memory.limit_in_bytes": (cgroup_file(cg, "memory/memory.limit_in_bytes", "memory.max"),
                                          str(MEMORY_LIMIT)),
                "cpu.shares": (cgroup_file(cg, "cpu/cpu.shares", "cpu.weight"),
                               str(CPU_SHARES) if not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
                               else str(1 + ((CPU_SHARES - 2) * 9999) // 262142)),
                "cpu.cfs_quota_us": (cgroup_file(cg, "cpu/cpu.cfs_quota_us", "cpu.max").split()[0],
                                     str(CPU_QUOTA))}
        for name, (got, expected) in want.items():
            if got != expected:
                raise Fail(f"{name} of {cg} is {got!r}, want {expected!r} (the container's resources)")
        say(f"resources written to {cg}")

        step = "a host mount after the start (mountPropagation: HostToContainer)"
        host(["mount", "-t", "tmpfs", "late", os.path.join(vol, "sub")])
        mounted.append(os.path.join(vol, "sub"))
        with open(os.path.join(vol, "sub", "late"), "w") as f:
            f.write("late-ok\n")

        step = "ExecSync"
        probe = ('echo "env=$OCI_TEST cwd=$(pwd)"; echo "host=$(hostname)"; '
                 'echo "pid1=$(tr "\\0" " " </proc/1/cmdline)"; '
                 'echo "oom1=$(cat /proc/1/oom_score_adj) oom=$(cat /proc/self/oom_score_adj)"; '
                 'echo "uid=$(id -u) $(grep -E "^(Seccomp|CapEff):" /proc/self/status | tr -s "\\t\\n" "  ")"; '
                 '{ grep -m1 ":memory:" /proc/self/cgroup || grep "^0::" /proc/self/cgroup; } | sed "s/^[^:]*:[^:]*:/memcg=/"; '
                 'echo "vol=$(cat /vol/sub/late)"; ip -4 addr show eth0; exit 4')
        r = cri.call("ExecSync", enc((1, ctr), (2, ["/bin/sh", "-c", probe]), (3, 20)))
        out, code = one(r, 1, b"").decode(errors="replace"), signed32(one(r, 3, 0))
        err = one(r, 2, b"").decode(errors="replace")
        if code != 4 or "env=cri-env cwd=/tmp" not in out:
            raise Fail(f"exit {code} (want 4), stdout {out!r}, stderr {err!r}")
        if pod_ip not in out:
            raise Fail(f"the pod IP {pod_ip} is not on the container's eth0: {out!r}")
        if "host=oci-test-pod" not in out:
            raise Fail(f"hostname is not the pod's (its UTS namespace): {out!r}")
        # pid namespace CONTAINER: pid 1 is the container's own process, not the pod's pause.
        if "pid1=/bin/sh -c trap" not in out:
            raise Fail(f"pid 1 is not the container's process (pid namespace CONTAINER): {out!r}")
        # The container's process; an exec's own score is the runtime's choice (runc and engine-oci
        # give it the process's, crun 1.8 leaves it at its own).
        if f"oom1={OOM_SCORE_ADJ} " not in out:
            raise Fail(f"oom_score_adj of the container's process is not {OOM_SCORE_ADJ}: {out!r}")
        # run_as_user for both (containerd copies the process to the exec), no capabilities left
        # for a non-root user, seccomp mode 2 (filter).
        want = f"uid={RUN_AS_USER} CapEff: 0000000000000000 Seccomp: 2"
        if want not in out:
            raise Fail(f"user, seccomp or capabilities: want {want!r} in {out!r}")
        if "vol=late-ok" not in out:
            raise Fail(f"a mount the host made under the volume after the start is not in the container "
                       f"(mountPropagation HostToContainer): {out!r}")
        m = re.search(r"^memcg=(\S+)$", out, re.M)
        if not m or not m.group(1).endswith(cg):
            raise Fail(f"the exec is not in the container's cgroup {cg}: {m and m.group(1)!r}")
        say("ExecSync: env, cwd, exit code; the pod's net and UTS namespaces, its own pid namespace, "
            "cgroup, oom_score_adj, user, seccomp; a host mount reached the HostToContainer volume")

        step = "a privileged container"
        # privileged (2): every host device in linux.devices (/dev/ptmx among them), all capabilities.
        linux = enc((2, enc((2, True), (3, enc((2, NS_CONTAINER))))))
        config = enc((1, enc((1, "oci-test-priv"), (2, 0))), (2, enc((1, args.image))),
                     (3, ["/bin/sleep"]), (4, ["1000"]), (11, "oci-test-priv.log"), (15, linux))
        priv = s(cri.call("CreateContainer", enc((1, pod), (2, config), (3, sandbox))), 1)
        extra.append(priv)
        cri.call("StartContainer", enc((1, priv)))
        r = cri.call("ExecSync", enc((1, priv), (2, ["/bin/sh", "-c", 'echo "ptmx=$(readlink /dev/ptmx)"; '
                                                     'grep ^CapEff: /proc/self/status; [ -c /dev/kmsg ]']), (3, 20)))
        out, code = one(r, 1, b"").decode(errors="replace"), signed32(one(r, 3, 0))
        # All capabilities: every one of the bounding set containerd itself runs with (this host's).
        bounding = re.search(r"^CapBnd:\s*(\w+)", read("/proc/self/status"), re.M).group(1)
        if code != 0 or "ptmx=pts/ptmx" not in out or f"CapEff:\t{bounding}" not in out:
            raise Fail(f"exit {code}, stdout {out!r} (want /dev/ptmx -> pts/ptmx, all capabilities, the host's "
                       f"devices), stderr {one(r, 2, b'')!r}")
        cri.call("StopContainer", enc((1, priv), (2, 0)))
        cri.call("RemoveContainer", enc((1, priv)))
        extra.remove(priv)
        say("a privileged container: the host's devices, /dev/ptmx its own devpts's, all capabilities")

        step = "container log"
        log = os.path.join(args.logdir, "oci-test-c.log")
        deadline = time.monotonic() + 10
        while "cri-started" not in read(log) and time.monotonic() < deadline:
            time.sleep(0.1)
        if "cri-started" not in read(log):
            raise Fail(f"no 'cri-started' in {log}: {read(log)!r}")

        step = "StopContainer"
        cri.call("StopContainer", enc((1, ctr), (2, 10)))
        step = "ContainerStatus (exited)"
        state = container_state(cri, ctr)
        if state[0] != 2 or state[1] != 9:
            raise Fail(f"state {state[0]} exit {state[1]}, want CONTAINER_EXITED (2) with 9 from the TERM trap")
        say("StopContainer: exited 9 (SIGTERM reached the trap)")

        step = "RemoveContainer"
        cri.call("RemoveContainer", enc((1, ctr)))
        if left_of(cg):
            raise Fail(f"the container's cgroup is left: {left_of(cg)}")
        ctr = None
        step = "StopPodSandbox"
        cri.call("StopPodSandbox", enc((1, pod)))
        if left_of(f"{cgroup_parent}/{pod}"):
            raise Fail(f"the sandbox's cgroup is left: {left_of(f'{cgroup_parent}/{pod}')}")
        step = "RemovePodSandbox"
        cri.call("RemovePodSandbox", enc((1, pod)))
        removed, pod = pod, None
        step = "PodSandboxStatus (removed)"
        try:
            cri.call("PodSandboxStatus", enc((1, removed)))
            raise Fail("the removed pod still has a status")
        except Fail as e:
            if "NOT_FOUND" not in str(e):
                raise
        say("RemoveContainer, StopPodSandbox, RemovePodSandbox (their cgroups removed)")
        step = "the pod's cgroup parent (the kubelet's to remove)"
        remove_parent(cgroup_parent, strict=True)
        step = "the volume's mounts"
        unmount(mounted, strict=True)
    except Fail as e:
        print(f"cri_client: {step}: {e}", file=sys.stderr)
        for c in extra:
            cleanup(cri, None, c)
        cleanup(cri, pod, ctr)
        remove_parent(cgroup_parent, strict=False)
        unmount(mounted, strict=False)
        sys.exit(1)
    print("cri_client: pod lifecycle passed", file=sys.stderr)


def host(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(f"{' '.join(argv)}: {r.stderr.strip()}")


def unmount(mounted, strict):
    while mounted:
        path = mounted.pop()
        r = subprocess.run(["umount", path], capture_output=True, text=True)
        if r.returncode != 0 and strict:
            raise Fail(f"umount {path}: {r.stderr.strip()}")


def remove_parent(cgroup_parent, strict):
    """rmdir the pod's cgroup and its QoS and top parents when empty; strict: a busy pod cgroup fails."""
    parts = cgroup_parent.strip("/").split("/")
    for n in range(len(parts), 0, -1):
        for d in left_of("/" + "/".join(parts[:n])):
            try:
                os.rmdir(d)
            except OSError as e:
                # The pod's own cgroup must be empty now: a busy one holds a container's leftovers.
                if strict and n == len(parts):
                    raise Fail(f"rmdir {d}: {e.strerror} (something of the pod is still in it)") from None


def container_state(cri, ctr):
    st = dec(one(cri.call("ContainerStatus", enc((1, ctr))), 1, b""))
    return one(st, 3, 0), signed32(one(st, 7, 0)), s(st, 10), s(st, 11)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cleanup(cri, pod, ctr):
    for method, ident in (("RemoveContainer", ctr), ("StopPodSandbox", pod), ("RemovePodSandbox", pod)):
        if ident:
            try:
                cri.call(method, enc((1, ident)))
            except Fail:
                pass


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# containerd (Debian's 1.6.20) with RUNTIME as its runc: `ctr run --runc-binary` (run --rm: output,
# exit code, the runtime's error through the shim, --privileged; run -d: task exec, ps, pause,
# resume, metrics, kill, delete), and the CRI path a Kubernetes node uses (the CRI plugin, a
# runtime handler whose BinaryName is RUNTIME, a CNI bridge of the test's own), driven by
# tests/oci/cri_client.py through the CRI gRPC API as a kubelet drives it. containerd runs from
# its own config under the test's temp dir and is stopped by PID; the test then asserts that
# nothing is left (shims, processes, mounts, the containers' cgroups) and removes mounts, netns,
# cgroup parents, CNI state and the bridge. About 10-20 s, most of it making the images.
#
#   tests/oci/containerd.sh RUNTIME        e.g. /usr/bin/crun, /usr/sbin/runc, target/release/engine-oci
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
oci_init containerd "${1:?usage: containerd.sh RUNTIME}"
# The cgroups this test's tools make (ctr's namespace parent, the CRI pod's): the clean-up must not
# touch a podman test's libpod_parent running beside it.
CG_PATTERNS='default|oci-test-kubepods'
SOCK=$T/containerd.sock
CTR=(ctr --address "$SOCK")

step "make the images offline (umoci, skopeo)"
make_image busybox /bin/sh
make_image pause 1000000000 /bin/sleep

step "pick a free bridge name and subnet for the CNI network"
BR=ocit$(printf '%04x' $((RANDOM % 65536)))
for n in $(shuf -i 10-250 -n 40); do
  ip -4 route show | grep -q "^10\.218\.$n\." || { SUBNET=10.218.$n.0/24; break; }
done
[ -n "${SUBNET:-}" ] || fail "no free 10.218.x.0/24"
CLEANUPS+=("ip link del $BR")
mkdir -p "$T/cni" "$T/pods"
cat >"$T/cni/10-oci-test.conflist" <<CONF
{ "cniVersion": "1.0.0", "name": "oci-test-$BR",
  "plugins": [ { "type": "bridge", "bridge": "$BR", "isGateway": true, "ipMasq": false,
                 "ipam": { "type": "host-local", "dataDir": "$T/cni-ipam",
                           "ranges": [[{ "subnet": "$SUBNET" }]] } } ] }
CONF

step "start containerd"
cat >"$T/config.toml" <<CONF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$T/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:t"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$T/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "engine"
    # The runtime handler of README's "engine as an OCI runtime" (Root under \$T here).
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.engine]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.engine.options]
        BinaryName = "$RUNTIME"
        Root = "$T/rt-root"
        SystemdCgroup = false
CONF
start_daemon containerd containerd --config "$T/config.toml"
for i in $(seq 100); do
  [ -S "$SOCK" ] && "${CTR[@]}" version >/dev/null 2>&1 && break
  kill -0 "${DAEMONS[0]%%:*}" 2>/dev/null || fail "containerd exited: $(tail -3 "$T/containerd.log")"
  sleep 0.1
done
"${CTR[@]}" version >/dev/null || fail "containerd did not answer: $(tail -3 "$T/containerd.log")"

step "import the images (namespaces default and k8s.io)"
"${CTR[@]}" image import "$T/img/busybox-oci.tar" >/dev/null
for img in busybox pause; do "${CTR[@]}" -n k8s.io image import "$T/img/$img-oci.tar" >/dev/null; done
"${CTR[@]}" image ls -q | grep -qx localhost/busybox:t || fail "image not imported: $("${CTR[@]}" image ls -q)"

# Container ids of this run only: the cgroups are /default/ID on the host, shared with any other
# containerd run at the same time (a CI run beside a developer's).
P=oci-test-$$
RUN=("${CTR[@]}" run --rm --runc-binary "$RUNTIME" --runc-root "$T/rt" --fifo-dir "$T/fifo")

step "ctr run --rm (output, its own pid namespace)"
out=$("${RUN[@]}" localhost/busybox:t "$P-1" /bin/sh -c 'echo ctr-ok-$((6*7)); echo "pid1=$(tr "\\0" " " </proc/1/cmdline)"')
expect_in "$out" ctr-ok-42
expect_in "$out" "pid1=/bin/sh -c echo ctr-ok"

step "ctr run --rm (exit code)"
rc=0; "${RUN[@]}" localhost/busybox:t "$P-2" /bin/sh -c 'exit 3' || rc=$?
[ $rc -eq 3 ] || fail "exit code $rc, want 3"

step "ctr run --rm of a missing program: the runtime's error reaches ctr"
rc=0; out=$("${RUN[@]}" localhost/busybox:t "$P-4" /no/such/program 2>&1) || rc=$?
[ $rc -ne 0 ] || fail "succeeded: $out"
# The shim reads the error from the runtime's --log (JSON); it must name the program.
expect_in "$out" "OCI runtime create failed"
expect_in "$out" "/no/such/program"
[ -z "$("${CTR[@]}" container ls -q)" ] || fail "containers left: $("${CTR[@]}" container ls -q)"

step "ctr run --rm --privileged (every host device, /dev/ptmx the container's own, all capabilities)"
bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
out=$("${RUN[@]}" --privileged localhost/busybox:t "$P-5" /bin/sh -c \
  'echo "ptmx=$(readlink /dev/ptmx)"; grep ^CapEff: /proc/self/status; [ -c /dev/kmsg ] && echo host-devices')
expect_in "$out" "ptmx=pts/ptmx"
expect_in "$out" "$(printf 'CapEff:\t%s' "$bounding")"
expect_in "$out" host-devices

step "ctr run --rm -t (a terminal: the container's own pty, the exit code)"
# `script` gives ctr a real terminal; `tty` names the container's devpts pty.
rc=0; out=$(script -qec "${RUN[*]} -t localhost/busybox:t $P-6 /bin/sh -c 'tty; exit 6'" /dev/null </dev/null) || rc=$?
[ $rc -eq 6 ] || fail "exit code $rc, want 6: $out"
expect_in "$out" /dev/pts/0

step "ctr run -d, task exec, ps, pause, resume, metrics, kill, delete"
"${CTR[@]}" run -d --runc-binary "$RUNTIME" --runc-root "$T/rt" --fifo-dir "$T/fifo" localhost/busybox:t "$P-3" \
  /bin/sh -c 'trap "exit 7" TERM; while :; do sleep 0.1; done' >/dev/null
task_status() { "${CTR[@]}" task ls | awk -v id="$1" '$1 == id {print $3}'; }
[ "$(task_status "$P-3")" = RUNNING ] || fail "task not running: $("${CTR[@]}" task ls)"
rc=0; out=$("${CTR[@]}" task exec --fifo-dir "$T/fifo" --exec-id e1 "$P-3" /bin/sh -c 'echo exec-ok; exit 5') || rc=$?
expect_in "$out" exec-ok
[ $rc -eq 5 ] || fail "task exec exit code $rc, want 5"
pid=$("${CTR[@]}" task ls | awk -v id="$P-3" '$1 == id {print $2}')
# ps --format json: the shim lists the container's processes from it.
"${CTR[@]}" task ps "$P-3" | awk 'NR > 1 {print $1}' | grep -qx "$pid" || fail "task ps does not list the init $pid: $("${CTR[@]}" task ps "$P-3")"
"${CTR[@]}" task pause "$P-3"
[ "$(task_status "$P-3")" = PAUSED ] || fail "task not paused: $("${CTR[@]}" task ls)"
# The init's own freezer group (v1; v2: cgroup.freeze) says frozen, not only the shim's record.
fz=$(awk -F: '$2 ~ /(^|,)freezer(,|$)/ {print "/sys/fs/cgroup/freezer" $3 "/freezer.state"}' "/proc/$pid/cgroup")
[ -n "$fz" ] || fz=/sys/fs/cgroup$(awk -F: '$1 == 0 {print $3}' "/proc/$pid/cgroup")/cgroup.freeze
case $(cat "$fz") in FROZEN | 1) ;; *) fail "$fz: $(cat "$fz"), want frozen" ;; esac
"${CTR[@]}" task resume "$P-3"
[ "$(task_status "$P-3")" = RUNNING ] || fail "task not resumed: $("${CTR[@]}" task ls)"
# The shim reads the metrics from the container's cgroup (found from the init's /proc/PID/cgroup).
out=$("${CTR[@]}" task metrics "$P-3")
expect_in "$out" pids.current
"${CTR[@]}" task kill "$P-3"
for i in $(seq 50); do [ "$(task_status "$P-3")" = STOPPED ] && break; sleep 0.1; done
[ "$(task_status "$P-3")" = STOPPED ] || fail "task not stopped by SIGTERM: $("${CTR[@]}" task ls)"
out=$("${CTR[@]}" task delete "$P-3" 2>&1)
expect_in "$out" "exit code 7"
"${CTR[@]}" container delete "$P-3"
[ -z "$("${CTR[@]}" container ls -q)" ] || fail "containers left: $("${CTR[@]}" container ls -q)"
[ -z "$(ls -A "$T/rt/default" 2>/dev/null)" ] || fail "runtime state left: $(ls -A "$T/rt/default")"

step "CRI: the pod lifecycle (cri_client.py)"
# In the runtime's mount namespace (crun's private one): the client mounts the pod's volume.
"${IN[@]}" /usr/bin/python3 "$here/cri_client.py" "$SOCK" --handler engine --image localhost/busybox:t --logdir "$T/pods" --uid "uid$$"

step "CRI: nothing left"
[ -z "$("${CTR[@]}" -n k8s.io container ls -q)" ] || fail "CRI containers left: $("${CTR[@]}" -n k8s.io container ls -q)"
[ -z "$("${CTR[@]}" -n k8s.io task ls -q)" ] || fail "CRI tasks left"
[ -z "$(ls -A "$T/rt-root/k8s.io" 2>/dev/null)" ] || fail "runtime state left: $(ls -A "$T/rt-root/k8s.io")"

step "nothing left once containerd stops: shims, processes, mounts, container cgroups"
# Every task is deleted, so every shim has exited: only containerd itself may still run from $T.
ctrd=${DAEMONS[0]%%:*}
left=$(pids_under "$T" | grep -vx "$ctrd" | grep -vx "$$" || true)
[ -z "$left" ] || fail "processes left: $(for p in $left; do tr '\0' ' ' <"/proc/$p/cmdline"; echo; done)"
stop_daemons
# (The private mount namespace crun needs is held by a mount on $T/mntns: the test's own.)
m=$(awk -v t="$T" '($5 == t || index($5, t "/") == 1) && $5 != t "/mntns" {print $5}' /proc/self/mountinfo)
[ -z "$m" ] || fail "mounts left under $T: $m"
# The containers' own groups went with them, the kubelet's pod group with the CRI client (the ctr
# namespace's parent default/ stays, as with runc; lib.sh removes it if this test made it).
cg=$(cgroup_dirs | sort | comm -13 "$T/cg.before" - | grep -E "/default/$P-|/poduid$$(/|$)" || true)
[ -z "$cg" ] || fail "cgroups left: $cg"

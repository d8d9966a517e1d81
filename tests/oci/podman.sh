#!/usr/bin/env bash
# podman (Debian's 4.3.1) with `--runtime RUNTIME`: run --rm; run -d + exec + logs + stop + rm;
# run -it in a real terminal (util-linux `script`). Everything under its own temp dir: podman's
# config, storage, image (imported offline from the busybox rootfs); daemons-free (conmon is
# podman's), clean-up of mounts, cgroups (libpod_parent), netns, /var/lib/cni after.
#
#   tests/oci/podman.sh RUNTIME        e.g. /usr/bin/crun, /usr/sbin/runc, target/release/engine-oci
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# Only podman's own groups are this test's to clean (not another test's oci-test-* running meanwhile).
CG_PATTERNS='libpod_parent'
oci_init podman "${1:?usage: podman.sh RUNTIME}"

step "write podman's config under $T"
mkdir -p "$T/cni" "$T/tmp" "$T/storage" "$T/run"
cat >"$T/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_config_dir = "$T/cni"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$T/tmp"
runtime_supports_json = ["crun", "runc", "engine", "engine-oci"]
CONF
cat >"$T/storage.conf" <<CONF
[storage]
driver = "overlay"
runroot = "$T/run"
graphroot = "$T/storage"
CONF
export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
P=("${IN[@]}" podman --runtime "$RUNTIME")
CLEANUPS+=("${P[*]} rm -af -t 0" "${P[*]} rmi -af")
# podman passes no --root: the runtime's default state root, removed if this test made it.
RT_ROOT=/run/$(basename "$RUNTIME")
[ -e "$RT_ROOT" ] || CLEANUPS+=("rmdir $RT_ROOT")
IMG=localhost/busybox:t

# left_of ID: after `podman rm`, nothing of the container may remain: the runtime's state dir
# (podman passes no --root: /run/<runtime>/ID), its cgroups, mounts, processes (conmon).
left_of() {
  local id=$1 what=""
  what+=$(ls -d /run/*/"$id" 2>/dev/null | sed 's/^/ state-dir /' || true)
  what+=$(find /sys/fs/cgroup -mindepth 2 -type d -name "*$id*" 2>/dev/null | sed 's/^/ cgroup /' || true)
  what+=$(grep -F "$id" /proc/self/mountinfo | awk '{print " mount " $5}' || true)
  what+=$(pids_under "$id" | sed 's/^/ pid /' || true)
  [ -z "$what" ] || fail "left after rm of $id:$(echo $what)"
}

step "import the image offline"
make_rootfs_tar
"${P[@]}" import -q --change 'CMD ["/bin/sh"]' "$T/rootfs.tar" "$IMG" >/dev/null

step "run --rm (output and exit code)"
out=$("${P[@]}" run --rm --network none "$IMG" /bin/sh -c 'echo hello-from-$(hostname | wc -c); exit 0')
expect_in "$out" hello-from-
set +e; "${P[@]}" run --rm --network none "$IMG" /bin/sh -c 'exit 42'; rc=$?; set -e
[ $rc -eq 42 ] || fail "run --rm of 'exit 42' returned $rc"

step "run -d"
cid=$("${P[@]}" run -d --name oci-test-d --network none "$IMG" \
  /bin/sh -c 'echo started; trap "echo got-term; exit 7" TERM; while :; do sleep 0.1; done')
[ -n "$cid" ] || fail "no container id"
state=$("${P[@]}" inspect -f '{{.State.Status}}' oci-test-d)
[ "$state" = running ] || fail "state $state, want running"

step "exec"
out=$("${P[@]}" exec -e OCI_TEST=exec-env oci-test-d /bin/sh -c 'echo "$OCI_TEST $(cat /proc/1/cmdline | tr "\0" " ")"')
expect_in "$out" "exec-env /bin/sh -c"
set +e; "${P[@]}" exec oci-test-d /bin/sh -c 'exit 3'; rc=$?; set -e
[ $rc -eq 3 ] || fail "exec of 'exit 3' returned $rc"

step "exec -it in a real terminal (script): a pty of the container's own devpts, typed input, exit code"
# `tty` names the pty only if it comes from the container's /dev/ptmx ("not a tty" otherwise).
# Every interactive step types its lines and ends the shell itself: an early EOF on the
# terminal could hang up the shell before it ran anything; `timeout` turns a hang into a failure.
out=$( (sleep 0.5; printf 'tty\necho typed-in-exec-$((2*3))\nexit 6\n') |
  timeout 30 script -qec "${P[*]} exec -it oci-test-d /bin/sh" /dev/null) && rc=0 || rc=$?
expect_in "$out" /dev/pts/
expect_in "$out" typed-in-exec-6
[ $rc -eq 6 ] || fail "exec -it exit code $rc, want 6; output: $(printf '%q' "$out")"

step "logs"
out=$("${P[@]}" logs oci-test-d)
expect_in "$out" started

step "stop (SIGTERM reaches the container's init)"
"${P[@]}" stop -t 10 oci-test-d >/dev/null
code=$("${P[@]}" inspect -f '{{.State.ExitCode}}' oci-test-d)
[ "$code" = 7 ] || fail "exit code after stop $code, want 7 (the TERM trap)"
out=$("${P[@]}" logs oci-test-d)
expect_in "$out" got-term

step "rm"
"${P[@]}" rm oci-test-d >/dev/null
[ -z "$("${P[@]}" ps -aq)" ] || fail "containers left: $("${P[@]}" ps -a)"
left_of "$cid"

step "run -it in a real terminal (script): a pty of the container's own devpts, typed input, exit code"
# The lines are typed a moment after the start, as a person would: before the terminal is
# attached, podman may read and drop them.
out=$( (sleep 1; printf 'tty\necho typed-$((6*7))\nexit 5\n') |
  timeout 30 script -qec "${P[*]} run -it --rm --network none $IMG /bin/sh" /dev/null) && rc=0 || rc=$?
expect_in "$out" /dev/pts/0
expect_in "$out" typed-42
[ $rc -eq 5 ] || fail "run -it exit code $rc, want 5; output: $(printf '%q' "$out")"

step "run -it in a real terminal (script): ctrl-d ends the shell with code 0"
out=$( (sleep 1; printf 'echo before-eof\n'; sleep 0.3; printf '\004') |
  timeout 30 script -qec "${P[*]} run -it --rm --network none $IMG /bin/sh" /dev/null) && rc=0 || rc=$?
expect_in "$out" before-eof
[ $rc -eq 0 ] || fail "run -it after ctrl-d: exit code $rc, want 0; output: $(printf '%q' "$out")"

# bad_case WHAT PODMAN-RUN-ARGS...: podman fails with one line naming WHAT; nothing is left.
bad_case() {
  local what=$1 err rc; shift
  err=$("${P[@]}" run --rm --network none "$@" "$IMG" /bin/true 2>&1 3</dev/null) && rc=0 || rc=$?
  [ "$rc" -ne 0 ] || fail "podman run $* succeeded; want a refusal naming $what"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "not one line: $(printf '%q' "$err")"
  expect_in "$err" "$what"
  [ -z "$("${P[@]}" ps -aq)" ] || fail "containers left: $("${P[@]}" ps -a)"
}
# Only the runtime can say these, so they prove its error reaches the user (conmon's JSON log).
if [ "$(basename "$RUNTIME")" = engine-oci ]; then
  step "a config engine cannot do (malformed monitor annotation): one clear line"
  bad_case 'annotations.org.engine.monitor.hard-mib: "lots" is not a positive number of MiB' \
    --annotation org.engine.monitor.hard-mib=lots
  if [ ! -e /dev/container_monitor ]; then
    step "a config engine cannot do here (soft-signal needs the monitor device): one clear line"
    bad_case "annotations.org.engine.monitor.soft-signal: needs /dev/container_monitor" \
      --annotation org.engine.monitor.soft-mib=10 --annotation org.engine.monitor.soft-signal=USR1
  fi
fi

step "run --preserve-fds 1: the caller's fd 3 reaches the process (systemd socket activation's way)"
fd3=$(mktemp)
echo from-fd-3 >"$fd3"
out=$("${P[@]}" run --rm --network none --preserve-fds 1 "$IMG" /bin/sh -c 'cat <&3' 3<"$fd3" 2>&1) ||
  fail "podman run --preserve-fds 1: $out"
rm -f "$fd3"
[ "$out" = from-fd-3 ] || fail "fd 3 in the container read $(printf '%q' "$out"), want from-fd-3"

step "nothing left in podman"
[ -z "$("${P[@]}" ps -aq)" ] || fail "containers left: $("${P[@]}" ps -a)"

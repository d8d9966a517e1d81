#!/usr/bin/env bash
# podman (Debian's 4.3.1) with `--runtime RUNTIME`: run --rm; run -d + exec + logs + stop + rm;
# run -it in a real terminal (util-linux `script`). Everything under its own temp dir: podman's
# config, storage, image (imported offline from the busybox rootfs); daemons-free (conmon is
# podman's), clean-up of mounts, cgroups (libpod_parent), netns, /var/lib/cni after.
#
#   tests/oci/podman.sh RUNTIME        e.g. /usr/bin/crun, /usr/sbin/runc, target/release/engine-oci
set -euo pipefail
. "$(dirname "$0")/lib.sh"
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
IMG=localhost/busybox:t

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

step "exec -it (terminal)"
out=$(script -qec "${P[*]} exec -it oci-test-d /bin/sh -c 'tty; echo exec-tty-ok'" /dev/null </dev/null)
expect_in "$out" /dev/pts/
expect_in "$out" exec-tty-ok

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

step "run -it in a real terminal (script): typed input, exit code"
# The lines are typed a moment after the start, as a person would: before the terminal is
# attached, podman may read and drop them.
out=$( (sleep 1; printf 'echo typed-$((6*7))\nexit 5\n') |
  script -qec "${P[*]} run -it --rm --network none $IMG /bin/sh" /dev/null) && rc=0 || rc=$?
expect_in "$out" typed-42
[ $rc -eq 5 ] || fail "run -it exit code $rc, want 5; output: $(printf '%q' "$out")"

step "run -it in a real terminal (script): the container's stdio is a pty"
out=$(script -qec "${P[*]} run -it --rm --network none $IMG /bin/sh -c 'tty; stty size'" /dev/null </dev/null)
expect_in "$out" /dev/pts/0

step "nothing left in podman"
[ -z "$("${P[@]}" ps -aq)" ] || fail "containers left: $("${P[@]}" ps -a)"

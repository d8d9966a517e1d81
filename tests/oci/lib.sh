# Shared by tests/oci/podman.sh and containerd.sh (sourced): a temp dir, steps that name
# themselves on failure, the private mount namespace crun needs, images made offline from the
# busybox rootfs, and a clean-up that stops every daemon by PID and removes what the test made.

# oci_init NAME RUNTIME: $T, the EXIT trap, RUNTIME made absolute, IN=(…) the command prefix.
oci_init() {
  NAME=$1; RUNTIME=$2; STEP=setup; DAEMONS=(); CLEANUPS=()
  ROOTFS=${ROOTFS:-/work/main/rootfs}
  [ -x "$RUNTIME" ] || RUNTIME=$(command -v "$RUNTIME" 2>/dev/null || true)
  [ -n "$RUNTIME" ] && [ -x "$RUNTIME" ] || { echo "$NAME: FAILED at step: find runtime ${2} (no such binary)" >&2; exit 1; }
  [ -x "$ROOTFS/bin/busybox" ] || { echo "$NAME: FAILED at step: find rootfs $ROOTFS (make rootfs)" >&2; exit 1; }
  T=$(mktemp -d "/tmp/oci-$NAME.XXXXXX"); chmod 755 "$T"
  snapshot_before
  trap 'oci_exit $?' EXIT
  # crun refuses hybrid cgroups (v1 controllers + /sys/fs/cgroup/unified): it (and the tools
  # driving it) runs in a private mount namespace without that mount. OCI_PRIVATE_MNTNS=1/0
  # forces it on or off for any runtime; auto: only for crun.
  IN=()
  local want=${OCI_PRIVATE_MNTNS:-auto}
  [ "$want" = auto ] && { [ "$(basename "$RUNTIME")" = crun ] && want=1 || want=0; }
  if [ "$want" = 1 ] && grep -q " /sys/fs/cgroup/unified " /proc/self/mounts; then
    touch "$T/mntns"
    unshare --mount="$T/mntns" --propagation private umount /sys/fs/cgroup/unified
    IN=(nsenter --mount="$T/mntns")
  fi
}

step() { STEP=$*; echo "$NAME: $STEP" >&2; }
fail() { echo "$NAME: $STEP: $*" >&2; return 1; }
# expect_in TEXT NEEDLE: fail unless NEEDLE is in TEXT.
expect_in() { case $1 in *"$2"*) ;; *) fail "expected '$2' in output: $(printf '%q' "${1:0:400}")" ;; esac; }

# start_daemon NAME CMD...: in the background (in the namespace), output to $T/NAME.log.
start_daemon() {
  local n=$1; shift
  "${IN[@]}" "$@" >"$T/$n.log" 2>&1 &
  DAEMONS+=("$!:$n")
}

stop_daemons() {
  local d pid i
  for d in "${DAEMONS[@]}"; do
    pid=${d%%:*}
    kill -TERM "$pid" 2>/dev/null || continue
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  DAEMONS=()
}

# Cgroups, network namespaces and CNI state the tools make outside $T: what exists before the
# test is kept, what is new (under the names these tools use) is removed after it.
CG_PATTERNS='libpod_parent|default|k8s.io|oci-test-[a-z0-9]+'
snapshot_before() {
  ls /run/netns 2>/dev/null | sort >"$T/netns.before" || true
  find /var/lib/cni -mindepth 1 2>/dev/null | sort >"$T/cni.before" || true
  cgroup_dirs | sort >"$T/cg.before"
  [ -e /var/lib/containers/cache ] && touch "$T/cache.existed" || true
  [ -e /var/lib/containers ] && touch "$T/containers.existed" || true
  [ -e /var/lib/cni ] && touch "$T/cni.existed" || true
  [ -e /run/containerd ] && touch "$T/run-containerd.existed" || true
}
cgroup_dirs() {
  find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | grep -E "^/sys/fs/cgroup/[^/]+/($CG_PATTERNS)(/|$)" || true
}

oci_cleanup() {
  local m n
  for c in "${CLEANUPS[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  stop_daemons
  # Processes still running from $T (shims, conmon, containers' inits) would keep mounts busy.
  for n in $(seq 3); do
    local left; left=$(pids_under "$T")
    [ -n "$left" ] || break
    kill -KILL $left 2>/dev/null || true; sleep 0.3
  done
  # Mounts under $T, deepest first (in the host's namespace; the private one goes with its file).
  for n in 1 2 3; do
    for m in $(awk -v t="$T" '$5 == t || index($5, t "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
      umount -l "$m" 2>/dev/null || true
    done
  done
  # New netns, CNI state, cgroups (deepest first; a cgroup still in use stays and is reported).
  ls /run/netns 2>/dev/null | sort | comm -13 "$T/netns.before" - | while read -r n; do
    umount "/run/netns/$n" 2>/dev/null; rm -f "/run/netns/$n"; done
  find /var/lib/cni -mindepth 1 2>/dev/null | sort | comm -13 "$T/cni.before" - | sort -r | while read -r n; do
    rm -rf "$n"; done
  cgroup_dirs | sort | comm -13 "$T/cg.before" - | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
    while read -r n; do rmdir "$n" 2>/dev/null || echo "$NAME: cgroup left in use: $n" >&2; done
  [ -e "$T/cache.existed" ] || rm -rf /var/lib/containers/cache
  [ -e "$T/containers.existed" ] || rmdir /var/lib/containers 2>/dev/null
  [ -e "$T/cni.existed" ] || rmdir /var/lib/cni 2>/dev/null
  # The shims' sockets go to /run/containerd/s whatever the config says: keep the folders if they
  # were there or are in use by another containerd.
  [ -e "$T/run-containerd.existed" ] || { rmdir /run/containerd/s 2>/dev/null; rmdir /run/containerd 2>/dev/null; }
  rm -rf "$T" 2>/dev/null || { sleep 1; rm -rf "$T"; }
}

# PIDs of processes whose command line or cwd mentions DIR (the daemons' children).
pids_under() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = $$ ] && continue
    if { tr "\0" " " <"$p/cmdline"; } 2>/dev/null | grep -qF "$1/"; then echo "${p#/proc/}"; fi
  done
}

oci_exit() {
  local rc=$1
  trap - EXIT
  set +e
  if [ "$rc" -ne 0 ]; then
    echo "$NAME: FAILED at step: $STEP (exit $rc)" >&2
    [ -n "${OCI_KEEP:-}" ] && { echo "$NAME: kept $T" >&2; exit "$rc"; }
  fi
  oci_cleanup
  [ "$rc" -eq 0 ] && echo "$NAME: PASS with $RUNTIME" >&2
  exit "$rc"
}

# The busybox rootfs as a tar, an OCI layout with a config (umoci), and archives (skopeo).
# make_image TAG CMD ENTRYPOINT: $T/img/TAG-oci.tar (oci-archive, name localhost/TAG:t).
make_rootfs_tar() {
  [ -f "$T/rootfs.tar" ] || tar -C "$ROOTFS" -cf "$T/rootfs.tar" .
}
make_image() {
  local tag=$1 cmd=$2 entry=${3:-}
  make_rootfs_tar
  mkdir -p "$T/img"
  [ -d "$T/img/oci" ] || umoci init --layout "$T/img/oci"
  umoci new --image "$T/img/oci:$tag"
  umoci raw add-layer --image "$T/img/oci:$tag" "$T/rootfs.tar"
  local args=(--config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin)
  [ -n "$entry" ] && args+=(--config.entrypoint "$entry")
  umoci config --image "$T/img/oci:$tag" "${args[@]}" --config.cmd "$cmd"
  umoci gc --layout "$T/img/oci"
  skopeo copy -q "oci:$T/img/oci:$tag" "oci-archive:$T/img/$tag-oci.tar:localhost/$tag:t" >/dev/null
}

#!/usr/bin/env bash
# `make demo`: a scripted session with engine on this host, leaving nothing running.
# Its own supervisor root and socket, so it never touches a supervisor the user already runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-$PWD/target/release/engine}
work=$(mktemp -d /tmp/engine-demo.XXXXXX)
export ENGINE_SOCKET=$work/engine.sock
sup_pid=
cleanup() {
  if [ -n "$sup_pid" ] && kill -0 "$sup_pid" 2>/dev/null; then
    kill -TERM "$sup_pid"; wait "$sup_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }
engine() { "$ENGINE" "$@"; }

step "engine supervisor --root $work/root --socket \$ENGINE_SOCKET &"
"$ENGINE" supervisor --root "$work/root" >"$work/supervisor.log" 2>&1 &
sup_pid=$!
for _ in $(seq 100); do [ -S "$ENGINE_SOCKET" ] && break; sleep 0.05; done

run engine start alpha rootfs /bin/hostname
run engine start beta rootfs /bin/sh -c 'while true; do date; sleep 1; done'
sleep 2.2
run engine ps
run engine logs alpha
run engine logs beta
run engine stop beta
run engine run gamma rootfs /cpu_hog 2
echo "(exit code $?)"
step "engine run iso rootfs /bin/sh -c 'hostname; ps; ip -4 addr show eth0'   # what a container sees"
engine run iso rootfs /bin/sh -c 'hostname; ps; ip -4 addr show eth0' || true
step "engine run missing rootfs /no/such/command"
engine run missing rootfs /no/such/command || echo "(exit code $?)"

# Memory limits: the kernel monitor where the module is loaded, else the cgroup fallback.
step "engine start memtest rootfs /memory_hog 1 100 --soft-mib 3 --hard-mib 6"
engine start memtest rootfs /memory_hog 1 100 --soft-mib 3 --hard-mib 6 || true
timeout 30 "$ENGINE" wait memtest >/dev/null 2>&1 || true
run engine ps -a
step "engine inspect memtest | grep -E 'memory_enforcement|peak|status'"
engine inspect memtest 2>/dev/null | grep -E '"(memory_enforcement|peak_rss_bytes|status)"' || true

step "kill -TERM <supervisor>   # stops every container, removes the socket"
kill -TERM "$sup_pid"; wait "$sup_pid" || true
sup_pid=
[ -S "$ENGINE_SOCKET" ] && echo "socket left behind!" || echo "supervisor gone, socket removed"

# The kernel monitor itself: here if the module is loaded, else in a QEMU guest booting Debian's
# kernel (this kind of host has no loadable-module support). DEMO_VM=0 skips it.
if [ ! -e /dev/container_monitor ] && [ "${DEMO_VM:-1}" = 1 ]; then
  printf '
[1m# No /dev/container_monitor here: the same demo with monitor.ko, in a QEMU guest[0m
'
  make -s vm-run VM_SCRIPT=scripts/demo-guest.sh
fi

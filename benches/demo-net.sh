#!/usr/bin/env bash
# `make demo-net`: the echo server in a container on engine's bridge, the client on the host.
#   engine start --net bridge --ip 10.88.0.2 --hostname host-1 web rootfs /server 8080
#   workloads/bin/client 10.88.0.2 8080
# Runs its own supervisor on a temporary --root/--socket and removes everything at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
engine=${ENGINE:-$root/target/release/engine}
rootfs=${ROOTFS:-$root/rootfs}
client=$root/workloads/bin/client
ip=${DEMO_IP:-10.88.0.2}
port=${DEMO_PORT:-8080}

tmp=$(mktemp -d /tmp/engine-demo-net.XXXXXX)
sock=$tmp/engine.sock
sup_pid=""
cleanup() {
  # SIGTERM makes the supervisor stop the container and tear its veth down.
  if [ -n "$sup_pid" ]; then kill -TERM "$sup_pid" 2>/dev/null || true; wait "$sup_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
say() { printf '\n$ %s\n' "$*"; }

"$engine" supervisor --root "$tmp/root" --socket "$sock" --bridge engine0 --cgroup-parent engine --subnet 10.88.0.0/16 >"$tmp/supervisor.log" 2>&1 &
sup_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "demo-net: supervisor did not start: $(tail -1 "$tmp/supervisor.log")" >&2; exit 1; }
e() { "$engine" --socket "$sock" "$@"; }

say engine start --net bridge --ip "$ip" --hostname host-1 web rootfs /server "$port"
e start --net bridge --ip "$ip" --hostname host-1 web "$rootfs" /server "$port"
for _ in $(seq 50); do e logs web 2>/dev/null | grep -q "listening on $port" && break; sleep 0.1; done
say engine logs web
e logs web
say client "$ip" "$port" '"hello through the bridge"'
"$client" "$ip" "$port" "hello through the bridge"
say engine ps
e ps
say engine stop web
e stop web
echo
echo "demo-net: ok"

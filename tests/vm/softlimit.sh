#!/bin/sh
# The soft-limit figure's guest half (make softlimit-vm, part of make experiments): RSS over time
# of soft_trap (2 MiB every 100 ms, toward 200 MiB) against soft 16 MiB / hard 48 MiB under
#   a  the hard limit only (kernel monitor)
#   b  --soft-signal TERM + hard, kernel monitor
#   c  --soft-signal TERM + hard, cgroup v2 fallback (module unloaded: memory.events, memory.high = soft)
#   d  --soft-mib alone, cgroup v2 fallback: memory.high = soft throttles, no signal
# RSS source: cm_test rsswatch, the sum of VmRSS (statm resident) of the processes in the
# container's cgroup every 20 ms (what the module adds up), with memory.current next to it.
# Every output line starts with "SL " for benches/softlimit.py:
#   SL case NAME LABEL...         SL sample NAME REALTIME_MS RSS_KIB CURRENT_KIB NPROCS
#   SL inspect NAME JSON          SL log NAME LINE
. /vm/lib.sh
cd /
export ENGINE_SOCKET=/run/engine/engine.sock
engine() { timeout 20 /bin/engine "$@"; }
mkdir -p /run/engine /var/lib/engine
state() { engine ps -a 2>/dev/null | awk -v n="$1" '$1 == n { $1 = ""; print }'; }
running() { state "$1" | grep -q running; }
start_supervisor() {
	engine supervisor --root /var/lib/engine --socket "$ENGINE_SOCKET" --detach >/tmp/supervisor.out 2>&1 &&
		wait_for 10 test -S "$ENGINE_SOCKET"
}
stop_supervisor() {
	kill "$(pidof engine)" 2>/dev/null
	wait_for 10 sh -c '! pidof engine'
	rm -f "$ENGINE_SOCKET"
}

# run_case NAME LABEL ENGINE_FLAGS...: one curve. Sampling stops when the container's group
# empties, or after 8 s (the throttled case d never ends by itself: it is stopped then).
run_case() {
	_name=$1 _label=$2
	shift 2
	echo "SL case $_name $_label"
	cm_test rsswatch "/sys/fs/cgroup/engine/$_name" 20 8000 >"/tmp/$_name.samples" &
	_w=$!
	engine start "$_name" rootfs /soft_trap 2 100 200 "$@" >"/tmp/$_name.out" 2>&1 ||
		echo "SL log $_name engine start failed: $(oneline "/tmp/$_name.out")"
	wait $_w
	running "$_name" && engine stop "$_name" >/dev/null 2>&1
	wait_for 10 sh -c "! engine ps -a | awk '\$1 == \"$_name\"' | grep -q running"
	sed "s/^sample /SL sample $_name /" "/tmp/$_name.samples" | grep '^SL '
	echo "SL inspect $_name $(engine inspect "$_name" 2>&1 | tr -d '\n')"
	engine logs "$_name" 2>&1 | grep -E 'checkpoint|failed' | sed "s/^/SL log $_name /"
	echo "SL state $_name $(state "$_name")"
}

if [ ! -x /bin/engine ]; then
	echo "SL error no static engine in the initramfs (make engine-static failed)"
	exit 1
fi
insmod /modules/monitor.ko || { echo "SL error insmod monitor.ko failed"; exit 1; }
start_supervisor || { echo "SL error supervisor: $(oneline /tmp/supervisor.out)"; exit 1; }
run_case a "hard limit only (kernel monitor)" --hard-mib 48
run_case b "--soft-signal TERM + hard (kernel monitor)" --soft-mib 16 --hard-mib 48 --soft-signal TERM
stop_supervisor
rmmod monitor || { echo "SL error rmmod monitor failed"; exit 1; }
start_supervisor || { echo "SL error supervisor (no module): $(oneline /tmp/supervisor.out)"; exit 1; }
run_case c "--soft-signal TERM + hard (cgroup v2 fallback)" --soft-mib 16 --hard-mib 48 --soft-signal TERM
run_case d "memory.high = soft, no signal (cgroup v2)" --soft-mib 16 --hard-mib 48
stop_supervisor
echo "SL done"
exit 0

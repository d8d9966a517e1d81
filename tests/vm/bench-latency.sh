#!/bin/sh
# make bench-monitor, second half (sourced by tests/vm/bench.sh, monitor.ko loaded): the
# --soft-signal latency from the container's RSS crossing soft to the signal's arrival in the
# command, with the kernel monitor and with the cgroup v2 fallback. Each run is one engine
# container running `soft_trap latency SOFT_KIB STEP_KIB PAUSE_MS MAX_MIB`; its "latency:" line
# is printed as "latency mechanism=M ...". Soft 32 MiB, hard 256 MiB (never reached).
LAT_RUNS=${LAT_RUNS:-5}
export ENGINE_SOCKET=/run/engine/engine.sock
engine() { timeout 30 /bin/engine "$@"; }
mkdir -p /run/engine /var/lib/engine
lat_state() { engine ps -a 2>/dev/null | awk -v n="$1" '$1 == n { $1 = ""; print }'; }
lat_start_supervisor() {
	engine supervisor --root /var/lib/engine --socket "$ENGINE_SOCKET" --detach >/tmp/supervisor.out 2>&1 &&
		wait_for 10 test -S "$ENGINE_SOCKET"
}
lat_stop_supervisor() {
	kill "$(pidof engine)" 2>/dev/null
	wait_for 10 sh -c '! pidof engine'
	rm -f "$ENGINE_SOCKET"
}
# lat_runs MECHANISM: every rate, LAT_RUNS times.
lat_done() { ! lat_state "$1" | grep -q running; }
lat_runs() {
	mech=$1
	for rate in "64 0 full-speed" "1024 10 steady" "2048 100 slow"; do
		set -- $rate
		i=1
		while [ $i -le "$LAT_RUNS" ]; do
			n=lat-$mech-$3-$i
			engine start "$n" rootfs /soft_trap latency 32768 "$1" "$2" 200 \
				--soft-mib 32 --hard-mib 256 --soft-signal TERM >/tmp/lat.out 2>&1 ||
				echo "latency mechanism=$mech rate=$3 error: $(oneline /tmp/lat.out)"
			wait_for 30 lat_done "$n"
			line=$(engine logs "$n" 2>&1 | grep '^latency:')
			echo "latency mechanism=$mech rate=$3 ${line#latency: } state=$(lat_state "$n" | tr ' ' '_')"
			engine rm "$n" >/dev/null 2>&1
			i=$((i + 1))
		done
	done
}
if [ ! -x /bin/engine ]; then
	echo "latency: no static engine in the initramfs (make engine-static failed): not measured"
else
	echo "--- soft-limit signal latency, kernel monitor"
	if lat_start_supervisor; then
		lat_runs module
		lat_stop_supervisor
	else
		echo "latency: supervisor did not start: $(oneline /tmp/supervisor.out)"
	fi
	echo "--- soft-limit signal latency, cgroup v2 fallback (module unloaded)"
	if rmmod monitor && lat_start_supervisor; then
		lat_runs cgroup-v2
		lat_stop_supervisor
	else
		echo "latency: no fallback run (rmmod or supervisor failed)"
	fi
fi

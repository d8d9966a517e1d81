#!/bin/sh
# make bench-monitor: figures for the monitor inside the guest (TCG unless VM_ACCEL=kvm).
# Not a gate, but each hog run still says PASS/FAIL against the 20 ms detection target.
. /vm/lib.sh
insmod /modules/monitor.ko || exit 1
echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
echo "params: interval_ms=$(cat /sys/module/monitor/parameters/interval_ms)" \
	"detect_ms=$(cat /sys/module/monitor/parameters/detect_ms)" \
	"burst_mib_s=$(cat /sys/module/monitor/parameters/burst_mib_s) HZ=250"
thp=/sys/kernel/mm/transparent_hugepage/enabled
for mode in always madvise; do
	echo $mode > $thp
	echo "--- memory_hog 1 0 (full speed) against a 256 MiB hard limit, THP $(cat $thp)"
	cm_test hog 256 20 memory_hog 3
done
echo always > $thp
echo "--- own allocator (small pages) against a 256 MiB hard limit"
cm_test hog 256 20 allocator 3
echo "--- idle containers: cost of the periodic check"
cm_test idlecost 1000 5 1024
cm_test idlecost 1000 5 256
cm_test idlecost 100 5 1024
echo "--- idle containers registered with a soft limit and a soft-limit signal (ABI 2 path)"
cm_test idlecost-sig 1000 5 1024
echo "--- full-speed memory_hog while 1000 idle containers are registered"
cm_test idlecost 1000 10 1024 &
sleep 4
cm_test hog 256 20 memory_hog
wait
# The soft-limit signal's latency, crossing -> delivery, through engine: module, then the cgroup
# v2 fallback (module unloaded). soft_trap latency times both in the container (see its header).
. /vm/bench-latency.sh
exit 0

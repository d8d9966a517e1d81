#!/bin/sh
# make bench-monitor: figures for the monitor inside the guest. Not a pass/fail test,
# but the hog runs still say whether the 20 ms detection target held.
. /vm/lib.sh
insmod /modules/monitor.ko || exit 1
echo "params: interval_ms=$(cat /sys/module/monitor/parameters/interval_ms)" \
	"detect_ms=$(cat /sys/module/monitor/parameters/detect_ms)" \
	"burst_mib_s=$(cat /sys/module/monitor/parameters/burst_mib_s) HZ=250"
for i in 1 2 3; do
	cm_test hog 256 20 memory_hog
done
for i in 1 2 3; do
	cm_test hog 256 20
done
cm_test idlecost 1000 5 1024
cm_test idlecost 1000 5 256
cm_test idlecost 100 5 1024
exit 0

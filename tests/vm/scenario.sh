#!/bin/sh
# vm-test scenario for the container memory monitor (issue 3).
# Part (a): the module, driven by cm_test. Part (b): the OCI binary with the monitor's
# annotations (engine-oci-monitor.sh), then the engine (engine-scenario.sh), both run when the kernel command line says engine_checks=1.
. /vm/lib.sh
cd /

# The first memory cgroup turns on the kernel's memcg_kmem_enabled static key: the kernel
# live-patches every kmem_cache_alloc (text_poke_bp), which under TCG has been seen to leave
# both vCPUs looping on a stale int3, a soft lockup in kmem_cache_alloc. That is the emulator's
# and happens whoever creates the group; done here, before monitor.ko is loaded, such a lockup is
# known as foreign by tests/vm/boot.sh (one fresh boot) instead of failing the module's run.
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/vm-memcg-warmup && rmdir /sys/fs/cgroup/vm-memcg-warmup

echo "--- module: load"
check insmod insmod /modules/monitor.ko
check device_node test -c /dev/container_monitor
mode=$(stat -c %a /dev/container_monitor 2>/dev/null)
[ "$mode" = 600 ] && pass device_mode_0600 || fail device_mode_0600 "mode is '$mode'"
grep -q '^1000$' /sys/module/monitor/parameters/interval_ms &&
	pass param_interval_default_1000 || fail param_interval_default_1000 "$(cat /sys/module/monitor/parameters/interval_ms)"

echo "--- module: invalid requests"
cm_test errors

echo "--- module: limits"
cm_test idle
# burst_mib_s=0 ("assume no sudden growth") takes the other branch of the interval maths.
echo 0 > /sys/module/monitor/parameters/burst_mib_s
cm_test idle | sed 's/^\(PASS\|FAIL\) idle_/\1 burst0_idle_/'
echo 4096 > /sys/module/monitor/parameters/burst_mib_s
cm_test soft
n=$(dmesg | grep -c 'container_monitor: SOFT LIMIT container=softtest pid=[0-9]* rss=[0-9]* soft=16777216$')
[ "$n" = 2 ] && pass dmesg_soft_line_per_crossing || fail dmesg_soft_line_per_crossing "$n lines, want 2"
# The soft-limit signal (ABI 2): once per crossing, re-armed below 90 % of soft.
cm_test softsig
n=$(dmesg | grep -c 'container_monitor: SOFT SIGNAL container=sigtest pid=[0-9]* sig=10 rss=[0-9]* soft=16777216$')
[ "$n" = 2 ] && pass dmesg_soft_signal_line || fail dmesg_soft_signal_line "$n lines, want 2"
cm_test shell
dmesg | grep -q 'container_monitor: HARD LIMIT container=shelltest pid=[0-9]* rss=[0-9]* hard=25165824 killing procs=[2-9]' &&
	pass dmesg_hard_line_whole_container || fail dmesg_hard_line_whole_container "$(dmesg | grep shelltest | tail -n 3)"
# Detection follows the allocation, not the 1 s base interval: a median under 200 ms is only
# possible with the adaptive schedule. The 20 ms target itself is a speed figure, measured by
# make bench-monitor; a timed gate that tight here would fail on a busy host, not on a bug.
cm_test hog 64 200 allocator 3
# memory_hog's malloc'd memory may be faulted in 2 MiB huge pages: one fault then moves RSS
# by 2 MiB, which at TCG's ~100 MiB/s is "20 ms" of overshoot before any check could run.
# The gate measures the monitor, so memory_hog runs with small pages here; make
# bench-monitor reports both.
thp=/sys/kernel/mm/transparent_hugepage/enabled
old_thp=$(sed 's/.*\[\(.*\)\].*/\1/' $thp)
echo madvise > $thp
cm_test hog 64 200 memory_hog 3 | sed "s/^\(PASS\|FAIL\) hog_/\1 memory_hog_/"
echo "$old_thp" > $thp

echo "--- module: 200 containers"
cm_test many 200
cm_test stats 0 no_entries_left

echo "--- module: rmmod with live entries"
cm_test hold 5 > /tmp/hold.out
grep '^PASS\|^FAIL' /tmp/hold.out
# Each sleeper cm_test forks holds a copy of its device fd until its first line closes it; on
# a slow guest that can come after cm_test has exited, and rmmod then fails with EAGAIN (busy).
# So rmmod is retried for a moment: the check is that live entries never keep it from working.
check rmmod_live_entries wait_for 5 rmmod monitor
dmesg | grep -q 'container_monitor: unloaded, 5 entries released' &&
	pass rmmod_released_every_entry || fail rmmod_released_every_entry "$(dmesg | grep unloaded)"
check device_removed test ! -e /dev/container_monitor
check reinsmod insmod /modules/monitor.ko
cm_test stats 0 fresh_after_reinsmod
cm_test hold 1 > /tmp/hold2.out
grep -q '^PASS hold_registered' /tmp/hold2.out && pass register_after_reinsmod ||
	fail register_after_reinsmod "$(cat /tmp/hold2.out)"
for p in $(grep '^[0-9]' /tmp/hold.out /tmp/hold2.out | cut -d: -f2); do kill -9 "$p"; done
check no_entries_after_kill wait_for 5 sh -c 'cm_test stats 0 | grep -q "^PASS"'

if grep -q 'engine_checks=1' /proc/cmdline; then
	echo "--- engine-oci with the monitor"
	sh /vm/engine-oci-monitor.sh
	echo "--- engine"
	sh /vm/engine-scenario.sh
else
	echo "--- engine checks not run (VM_ENGINE_CHECKS=0)"
fi

# Anything the kernel complained about is a failure, whichever check caused it.
bad=$(dmesg | grep -E 'BUG:|WARNING:|Oops|general protection|list_del corruption|refcount_t:|UBSAN|KASAN|INFO: task .* blocked')
[ -z "$bad" ] && pass no_kernel_warnings || fail no_kernel_warnings "$(echo "$bad" | head -n 3)"
exit 0

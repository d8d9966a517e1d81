#!/bin/sh
# vm-test part (b): the engine with the monitor, written to the engine CLI contract:
#   engine supervisor --root DIR --socket PATH --detach
#   engine start NAME ROOTFS CMD... [--soft-mib N --hard-mib M]
#   engine ps -a  (NAME STATE PID STARTED EXIT; STATE may be "killed (hard limit)")
#   engine inspect NAME  (JSON)
# Every check that cannot run reports FAIL, never PASS.
. /vm/lib.sh
cd /
ENGINE_CHECKS="engine_supervisor_started engine_demo_soft_then_hard engine_demo_ps_killed_hard_limit
engine_demo_inspect_peak engine_under_limits_running engine_shell_child_killed
engine_cgroup_v2_fallback_killed
engine_v2_memory_oom engine_v2_pids_limit engine_v2_cpus_throttled engine_v2_cpuset engine_v2_stats
engine_net_host_to_container engine_net_container_to_container engine_net_duplicate_ip_refused
engine_net_cleanup devices_v2_block_refused devices_v2_null_ok devices_v2_pids_default
engine_softsig_exited_0 engine_softsig_checkpoint_logged engine_softsig_dmesg engine_softsig_inspect_events
engine_softsig_ps engine_softsig_without_flag_killed engine_softsig_ignored_killed
engine_softsig_v2_fallback_exited_0 engine_softsig_v2_fallback_ignored_killed
engine_info_v2 engine_info_monitor"

if [ ! -x /bin/engine ]; then
	for c in $ENGINE_CHECKS; do fail "$c" "no static engine in the initramfs (make engine-static failed)"; done
	exit 0
fi
export ENGINE_SOCKET=/run/engine/engine.sock
# A hung CLI call must fail its check, not stall the whole VM until the host's timeout.
engine() { timeout 20 /bin/engine "$@"; }
mkdir -p /run/engine /var/lib/engine

state() { engine ps -a 2>/dev/null | awk -v n="$1" '$1 == n { $1 = ""; print }'; }
killed_hard() { state "$1" | grep -q 'killed (hard limit)'; }
exited_0() { state "$1" | grep -q 'exited (0)'; }
# softsig_delay NAME SOFT_KIB: ms from soft_trap's first line above soft to its checkpoint line.
softsig_delay() {
	engine logs "$1" 2>/dev/null | awk -v soft="$2" '
		/allocated=/ && !c { for (i = 1; i <= NF; i++) { if ($i ~ /^t=/) t = substr($i, 3); if ($i ~ /^rss=/ && substr($i, 5) + 0 > soft) c = t } }
		/checkpoint/ { for (i = 1; i <= NF; i++) if ($i ~ /^t=/) k = substr($i, 3) }
		END { if (c != "" && k != "") print k - c " ms"; else if (k != "") print "at t=" k " ms, before the command alone was above soft (the container counts its init too)"; else print "unknown" }'
}
running() { state "$1" | grep -q 'running'; }
start_supervisor() {
	engine supervisor --root /var/lib/engine --socket "$ENGINE_SOCKET" --detach >/tmp/supervisor.out 2>&1 &&
		wait_for 10 test -S "$ENGINE_SOCKET"
}

insmod /modules/monitor.ko 2>/dev/null
check engine_supervisor_started start_supervisor

# engine info on a cgroup v2 host with the monitor loaded (issue 12); src/cli/info.rs's JSON.
engine info --json >/tmp/info.json 2>&1
info=$(tr -d ' \n' </tmp/info.json)
controllers=$(echo "$info" | grep -o '"cgroup_controllers":\[[^]]*\]')
if echo "$info" | grep -q '"cgroup_version":"v2"' && echo "$controllers" | grep -q '"memory"' &&
	echo "$controllers" | grep -q '"pids"'; then
	pass engine_info_v2
else
	fail engine_info_v2 "$(oneline /tmp/info.json 400)"
fi
if echo "$info" | grep -q '"monitor_loaded":true' && echo "$info" | grep -q '"monitor_device":true' &&
	echo "$info" | grep -q '"monitor_abi":2' &&
	echo "$info" | grep -q '"monitor":true'; then
	pass engine_info_monitor
else
	fail engine_info_monitor "$(oneline /tmp/info.json 400)"
fi

# The user's demo from the issue, verbatim apart from the path.
engine start memtest rootfs /memory_hog 1 500 --soft-mib 3 --hard-mib 6 >/tmp/memtest.out 2>&1
if wait_for 30 killed_hard memtest; then
	pass engine_demo_ps_killed_hard_limit
else
	fail engine_demo_ps_killed_hard_limit "state '$(state memtest)': $(cat /tmp/memtest.out)"
fi
soft=$(dmesg | grep -n 'SOFT LIMIT container=memtest ' | head -n1 | cut -d: -f1)
hard=$(dmesg | grep -n 'HARD LIMIT container=memtest ' | head -n1 | cut -d: -f1)
if [ -n "$soft" ] && [ -n "$hard" ] && [ "$soft" -lt "$hard" ]; then
	pass engine_demo_soft_then_hard
else
	fail engine_demo_soft_then_hard "dmesg: $(dmesg | grep memtest | tr '\n' '|')"
fi
engine inspect memtest >/tmp/inspect.out 2>&1
echo "--- engine inspect memtest"
cat /tmp/inspect.out
# A peak RSS field with a value above the 6 MiB hard limit (in bytes or KiB or MiB, >= 6),
# and the hard-limit kill among the events.
peak=$(tr -d ' \n' </tmp/inspect.out | grep -o '"peak[a-z_]*":[0-9]*' | head -n1 | cut -d: -f2)
if [ -n "$peak" ] && [ "$peak" -ge 6 ] && grep -qi 'hard' /tmp/inspect.out &&
	grep -qiE 'kill' /tmp/inspect.out; then
	pass engine_demo_inspect_peak
else
	fail engine_demo_inspect_peak "no peak RSS >= 6 or no hard-limit kill in: $(head -c 300 /tmp/inspect.out)"
fi

# Under its limits: left alone.
engine start calm rootfs /memory_hog 1 50 2 --soft-mib 8 --hard-mib 16 >/tmp/calm.out 2>&1
sleep 3
running calm && pass engine_under_limits_running ||
	fail engine_under_limits_running "state '$(state calm)': $(cat /tmp/calm.out)"

# A shell whose child allocates: the container is killed as a whole.
# memory_hog stops at 200 MiB so a missing kill cannot run the guest out of memory.
engine start shellhog rootfs /bin/sh -c '/memory_hog 1 20 200 & wait' --soft-mib 4 --hard-mib 12 >/tmp/shellhog.out 2>&1
if wait_for 20 killed_hard shellhog &&
	dmesg | grep -q 'HARD LIMIT container=shellhog .* killing procs=[2-9]'; then
	pass engine_shell_child_killed
else
	fail engine_shell_child_killed "state '$(state shellhog)': $(dmesg | grep shellhog | tr '\n' '|')"
fi

# --soft-signal (issue 13): at the soft limit the module signals the init, which forwards it to the
# command; soft_trap traps SIGTERM, writes a checkpoint line and exits 0 before the hard limit.
engine start trap rootfs /soft_trap 2 100 200 --soft-mib 16 --hard-mib 48 --soft-signal TERM >/tmp/trap.out 2>&1
if wait_for 60 exited_0 trap; then
	pass engine_softsig_exited_0
else
	fail engine_softsig_exited_0 "state '$(state trap)': $(oneline /tmp/trap.out)"
fi
engine logs trap >/tmp/trap.log 2>&1
grep -q 'checkpoint' /tmp/trap.log && pass engine_softsig_checkpoint_logged ||
	fail engine_softsig_checkpoint_logged "$(oneline /tmp/trap.log 300)"
echo "softsig (module): crossing -> checkpoint $(softsig_delay trap 16384) (soft_trap step 100 ms)"
if dmesg | grep -q 'SOFT LIMIT container=trap ' && dmesg | grep -q 'SOFT SIGNAL container=trap pid=[0-9]* sig=15 ' &&
	! dmesg | grep -q 'HARD LIMIT container=trap '; then
	pass engine_softsig_dmesg
else
	fail engine_softsig_dmesg "dmesg: $(dmesg | grep 'container=trap ' | tr '\n' '|')"
fi
engine inspect trap >/tmp/trap.json 2>&1
grep -q 'soft-limit signal SIGTERM sent: rss' /tmp/trap.json && grep -q 'soft limit exceeded' /tmp/trap.json &&
	! grep -q 'hard limit' /tmp/trap.json && pass engine_softsig_inspect_events ||
	fail engine_softsig_inspect_events "$(oneline /tmp/trap.json 400)"
state trap | grep -q 'exited (0) after soft-limit signal' && pass engine_softsig_ps ||
	fail engine_softsig_ps "state '$(state trap)'"
# The same workload without the flag: the hard limit kills it, no checkpoint.
engine start nosig rootfs /soft_trap 2 100 200 --soft-mib 16 --hard-mib 48 >/tmp/nosig.out 2>&1
# The log must be readable and show the allocation, so a failing `logs` cannot pass for "no checkpoint".
if wait_for 60 killed_hard nosig && engine logs nosig >/tmp/nosig.log 2>&1 && grep -q 'allocated=' /tmp/nosig.log &&
	! grep -q checkpoint /tmp/nosig.log; then
	pass engine_softsig_without_flag_killed
else
	fail engine_softsig_without_flag_killed "state '$(state nosig)': $(oneline /tmp/nosig.out)"
fi
# An application that ignores the signal is killed at the hard limit.
engine start deaf rootfs /soft_trap 2 100 200 ignore --soft-mib 16 --hard-mib 48 --soft-signal TERM >/tmp/deaf.out 2>&1
if wait_for 60 killed_hard deaf && dmesg | grep -q 'SOFT SIGNAL container=deaf '; then
	pass engine_softsig_ignored_killed
else
	fail engine_softsig_ignored_killed "state '$(state deaf)': $(dmesg | grep 'container=deaf ' | tr '\n' '|')"
fi

# Without the module: cgroup v2 memory.max enforces the hard limit.
engine ps -a >/tmp/ps.out 2>&1
kill "$(pidof engine)" 2>/dev/null
wait_for 10 sh -c '! pidof engine'
rm -f "$ENGINE_SOCKET"
if ! rmmod monitor 2>/tmp/rmmod.out; then
	fail engine_cgroup_v2_fallback_killed "rmmod monitor: $(cat /tmp/rmmod.out); engine still running: $(pidof engine)"
	fail engine_softsig_v2_fallback_exited_0 "rmmod failed"
	fail engine_softsig_v2_fallback_ignored_killed "rmmod failed"
elif start_supervisor; then
	engine start cgmem rootfs /memory_hog 1 10 200 --hard-mib 8 >/tmp/cgmem.out 2>&1
	wait_for 30 killed_hard cgmem && pass engine_cgroup_v2_fallback_killed ||
		fail engine_cgroup_v2_fallback_killed "state '$(state cgmem)': $(cat /tmp/cgmem.out)"
	# --soft-signal through memory.events (the `high` counter, polled) instead of the module.
	engine start cgtrap rootfs /soft_trap 2 100 200 --soft-mib 16 --hard-mib 48 --soft-signal TERM >/tmp/cgtrap.out 2>&1
	if wait_for 60 exited_0 cgtrap && engine logs cgtrap 2>&1 | grep -q checkpoint &&
		engine inspect cgtrap 2>&1 | grep -q 'soft-limit signal SIGTERM sent'; then
		pass engine_softsig_v2_fallback_exited_0
	else
		fail engine_softsig_v2_fallback_exited_0 "state '$(state cgtrap)': $(oneline /tmp/cgtrap.out) $(engine inspect cgtrap 2>&1 | grep -A3 events | tr '\n' ' ')"
	fi
	echo "softsig (cgroup v2 fallback): crossing -> checkpoint $(softsig_delay cgtrap 16384) (soft_trap step 100 ms)"
	engine start cgdeaf rootfs /soft_trap 2 100 200 ignore --soft-mib 16 --hard-mib 48 --soft-signal TERM >/tmp/cgdeaf.out 2>&1
	wait_for 90 killed_hard cgdeaf && pass engine_softsig_v2_fallback_ignored_killed ||
		fail engine_softsig_v2_fallback_ignored_killed "state '$(state cgdeaf)': $(oneline /tmp/cgdeaf.out)"
else
	fail engine_cgroup_v2_fallback_killed "supervisor did not restart: $(cat /tmp/supervisor.out)"
	fail engine_softsig_v2_fallback_exited_0 "supervisor did not restart"
	fail engine_softsig_v2_fallback_ignored_killed "supervisor did not restart"
fi

# cgroup v2 limits and bridge networking (issue 4), against the restarted supervisor.
. /vm/engine-limits-net.sh
# Device rules (a BPF program) and a group of its own for every container (issue 8).
. /vm/engine-devices.sh

echo "--- engine ps -a"
cat /tmp/ps.out
engine ps -a

#!/bin/sh
# vm-test part (b2), sourced by engine-scenario.sh with the supervisor running (issue 4):
# cgroup v2 limits (memory, pids, cpus, cpuset, stats) and bridge networking, in a guest that
# is a clean cgroup v2 host. Uses engine(), state() from engine-scenario.sh and lib.sh.
# Every check that cannot run reports FAIL, never PASS.

# inspect_num NAME FIELD: the first numeric "FIELD": value in `engine inspect NAME`.
inspect_num() {
	engine inspect "$1" 2>/dev/null | tr -d ' \n' | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2
}
# cgroup_dir NAME: the container's cgroup v2 directory as inspect reports it (while running).
cgroup_dir() {
	engine inspect "$1" 2>/dev/null | tr -d ' \n' | grep -o '"/sys/fs/cgroup/[^"]*"' | head -n1 | tr -d '"'
}
stats_ok() {
	mc=$(inspect_num "$1" memory_current)
	pc=$(inspect_num "$1" pids_current)
	[ -n "$mc" ] && [ "$mc" -ge $((8 * 1024 * 1024)) ] && [ -n "$pc" ] && [ "$pc" -ge 2 ]
}
has_cgroup_dir() { [ -n "$(cgroup_dir "$1")" ]; }
killed_oom() { state "$1" | grep -q 'killed (oom)'; }
listening() { engine logs "$1" 2>/dev/null | grep -q "listening on $2"; }
# No container's veth on the bridge: a port with an alias (a start stamps engine:BRIDGE:NAME).
# The pair made ahead for the next bridged start has none; it is the supervisor's until taken.
owned_ports() { for p in /sys/class/net/engine0/brif/*; do [ -e "$p" ] && [ -n "$(cat /sys/class/net/${p##*/}/ifalias)" ] && echo "${p##*/}"; done; }
no_veth_on_bridge() { [ -d /sys/class/net/engine0/brif ] && [ -z "$(owned_ports)" ]; }
port_aliases() { for p in /sys/class/net/engine0/brif/*; do [ -e "$p" ] && echo "${p##*/}=$(cat /sys/class/net/${p##*/}/ifalias)"; done | tr '\n' ' '; }

echo "--- engine: cgroup v2 limits"

# 1. Memory: the cgroup's OOM killer ends the container; ps shows it; the group is removed.
engine run --net none --memory 16m oomhog rootfs /memory_hog 2 10 200 >/tmp/oomhog.out 2>&1 &
oompid=$!
# The cgroup directory, read from inspect while the container runs (memory_hog needs >= 80 ms
# to reach 16 MiB; if it is already gone, fall back to the documented layout).
cg=""
wait_for 5 has_cgroup_dir oomhog && cg=$(cgroup_dir oomhog)
wait "$oompid"
oomrc=$?
echo "oomhog: exit $oomrc, cgroup from inspect: '$cg'"
[ -n "$cg" ] || cg=/sys/fs/cgroup/engine/oomhog
wait_for 5 killed_oom oomhog
if [ "$oomrc" = 137 ] && killed_oom oomhog && wait_for 5 test ! -e "$cg"; then
	pass engine_v2_memory_oom
else
	fail engine_v2_memory_oom "exit $oomrc, state '$(state oomhog)', cgroup $cg $(test -e "$cg" && echo still there || echo gone): $(oneline /tmp/oomhog.out)"
fi

# 2. Pids: the sixth background sleep cannot be forked under --pids-limit 5.
engine run --net none --pids-limit 5 pidlim rootfs /bin/sh -c \
	'for i in 1 2 3 4 5 6; do sleep 2 & done; echo survived' >/tmp/pidlim.out 2>&1
pidrc=$?
echo "pidlim: exit $pidrc: $(oneline /tmp/pidlim.out)"
if ! grep -q survived /tmp/pidlim.out && grep -qi "fork" /tmp/pidlim.out; then
	pass engine_v2_pids_limit
else
	fail engine_v2_pids_limit "exit $pidrc: $(oneline /tmp/pidlim.out)"
fi

# 3. CPU quota: a quarter of a CPU makes cpu_hog's CPU/wall ratio about 0.25.
engine run --net none --cpus 0.25 cpuq rootfs /cpu_hog 0.5 >/tmp/cpuq.out 2>&1
cpurc=$?
line=$(grep 'cpu_hog: done' /tmp/cpuq.out | tail -n1)
cpu=$(echo "$line" | sed -n 's/.*cpu=\([0-9.]*\)s.*/\1/p')
wall=$(echo "$line" | sed -n 's/.*wall=\([0-9.]*\)s.*/\1/p')
echo "cpuq: exit $cpurc: $line"
if [ -n "$cpu" ] && [ -n "$wall" ] && awk -v c="$cpu" -v w="$wall" 'BEGIN { exit !(w > 0 && c / w < 0.4) }'; then
	pass engine_v2_cpus_throttled
else
	fail engine_v2_cpus_throttled "exit $cpurc, cpu=$cpu wall=$wall: $(oneline /tmp/cpuq.out)"
fi

# 4. Cpuset: pinned to CPU 1 of the guest's two.
engine run --net none --cpuset-cpus 1 pinned rootfs /bin/grep Cpus_allowed_list /proc/self/status >/tmp/pinned.out 2>&1
pinrc=$?
echo "pinned: exit $pinrc: $(cat /tmp/pinned.out)"
if [ "$pinrc" = 0 ] && grep -Eq '^Cpus_allowed_list:[[:space:]]+1$' /tmp/pinned.out; then
	pass engine_v2_cpuset
else
	fail engine_v2_cpuset "exit $pinrc: $(oneline /tmp/pinned.out)"
fi

# 5. Stats of a running container: 8 MiB held by memory_hog; engine's init + memory_hog: 2 pids.
engine start --net none --memory 64m statsc rootfs /memory_hog 4 0 8 >/tmp/statsc.out 2>&1
if wait_for 20 stats_ok statsc; then
	pass engine_v2_stats
else
	fail engine_v2_stats "state '$(state statsc)', memory_current=$(inspect_num statsc memory_current) pids_current=$(inspect_num statsc pids_current): $(oneline /tmp/statsc.out)"
fi
engine inspect statsc
engine rm -f statsc >/dev/null 2>&1
for c in oomhog pidlim cpuq pinned; do engine rm -f "$c" >/dev/null 2>&1; done

echo "--- engine: bridge networking"

# 6. Host -> container TCP through the bridge.
engine start --ip 10.88.0.50 web rootfs /server 8080 >/tmp/web.out 2>&1
webrc=$?
wait_for 10 listening web 8080
# Through the guest-side static client (workloads/bin/client), else busybox nc.
echo_back() {
	if [ -x /bin/client ]; then
		timeout 5 /bin/client 10.88.0.50 8080 hello-from-host
	else
		echo hello-from-host | timeout 5 nc 10.88.0.50 8080
	fi
}
echoed() { echo_back 2>&1 | grep -q hello-from-host; }
if wait_for 10 echoed; then
	pass engine_net_host_to_container
else
	fail engine_net_host_to_container "start exit $webrc ($(oneline /tmp/web.out 100)), state '$(state web)', client: $(echo_back 2>&1 | tr '\n' ' ' | cut -c1-100), ip a: $(ip -o addr 2>&1 | tr '\n' '|' | cut -c1-300)"
fi

# 7. Container -> container.
engine run pinger rootfs /bin/ping -c1 -W2 10.88.0.50 >/tmp/pinger.out 2>&1
pingrc=$?
echo "pinger: exit $pingrc: $(grep -E 'bytes from|received' /tmp/pinger.out | tr '\n' ' ')"
if [ "$pingrc" = 0 ] && grep -q '1 packets received' /tmp/pinger.out; then
	pass engine_net_container_to_container
else
	fail engine_net_container_to_container "exit $pingrc: $(oneline /tmp/pinger.out)"
fi

# 8. A second container on the same address is refused and leaves nothing behind.
engine start --ip 10.88.0.50 web2 rootfs /server 8081 >/tmp/web2.out 2>&1
duprc=$?
echo "web2: exit $duprc: $(cat /tmp/web2.out)"
if [ "$duprc" = 125 ] && [ -z "$(state web2)" ]; then
	pass engine_net_duplicate_ip_refused
else
	fail engine_net_duplicate_ip_refused "exit $duprc, state '$(state web2)': $(oneline /tmp/web2.out)"
fi

# 9. Removing the networked containers removes their host-side veths.
for c in web pinger web2; do engine rm -f "$c" >/dev/null 2>&1; done
if wait_for 5 no_veth_on_bridge; then
	pass engine_net_cleanup
else
	fail engine_net_cleanup "engine0 ports (=alias): $(port_aliases), links: $(ip -o link 2>&1 | cut -d: -f2 | tr '\n' ' ')"
fi

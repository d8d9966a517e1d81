#!/bin/sh
# vm-test part (b3), sourced by engine-scenario.sh with the supervisor running (issue 8, items 1
# and 7): on cgroup v2 the device rules are a BPF program attached to the container's group,
# and every container has its own group with pids.max 2048 without --pids-limit.
# Uses engine(), state() from engine-scenario.sh, cgroup_dir() from engine-limits-net.sh, lib.sh.
# Every check that cannot run reports FAIL, never PASS.

echo "--- engine: device rules and own groups (cgroup v2)"

# One line per node, "LABEL r=[...] w=[...]": "ok" or the shell's error for an open for reading
# and one for writing, done by a subshell so nothing is written to a device.
cat >/tmp/devprobe.sh <<'EOF'
probe() {
	l=$1; p=$2; shift 2
	if [ $# -gt 0 ]; then m=$(mknod "$p" "$@" 2>&1) || { echo "$l mknod=[$m]"; return; }; fi
	r=$( ( : <"$p" ) 2>&1 ) && r=ok
	w=$( ( : >"$p" ) 2>&1 ) && w=ok
	echo "$l r=[$r] w=[$w]"
}
probe loop /dev/hl b 7 0
d=$(dd if=/dev/hl of=/dev/null count=1 2>&1) && d=ok
echo "loopdd r=[$d] w=[$d]"
probe kmsg /dev/km c 1 11
probe tty1 /dev/t1 c 4 1
probe loopctl /dev/lc c 10 237
probe kvm /dev/kv c 10 232
probe mynull /dev/mn c 1 3
probe null /dev/null
probe zero /dev/zero
probe urandom /dev/urandom
probe ptmx /dev/ptmx
echo probe-done
EOF
engine run --net none devs rootfs /bin/sh -c "$(cat /tmp/devprobe.sh)" >/tmp/devs.out 2>&1
devrc=$?
echo "devs: exit $devrc"
cat /tmp/devs.out
# refused LABEL: made, then refused (EPERM) for reading and for writing.
refused() {
	l=$(grep "^$1 " /tmp/devs.out)
	[ -n "$l" ] && ! echo "$l" | grep -q 'mknod=' &&
		[ "$(echo "$l" | grep -o 'Operation not permitted' | wc -l)" = 2 ]
}
opened() { grep -qx "$1 r=\[ok\] w=\[ok\]" /tmp/devs.out; }
bad=""
for n in loop loopdd kmsg tty1 loopctl kvm; do refused "$n" || bad="$bad $n"; done
if [ "$devrc" = 0 ] && grep -q probe-done /tmp/devs.out && [ -z "$bad" ]; then
	pass devices_v2_block_refused
else
	# A refused program load or attach fails the start: the verifier's log is in its message.
	fail devices_v2_block_refused "exit $devrc, not refused:$bad: $(oneline /tmp/devs.out 400)"
fi
bad=""
for n in mynull null zero urandom ptmx; do opened "$n" || bad="$bad $n"; done
if [ "$devrc" = 0 ] && [ -z "$bad" ]; then
	pass devices_v2_null_ok
else
	fail devices_v2_null_ok "exit $devrc, not opened:$bad: $(oneline /tmp/devs.out 400)"
fi
engine rm devs >/dev/null 2>&1

# Without any limit flag: its own group, pids.max 2048, the device program attached; removed
# with the container.
engine start --net none plain rootfs /bin/sleep 60 >/tmp/plain.out 2>&1
pcg=$(cgroup_dir plain)
pmax=$(cat "$pcg/pids.max" 2>&1)
echo "plain: cgroup '$pcg', pids.max '$pmax'"
engine rm -f plain >/dev/null 2>&1
if [ -n "$pcg" ] && [ "$pmax" = 2048 ] && wait_for 5 test ! -e "$pcg"; then
	pass devices_v2_pids_default
else
	fail devices_v2_pids_default "cgroup '$pcg' ($(test -e "$pcg" && echo still there || echo gone)), pids.max '$pmax': $(oneline /tmp/plain.out)"
fi

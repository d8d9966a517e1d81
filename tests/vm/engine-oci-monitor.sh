#!/bin/sh
# vm-test: engine's kernel memory monitor for any OCI container (issue 9, issue 13), through the
# OCI binary as podman, containerd or the conformance suite drive it:
#   engine-oci create --bundle DIR ID / start ID / state ID / delete [--force] ID / run --keep
# with the annotations org.engine.monitor.soft-mib, hard-mib and soft-signal (src/oci/monitor.rs).
# create runs under `cm_test reap`, a child subreaper as a containerd shim or conmon is, so the
# container's exit status (killed by which signal) is seen. Every check that cannot run FAILs.
. /vm/lib.sh
cd /
OCI_CHECKS="oci_monitor_registered_at_create oci_monitor_hard_dmesg oci_monitor_hard_sigkilled
oci_monitor_hard_state_stopped oci_monitor_hard_delete_unregistered oci_monitor_delete_unregisters_live
oci_monitor_softsig_exit_0 oci_monitor_softsig_checkpoint oci_monitor_softsig_dmesg
oci_monitor_softsig_deleted oci_monitor_no_annotations_not_registered oci_monitor_no_annotations_runs
oci_monitor_nothing_left"

if [ ! -x /bin/engine-oci ]; then
	for c in $OCI_CHECKS; do fail "$c" "no static engine-oci in the initramfs (make engine-static failed)"; done
	exit 0
fi
# A hung runtime call must fail its check, not stall the whole VM until the host's timeout.
oci() { timeout 30 /bin/engine-oci "$@"; }
[ -c /dev/container_monitor ] || insmod /modules/monitor.ko

# bundle NAME ARGS_JSON [ANNOTATIONS_JSON]: /tmp/oci/NAME/config.json over the guest's /rootfs
# (read-only, so every container can share it), in its own PID, mount, IPC and UTS namespaces.
bundle() {
	_ann=${3:-"{}"}
	mkdir -p "/tmp/oci/$1"
	cat >"/tmp/oci/$1/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": $2,
    "env": ["PATH=/bin:/sbin:/usr/bin"],
    "cwd": "/"
  },
  "root": { "path": "/rootfs", "readonly": true },
  "hostname": "$1",
  "mounts": [ { "destination": "/proc", "type": "proc", "source": "proc" } ],
  "linux": { "namespaces": [ { "type": "pid" }, { "type": "mount" }, { "type": "ipc" }, { "type": "uts" } ] },
  "annotations": $_ann
}
EOF
	echo "/tmp/oci/$1"
}
oci_pid() { oci state "$1" 2>/dev/null | tr -d ' \n' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
oci_status() { oci state "$1" 2>/dev/null | tr -d ' \n' | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'; }
is_status() { [ "$(oci_status "$1")" = "$2" ]; }
# create_reaped ID BUNDLE: `engine-oci create` under a subreaper; its notes go to /tmp/ID.reap.
create_reaped() {
	rm -f "/tmp/$1.reap"
	cm_test reap "/tmp/$1.reap" /bin/engine-oci create --bundle "$2" "$1" >"/tmp/$1.out" 2>&1 &
	wait_for 30 grep -q '^cmd exit' "/tmp/$1.reap" && grep -q '^cmd exit 0$' "/tmp/$1.reap"
}
unregistered() { [ -n "$1" ] && ! cm_test query "$1" >/dev/null 2>&1; }

echo "--- engine-oci: hard limit"
b=$(bundle ocihard '["/memory_hog", "1", "20", "200"]' \
	'{ "org.engine.monitor.soft-mib": "4", "org.engine.monitor.hard-mib": "12" }')
if create_reaped ocihard "$b"; then
	pid=$(oci_pid ocihard)
	# Registered by create, while the process still waits for start.
	cm_test query "$pid" >/tmp/ocihard.query 2>&1
	if is_status ocihard created && grep -q "^entry pid=$pid name=ocihard soft=4194304 hard=12582912 " /tmp/ocihard.query &&
		dmesg | grep -q "REGISTER container=ocihard pid=$pid soft=4194304 hard=12582912 pidns sig=0$"; then
		pass oci_monitor_registered_at_create
	else
		fail oci_monitor_registered_at_create "status '$(oci_status ocihard)', query: $(oneline /tmp/ocihard.query), dmesg: $(dmesg | grep 'container=ocihard ' | tr '\n' '|')"
	fi
	oci start ocihard >>/tmp/ocihard.out 2>&1
	# memory_hog stops at 200 MiB, so a missing kill cannot run the guest out of memory.
	wait_for 30 grep -q "^pid $pid " /tmp/ocihard.reap
	soft=$(dmesg | grep -n "SOFT LIMIT container=ocihard pid=$pid " | head -n1 | cut -d: -f1)
	hard=$(dmesg | grep -n "HARD LIMIT container=ocihard pid=$pid rss=[0-9]* hard=12582912 killing" | head -n1 | cut -d: -f1)
	if [ -n "$soft" ] && [ -n "$hard" ] && [ "$soft" -lt "$hard" ]; then
		pass oci_monitor_hard_dmesg
	else
		fail oci_monitor_hard_dmesg "dmesg: $(dmesg | grep 'container=ocihard ' | tr '\n' '|')"
	fi
	grep -q "^pid $pid signal 9$" /tmp/ocihard.reap && pass oci_monitor_hard_sigkilled ||
		fail oci_monitor_hard_sigkilled "reaper: $(oneline /tmp/ocihard.reap); output: $(oneline /tmp/ocihard.out)"
	wait_for 10 is_status ocihard stopped && pass oci_monitor_hard_state_stopped ||
		fail oci_monitor_hard_state_stopped "status '$(oci_status ocihard)'"
	if oci delete ocihard >/tmp/ocihard.del 2>&1 && ! oci state ocihard >/dev/null 2>&1 && unregistered "$pid"; then
		pass oci_monitor_hard_delete_unregistered
	else
		fail oci_monitor_hard_delete_unregistered "delete: $(oneline /tmp/ocihard.del); query: $(cm_test query "$pid")"
	fi
else
	for c in oci_monitor_registered_at_create oci_monitor_hard_dmesg oci_monitor_hard_sigkilled \
		oci_monitor_hard_state_stopped oci_monitor_hard_delete_unregistered; do
		fail "$c" "engine-oci create: $(oneline /tmp/ocihard.out) $(oneline /tmp/ocihard.reap)"
	done
fi
oci delete --force ocihard >/dev/null 2>&1

echo "--- engine-oci: soft-limit signal"
# soft_trap traps SIGTERM, writes a checkpoint line and exits 0; `run` waits and returns its code.
b=$(bundle ocitrap '["/soft_trap", "2", "100", "200"]' \
	'{ "org.engine.monitor.soft-mib": "16", "org.engine.monitor.hard-mib": "48", "org.engine.monitor.soft-signal": "TERM" }')
timeout 90 /bin/engine-oci run --keep --bundle "$b" ocitrap >/tmp/ocitrap.out 2>&1
rc=$?
[ "$rc" = 0 ] && pass oci_monitor_softsig_exit_0 ||
	fail oci_monitor_softsig_exit_0 "engine-oci run exited $rc: $(tail -n 3 /tmp/ocitrap.out | tr '\n' ' ')"
grep -q 'checkpoint' /tmp/ocitrap.out && pass oci_monitor_softsig_checkpoint ||
	fail oci_monitor_softsig_checkpoint "$(tail -n 3 /tmp/ocitrap.out | tr '\n' ' ')"
if dmesg | grep -q 'SOFT LIMIT container=ocitrap ' && dmesg | grep -q 'SOFT SIGNAL container=ocitrap pid=[0-9]* sig=15 ' &&
	! dmesg | grep -q 'HARD LIMIT container=ocitrap '; then
	pass oci_monitor_softsig_dmesg
else
	fail oci_monitor_softsig_dmesg "dmesg: $(dmesg | grep 'container=ocitrap ' | tr '\n' '|')"
fi
if is_status ocitrap stopped && oci delete ocitrap >/tmp/ocitrap.del 2>&1 && ! oci state ocitrap >/dev/null 2>&1; then
	pass oci_monitor_softsig_deleted
else
	fail oci_monitor_softsig_deleted "status '$(oci_status ocitrap)', delete: $(oneline /tmp/ocitrap.del)"
fi
oci delete --force ocitrap >/dev/null 2>&1

echo "--- engine-oci: no annotations"
b=$(bundle ociplain '["/memory_hog", "1", "20", "4"]')
if create_reaped ociplain "$b"; then
	pid=$(oci_pid ociplain)
	cm_test query "$pid" >/tmp/ociplain.query 2>&1
	if grep -q '^none: ' /tmp/ociplain.query && ! dmesg | grep -q 'container=ociplain '; then
		pass oci_monitor_no_annotations_not_registered
	else
		fail oci_monitor_no_annotations_not_registered "query: $(oneline /tmp/ociplain.query); dmesg: $(dmesg | grep 'container=ociplain ' | tr '\n' '|')"
	fi
	oci start ociplain >>/tmp/ociplain.out 2>&1
	sleep 1
	if is_status ociplain running && oci delete --force ociplain >/tmp/ociplain.del 2>&1 &&
		wait_for 10 grep -q "^pid $pid signal 9$" /tmp/ociplain.reap; then
		pass oci_monitor_no_annotations_runs
	else
		fail oci_monitor_no_annotations_runs "status '$(oci_status ociplain)', delete: $(oneline /tmp/ociplain.del), reaper: $(oneline /tmp/ociplain.reap)"
	fi
else
	fail oci_monitor_no_annotations_not_registered "engine-oci create: $(oneline /tmp/ociplain.out) $(oneline /tmp/ociplain.reap)"
	fail oci_monitor_no_annotations_runs "engine-oci create failed"
fi
oci delete --force ociplain >/dev/null 2>&1

echo "--- engine-oci: delete unregisters a live container"
# The module drops an entry by itself (GONE) once it sees the init gone; only `delete`'s own
# UNREGISTER proves delete did it. Checks 60 s apart (burst 0: no assumed growth) leave the
# module no chance to notice first.
params=/sys/module/monitor/parameters
old_interval=$(cat $params/interval_ms)
old_burst=$(cat $params/burst_mib_s)
echo 60000 >$params/interval_ms
echo 0 >$params/burst_mib_s
b=$(bundle ocilive '["/memory_hog", "1", "20", "4"]' \
	'{ "org.engine.monitor.soft-mib": "32", "org.engine.monitor.hard-mib": "64" }')
if create_reaped ocilive "$b" && oci start ocilive >>/tmp/ocilive.out 2>&1; then
	pid=$(oci_pid ocilive)
	sleep 1
	cm_test query "$pid" >/tmp/ocilive.query 2>&1
	if grep -q "^entry pid=$pid name=ocilive " /tmp/ocilive.query && is_status ocilive running &&
		oci delete --force ocilive >/tmp/ocilive.del 2>&1 && unregistered "$pid" &&
		dmesg | grep -q "UNREGISTER container=ocilive pid=$pid " && ! dmesg | grep -q "GONE container=ocilive "; then
		pass oci_monitor_delete_unregisters_live
	else
		fail oci_monitor_delete_unregisters_live "before: $(oneline /tmp/ocilive.query); delete: $(oneline /tmp/ocilive.del); dmesg: $(dmesg | grep 'container=ocilive ' | tr '\n' '|')"
	fi
else
	fail oci_monitor_delete_unregisters_live "engine-oci create/start: $(oneline /tmp/ocilive.out) $(oneline /tmp/ocilive.reap)"
fi
oci delete --force ocilive >/dev/null 2>&1
echo "$old_interval" >$params/interval_ms
echo "$old_burst" >$params/burst_mib_s

# Nothing of these containers may stay: no state, no monitor entry (the reapers have exited).
if wait_for 10 sh -c '! pidof cm_test' && oci list >/tmp/oci.list 2>&1 && ! grep -q '^oci' /tmp/oci.list &&
	cm_test stats 0 oci_entries | grep -q '^PASS'; then
	pass oci_monitor_nothing_left
else
	fail oci_monitor_nothing_left "reapers: $(pidof cm_test); list: $(oneline /tmp/oci.list); $(cm_test stats 0 oci_entries | tr '\n' ' ')"
fi
exit 0

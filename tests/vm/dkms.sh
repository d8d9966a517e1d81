#!/bin/sh
# make vm-dkms-test, in the guest: the monitor module that DKMS built and installed on the host
# (scripts/vm-dkms.sh) in /lib/modules/KVER/updates/dkms, with depmod's modules.dep, loaded and
# removed by name with modprobe, as `dkms install monitor/VERSION` + `modprobe monitor` do on a
# real machine.
. /vm/lib.sh
cd /
moddir=/lib/modules/$(uname -r)
ko=$moddir/updates/dkms/monitor.ko

echo "--- dkms: module in $moddir"
check dkms_module_installed test -f "$ko"
grep -q '^updates/dkms/monitor.ko:' "$moddir/modules.dep" && pass dkms_modules_dep ||
	fail dkms_modules_dep "no monitor.ko in $moddir/modules.dep: $(oneline "$moddir/modules.dep")"
check dkms_not_loaded_at_boot test ! -e /sys/module/monitor

echo "--- dkms: modprobe monitor"
check dkms_modprobe modprobe monitor
check dkms_sys_module test -d /sys/module/monitor
# The module loaded is the DKMS build: its GNU build-id note (the module has no MODULE_VERSION,
# hence no srcversion) is in the installed file.
hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }
note=$(hex /sys/module/monitor/notes/.note.gnu.build-id 2>/dev/null)
if [ -n "$note" ] && hex "$ko" | grep -q "$note"; then
	pass dkms_loaded_is_dkms_build
else
	fail dkms_loaded_is_dkms_build "build-id note '$note' of the loaded module is not in $ko"
fi
check dkms_device_node test -c /dev/container_monitor
mode=$(stat -c %a /dev/container_monitor 2>/dev/null)
[ "$mode" = 600 ] && pass dkms_device_mode_0600 || fail dkms_device_mode_0600 "mode is '$mode'"
# The device works: an empty registry answers the stats request.
cm_test stats 0 dkms_device_answers

echo "--- dkms: modprobe -r monitor"
check dkms_modprobe_r modprobe -r monitor
check dkms_unloaded test ! -e /sys/module/monitor
check dkms_device_removed test ! -e /dev/container_monitor

bad=$(dmesg | grep -E 'BUG:|WARNING:|Oops|general protection|refcount_t:|UBSAN|KASAN')
[ -z "$bad" ] && pass dkms_no_kernel_warnings || fail dkms_no_kernel_warnings "$(echo "$bad" | head -n 3)"
exit 0

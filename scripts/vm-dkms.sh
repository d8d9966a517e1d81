#!/usr/bin/env bash
# Packs the initramfs of `make vm-dkms-test`: the monitor module as a user gets it, i.e. the DKMS
# source tree `make install` lays out, `dkms add`, `dkms build` and `dkms install` against the
# guest kernel's headers, then depmod; the guest (tests/vm/dkms.sh) loads it with modprobe.
#   bash scripts/vm-dkms.sh WORK OUT.cpio
# WORK is emptied and reused. The environment is the one scripts/vm-initramfs.sh reads (mk/vm.mk
# sets it), less MONITOR_KO, ROOTFS and WORKLOAD_DIR, which this script provides; MAKE and ENGINE
# name the make and the engine binary `make install` uses (its completions and man pages).
# Every DKMS tree is private (--dkmstree, --sourcetree, --installtree): the host's /var/lib/dkms
# and /lib/modules are never touched.
set -euo pipefail

work=$(realpath -m "${1:?usage: $0 WORK OUT.cpio}")
out=$(realpath -m "${2:?usage: $0 WORK OUT.cpio}")
here=$(cd "$(dirname "$0")/.." && pwd)
: "${VM_DIR:?}" "${ENGINE:?}"
# shellcheck source=/dev/null
. "$VM_DIR/kernel.env"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n1)

rm -rf "$work"
mkdir -p "$work/dkms" "$work/initrd/lib/modules/$KVER" "$work/empty"
"${MAKE:-make}" -s --no-print-directory -C "$here" install CARGO=true ENGINE="$ENGINE" \
  DESTDIR="$work/dest" STAGE="$work/stage" >/dev/null

# The guest's /lib/modules is the install tree. --no-depmod: dkms would run depmod on the
# host's /lib/modules/KVER; depmod -b below does it on the guest's tree instead.
dkms_do() { # ACTION [ARG...]
  local action=$1
  shift
  dkms "$action" -m monitor -v "$version" --sourcetree="$work/dest/usr/src" --dkmstree="$work/dkms" \
    --installtree="$work/initrd/lib/modules" "$@" >"$work/dkms-$action.log" 2>&1 ||
    { echo "vm-dkms: dkms $action failed:" >&2; cat "$work/dkms-$action.log" >&2; exit 1; }
}
dkms_do add
dkms_do build -k "$KVER" --kernelsourcedir "$KDIR"
dkms_do install -k "$KVER" --kernelsourcedir "$KDIR" --no-depmod
ko="$work/initrd/lib/modules/$KVER/updates/dkms/monitor.ko"
[ -f "$ko" ] || { echo "vm-dkms: dkms install left no $ko" >&2; exit 1; }
# The kernel package's own lists, as on an installed system (depmod warns without them).
cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$work/initrd/lib/modules/$KVER/"
depmod -b "$work/initrd" "$KVER"
grep -q '^updates/dkms/monitor.ko:' "$work/initrd/lib/modules/$KVER/modules.dep" ||
  { echo "vm-dkms: depmod did not list monitor.ko" >&2; exit 1; }
echo "vm-dkms: dkms built and installed monitor.ko for $KVER ($(readelf -n "$ko" | sed -n "s/.*Build ID: /build-id /p"))"

# The usual guest (init, busybox, tools), without the containers' rootfs or workloads it does not
# need; its /modules/monitor.ko, which tests/vm/dkms.sh never loads, is the DKMS build too.
MONITOR_KO="$ko" ROOTFS="$work/empty" WORKLOAD_DIR="$work/empty" ENGINE_BIN="" \
  bash "$here/scripts/vm-initramfs.sh" "$out" "$here/tests/vm/dkms.sh"
# The kernel unpacks concatenated cpio archives in turn: the second adds /lib/modules.
(cd "$work/initrd" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  busybox cpio -0 -o -H newc -R 0:0 >> "$out" 2>/dev/null)

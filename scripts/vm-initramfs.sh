#!/usr/bin/env bash
# Packs the test VM's initramfs:
#   bash scripts/vm-initramfs.sh OUT.cpio RUN_SCRIPT [EXTRA_FILE...]
# RUN_SCRIPT becomes /vm/run, which the guest /init runs; EXTRA_FILEs go to /vm/ too.
# Inputs come from the environment (mk/vm.mk sets them):
#   VM_DIR        holds kernel.env (scripts/vm-kernel.sh) with the guest's MODDIR
#   MONITOR_KO    monitor.ko built against the guest kernel
#   VM_TOOLS      folder with the static cm_test and vm-exit
#   WORKLOAD_DIR  static workloads (memory_hog, ...)
#   ROOTFS        busybox rootfs for containers (scripts/mkrootfs.sh)
#   ENGINE_BIN    static engine (and engine-oci beside it); may be missing: the engine checks
#                 then fail, the rest runs
# The host has no cpio: busybox packs it (newc, uncompressed: fastest to boot).
set -euo pipefail

out=$(realpath -m "${1:?usage: $0 OUT.cpio RUN_SCRIPT [EXTRA...]}")
run=${2:?usage: $0 OUT.cpio RUN_SCRIPT [EXTRA...]}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
: "${VM_DIR:?}" "${MONITOR_KO:?}" "${VM_TOOLS:?}" "${WORKLOAD_DIR:?}" "${ROOTFS:?}"
# shellcheck source=/dev/null
. "$VM_DIR/kernel.env"
busybox=/bin/busybox

stage="$out.d"
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,etc,modules,vm,root}
install -m 0755 "$here/tests/vm/init" "$stage/init"
install -m 0755 "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
install -m 0755 "$VM_TOOLS/cm_test" "$VM_TOOLS/vm-exit" "$stage/bin/"
for w in "$WORKLOAD_DIR"/*; do
  [ -f "$w" ] && [ -x "$w" ] && install -m 0755 "$w" "$stage/bin/"
done
if [ -n "${ENGINE_BIN:-}" ] && [ -x "$ENGINE_BIN" ]; then
  install -m 0755 "$ENGINE_BIN" "$stage/bin/engine"
  # The client hands what it does not send to engine-front (the verbs that talk to the
  # supervisor) or engine-core (the supervisor and everything else) beside it.
  install -m 0755 "$(dirname "$ENGINE_BIN")/engine-front" "$stage/bin/engine-front"
  install -m 0755 "$(dirname "$ENGINE_BIN")/engine-core" "$stage/bin/engine-core"
  # The OCI runtime binary is built beside it (tests/vm/engine-oci-monitor.sh).
  if [ -x "$(dirname "$ENGINE_BIN")/engine-oci" ]; then
    install -m 0755 "$(dirname "$ENGINE_BIN")/engine-oci" "$stage/bin/engine-oci"
  fi
fi
install -m 0644 "$MONITOR_KO" "$stage/modules/monitor.ko"
# The guest kernel's own modules engine needs (veth, bridge, overlay for container roots), each
# after its dependencies, in /modules/order for /init. The unpacked package has no modules.dep
# (depmod makes it at install): each module's own modinfo `depends=` gives them.
: > "$stage/modules/order"
add_module() { # NAME
  grep -qx "$1" "$stage/modules/order" && return 0
  local path dep
  # A module's name spells '-' as '_'; its file may use either.
  path=$(grep -E "(^|/)$(echo "$1" | sed 's/[-_]/[-_]/g')\.ko$" "$MODDIR/modules.order" | head -n1)
  [ -n "$path" ] || { echo "vm-initramfs: no module $1 in $MODDIR" >&2; return 1; }
  for dep in $(tr '\0' '\n' < "$MODDIR/$path" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  install -m 0644 "$MODDIR/$path" "$stage/modules/$1.ko"
  echo "$1" >> "$stage/modules/order"
}
for m in veth bridge overlay; do
  add_module "$m"
done
cp -a "$ROOTFS" "$stage/rootfs"
install -m 0755 "$run" "$stage/vm/run"
for f in "$here"/tests/vm/*.sh "$@"; do
  [ -f "$f" ] && install -m 0755 "$f" "$stage/vm/"
done
# The kernel opens /dev/console for init before anything is mounted.
mknod -m 0600 "$stage/dev/console" c 5 1
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"

(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  "$busybox" cpio -0 -o -H newc -R 0:0 > "$out.tmp" 2>/dev/null)
mv "$out.tmp" "$out"
rm -rf "$stage"
echo "vm-initramfs: $out ($(du -h "$out" | cut -f1))"

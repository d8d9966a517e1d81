#!/usr/bin/env bash
# Builds a minimal busybox rootfs for engine containers:
#   bash scripts/mkrootfs.sh ROOTFS_DIR WORKLOAD_DIR
# busybox comes from Debian's busybox-static (/bin/busybox, statically linked, so the rootfs
# needs no libc); every applet gets a symlink at the path busybox itself lists, and the
# static workloads from WORKLOAD_DIR go to / (the issues run /cpu_hog) with links in /bin.
# It builds into a temporary directory next to ROOTFS_DIR and renames it into place, so a
# half-made rootfs never exists under the final name; running it again replaces the old one.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 ROOTFS_DIR WORKLOAD_DIR" >&2
  exit 2
fi
rootfs=$(realpath -m "$1")
workloads=$(realpath -m "$2")
busybox=${BUSYBOX:-/bin/busybox}

[ -x "$busybox" ] || { echo "mkrootfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
# A dynamically linked busybox (Debian's plain `busybox` package) would not run in the rootfs.
if command -v file >/dev/null && ! file -b "$busybox" | grep -q 'statically linked'; then
  echo "mkrootfs: $busybox is not statically linked (install busybox-static)" >&2
  exit 1
fi
[ -d "$workloads" ] || { echo "mkrootfs: workload dir $workloads missing (make workloads)" >&2; exit 1; }

parent=$(dirname "$rootfs")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.$(basename "$rootfs").new.XXXXXX")
old=""
cleanup() { rm -rf "$tmp" ${old:+"$old"}; }
trap cleanup EXIT

cd "$tmp"
chmod 0755 .
mkdir -p bin sbin usr/bin usr/sbin proc dev sys etc root run var/log mnt tmp
chmod 1777 tmp
chmod 0700 root
install -m 0755 "$busybox" bin/busybox
# Absolute links: they resolve inside the container, where / is the rootfs.
"$busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$applet"
done

for w in "$workloads"/*; do
  [ -f "$w" ] && [ -x "$w" ] || continue
  name=$(basename "$w")
  install -m 0755 "$w" "$name"
  ln -sf "/$name" "bin/$name"
done

cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo engine > etc/hostname
cat > etc/hosts <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
HOSTS
: > etc/resolv.conf

# Swap the new tree in. rename(2) cannot replace a non-empty directory, so the old tree is
# moved aside first and deleted afterwards.
if [ -e "$rootfs" ]; then
  old="$parent/.$(basename "$rootfs").old.$$"
  mv -T "$rootfs" "$old"
fi
mv -T "$tmp" "$rootfs"
echo "mkrootfs: $rootfs ($("$busybox" --list-full | wc -l) applets, workloads: $(cd "$workloads" && echo *))"

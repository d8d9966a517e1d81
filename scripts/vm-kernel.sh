#!/usr/bin/env bash
# Fetches the current Debian cloud kernel and its headers into a cache folder:
#   bash scripts/vm-kernel.sh VM_DIR
# The ABI (e.g. 6.1.0-57) is resolved from the meta-packages linux-image-cloud-amd64 and
# linux-headers-cloud-amd64 every run, never hard-coded: Debian removes old ABIs from its
# mirror. Packages are `apt-get download`ed (installing the image would run boot-loader and
# initramfs hooks) and unpacked with dpkg-deb -x into VM_DIR/root-ABI. A second run with the
# same ABI does nothing. Writes VM_DIR/kernel.env with KVER, VMLINUZ, KDIR, MODDIR.
set -euo pipefail

vm_dir=$(realpath -m "${1:?usage: $0 VM_DIR}")
mkdir -p "$vm_dir/debs"

# First dependency of a package whose name starts with PREFIX.
dep_of() {
  apt-cache depends "$1" 2>/dev/null | awk -v p="$2" '$1 ~ /Depends:/ && index($2, p) == 1 { print $2; exit }'
}

image=$(dep_of linux-image-cloud-amd64 linux-image-)
if [ -z "$image" ]; then
  # No package lists yet on a fresh machine.
  apt-get update -qq
  image=$(dep_of linux-image-cloud-amd64 linux-image-)
fi
if [ -z "$image" ]; then
  # Offline: a previously unpacked kernel is still usable.
  if [ -s "$vm_dir/kernel.env" ]; then
    echo "vm-kernel: cannot resolve linux-image-cloud-amd64; using the cached kernel" >&2
    exit 0
  fi
  echo "vm-kernel: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2
  exit 1
fi
kver=${image#linux-image-}                       # 6.1.0-57-cloud-amd64
headers=$(dep_of linux-headers-cloud-amd64 linux-headers-)
[ "$headers" = "linux-headers-$kver" ] || { echo "vm-kernel: image $image but headers $headers" >&2; exit 1; }
# The flavour headers name the common headers, kbuild and compiler packages they need.
common=$(dep_of "$headers" linux-headers-)
kbuild=$(dep_of "$headers" linux-kbuild-)
compiler=$(dep_of "$headers" linux-compiler-)
for v in common kbuild compiler; do
  [ -n "${!v}" ] || { echo "vm-kernel: $headers has no $v dependency" >&2; exit 1; }
done

root="$vm_dir/root-$kver"
kdir="$root/usr/src/linux-headers-$kver"
if [ ! -e "$root/.unpacked" ]; then
  pkgs=("$image" "$headers" "$common" "$kbuild" "$compiler")
  echo "vm-kernel: downloading ${pkgs[*]}"
  # _apt cannot write to a root-owned folder; the download itself is what we want.
  (cd "$vm_dir/debs" && apt-get download -q "${pkgs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  rm -rf "$root.tmp" && mkdir -p "$root.tmp"
  for p in "${pkgs[@]}"; do
    deb=$(ls -t "$vm_dir/debs/${p}_"*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || { echo "vm-kernel: download of $p failed" >&2; exit 1; }
    dpkg-deb -x "$deb" "$root.tmp"
  done
  # The flavour Makefile includes the common headers by absolute /usr/src path.
  mk="$root.tmp/usr/src/linux-headers-$kver/Makefile"
  sed -i "s|^include /usr/src/|include $root/usr/src/|" "$mk"
  grep -q "^include $root/usr/src/" "$mk" || { echo "vm-kernel: unexpected $mk" >&2; exit 1; }
  touch "$root.tmp/.unpacked"
  rm -rf "$root" && mv "$root.tmp" "$root"
fi

cat > "$vm_dir/kernel.env.tmp" <<EOF
KVER=$kver
VMLINUZ=$root/boot/vmlinuz-$kver
KDIR=$kdir
MODDIR=$root/lib/modules/$kver
EOF
mv "$vm_dir/kernel.env.tmp" "$vm_dir/kernel.env"
echo "vm-kernel: $kver in $root"

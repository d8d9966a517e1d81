#!/usr/bin/env bash
# Builds engine_VERSION_amd64.deb and engine-monitor-dkms_VERSION_all.deb with dpkg-deb (make deb):
#   ROOT=... ENGINE=... PKG_VERSION=... DEB_VERSION=... bash packaging/deb/build.sh OUTDIR
# The file layout is `make install PREFIX=/usr` into a staging root (one definition of what goes
# where), then Debian's conventions: a stripped binary, gzipped man pages, zsh completions in
# vendor-completions, doc/copyright and changelog, maintainer scripts as dh_installsystemd and
# dh_dkms generate them.
set -euo pipefail
out=$(realpath -m "${1:?usage: build.sh OUTDIR}")
: "${ROOT:?}" "${ENGINE:?}" "${PKG_VERSION:?}"
version=${DEB_VERSION:-$PKG_VERSION}
here="$ROOT/packaging/deb"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

eng="$work/engine" dk="$work/dkms"
make -s --no-print-directory -C "$ROOT" install CARGO=true ENGINE="$ENGINE" DESTDIR="$eng" PREFIX=/usr \
  ZSHCOMPDIR=/usr/share/zsh/vendor-completions STAGE="$work/stage" >/dev/null
# dpkg keeps the file list; the install manifest is make install's.
rm "$eng/usr/share/engine/installed-files"
mkdir -p "$dk/usr/src"
mv "$eng/usr/src/monitor-$PKG_VERSION" "$dk/usr/src/"
rmdir "$eng/usr/src"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$eng/usr/bin/engine" "$eng/usr/bin/engine-front" \
  "$eng/usr/bin/engine-core" "$eng/usr/bin/engine-oci"
gzip -9n "$eng"/usr/share/man/man1/*.1

# doc/copyright and a changelog in each package (Debian policy 12.5, 12.7).
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}")
for pkg in engine engine-monitor-dkms; do
  root=$([ $pkg = engine ] && echo "$eng" || echo "$dk")
  doc="$root/usr/share/doc/$pkg"
  install -d -m 0755 "$doc"
  install -m 0644 "$here/copyright" "$doc/copyright"
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from the engine source tree (make deb).\n\n -- %s  %s\n' \
    "$pkg" "$version" "$(sed -n 's/^Maintainer: //p' "$here/control.engine")" "$date" | gzip -9n > "$doc/changelog.gz"
  chmod 0644 "$doc/changelog.gz"
done

# engine is a static executable with no libc at all (src/bin/engine: its own _start and system
# calls, so that each command starts without glibc's set-up), which lintian flags as an error for
# any static binary: overridden, with the reason. engine-front, engine-core and engine-oci are
# static PIEs (.cargo/static-bins.sh: no dynamic loader on each CLI call): no libc6 to depend on.
# lintian takes a static PIE (ET_DYN, no DT_NEEDED) for a shared library without prerequisites:
# that tag is overridden too. A dynamic build (RUSTC_WRAPPER set) depends on the newest glibc
# symbol version it uses.
install -d -m 0755 "$eng/usr/share/lintian/overrides"
overrides=("# engine uses no libc on purpose: no C library set-up at each command (README: static)." \
  "engine: statically-linked-binary [usr/bin/engine]")
glibc=$(objdump -T "$eng/usr/bin/engine-front" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 | cut -d_ -f2 || true)
if [ -n "$glibc" ]; then
  depends="s/@GLIBC@/$glibc/"
else
  depends='/^Depends: /d'
  overrides+=("# Static PIEs on purpose: no dynamic loader at each start of the CLI (README: static PIE)." \
    "engine: shared-library-lacks-prerequisites [usr/bin/engine-front]" \
    "engine: shared-library-lacks-prerequisites [usr/bin/engine-core]" \
    "engine: shared-library-lacks-prerequisites [usr/bin/engine-oci]")
fi
printf '%s\n' "${overrides[@]}" > "$eng/usr/share/lintian/overrides/engine"
chmod 0644 "$eng/usr/share/lintian/overrides/engine"
for pkg in engine engine-monitor-dkms; do
  root=$([ $pkg = engine ] && echo "$eng" || echo "$dk")
  install -d -m 0755 "$root/DEBIAN"
  sed -e "s/@VERSION@/$version/" -e "$depends" \
      -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" "$here/control.$pkg" > "$root/DEBIAN/control"
  for script in postinst prerm postrm; do
    [ -f "$here/$script.$pkg" ] || continue
    sed "s/@DKMS_VERSION@/$PKG_VERSION/g" "$here/$script.$pkg" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
  done
  (cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
  chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"
  arch=$(sed -n 's/^Architecture: //p' "$root/DEBIAN/control")
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out/${pkg}_${version}_${arch}.deb"
done

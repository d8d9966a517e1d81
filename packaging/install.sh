#!/usr/bin/env bash
# The file-copying half of `make install` / `make uninstall` (mk/install.mk decides what goes
# where and generates the files):
#   packaging/install.sh install MANIFEST < "MODE SRC DEST" lines
#   packaging/install.sh uninstall MANIFEST
# DEST paths are final (/usr/local/bin/engine); $DESTDIR is prefixed to every path written.
# MANIFEST (a DEST path too) lists every installed file and every directory the install
# created, so uninstall removes exactly those, even when the tree it runs from has changed.
set -euo pipefail
destdir=${DESTDIR:-}
cmd=${1:?usage: install.sh install|uninstall MANIFEST}
manifest=${2:?usage: install.sh install|uninstall MANIFEST}

case "$cmd" in
install)
  list=$(mktemp)
  trap 'rm -f "$list"' EXIT
  # Keep what an earlier install listed (its directories were created by it, not by us now).
  [ -f "$destdir$manifest" ] && grep -v "^f $manifest\$" "$destdir$manifest" > "$list" || true
  mkdirs() { # the directories of $1 that do not exist yet, outermost first
    local d=$1 missing=()
    # DESTDIR itself is the caller's (make it, but it is not ours to remove).
    [ -z "$destdir" ] || mkdir -p "$destdir"
    while [ "$d" != / ] && [ ! -d "$destdir$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
    for d in "${missing[@]}"; do
      install -d -m 0755 "$destdir$d"
      echo "d $d" >> "$list"
    done
  }
  while read -r mode src dest; do
    [ -n "$mode" ] || continue
    mkdirs "$(dirname "$dest")"
    install -m "$mode" "$src" "$destdir$dest"
    echo "f $dest" >> "$list"
  done
  mkdirs "$(dirname "$manifest")"
  echo "f $manifest" >> "$list"
  sort -u "$list" -o "$list"
  install -m 0644 "$list" "$destdir$manifest"
  ;;
uninstall)
  if [ ! -f "$destdir$manifest" ]; then
    echo "uninstall: $destdir$manifest not found: nothing of engine is installed there" >&2
    exit 1
  fi
  # Files first, then the directories the install created, deepest first; a directory that
  # someone else has put files into since is left.
  entries=$(cat "$destdir$manifest")
  while read -r kind path; do
    [ "$kind" = f ] && rm -f "$destdir$path"
  done <<< "$entries"
  grep '^d ' <<< "$entries" | cut -c3- | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
    while read -r dir; do
      rmdir "$destdir$dir" 2>/dev/null || echo "uninstall: left $destdir$dir: not empty" >&2
    done
  ;;
*)
  echo "usage: install.sh install|uninstall MANIFEST" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# Installs the named Debian packages that are missing; runs `apt-get update` at most once per machine.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
stamp=/var/lib/apt/periodic/engine-update-stamp
if [ ! -e "$stamp" ] || ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

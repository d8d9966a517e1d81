#!/usr/bin/env bash
# Run after the test suite: every test supervisor, container, mount, socket, cgroup and veth the
# tests made must be gone. Prints what is left and fails if anything is.
set -u
left=()
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$cmd" in
    *engine-test-*|engine-init*) left+=("process ${p#/proc/}: $cmd") ;;
  esac
done
grep -q 'engine-test-' /proc/self/mountinfo && left+=("mounts: $(grep -c engine-test- /proc/self/mountinfo)")
for d in /tmp/engine-test-*; do [ -e "$d" ] && left+=("path $d"); done
for d in /sys/fs/cgroup/*/engine-test-* /sys/fs/cgroup/engine-test-* /sys/fs/cgroup/unified/engine-test-*; do
  [ -e "$d" ] && left+=("cgroup $d")
done
for l in /sys/class/net/eb[0-9]*; do [ -e "$l" ] && left+=("test bridge ${l##*/}"); done
for l in /sys/class/net/*; do
  alias=$(cat "$l/ifalias" 2>/dev/null)
  case "$alias" in engine:et*) left+=("veth ${l##*/} ($alias)") ;; esac
done
if [ ${#left[@]} -gt 0 ]; then
  printf 'leak-check: left behind by the tests:\n'
  printf '  %s\n' "${left[@]}"
  exit 1
fi
echo "leak-check: nothing left behind (processes, mounts, sockets, cgroups, veths)"

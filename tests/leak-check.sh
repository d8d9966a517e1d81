#!/usr/bin/env bash
# Run after the test suite: every test supervisor, container, mount, socket, cgroup and veth the
# tests made must be gone. Prints what is left and fails if anything is.
set -u
left=()
cmdline() { { tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null; }
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  cmd=$(cmdline "$pid") || continue
  case "$cmd" in
    *engine-test-*) left+=("process $pid: $cmd") ;;
    engine-init*)
      # A container init belongs to a test if its supervisor is a test's, or if it was orphaned.
      ppid=$(awk '{print $4}' "$p/stat" 2>/dev/null)
      case "$ppid:$(cmdline "$ppid")" in
        1:*|*engine-test-*) left+=("container init $pid (parent $ppid)") ;;
      esac ;;
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

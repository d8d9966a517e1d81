#!/usr/bin/env bash
# Says, in one line on stderr, when an engine supervisor runs from BINARY (make install and
# uninstall over a running supervisor). Replacing the file is safe (install(1) writes a new
# inode, the running process keeps the old one), but the supervisor keeps running the old
# release until it is restarted. Always exits 0.
#   packaging/running-supervisor.sh BINARY
bin=$(realpath -m "${1:?usage: running-supervisor.sh BINARY}")
for exe in /proc/[0-9]*/exe; do
  target=$(readlink "$exe" 2>/dev/null) || continue
  [ "${target% (deleted)}" = "$bin" ] || continue
  pid=${exe#/proc/}; pid=${pid%/exe}
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qw supervisor || continue
  echo "engine: a supervisor (pid $pid) is running $bin: it keeps the old binary until restarted (systemctl restart engine, or stop and start it)" >&2
  exit 0
done
exit 0

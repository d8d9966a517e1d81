#!/bin/sh
# The kernel monitor half of `make demo`, run inside the QEMU guest (this host cannot load modules).
set -u
say() { printf '\n$ %s\n' "$*"; }
export ENGINE_SOCKET=/run/engine/engine.sock
cd /
say "insmod kmod/monitor.ko"
insmod /modules/monitor.ko || exit 1
say "engine supervisor --detach"
engine supervisor --detach && cat /var/lib/engine/supervisor.log
say "engine start memtest rootfs /memory_hog 1 500 --soft-mib 3 --hard-mib 6"
engine start memtest rootfs /memory_hog 1 500 --soft-mib 3 --hard-mib 6
timeout 30 engine wait memtest >/dev/null
say "dmesg | grep memtest"
dmesg | grep memtest
say "engine ps -a"
engine ps -a
say "engine inspect memtest   (excerpt)"
engine inspect memtest | grep -E '"(memory_enforcement|peak_rss_bytes|reason)"|limit'
kill -TERM "$(pidof engine)" 2>/dev/null
sleep 1
rmmod monitor

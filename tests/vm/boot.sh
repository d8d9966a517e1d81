#!/usr/bin/env bash
# Host side of the test VM: boots the Debian cloud kernel with an initramfs under QEMU and
# judges what comes back on the serial port.
#   bash tests/vm/boot.sh test  INITRD LOG EXPECTED...   # vm-test: every expected check must PASS
#   bash tests/vm/boot.sh run   INITRD LOG               # vm-run / bench: print the guest's output
# Environment: VM_DIR (kernel.env), VM_ACCEL (tcg|kvm), VM_MEM (MiB), VM_TIMEOUT (s),
# VM_APPEND (extra kernel command line).
set -uo pipefail

mode=${1:?usage}
initrd=${2:?usage}
log=${3:?usage}
shift 3
# shellcheck source=/dev/null
. "${VM_DIR:?}/kernel.env"
accel=${VM_ACCEL:-tcg}
mem=${VM_MEM:-1024}
tmo=${VM_TIMEOUT:-600}

# A guest kernel that locks up ends the run at once (instead of at the timeout) and replays its
# whole log to the serial port, so the stack traces that `quiet` keeps off it reach our log.
KERNEL_DIAG="softlockup_panic=1 softlockup_all_cpu_backtrace=1 panic_print=0x20"

start=$(date +%s)
echo "vm: booting $KVER (accel=$accel, ${mem} MiB, timeout ${tmo}s); serial log: $log"
# The guest's own exit code reaches us as (code << 1) | 1 via isa-debug-exit.
# The serial port goes straight to a file, so the log can be followed while the guest runs.
rm -f "$log.raw"
timeout -k 10 "$tmo" qemu-system-x86_64 -accel "$accel" -M pc -m "$mem" -smp 2 \
  -nodefaults -no-user-config -display none -monitor none -serial "file:$log.raw" \
  -kernel "$VMLINUZ" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=-1 $KERNEL_DIAG ${VM_APPEND:-}" -no-reboot \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null
qrc=$?
tr -d '\r' < "$log.raw" > "$log"
echo "vm: qemu exited with $qrc after $(($(date +%s) - start)) s"

case $qrc in
  124|137) guest="timed out after ${tmo}s" ;;
  1) guest=ok ;;
  *) if [ $((qrc & 1)) = 1 ]; then guest="guest script exited $((qrc >> 1))"; else guest="qemu/kernel failure ($qrc)"; fi ;;
esac
if grep -q 'Kernel panic - not syncing' "$log"; then
  guest="guest kernel panic: $(grep -m1 -o 'Kernel panic - not syncing.*' "$log")"
fi

# The first kernel failure in the log, from its headline to the panic it led to (or the end).
# After a panic the log holds the kernel's replay of its whole buffer too: the last copy of
# the headline is the one followed by the traces that `quiet` kept off the console.
# $1: what marks a failure (an extended regex).
failure_block() {
  local headline at
  headline=$(grep -m1 -E "$1" "$log") || return 1
  at=$(grep -n -F -x -- "$headline" "$log" | tail -n1 | cut -d: -f1)
  tail -n +"$at" "$log" | sed '/Kernel panic - not syncing/q'
}

# That block compacted to headlines, registers and call traces, printed last, where a cut CI
# log still shows it.
print_kernel_failure() {
  local block
  block=$(failure_block 'BUG: |Oops|Kernel panic|rcu: INFO|WARNING: CPU') || return 0
  echo "----- first guest kernel failure -----"
  echo "$block" |
    grep -E 'BUG: |Oops|Kernel panic|WARNING: |NMI backtrace|CPU: [0-9]+ PID|Modules linked in|RIP: |Call Trace|\] +[?]? *[A-Za-z_][A-Za-z0-9_.]*\+0x' |
    sed -E 's/^\[ *[0-9.]+\] //' | head -n 60
  echo "-----------------------"
}

# Whether the guest died of a kernel lockup that monitor.ko cannot have caused: the module was
# not loaded ("Modules linked in:" of the lockup report, whose "[last unloaded: ...]" does not
# count) and no trace has one of its functions ("fn+0x.../0x... [monitor]").
foreign_lockup() {
  local block loaded
  grep -q 'Kernel panic - not syncing: softlockup' "$log" || return 1
  block=$(failure_block 'BUG: soft lockup') || return 1
  loaded=$(echo "$block" | grep -m1 'Modules linked in:' | sed 's/\[last unloaded:[^]]*\]//') || return 1
  ! echo "$loaded" | grep -qw monitor && ! echo "$block" | grep -q '\[monitor\]'
}

print_dmesg() {
  echo "----- guest dmesg -----"
  if grep -q '^=== DMESG BEGIN ===' "$log"; then
    sed -n '/^=== DMESG BEGIN ===/,/^=== DMESG END ===/p' "$log" | sed '1d;$d'
  else
    echo "(the guest did not get to print dmesg; last 60 lines of the serial log)"
    tail -n 60 "$log"
  fi
  echo "-----------------------"
  print_kernel_failure
}

if [ "$mode" = run ]; then
  # The script's output: everything between READY and the dmesg dump.
  sed -n '/=== VM READY/,/^=== DMESG BEGIN ===/p' "$log" | sed '1d;$d'
  if [ "$guest" != ok ]; then
    echo "vm: $guest"
    print_dmesg
    exit 1
  fi
  exit 0
fi

# test mode: each expected check must have a PASS line; any FAIL line fails.
passed=0
failed=0
for f in "$@"; do
  while read -r name; do
    case $name in ''|'#'*) continue ;; esac
    line=$(grep -m1 -E "^(PASS|FAIL) $name(:|$)" "$log")
    if [ "${line%% *}" = PASS ]; then
      echo "$line"
      passed=$((passed + 1))
    elif [ -n "$line" ]; then
      echo "$line"
      failed=$((failed + 1))
    else
      echo "FAIL $name: missing (the guest never reported it)"
      failed=$((failed + 1))
    fi
  done < "$f"
done
# FAIL lines for checks not in the expected lists still count.
while read -r line; do
  name=${line#FAIL }
  name=${name%%:*}
  if ! cat "$@" | grep -qx "$name"; then
    echo "$line"
    failed=$((failed + 1))
  fi
done < <(grep '^FAIL ' "$log")
if [ "$guest" != ok ]; then
  echo "FAIL vm_guest_completed: $guest"
  failed=$((failed + 1))
fi
echo "vm-test: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  echo "----- guest output (non-check lines) -----"
  sed -n '/=== VM READY/,/^=== DMESG BEGIN ===/p' "$log" | grep -v '^PASS ' | sed '1d;$d' | tail -n 80
  print_dmesg
  # 3 tells mk/vm.mk that the guest kernel itself locked up, outside the code under test.
  if [ "$guest" != ok ] && foreign_lockup; then
    echo "vm-test: the guest kernel locked up while monitor.ko was not loaded (trace above)"
    exit 3
  fi
  exit 1
fi
exit 0

#!/usr/bin/env bash
# The OCI runtime conformance suite (runtime-tools, via $OCI_VALIDATION/run.sh) against RUNTIME.
#
#   conformance.sh RUNTIME [--name NAME] [--known FILE | --no-check] [TEST...]
#
# Writes run.sh's whole output to build/oci-validation/NAME.log and the per-test results (ok and
# not-ok counts, the failing TAP points) to benches/results/oci-validation/NAME.txt (NAME: engine
# for engine-oci, else the binary's name). Then checks them against FILE (default, for engine:
# tests/oci/known-failures.txt): exits 1 on a failing point that is not listed, and names the
# listed ones that now pass (so the list shrinks). With TEST names only those tests run, and the
# result goes to build/ instead (a partial run must not overwrite the committed table's input).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
OCI_VALIDATION=${OCI_VALIDATION:-$(if [ -d "$repo/../shared/oci-validation" ]; then echo "$repo/../shared/oci-validation"; else echo /work/shared/oci-validation; fi)}
runtime=${1:?usage: conformance.sh RUNTIME [--name NAME] [--known FILE | --no-check] [TEST...]}; shift
name=$(basename "$runtime"); [ "$name" = engine-oci ] && name=engine
known=default; tests=()
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=$2; shift 2 ;;
    --known) known=$2; shift 2 ;;
    --no-check) known=none; shift ;;
    *) tests+=("$1"); shift ;;
  esac
done
[ "$known" = default ] && { [ "$name" = engine ] && known=$here/known-failures.txt || known=none; }
[ -x "$runtime" ] || runtime=$(command -v "$runtime" || true)
[ -n "$runtime" ] && [ -x "$runtime" ] || { echo "conformance: no runtime binary ${1:-$name} (build it first)" >&2; exit 2; }
[ -x "$OCI_VALIDATION/run.sh" ] || [ -f "$OCI_VALIDATION/run.sh" ] || { echo "conformance: no suite at $OCI_VALIDATION" >&2; exit 2; }

logdir=$repo/build/oci-validation; mkdir -p "$logdir"
if [ ${#tests[@]} -eq 0 ]; then out=$repo/benches/results/oci-validation/$name.txt; else out=$logdir/$name.partial.txt; fi
mkdir -p "$(dirname "$out")"
log=$logdir/$name.log
version=$("$runtime" --version 2>/dev/null | head -1 || true)
echo "conformance: $runtime ($version), log $log" >&2
start=$(date +%s.%N)
rc=0; bash "$OCI_VALIDATION/run.sh" "$runtime" "${tests[@]}" >"$log" 2>&1 || rc=$?
duration=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$start" "$(date +%s.%N)")
[ $rc -eq 0 ] || { echo "conformance: run.sh failed (exit $rc): $(tail -1 "$log")" >&2; exit 1; }
python3 "$here/oci_results.py" parse "$log" "$out" --runtime "$runtime" --version "$version" --duration "$duration"
echo "conformance: $name took ${duration} s; results in $out" >&2
[ "$known" = none ] && exit 0
python3 "$here/oci_results.py" check "$out" "$known"

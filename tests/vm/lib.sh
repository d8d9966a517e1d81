# Shared helpers for the guest scripts: every check prints exactly one line,
# "PASS name" or "FAIL name: why"; the host-side runner collects them.
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
# oneline FILE [WIDTH]: FILE's text on one line, cut to WIDTH (200) characters, for a FAIL reason.
oneline() { tr '\n' ' ' <"$1" | cut -c1-"${2:-200}"; }
# check NAME CMD...: PASS if CMD succeeds.
check() {
	_n=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		pass "$_n"
	else
		fail "$_n" "'$*' failed: $(oneline /tmp/check.out 300)"
	fi
}
# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
	_t=$(($1 * 10))
	shift
	while [ "$_t" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		_t=$((_t - 1))
	done
	return 1
}

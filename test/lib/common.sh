# common.sh — sourced by the integration tests: SQL, waiting, failing.
# Environment (set by test/run.sh): PGHOST PGPORT PGUSER PGDATABASE POLL_ROOT POLL_WORK POLL_CLUSTER_DIR
set -euo pipefail

q() {	# one SQL command, unaligned, tuples only
	psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# wait_for SECONDS SQL: until the query returns 't'
wait_for() {
	local deadline=$((SECONDS + $1))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(q "$2" 2>/dev/null || true)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

# the invariants of the SPEC, after the worker has folded everything
check_invariants() {
	q "\\i $POLL_ROOT/test/invariants.sql" >/dev/null
	wait_for 30 "SELECT count(*) = 0 FROM poll.change" || fail "pending changes were not folded within 30 s"
	local v
	v=$(q "SELECT string_agg(format('%s poll %s option %s: expected %s, got %s', what, poll_id, option_id, expected, got), E'\n') FROM poll_invariant_violations()")
	[ -z "$v" ] || fail "invariants violated:
$v"
}

cluster_log() {
	cat "$POLL_CLUSTER_DIR/postgres.log"
}

#!/usr/bin/env bash
# Many sessions cast, change and retract on a few hot polls for 15 s while the
# worker folds; afterwards every invariant of the SPEC holds exactly.
. "$(dirname "$0")/../lib/common.sh"

errors0=$(q "SELECT errors FROM poll.worker_status")
first=$(q "SELECT poll.create_poll('Hot 1', ARRAY['a', 'b', 'c', 'd'])")
q "SELECT poll.create_poll('Hot 2', ARRAY['a', 'b', 'c', 'd'])" >/dev/null
q "SELECT poll.create_poll('Hot 3', ARRAY['a', 'b', 'c', 'd'])" >/dev/null
"${PGBIN:-/usr/lib/postgresql/15/bin}"/pgbench -n -c 16 -j 2 -T 15 -D first="$first" \
	-f "$POLL_ROOT/test/lib/vote_mix.pgbench" >"$POLL_WORK/concurrent.pgbench.out" 2>&1 ||
	fail "pgbench failed: $(tail -5 "$POLL_WORK/concurrent.pgbench.out")"
grep -E 'number of transactions actually processed|tps' "$POLL_WORK/concurrent.pgbench.out"
n=$(grep 'number of failed transactions' "$POLL_WORK/concurrent.pgbench.out" | awk '{print $5}')
[ "${n:-0}" = 0 ] || fail "$n transactions failed"
[ "$(q "SELECT count(*) FROM poll.ballot WHERE poll_id BETWEEN $first AND $first + 2")" -gt 1000 ] || fail "too few ballots"
check_invariants
[ "$(q "SELECT errors FROM poll.worker_status")" = "$errors0" ] || fail "worker errors: $(q 'SELECT last_error FROM poll.worker_status')"
echo "invariants hold after $(q "SELECT changes_folded FROM poll.worker_status") folded changes"

#!/usr/bin/env bash
# Concurrent cast_vote_batch calls (as several poll-fanout daemons send them)
# holding the same 60 voters in every order, racing single cast_vote and
# retract_vote calls of those voters, for 12 s: no deadlock, no element
# error, and afterwards every invariant of the SPEC holds exactly.
. "$(dirname "$0")/../lib/common.sh"

single=$(q "SELECT poll.create_poll('Batched', ARRAY['a', 'b', 'c', 'd'])")
multi=$(q "SELECT poll.create_poll('Batched multi', ARRAY['a', 'b', 'c', 'd'], 'multi', 2)")
log_before=$(cluster_log | wc -l)
"${PGBIN:-/usr/lib/postgresql/15/bin}"/pgbench -n -c 6 -j 2 -T 12 -D single="$single" -D multi="$multi" \
	-f "$POLL_ROOT/test/lib/vote_batches.pgbench@5" -f "$POLL_ROOT/test/lib/vote_singles.pgbench@1" \
	>"$POLL_WORK/batches.pgbench.out" 2>&1 ||
	fail "pgbench failed: $(grep -m3 -i 'error\|abort\|failure' "$POLL_WORK/batches.pgbench.out")"
grep -E 'number of transactions actually processed|^tps' "$POLL_WORK/batches.pgbench.out"
batches=$(grep -A2 'vote_batches' "$POLL_WORK/batches.pgbench.out" | sed -n 's/^ - \([0-9]*\) transactions.*/\1/p')
[ "${batches:-0}" -gt 50 ] || fail "too few batches ran: ${batches:-0}"
deadlocks=$(cluster_log | tail -n +"$((log_before + 1))" | grep -c 'deadlock detected' || true)
[ "$deadlocks" = 0 ] || fail "$deadlocks deadlocks: $(cluster_log | grep -m2 -A3 'deadlock detected')"
check_invariants
echo "$batches batches of 50 and their racing single votes: no deadlock, no element error, invariants hold"

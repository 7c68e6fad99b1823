#!/usr/bin/env bash
# The worker folds committed votes by itself, shows what it does, and records
# status changes made by the clock within a second.
. "$(dirname "$0")/../lib/common.sh"

errors0=$(q "SELECT errors FROM poll.worker_status")
p=$(q "SELECT poll.create_poll('Worker', ARRAY['a', 'b', 'c'])")
q "SELECT poll.cast_vote($p, 'v' || i, 1 + i % 3) FROM generate_series(1, 300) i" >/dev/null
q "SELECT poll.retract_vote($p, 'v1')" >/dev/null
wait_for 5 "SELECT pending = 0 FROM poll.worker_status" || fail "the worker did not fold (pending $(q 'SELECT pending FROM poll.worker_status'))"
[ "$(q "SELECT ballots || ':' || array_to_string(votes, ',') FROM poll.tally WHERE poll_id = $p")" = "299:100,99,100" ] ||
	fail "tally is $(q "SELECT ballots, votes FROM poll.tally WHERE poll_id = $p")"
[ "$(q "SELECT folds > 0 AND changes_folded >= 301 AND errors = $errors0 AND pid > 0 FROM poll.worker_status")" = t ] ||
	fail "worker_status: $(q 'SELECT * FROM poll.worker_status')"
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'poll fold worker'")" = 1 ] ||
	fail "the worker is not in pg_stat_activity"

# one vote, folded well within fold_interval after its commit: the commit wakes the worker
q "ALTER SYSTEM SET poll.fold_interval = '10s'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
q "SELECT poll.cast_vote($p, 'quick', 2)" >/dev/null
wait_for 2 "SELECT votes[2] = 100 FROM poll.tally WHERE poll_id = $p" ||
	fail "a vote waited for the 10 s timer instead of waking the worker"
q "ALTER SYSTEM RESET poll.fold_interval" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

# the clock: closes_at passes, and the worker records it with a new version
c=$(q "SELECT poll.create_poll('Clock', ARRAY['a', 'b'], closes_at => now() + interval '1 second')")
s=$(q "SELECT poll.create_poll('Soon', ARRAY['a', 'b'], opens_at => now() + interval '1 second')")
[ "$(q "SELECT status FROM poll.tally WHERE poll_id = $s")" = scheduled ] || fail "scheduled poll not scheduled"
wait_for 4 "SELECT status = 'closed' AND version = 2 FROM poll.tally WHERE poll_id = $c" ||
	fail "closing by the clock was not recorded: $(q "SELECT status, version FROM poll.tally WHERE poll_id = $c")"
wait_for 4 "SELECT status = 'open' AND version = 2 FROM poll.tally WHERE poll_id = $s" ||
	fail "opening by the clock was not recorded"
check_invariants
echo "worker folds, wakes on commit, records the clock"

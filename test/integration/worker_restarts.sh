#!/usr/bin/env bash
# The launcher keeps exactly one fold worker running.  A terminated worker is
# replaced within two seconds; a terminated launcher leaves its worker
# folding, and the launcher the postmaster starts again adopts it (no second
# worker) and replaces it when it goes.
. "$(dirname "$0")/../lib/common.sh"

workers() { q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'poll fold worker'"; }
launcher() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'poll launcher'"; }
p=$(q "SELECT poll.create_poll('Restarts', ARRAY['a', 'b'])")
n=0
vote_folds() {	# within SECONDS
	n=$((n + 1))
	q "SELECT poll.cast_vote($p, 'v$n', 1)" >/dev/null
	wait_for "$1" "SELECT ballots = $n FROM poll.tally WHERE poll_id = $p"
}

worker=$(q "SELECT pid FROM poll.worker_status")
[ -n "$worker" ] && [ "$(workers)" = 1 ] || fail "not one worker: $(workers)"
vote_folds 5 || fail "no fold"

# the worker is terminated: another within two seconds
t0=$(date +%s%N)
q "SELECT pg_terminate_backend($worker)" >/dev/null
wait_for 3 "SELECT pid NOT IN (0, $worker) FROM poll.worker_status" || fail "the worker was not replaced within 3 s"
echo "terminated worker replaced in $((($(date +%s%N) - t0) / 1000000)) ms"
vote_folds 2 || fail "the new worker does not fold"
[ "$(workers)" = 1 ] || fail "$(workers) workers"

# the launcher is terminated: its worker goes on, the next launcher adopts it
worker=$(q "SELECT pid FROM poll.worker_status")
old=$(launcher)
q "SELECT pg_terminate_backend($old)" >/dev/null
wait_for 10 "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'poll launcher' AND pid <> $old)" ||
	fail "no launcher came back within 10 s"
vote_folds 2 || fail "the worker stopped folding without its launcher"
sleep 1.5
[ "$(workers)" = 1 ] || fail "$(workers) workers after the launcher came back"
[ "$(q "SELECT pid FROM poll.worker_status")" = "$worker" ] || fail "the worker was replaced though it ran"

# the adopted worker goes: the new launcher replaces it
q "SELECT pg_terminate_backend($worker)" >/dev/null
wait_for 3 "SELECT pid NOT IN (0, $worker) FROM poll.worker_status" || fail "the adopted worker was not replaced within 3 s"
vote_folds 2 || fail "the replacement does not fold"
[ "$(workers)" = 1 ] || fail "$(workers) workers"
check_invariants
echo "one worker at all times, through worker and launcher terminations"

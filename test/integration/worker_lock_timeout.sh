#!/usr/bin/env bash
# The worker never waits on a lock for long.  A session holding one poll's
# tally row (close_poll in an open transaction) delays the folding of the
# other polls by less than a second; a row lock the fold cannot skip
# quarantines that poll alone; a lock on a whole table is a logged lock
# timeout retried with backoff (no stall, no poll quarantined), and folding
# resumes once it is released.  The worker keeps its pid throughout.
. "$(dirname "$0")/../lib/common.sh"

pid=$(q "SELECT pid FROM poll.worker_status")
[ -n "$pid" ] || fail "no worker"
blocked=$(q "SELECT poll.create_poll('Blocked', ARRAY['a', 'b'])")
other=$(q "SELECT poll.create_poll('Other', ARRAY['a', 'b'])")
q "SELECT poll.cast_vote($blocked, 'first', 1), poll.cast_vote($other, 'first', 1)" >/dev/null
wait_for 5 "SELECT count(*) = 0 FROM poll.change" || fail "not folded"
before=$(cluster_log | wc -l)
since() { cluster_log | tail -n +"$((before + 1))"; }

# hold SQL...: a session that runs the statements in one transaction, then
# sleeps SECONDS before committing; returns once the statements have run
holder=
hold() {
	local seconds=$1
	shift
	local args=(-c BEGIN)
	for s in "$@"; do args+=(-c "$s"); done
	PGAPPNAME=poll_lock_holder psql -X -q "${args[@]}" -c "SELECT pg_sleep($seconds)" -c COMMIT >/dev/null &
	holder=$!
	wait_for 5 "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'poll_lock_holder'
								  AND query LIKE 'SELECT pg_sleep%')" || fail "the lock holder did not start"
}
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; true' EXIT

# folded_ms POLL VOTER: casts a vote and prints the milliseconds until the tally has it
folded_ms() {
	local t0 n
	n=$(q "SELECT ballots + 1 FROM poll.poll_summary WHERE poll_id = $1")
	t0=$(date +%s%N)
	q "SELECT poll.cast_vote($1, '$2', 2)" >/dev/null
	wait_for 10 "SELECT ballots = $n FROM poll.tally WHERE poll_id = $1" || { echo 99999; return; }
	echo $((($(date +%s%N) - t0) / 1000000))
}

# 1. one poll's tally row held: the other poll folds at once
hold 4 "SELECT poll.close_poll($blocked)"
q "SELECT poll.cast_vote($blocked, 'held', 2)" >/dev/null
ms=$(folded_ms "$other" held)
echo "tally row of poll $blocked held: a vote on poll $other folded in $ms ms"
[ "$ms" -lt 1000 ] || fail "a held tally row delayed another poll's fold by $ms ms"
[ "$(q "SELECT votes FROM poll.results WHERE poll_id = $blocked AND option_id = 2")" = 1 ] ||
	fail "poll.results does not count the held poll's pending vote"
wait $holder
holder=
wait_for 3 "SELECT ballots = 2 AND status = 'closed' FROM poll.tally WHERE poll_id = $blocked" ||
	fail "the held poll was not folded after the release: $(q "SELECT * FROM poll.tally WHERE poll_id = $blocked")"
n=$(since | grep -c ERROR || true)
[ "$n" = 0 ] || fail "a held tally row made the worker log $n errors: $(since | grep ERROR | head -3)"

# 2. a row lock that the fold cannot skip (a rollup row of one poll): that
# poll is quarantined once its fold times out, the others fold meanwhile
second=$(q "SELECT poll.create_poll('Second', ARRAY['a', 'b'])")
q "SELECT poll.cast_vote($second, 'first', 1)" >/dev/null
wait_for 5 "SELECT count(*) = 0 FROM poll.change" || fail "not folded"
hold 4 "SELECT FROM poll.rollup WHERE poll_id = $second FOR UPDATE"
q "SELECT poll.cast_vote($second, 'locked', 1)" >/dev/null
ms=$(folded_ms "$other" locked)
echo "rollup rows of poll $second locked: a vote on poll $other folded in $ms ms"
[ "$ms" -lt 2000 ] || fail "a locked rollup row delayed another poll's fold by $ms ms"
wait_for 3 "SELECT EXISTS (SELECT FROM poll.change WHERE poll_id = $second)" || fail "the locked poll's vote is not pending"
for _ in $(seq 30); do since | grep -q "changes of poll $second cannot be folded" && break; sleep 0.1; done
since | grep -q "changes of poll $second cannot be folded" || fail "the locked poll was not quarantined"
[ "$(since | grep -c 'cannot be folded')" = 1 ] || fail "more than the locked poll was quarantined: $(since | grep 'cannot be folded')"
wait $holder
holder=
wait_for 8 "SELECT ballots = 2 FROM poll.tally WHERE poll_id = $second" || fail "the quarantined poll was not folded after the release"

# 3. a whole table locked: lock timeouts, retried with backoff, nothing quarantined
before=$(cluster_log | wc -l)
hold 3 "LOCK TABLE poll.tally IN ACCESS EXCLUSIVE MODE"
q "SELECT poll.cast_vote($other, 'table', 1)" >/dev/null
# sampled every 0.1 s for 2 s: never in one lock wait for a second
for _ in $(seq 20); do
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event_type = 'Lock'
			   AND now() - query_start > interval '1 second'")" = 0 ] || fail "the worker waited on a lock for over a second"
	sleep 0.1
done
timeouts=$(since | grep -c 'canceling statement due to lock timeout' || true)
[ "$timeouts" -ge 1 ] && [ "$timeouts" -le 6 ] || fail "$timeouts lock timeouts logged while the table was locked: $(since | grep ERROR)"
since | grep -q 'cannot be folded' && fail "a table lock quarantined a poll: $(since | grep 'cannot be folded')"
wait $holder
holder=
wait_for 5 "SELECT count(*) = 0 FROM poll.change" ||
	fail "folding did not resume within 5 s of the release: $(q 'SELECT * FROM poll.worker_status')"
echo "table locked for 3 s: $timeouts lock timeouts logged; folded after the release"

[ "$(q "SELECT pid FROM poll.worker_status")" = "$pid" ] || fail "the worker restarted"
check_invariants
echo "no lock stalls the worker: held rows are skipped or quarantined, table locks time out"

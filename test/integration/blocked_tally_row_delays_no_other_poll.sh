#!/usr/bin/env bash
# One poll's blocked tally row never delays the folding of the other polls by
# more than a second (SPEC "Settings"): while a session holds poll 1's tally
# row (BEGIN; SELECT poll.close_poll(1); ...), votes on poll 2 are folded by
# the worker, poll.fold() by hand returns, and poll 1's votes stay pending;
# once the session commits, they are folded too.
. "$(dirname "$0")/../lib/common.sh"

p1=$(q "SELECT poll.create_poll('Held', ARRAY['a', 'b'])")
p2=$(q "SELECT poll.create_poll('Free', ARRAY['a', 'b'])")
q "SELECT poll.cast_votes($p1, ARRAY['f1', 'f2', 'f3'], ARRAY[1, 1, 2])" >/dev/null
wait_for 10 "SELECT ballots = 3 FROM poll.tally WHERE poll_id = $p1" || fail "poll $p1's first votes were not folded"

# the holder: closes poll 1 and keeps its transaction open for 10 s
PGAPPNAME=tally_holder psql -X -q -v ON_ERROR_STOP=1 -c "BEGIN" -c "SELECT poll.close_poll($p1)" \
	-c "SELECT pg_sleep(10)" -c "COMMIT" >"$POLL_WORK/tally_holder.out" 2>&1 &
holder=$!
# on failure, the holder's transaction must not outlive the test
trap 'q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"'tally_holder'"'" >/dev/null' EXIT
holding="SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'tally_holder' AND query LIKE '%pg_sleep%' AND state = 'active')"
wait_for 10 "$holding" || fail "the holder did not start: $(cat "$POLL_WORK/tally_holder.out")"

# votes on both polls; poll 2's are folded within the SPEC's second (and a second more for a busy machine)
q "SELECT poll.cast_votes($p1, ARRAY['p1', 'p2'], ARRAY[2, 2])" >/dev/null
start=$(date +%s%N)
q "SELECT poll.cast_votes($p2, ARRAY['a', 'b', 'c', 'd', 'e'], ARRAY[1, 2, 2, 2, 1])" >/dev/null
wait_for 2 "SELECT ballots = 5 AND votes = '{2,3}' FROM poll.tally WHERE poll_id = $p2" ||
	fail "the worker did not fold poll $p2 within 2 s while poll $p1's tally row was held: $(q "SELECT ballots, votes FROM poll.tally WHERE poll_id = $p2")"
echo "poll $p2 folded $((($(date +%s%N) - start) / 1000000)) ms after its votes, while poll $p1's tally row was held"

# poll.fold() by hand does not wait for the holder either
q "SELECT poll.cast_vote($p2, 'f', 1)" >/dev/null
start=$(date +%s%N)
out=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "SET statement_timeout = '3s'" -c "SELECT poll.fold()" 2>&1) ||
	fail "poll.fold() waited for the held tally row: $out"
echo "poll.fold() returned in $((($(date +%s%N) - start) / 1000000)) ms"
[ "$(q "SELECT ballots FROM poll.tally WHERE poll_id = $p1")" = 3 ] || fail "poll $p1's held tally row changed"
[ "$(q "SELECT sum(ballots) FROM poll.change WHERE poll_id = $p1")" = 2 ] || fail "poll $p1's votes are not pending"
[ "$(q "SELECT ballots FROM poll.poll_summary WHERE poll_id = $p1")" = 5 ] || fail "poll $p1's results are not exact while pending"
q "$holding" | grep -qx t || fail "the holder finished before the checks: they prove nothing"

# the holder commits: poll 1 is closed and its pending votes are folded
wait "$holder" || fail "the holder failed: $(cat "$POLL_WORK/tally_holder.out")"
trap - EXIT
wait_for 5 "SELECT status = 'closed' AND ballots = 5 AND votes = '{2,3}' FROM poll.tally WHERE poll_id = $p1" ||
	fail "poll $p1 was not folded after the holder committed: $(q "SELECT status, ballots, votes FROM poll.tally WHERE poll_id = $p1")"
check_invariants
echo "a held tally row delayed no other poll"

#!/usr/bin/env bash
# fanout_votes_many: 200 WebSocket clients, each its own voter, vote at once,
# 20 of them badly: every good vote is acknowledged and counted in
# poll.results and poll.ballots, every bad one refused alone; votes that
# arrive together are committed together (fewer batches than votes); a
# subscriber sees the final counts.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Many voters' Red Green Blue)
multi=$(psql_q -c "SELECT poll.create_poll('Many voters, multi', ARRAY['a','b','c'], 'multi', 2)")
secret="many-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/secret"
# reads are open; the voters' tokens are signed with the voter secret, as
# another daemon sharing the file would sign them
start_daemon --anonymous-votes --voter-secret-file "$WORK/secret" --vote-rate 100
wait_healthy
wait_votes_ready
client_start sub ws "$poll,$multi"

node "$FANOUT_TESTS/votes_many.js" "$(BASE)" "$secret" "$poll" "$multi" 200 20 >"$WORK/expected_counts" ||
	fail "the 200 voters"
expected_results "$poll,$multi" >"$WORK/results"
diff "$WORK/expected_counts" "$WORK/results" || fail "poll.results differs from the acknowledged votes"
[ "$(psql_q -c "SELECT count(DISTINCT voter) FROM poll.ballots WHERE poll_id IN ($poll, $multi)")" = 180 ] ||
	fail "poll.ballots does not hold the 180 acknowledged ballots"
batches=$(metric poll_fanout_vote_batch_size_count)
acked=$(metric poll_fanout_votes_acknowledged_total)
[ "$acked" = 180 ] || fail "acknowledged: $acked"
[ "$batches" -lt 100 ] || fail "$batches batches for 200 votes arriving together: no group commit"
echo "ok: 180 votes acknowledged and counted, 20 refused, in $batches batches"
wait_client_matches sub "$poll,$multi" 15
client_clean sub

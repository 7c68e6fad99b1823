#!/usr/bin/env bash
# fanout_votes_errors: votes through the daemon answer as SPEC says, over
# the WebSocket and HTTP: every result and every error code, each echoing
# ref; the voter and segment are the token's whatever the message says; one
# connection's votes apply in the order sent; the counters by code.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

single=$(new_poll 'Errors single' Yes No)
closed=$(new_poll 'Errors closed' Yes No)
psql_q -c "SELECT poll.close_poll($closed)" >/dev/null
multi=$(psql_q -c "SELECT poll.create_poll('Errors multi', ARRAY['a','b','c'], 'multi', 2)")
scheduled=$(psql_q -c "SELECT poll.create_poll('Errors later', ARRAY['a','b'], opens_at => now() + interval '1 day')")
nochange=$(psql_q -c "SELECT poll.create_poll('Errors final', ARRAY['a','b'], allow_change => false)")
secret="s3cret-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/secret"

start_daemon --jwt-secret-file "$WORK/secret" --vote-rate 1000
main_port=$DAEMON_PORT
wait_healthy
wait_votes_ready
start_daemon --jwt-secret-file "$WORK/secret" --vote-rate 1
rate_port=$DAEMON_PORT
wait_votes_ready
start_daemon --jwt-secret-file "$WORK/secret" --db "host=127.0.0.1 port=1 connect_timeout=1"
dead_port=$DAEMON_PORT

cfg=$(printf '{"base":"http://127.0.0.1:%s","rateBase":"http://127.0.0.1:%s","deadBase":"http://127.0.0.1:%s","secret":"%s","polls":{"single":%s,"multi":%s,"closed":%s,"scheduled":%s,"nochange":%s}}' \
	"$main_port" "$rate_port" "$dead_port" "$secret" "$single" "$multi" "$closed" "$scheduled" "$nochange")
node "$FANOUT_TESTS/votes_errors.js" "$cfg" >"$WORK/errors.out" || { cat "$WORK/errors.out"; fail "vote answers"; }
cat "$WORK/errors.out"

# the token's identity and segment, never the message's
got=$(psql_q -c "SELECT string_agg(voter || '/' || coalesce(segment, '-') || '/' || option_id, ' ' ORDER BY voter)
                 FROM poll.ballots WHERE poll_id = $single AND voter IN ('alice', 'bob', 'mallory')")
[ "$got" = "alice/eu/1 bob/us/2" ] || fail "ballots of alice and bob: '$got' (want 'alice/eu/1 bob/us/2')"
[ "$(psql_q -c "SELECT count(*) FROM poll.ballots WHERE voter = 'mallory' OR segment IN ('xx', 'zz')")" = 0 ] ||
	fail "a ballot took the message's voter or segment"
# the last of carol's ordered votes is her ballot
want=$(sed -n 's/^FINAL_CAROL //p' "$WORK/errors.out")
got=$(psql_q -c "SELECT coalesce((SELECT option_id::text FROM poll.ballots WHERE poll_id = $single AND voter = 'carol'), 'none')")
[ "$got" = "$want" ] || fail "carol's ballot is $got, her last vote was $want"

# the counters: received, acknowledged, refused by code
DAEMON_PORT=$main_port
for code in bad_request unauthorized forbidden bad_vote not_found closed not_open change_not_allowed; do
	n=$(metric "poll_fanout_votes_refused_total{code=\"$code\"}")
	[ "${n:-0}" -ge 1 ] || fail "no refusal counted for $code"
done
[ "$(metric poll_fanout_votes_acknowledged_total)" -ge 90 ] || fail "acknowledged votes not counted"
curl -s "$(BASE)/metrics" | grep -q '^poll_fanout_vote_batch_size_bucket{le="+Inf"} [1-9]' || fail "batch size histogram"
# an idle daemon sends a lone vote at once: the votes sent one at a time went in batches of one
curl -s "$(BASE)/metrics" | grep -q '^poll_fanout_vote_batch_size_bucket{le="1"} [1-9][0-9]' || fail "no batches of one"
curl -s "$(BASE)/metrics" | grep -q '^poll_fanout_vote_ack_seconds_count [1-9]' || fail "ack latency histogram"
DAEMON_PORT=$rate_port
[ "$(metric 'poll_fanout_votes_refused_total{code="rate_limited"}')" -ge 5 ] || fail "rate_limited not counted"
DAEMON_PORT=$dead_port
[ "$(metric 'poll_fanout_votes_refused_total{code="unavailable"}')" -ge 2 ] || fail "unavailable not counted"
echo "ok: every answer of the vote path"

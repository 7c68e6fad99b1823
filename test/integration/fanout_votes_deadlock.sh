#!/usr/bin/env bash
# fanout_votes_deadlock: a batch that a deadlock aborts (40P01) is sent
# again once, and its votes are acknowledged.  A session holds the ballot
# rows of dl-b (kept) and of x and y (in a savepoint): the batches of x and
# y wait, one on each vote connection, while dl-a's and dl-b's votes queue
# into one batch; the savepoint's rollback lets that batch lock dl-a and
# wait for dl-b, and the session then asks for dl-a: a cycle, which the
# batch, waiting longer, detects.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Deadlock' Yes No)
psql_q -c "SELECT poll.cast_vote($poll, v, 1) FROM unnest(ARRAY['x','y','dl-a','dl-b']) v" >/dev/null
printf 'deadlock-%s\n' "$(date +%s%N)" >"$WORK/secret"
start_daemon --anonymous-votes --voter-secret-file "$WORK/secret" --vote-rate 1000
wait_healthy
wait_votes_ready
PGAPPNAME=fanout_votes_deadlock psql -X -q -v ON_ERROR_STOP=1 >"$WORK/session.out" 2>&1 <<SQL &
BEGIN;
SELECT FROM poll.ballot WHERE poll_id = $poll AND voter = 'dl-b' FOR UPDATE;
SAVEPOINT s;
SELECT FROM poll.ballot WHERE poll_id = $poll AND voter IN ('x', 'y') FOR UPDATE;
SELECT pg_sleep(2);
ROLLBACK TO SAVEPOINT s;
SELECT pg_sleep(0.5);
SELECT FROM poll.ballot WHERE poll_id = $poll AND voter = 'dl-a' FOR UPDATE;
COMMIT;
SQL
session=$!
PIDS+=($session)
# the session holds its rows (it sleeps in its savepoint) before the votes go
for _ in $(seq 1 100); do
	[ "$(psql_q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fanout_votes_deadlock'
	                AND query LIKE 'SELECT pg_sleep(2)%'")" = 1 ] && break
	sleep 0.05
done
node "$FANOUT_TESTS/votes_deadlock.js" "$(BASE)" "$(cat "$WORK/secret")" "$poll" || fail "votes after a deadlock"
wait "$session" || { cat "$WORK/session.out"; fail "the locking session failed (it, not the batch, was chosen?)"; }
grep -q 'votes: a batch of 2 failed (40P01: deadlock detected); sending it again' "$DAEMON_LOG" || fail "no batch was retried after a deadlock"
[ "$(psql_q -c "SELECT string_agg(voter || '=' || option_id, ' ' ORDER BY voter) FROM poll.ballots WHERE poll_id = $poll")" = \
	"dl-a=2 dl-b=2 x=2 y=2" ] || fail "ballots after the retried batch"
echo "ok: the batch a deadlock aborted was sent again and its votes acknowledged"

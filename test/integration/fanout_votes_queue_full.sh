#!/usr/bin/env bash
# fanout_votes_queue_full: while Postgres holds the vote batches (a lock on
# poll.ballot), the daemon's bounded queue (--vote-queue 5) fills and the
# votes beyond it get unavailable at once, nothing else waits on the
# blocked batches, and the queued votes are acknowledged once they commit.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Queue' Yes No)
printf 'queue-%s\n' "$(date +%s%N)" >"$WORK/secret"
start_daemon --anonymous-votes --voter-secret-file "$WORK/secret" --vote-rate 1000 --vote-queue 5
wait_healthy
wait_votes_ready
PGAPPNAME=fanout_votes_queue_lock psql_q -c "BEGIN; LOCK TABLE poll.ballot IN ACCESS EXCLUSIVE MODE;
	SELECT pg_sleep(4); COMMIT;" >/dev/null &
PIDS+=($!)
for _ in $(seq 1 50); do
	[ "$(psql_q -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	                WHERE a.application_name = 'fanout_votes_queue_lock' AND l.mode = 'AccessExclusiveLock'
	                  AND l.relation = 'poll.ballot'::regclass AND l.granted")" = 1 ] && break
	sleep 0.1
done
node "$FANOUT_TESTS/votes_queue.js" "$(BASE)" "$(cat "$WORK/secret")" "$poll" || fail "the full queue"
[ "$(psql_q -c "SELECT count(*) FROM poll.ballots WHERE poll_id = $poll")" = 7 ] || fail "7 ballots expected"
[ "$(metric 'poll_fanout_votes_refused_total{code="unavailable"}')" = 5 ] || fail "5 unavailable expected"

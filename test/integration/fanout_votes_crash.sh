#!/usr/bin/env bash
# fanout_votes_crash: acknowledged means committed.  Under a vote load
# through the daemon (200 voters, each voting as fast as answers come, within its connection's message rate),
# kill -9 of the postmaster: after recovery every voter's ballot is its last
# acknowledged one or a later one it sent (never lost, never an earlier
# state), the daemon takes votes again, tallies are exact; then kill -9 of
# the daemon under load: nothing it acknowledged is lost.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
[ -n "${POLL_CLUSTER_DIR:-}" ] || fail "needs POLL_CLUSTER_DIR (make test sets it)"

opts=$(printf "'o%s'," $(seq 1 10))
poll=$(psql_q -c "SELECT poll.create_poll('Crash votes', ARRAY[${opts%,}])")
secret="crash-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/secret"
start_daemon --anonymous-votes --voter-secret-file "$WORK/secret" --vote-rate 1000
wait_healthy
wait_votes_ready

# the ballots of poll $1 as "voter|option" lines, and the check against the load's record
check_ballots() {
	psql_q -c "SELECT voter || '|' || option_id FROM poll.ballots WHERE poll_id = $1" >"$WORK/ballots.$1"
	node "$FANOUT_TESTS/votes_check.js" "$2" "$WORK/ballots.$1" || fail "$3"
	psql_q -c "SELECT poll.fold()" >/dev/null
	[ "$(psql_q -c "SELECT count(*) FROM poll.results r WHERE r.poll_id = $1 AND r.votes <>
	      (SELECT count(*) FROM poll.ballots b WHERE b.poll_id = $1 AND b.option_id = r.option_id)")" = 0 ] ||
		fail "$3: poll.results differs from poll.ballots"
}

node "$FANOUT_TESTS/votes_load.js" "$(BASE)" "$secret" "$poll" 10 200 16 "$WORK/load1.json" 2>"$WORK/load1.err" &
load=$!
PIDS+=($load)
sleep 4
before=$(metric poll_fanout_votes_acknowledged_total)
[ "${before:-0}" -gt 500 ] || fail "only ${before:-0} votes acknowledged before the crash"
"$POLL_ROOT/scripts/cluster.sh" kill "$POLL_CLUSTER_DIR"
sleep 1
"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT"
wait "$load" || { cat "$WORK/load1.err"; fail "the load saw a wrong answer"; }
cat "$WORK/load1.err"
after=$(metric poll_fanout_votes_acknowledged_total)
[ "$after" -gt $((before + 100)) ] || fail "the daemon took few votes after the restart ($before, then $after)"
[ "$(metric 'poll_fanout_votes_refused_total{code="unavailable"}')" -ge 1 ] || fail "no vote answered unavailable while Postgres was away"
check_ballots "$poll" "$WORK/load1.json" "kill -9 of the postmaster"
echo "ok: kill -9 of the postmaster under load: $after votes acknowledged, none lost, none went back"

poll2=$(psql_q -c "SELECT poll.create_poll('Crash daemon', ARRAY[${opts%,}])")
wait_votes_ready 20
node "$FANOUT_TESTS/votes_load.js" "$(BASE)" "$secret" "$poll2" 10 200 6 "$WORK/load2.json" 2>"$WORK/load2.err" &
load=$!
PIDS+=($load)
sleep 3
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
wait "$load" || { cat "$WORK/load2.err"; fail "the load saw a wrong answer"; }
cat "$WORK/load2.err"
grep -q '^load: [1-9][0-9]* acknowledged' "$WORK/load2.err" || fail "no vote acknowledged before the daemon's kill"
check_ballots "$poll2" "$WORK/load2.json" "kill -9 of the daemon"
echo "ok: kill -9 of the daemon under load: nothing acknowledged lost"

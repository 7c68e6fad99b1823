#!/usr/bin/env bash
# fanout_many_clients: 2000 WebSocket clients on one poll while votes flow
# (more descriptors than the default soft limit of 1024: the daemon raises
# RLIMIT_NOFILE); every one of them ends equal to poll.results.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
ulimit -n 1024			# the daemon must raise it itself
poll=$(new_poll 'Crowd' A B C D)
start_daemon
wait_healthy
(ulimit -n 8192; node "$FANOUT_TESTS/many.js" "$(BASE)" "$poll" 2000 <"$WORK/want.fifo" >"$WORK/many.out" 2>&1) &
many=$!
PIDS+=("$many")
mkfifo "$WORK/want.fifo" 2>/dev/null || true
exec 3>"$WORK/want.fifo"
for _ in $(seq 1 100); do
	[ "$(metric 'poll_fanout_clients{transport="websocket"}')" = 2000 ] && break
	sleep 0.2
done
[ "$(metric 'poll_fanout_clients{transport="websocket"}')" = 2000 ] ||
	fail "only $(metric 'poll_fanout_clients{transport="websocket"}') of 2000 clients connected"
cast_votes_session m1 "$poll" 400 4 0.01 & v1=$!
cast_votes_session m2 "$poll" 400 4 0.01 & v2=$!
wait $v1 $v2 || fail "votes failed"
psql_q -c "SELECT poll.fold()" >/dev/null
psql_q -c "SELECT string_agg(votes::text, ',' ORDER BY option_id) FROM poll.results WHERE poll_id = $poll" >&3
exec 3>&-
wait "$many" || { cat "$WORK/many.out" >&2; fail "not every client reached poll.results"; }
cat "$WORK/many.out"
echo "ok: messages sent $(metric poll_fanout_messages_sent_total), daemon RSS $(awk '/VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status") kB"

#!/usr/bin/env bash
# fanout_many_clients: 2000 WebSocket clients on one poll while votes flow
# (more descriptors than the default soft limit of 1024: the daemon raises
# RLIMIT_NOFILE); every one of them ends equal to poll.results.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
hard=$(ulimit -Hn)
N=2000
if [ "$hard" != unlimited ] && [ "$hard" -lt 4200 ]; then
	N=$(( (hard - 200) / 2 ))
	echo "note: hard open-files limit $hard, testing $N clients"
fi
[ "$hard" = unlimited ] || [ "$hard" -le 1024 ] || ulimit -Sn 1024	# the daemon must raise it itself
poll=$(new_poll 'Crowd' A B C D)
start_daemon
wait_healthy
mkfifo "$WORK/want.fifo"
(ulimit -Sn $((N + 200)) && exec node "$FANOUT_TESTS/many.js" "$(BASE)" "$poll" "$N" <"$WORK/want.fifo" >"$WORK/many.out" 2>&1) &
many=$!
PIDS+=("$many")
exec 3>"$WORK/want.fifo"
for _ in $(seq 1 100); do
	[ "$(metric 'poll_fanout_clients{transport="websocket"}')" = "$N" ] && break
	sleep 0.2
done
[ "$(metric 'poll_fanout_clients{transport="websocket"}')" = "$N" ] ||
	fail "only $(metric 'poll_fanout_clients{transport="websocket"}') of $N clients connected"
cast_votes_session m1 "$poll" 400 4 0.01 & v1=$!
cast_votes_session m2 "$poll" 400 4 0.01 & v2=$!
wait $v1 $v2 || fail "votes failed"
psql_q -c "SELECT poll.fold()" >/dev/null
psql_q -c "SELECT string_agg(votes::text, ',' ORDER BY option_id) FROM poll.results WHERE poll_id = $poll" >&3
exec 3>&-
wait "$many" || { cat "$WORK/many.out" >&2; fail "not every client reached poll.results"; }
cat "$WORK/many.out"
echo "ok: messages sent $(metric poll_fanout_messages_sent_total), daemon RSS $(awk '/VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status") kB"

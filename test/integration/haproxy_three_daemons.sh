#!/usr/bin/env bash
# haproxy_three_daemons: deploy/haproxy.cfg (Debian's HAProxy) in front of
# three poll-fanout daemons on one database, no sticky sessions.  Clients
# driven by the shipped poll-client.js hold WebSocket and SSE connections
# through HAProxy (and one polls GET /polls/ID) while pgbench votes; one
# daemon is killed with kill -9 and another restarted with SIGTERM.  Every client converges to poll.results and
# no client ever sees a version go backwards (client.js checks every message);
# idle connections outlive HAProxy's idle timeout (3 s here) thanks to the
# daemons' keepalives (--keepalive 1), while behind a daemon without
# keepalives they are cut; pg_replication_slots holds exactly one temporary
# slot per live daemon at every step, and none once they are stopped.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
command -v haproxy >/dev/null || fail "haproxy is not installed (scripts/deps.sh lists it)"
command -v pgbench >/dev/null || fail "pgbench is not installed"
. "$FANOUT_TESTS/haproxy_lib.sh"

IDLE=3	# HAProxy's idle timeout here (POLL_LB_IDLE_TIMEOUT), seconds
p1=$(new_poll 'Balanced one' A B C)
p2=$(new_poll 'Balanced two' X Y)
quiet=$(new_poll 'Nobody votes here' Yes No)

# slots_are PID...: exactly one temporary slot of each of these daemons, no other daemon's
slots_are() {
	local pids=$*
	local sql="SELECT count(*) = $# AND coalesce(bool_and(temporary), true)
	             AND count(DISTINCT split_part(slot_name, '_', 3)) = $#
	             AND coalesce(bool_and(split_part(slot_name, '_', 3) = ANY(string_to_array('$pids', ' '))), true)
	           FROM pg_replication_slots WHERE slot_name LIKE 'poll\_fanout\_%'"
	for _ in $(seq 1 100); do
		[ "$(psql_q -c "$sql")" = t ] && return 0
		sleep 0.1
	done
	psql_q -c "SELECT slot_name, temporary, active_pid FROM pg_replication_slots" >&2
	fail "pg_replication_slots does not hold exactly one temporary slot for each live daemon ($pids)"
}

fanout 1 --keepalive 1
fanout 2 --keepalive 1
fanout 3 --keepalive 1
lb=127.0.0.1:$(free_port)
stats=127.0.0.1:$(free_port)
haproxy_start lb "$lb" "$stats" "127.0.0.1:${PORT[1]}" "127.0.0.1:${PORT[2]}" "127.0.0.1:${PORT[3]}"
wait_lb_up "$stats" "fanout1 fanout2 fanout3"
echo "HAProxy on $lb in front of daemons ${PID[*]} (ports ${PORT[*]})"
slots_are "${PID[1]}" "${PID[2]}" "${PID[3]}"

# the control: the same config in front of a daemon without keepalives
fanout 4 --keepalive 0
lb0=127.0.0.1:$(free_port)
stats0=127.0.0.1:$(free_port)
s4=127.0.0.1:${PORT[4]}
haproxy_start lb0 "$lb0" "$stats0" "$s4" "$s4" "$s4"
wait_lb_up "$stats0" "fanout1 fanout2 fanout3"

# clients on the balancer, each connection to whichever daemon has the fewest
# (and one short-polling client: GET /polls/ID through the balancer)
clients="ws1 ws2 ws3 sse1 sse2 sse3 polling1"
for i in 1 2 3; do
	DAEMON_PORT=${lb#*:} client_start "ws$i" ws "$p1,$p2"
	DAEMON_PORT=${lb#*:} client_start "sse$i" sse "$p1,$p2"
done
DAEMON_PORT=${lb#*:} client_start polling1 polling "$p1,$p2"
for c in $clients; do wait_client_matches "$c" "$p1,$p2" 15; done
for n in 1 2 3; do
	subs=$(curl -s "http://127.0.0.1:${PORT[$n]}/metrics" | awk '$1 == "poll_fanout_subscriptions" { print $2 }')
	[ "${subs:-0}" -ge 1 ] || fail "daemon $n has no subscription: HAProxy did not spread the connections"
	echo "daemon $n holds $subs subscriptions"
done
slots_are "${PID[1]}" "${PID[2]}" "${PID[3]}" "${PID[4]}"

# votes stream all along: two pgbench clients, 150 transactions/s
cat >"$WORK/votes.pgbench" <<EOF
\set voter random(1, 5000)
\set a random(1, 3)
\set x random(1, 2)
SELECT poll.cast_vote($p1, 'lb-' || :voter, :a);
SELECT poll.cast_vote($p2, 'lb-' || :voter, :x);
EOF
pgbench -n -c 2 -j 2 -T 24 -R 150 -f "$WORK/votes.pgbench" >"$WORK/pgbench.log" 2>&1 &
bench=$!
PIDS+=($bench)

# idle connections: kept for 2.5 idle timeouts by keepalives, cut without them
node "$FANOUT_TESTS/idle_hold.js" "http://$lb" "$quiet" $((IDLE * 5 / 2)) survive & hold=$!
node "$FANOUT_TESTS/idle_hold.js" "http://$lb0" "$quiet" $((IDLE * 2)) drop & hold0=$!
wait $hold || fail "idle connections through HAProxy did not survive its idle timeout"
wait $hold0 || fail "the control failed: HAProxy did not cut idle connections of a daemon without keepalives"
kill "${PID[4]}" "$HAPROXY_PID_lb0"
wait "${PID[4]}" 2>/dev/null || true
slots_are "${PID[1]}" "${PID[2]}" "${PID[3]}"

# kill -9 of daemon 1: HAProxy marks it down, its clients go to the others
kill -0 $bench 2>/dev/null || fail "test bug: the votes ended before the daemons were killed"
kill -9 "${PID[1]}"
wait "${PID[1]}" 2>/dev/null || true
echo "killed daemon 1 (pid ${PID[1]}) with kill -9"
wait_lb_up "$stats" "fanout2 fanout3"
slots_are "${PID[2]}" "${PID[3]}"
sleep 1
fanout 1 --keepalive 1
wait_lb_up "$stats" "fanout1 fanout2 fanout3"
slots_are "${PID[1]}" "${PID[2]}" "${PID[3]}"
echo "daemon 1 is back as pid ${PID[1]}"

# SIGTERM of daemon 2, and a start again
kill "${PID[2]}"
wait "${PID[2]}" 2>/dev/null || true
echo "stopped daemon 2 (pid ${PID[2]}) with SIGTERM"
slots_are "${PID[1]}" "${PID[3]}"
fanout 2 --keepalive 1
wait_lb_up "$stats" "fanout1 fanout2 fanout3"
slots_are "${PID[1]}" "${PID[2]}" "${PID[3]}"
echo "daemon 2 is back as pid ${PID[2]}"
kill -0 $bench 2>/dev/null || fail "test bug: the votes ended before daemon 2 was back"

wait $bench || { cat "$WORK/pgbench.log" >&2; fail "pgbench failed"; }
grep -E '^number of (transactions actually processed|failed transactions)' "$WORK/pgbench.log"
psql_q -c "SELECT poll.fold()" >/dev/null
for c in $clients; do
	wait_client_matches "$c" "$p1,$p2" 20
	client_clean "$c"
done
echo "ok: every client equals poll.results, no version went backwards"

# and once the daemons are gone, so are their slots
for n in 1 2 3; do kill "${PID[$n]}"; done
for n in 1 2 3; do wait "${PID[$n]}" 2>/dev/null || true; done
slots_are
echo "ok: three daemons behind HAProxy"

#!/usr/bin/env bash
# fanout_postgres_restart: Postgres is restarted (fast shutdown), then
# crashed (kill -9), while votes flow.  The daemon keeps serving its
# clients with /healthz at 503, reconnects with backoff, resyncs, and the
# clients end equal to poll.results.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
: "${POLL_CLUSTER_DIR:?needs POLL_CLUSTER_DIR}"
CLUSTER="$POLL_ROOT/scripts/cluster.sh"

p1=$(new_poll 'Survives restarts' A B C)
p2=$(new_poll 'Survives crashes' X Y)
start_daemon
wait_healthy
client_start ws1 ws "$p1,$p2"
client_start sse1 sse "$p1,$p2"
sleep 0.5

outage() {
	local how=$1
	cast_votes_session "$how-a" "$p1" 2000 3 0.02 >/dev/null 2>&1 & local v1=$!
	cast_votes_session "$how-b" "$p2" 2000 2 0.02 >/dev/null 2>&1 & local v2=$!
	sleep 0.8
	if [ "$how" = stop ]; then "$CLUSTER" stop "$POLL_CLUSTER_DIR"; else "$CLUSTER" kill "$POLL_CLUSTER_DIR"; fi
	wait $v1 $v2 2>/dev/null || true		# the voting sessions die with the server
	echo "postgres down ($how)"
	for _ in $(seq 1 50); do
		[ "$(http_code "$(BASE)/healthz")" = 503 ] && break
		sleep 0.1
	done
	[ "$(http_code "$(BASE)/healthz")" = 503 ] || fail "/healthz is not 503 while Postgres is down ($how)"
	# still serving: WebSocket pings and cached snapshots while Postgres is away
	node -e '
	const { open, assert, main } = require(process.argv[1] + "/wsprobe");
	main(async () => {
	  const c = await open(process.argv[2].replace(/^http/, "ws") + "/ws");
	  c.send({ type: "ping", id: "down" });
	  assert((await c.next()).type === "pong", "no pong while postgres is down");
	  c.send({ type: "subscribe", poll: Number(process.argv[3]) });
	  const m = await c.next();
	  assert(m.type === "snapshot", "no cached snapshot while postgres is down: " + JSON.stringify(m));
	});' "$FANOUT_TESTS" "$(BASE)" "$p1" || fail "the daemon stopped serving while Postgres was down ($how)"
	sleep 1
	"$CLUSTER" start "$POLL_CLUSTER_DIR" "$PGPORT"
	echo "postgres up again"
	wait_healthy 30
	# more votes after the outage
	cast_votes_session "$how-c" "$p1" 100 3 && cast_votes_session "$how-d" "$p2" 100 2 ||
		fail "votes after the restart failed"
	psql_q -c "SELECT poll.fold()" >/dev/null
	wait_client_matches ws1 "$p1,$p2" 30
	wait_client_matches sse1 "$p1,$p2" 30
	echo "ok: clients equal poll.results after Postgres $how"
}
outage stop
outage kill

# a daemon started while Postgres is down serves, says 503, and catches up
"$CLUSTER" stop "$POLL_CLUSTER_DIR"
first_pid=$DAEMON_PID
first_port=$DAEMON_PORT
first_log=$DAEMON_LOG
start_daemon
[ "$(http_code "$(BASE)/healthz")" = 503 ] || fail "/healthz of a daemon started without Postgres is not 503"
[ "$(http_code "$(BASE)/polls/$p1")" = 503 ] || fail "an uncached snapshot without Postgres is not 503"
client_start late ws "$p1,$p2"
sleep 1
"$CLUSTER" start "$POLL_CLUSTER_DIR" "$PGPORT"
wait_healthy 30
wait_client_matches late "$p1,$p2" 30
client_clean late
echo "ok: a daemon started before Postgres catches up"
stop_daemon
DAEMON_PID=$first_pid
DAEMON_PORT=$first_port
DAEMON_LOG=$first_log
client_clean ws1
client_clean sse1
grep -q "reconnecting in" "$DAEMON_LOG" || fail "the daemon did not log its reconnection reason"
reconnects=$(metric poll_fanout_reconnects_total)
[ "${reconnects:-0}" -ge 2 ] || fail "reconnects metric is ${reconnects:-none}, expected >= 2"
grep "postgres:" "$DAEMON_LOG" | head -8
echo "ok: Postgres restart and crash survived (reconnect attempts: $reconnects)"

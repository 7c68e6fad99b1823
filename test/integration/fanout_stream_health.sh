#!/usr/bin/env bash
# fanout_stream_health: /healthz is 503 when nothing (not even a keepalive)
# has come from the replication stream for 30 s, and the daemon then
# reconnects by itself; an idle stream stays healthy (the daemon's status
# updates ask for keepalives); the body never carries libpq's error text.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

# Postgres unreachable: 503, and the connection's error is in the log only
closed=$(free_port)
start_daemon --db "host=127.0.0.1 port=$closed user=fanout_secret_role dbname=postgres"
sleep 1
code=$(curl -s -o "$WORK/health" -w '%{http_code}' "$(BASE)/healthz")
[ "$code" = 503 ] || fail "/healthz with Postgres away: $code"
grep -qiE 'fanout_secret_role|refused|$closed|connect' "$WORK/health" &&
	fail "/healthz shows connection details: $(cat "$WORK/health")"
grep -q 'refused' "$DAEMON_LOG" || fail "the connection error is not in the log"
echo "ok: /healthz 503 without details: $(cat "$WORK/health")"
stop_daemon

start_daemon
wait_healthy
# an idle stream still hears from the server: the daemon's status updates
# (every 10 s) ask for a keepalive
sleep 12
last=$(metric poll_fanout_replication_last_message_seconds)
awk -v l="$last" 'BEGIN { exit !(l >= 0 && l < 11) }' ||
	fail "idle stream: last message $last s ago (no keepalives asked for?)"
echo "ok: an idle stream's last message was $last s ago"
# a stopped walsender: silence
walsender() {
	psql_q -c "SELECT active_pid FROM pg_replication_slots
	           WHERE slot_name LIKE 'poll\_fanout\_${DAEMON_PID}\_%' AND active_pid IS NOT NULL"
}
ws=$(walsender)
[ -n "$ws" ] || fail "no walsender for the daemon's slot"
kill -STOP "$ws"
trap 'rc=$?; set +e; kill -CONT '"$ws"' 2>/dev/null; (exit $rc); cleanup' EXIT
t0=$(date +%s)
for _ in $(seq 1 450); do
	[ "$(http_code "$(BASE)/healthz")" = 503 ] && break
	sleep 0.1
done
t1=$(date +%s)
[ "$(http_code "$(BASE)/healthz")" = 503 ] || fail "/healthz still 200 $((t1 - t0)) s into a silent stream"
[ $((t1 - t0)) -ge 25 ] || fail "/healthz went 503 after only $((t1 - t0)) s"
echo "ok: /healthz 503 after $((t1 - t0)) s of a stopped walsender"
wait_healthy 20
grep -q 'nothing from the replication stream' "$DAEMON_LOG" || fail "no log line for the silence"
[ "$(walsender)" != "$ws" ] || fail "still on the stopped walsender"
kill -CONT "$ws"
echo "ok: reconnected by itself; healthy again"

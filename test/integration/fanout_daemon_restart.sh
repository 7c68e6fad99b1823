#!/usr/bin/env bash
# fanout_daemon_restart: the daemon is killed while votes flow and started
# again on the same port; the clients reconnect, resubscribe with their
# versions, and once votes stop hold exactly poll.results — nothing lost,
# nothing backwards.  The killed daemon's temporary slot is gone: Postgres
# keeps no WAL for it.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

p1=$(new_poll 'Restart me' A B C)
p2=$(new_poll 'Restart me too' X Y)
DAEMON_PORT_WANTED=$(free_port)
start_daemon
wait_healthy
client_start ws1 ws "$p1,$p2"
client_start sse1 sse "$p1,$p2"
sleep 0.5

cast_votes_session r1 "$p1" 600 3 0.03 & v1=$!
cast_votes_session r2 "$p2" 600 2 0.03 & v2=$!
sleep 0.7
old_pid=$DAEMON_PID
kill -9 "$old_pid"
wait "$old_pid" 2>/dev/null || true
kill -0 $v1 2>/dev/null || fail "test bug: votes ended before the daemon was killed"
echo "killed the daemon (pid $old_pid) mid-stream"
sleep 0.5
start_daemon
wait_healthy
echo "restarted as pid $DAEMON_PID"
wait $v1 $v2 || fail "casting votes failed"
psql_q -c "SELECT poll.fold()" >/dev/null

wait_client_matches ws1 "$p1,$p2" 20
wait_client_matches sse1 "$p1,$p2" 20
client_clean ws1
client_clean sse1

# the dead daemon's slot was temporary: no slot is left behind but the live one
slots=$(psql_q -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'poll_fanout_${old_pid}_%'")
[ "$slots" = 0 ] || fail "the killed daemon left its replication slot behind"
live=$(psql_q -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'poll_fanout_${DAEMON_PID}_%' AND temporary")
[ "$live" = 1 ] || fail "the running daemon has no temporary slot"
echo "ok: clients equal poll.results across a daemon restart"

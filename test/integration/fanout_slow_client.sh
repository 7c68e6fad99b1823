#!/usr/bin/env bash
# fanout_slow_client: a WebSocket client subscribed to 64 busy polls stops
# reading.  While votes keep every poll changing, the daemon's RSS stays
# flat (it holds the latest state per subscription, never a queue), a
# reading client keeps getting updates, and the stalled client is
# disconnected once it has taken no writes for 30 s.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

labels=$(for i in $(seq 1 64); do printf "'option number %02d with a long label to make messages big'," "$i"; done)
polls=$(psql_q -c "SELECT string_agg(poll.create_poll('busy ' || i, ARRAY[${labels%,}])::text, ',')
                   FROM generate_series(1, 64) i")
start_daemon
wait_healthy

node "$FANOUT_TESTS/stall_client.js" 127.0.0.1 "$DAEMON_PORT" "$polls" >"$WORK/stall.out" 2>&1 &
PIDS+=($!)
client_start reader ws "${polls%%,*}"
sleep 1

# every poll changes on every fold, 50 folds a second, for up to 60 s
psql_q -c "DO \$\$
DECLARE ids bigint[] := ARRAY[$polls]; n int := 0;
BEGIN
	WHILE clock_timestamp() < now() + interval '60 seconds' LOOP
		n := n + 1;
		PERFORM poll.cast_vote(p, 'v' || n || '-' || p, 1 + (n + p::int) % 64) FROM unnest(ids) p;
		PERFORM poll.fold();
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END \$\$" >/dev/null 2>&1 &
voter=$!
PIDS+=("$voter")

rss() { awk '/VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status"; }
sleep 6		# the kernel's socket buffers fill up first
rss0=$(rss)
sent0=$(metric poll_fanout_messages_sent_total)
n=$(metric 'poll_fanout_clients{transport="websocket"}')
[ "$n" = 2 ] || fail "expected 2 clients, metrics say ${n:-nothing}"
sleep 15
rss1=$(rss)
sent1=$(metric poll_fanout_messages_sent_total)
echo "daemon RSS ${rss0} kB -> ${rss1} kB over 15 s of votes; messages sent ${sent0} -> ${sent1}"
[ $((rss1 - rss0)) -lt 4096 ] || fail "RSS grew by $((rss1 - rss0)) kB while a client did not read"
[ "$((sent1 - sent0))" -gt 50 ] || fail "the reading client got almost nothing meanwhile"
lines0=$(wc -l <"$WORK/reader.log")
sleep 2
[ "$(wc -l <"$WORK/reader.log")" -gt "$lines0" ] || fail "the reading client stopped getting updates"

# the stalled client goes, within 30 s of its last accepted write (+ slack)
for _ in $(seq 1 40); do
	[ "$(metric 'poll_fanout_clients{transport="websocket"}')" = 1 ] && break
	sleep 1
done
[ "$(metric 'poll_fanout_clients{transport="websocket"}')" = 1 ] ||
	fail "the stalled client was not disconnected"
[ "$(metric poll_fanout_slow_disconnects_total)" = 1 ] || fail "slow disconnect not counted"
grep -q "took no writes for 30 s" "$DAEMON_LOG" || fail "slow disconnect not logged"
kill "$voter" 2>/dev/null || true
psql_q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'DO %unnest(ids)%' AND pid <> pg_backend_pid()" >/dev/null
echo "ok: RSS flat under a stalled client, which was dropped after 30 s"

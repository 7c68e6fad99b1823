#!/usr/bin/env bash
# fanout_nonblocking_db: connecting to Postgres never blocks the event loop
# (a server that accepts and never answers does not delay other requests),
# and SIGTERM ends the replication copy cleanly: the server's log gets no
# "could not send data to client" (Broken pipe) from the daemon's walsender.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

# a "server" that accepts connections and never says a word
hole=$(free_port)
node -e 'require("net").createServer(() => {}).listen(+process.argv[1], "127.0.0.1")' "$hole" &
PIDS+=($!)
sleep 0.3
start_daemon --db "host=127.0.0.1 port=$hole dbname=postgres"
node -e '
const http = require("http");
const url = process.argv[1] + "/metrics";
const once = () => new Promise(r => { const t = Date.now();
  http.get(url, res => { res.resume(); res.on("end", () => r(Date.now() - t)); }).on("error", () => r(99999)); });
(async () => {
  let worst = 0;
  for (let end = Date.now() + 4000; Date.now() < end; ) {
    worst = Math.max(worst, await once());
    await new Promise(r => setTimeout(r, 50));
  }
  console.log("worst /metrics latency while connecting to a silent server: " + worst + " ms");
  process.exit(worst < 500 ? 0 : 1);
})();' "$(BASE)" || fail "the event loop blocked while connecting"
stop_daemon

# SIGTERM: CopyDone, the server's CopyDone, then close
pglog="$POLL_CLUSTER_DIR/postgres.log"
[ -r "$pglog" ] || fail "no cluster log at $pglog"
before=$(grep -c 'could not send data to client' "$pglog" || true)
for i in 1 2 3; do
	start_daemon
	wait_healthy
	t0=$(date +%s%N)
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID" || fail "poll-fanout exited non-zero on SIGTERM"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$ms" -lt 3000 ] || fail "SIGTERM took $ms ms"
done
sleep 1
after=$(grep -c 'could not send data to client' "$pglog" || true)
[ "$after" = "$before" ] || { grep 'could not send data' "$pglog" | tail -3; fail "the server logged a broken pipe after SIGTERM"; }
echo "ok: three SIGTERMs, no broken pipe in the server log (last stop: $ms ms)"

#!/usr/bin/env bash
# fanout_http_write_timeout: a client that stops reading HTTP responses
# (files, snapshots) is dropped once it has taken no writes for 30 s, as a
# WebSocket or SSE client is (fanout_slow_client), and not sooner: a client
# that reads again within that time gets every answer.  (Before, lws's 5 s
# timeout from the request, never lifted while the answer was written, cut
# any response that took longer, even to a client that was reading.)
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Unread' A B)
mkdir -p "$WORK/www"
head -c 150000 /dev/urandom | base64 >"$WORK/www/poll-client.js"	# ~200 KB
start_daemon --web-root "$WORK/www"
wait_healthy

# client N PAUSE_MS [SNAPSHOTS]: pipelines N x the file (with SNAPSHOTS,
# each followed by a snapshot), reads nothing for
# PAUSE_MS, then reads; prints its local port, then how many answers it got
# and whether the daemon closed the connection
client() {
	node -e '
	const net = require("net");
	const [port, poll, n, pause, snapshots] = process.argv.slice(1).map(Number);
	const each = snapshots ? 2 : 1;
	const s = net.connect(port, "127.0.0.1", () => {
	  console.log(s.localPort);
	  s.pause();
	  s.write((`GET /poll-client.js HTTP/1.1\r\nHost: x\r\n\r\n` +
	           (snapshots ? `GET /polls/${poll} HTTP/1.1\r\nHost: x\r\n\r\n` : "")).repeat(n));
	  setTimeout(() => s.resume(), pause);
	});
	let tail = "", answers = 0;
	const done = how => { console.log(`${answers} answers, ${how}`); process.exit(0); };
	s.on("data", d => {
	  const t = tail + d.toString("latin1");
	  answers += (t.match(/HTTP\/1\.1 200 /g) || []).length;
	  tail = t.slice(-12);	/* shorter than what is counted */
	  if (answers === each * n) done("kept");
	});
	s.on("error", () => done("closed"));
	s.on("end", () => done("closed"));
	setTimeout(() => done("timed out"), pause + 20000);
	' "$DAEMON_PORT" "$poll" "$@"
}
# 40 answers of 200 KB are more than the socket buffers hold
client 40 36000 1 >"$WORK/stalled.out" &
PIDS+=($!)
client 40 20000 >"$WORK/late.out" &
PIDS+=($!)
sleep 1
stalled_port=$(head -1 "$WORK/stalled.out")
[ -n "$stalled_port" ] || fail "the stalled client did not connect"
connected() { ss -Htn state established "( sport = :$DAEMON_PORT and dport = :$stalled_port )" | grep -q .; }
sleep 24
connected || fail "the daemon dropped a client that had not read for 25 s"
for _ in $(seq 1 10); do
	connected || break
	sleep 1
done
connected && fail "a client that read nothing for 35 s is still connected"
wait "${PIDS[-1]}" "${PIDS[-2]}"
echo "stalled client: $(tail -1 "$WORK/stalled.out"); one that read after 20 s: $(tail -1 "$WORK/late.out")"
grep -q ', closed$' "$WORK/stalled.out" || fail "the stalled client was not closed: $(tail -1 "$WORK/stalled.out")"
grep -q '^40 answers, kept$' "$WORK/late.out" ||
	fail "a client that read again after 20 s did not get its 40 answers: $(tail -1 "$WORK/late.out")"
code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$(BASE)/polls/$poll" || true)
[ "$code" = 200 ] || fail "GET /polls/$poll answered ${code:-nothing} afterwards"
echo "ok: an HTTP client that takes no writes for 30 s is dropped; one that reads within 30 s is served in full"

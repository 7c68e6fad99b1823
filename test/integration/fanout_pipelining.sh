#!/usr/bin/env bash
# fanout_pipelining: requests pipelined behind others, both found by
# fanout_request_fuzz.
# 1. Bytes pipelined behind a request whose response does not end (an SSE
#    stream) cost the daemon nothing while the client stays connected: no
#    busy loop (lws keeps them in its rx buflist and, if the connection is
#    not flow-controlled, hands them back on every turn of the loop),
#    /healthz still answers at once, and the streams still get their
#    updates.  Eight such connections kept the daemon at 100% CPU.
# 2. A client that pipelines more requests than the socket buffers hold
#    the answers of, and stops reading, costs no CPU either (the rest of its
#    requests wait in the same buflist behind a response that cannot end):
#    for the built-in client, snapshots, and (4.) a 200 KB --web-root file,
#    a response the socket takes only part of (lws keeps the rest and sends
#    it without calling us back: that spun at 200/300 ticks).  A client
#    that reads them later gets every answer.
# 3. A request with an Upgrade header other than websocket, pipelined
#    behind another, is answered or refused without lws reading freed
#    memory (a heap-use-after-free under ASan with the per-header-block
#    reads of wsguard.c).
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Pipelined' A B)
start_daemon
wait_healthy
node -e '
const net = require("net");
const [port, poll] = process.argv.slice(1).map(Number);
for (let i = 0; i < 8; i++) {
  const s = net.connect(port, "127.0.0.1", () =>
    s.write(`GET /polls/${poll}/events HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`));
  let got = "";
  s.on("data", d => { got += d; });
  s.on("error", () => {});
  setInterval(() => console.log(`stream ${i}: ${got.split("\n").filter(l => l.startsWith("data: ")).length} events`), 1000).unref();
}
setTimeout(() => process.exit(0), 60000);
' "$DAEMON_PORT" "$poll" >"$WORK/streams.out" 2>&1 &
PIDS+=($!)
sleep 1

# idle_cpu WHAT: over 3 s the daemon uses at most a fifth of a core, and
# /healthz answers within 2 s (an idle daemon uses a tick or two in 3 s, an
# ASan build a few more; a busy loop about 300)
ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
idle_cpu() {
	local t0 used code
	t0=$(ticks)
	sleep 3
	used=$(( $(ticks) - t0 ))
	echo "daemon CPU over 3 s with $1: $used/300 ticks"
	[ "$used" -lt 60 ] || fail "the daemon used $used of 300 ticks over 3 s with $1: a busy loop"
	code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$(BASE)/healthz" || true)
	[ "$code" = 200 ] || fail "/healthz answered ${code:-nothing} within 2 s with $1"
}
idle_cpu "8 pipelined streams open"
psql_q -c "SELECT poll.cast_vote($poll, 'pipelined-voter', 1)" >/dev/null
sleep 2
# the snapshot, then the vote
n=$(grep 'stream 7:' "$WORK/streams.out" | tail -1 | awk '{ print $3 }')
[ "${n:-0}" -ge 2 ] || fail "a stream got ${n:-no} events, not the snapshot and the vote: $(tail -3 "$WORK/streams.out")"
echo "ok: streams with pipelined bytes behind them cost no CPU and still get their updates"

node -e '
const net = require("net");
const s = net.connect(Number(process.argv[1]), "127.0.0.1", () => {
  s.pause();
  s.write(`GET /poll-client.js HTTP/1.1\r\nHost: x\r\n\r\nGET /polls/${process.argv[2]} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(1000));
});
s.on("error", () => {});
setTimeout(() => process.exit(0), 60000);
' "$DAEMON_PORT" "$poll" &
stalled=$!
PIDS+=("$stalled")
sleep 1
idle_cpu "a client that pipelined 2 000 requests and reads nothing"
kill "$stalled"

for upgrade in x h2c websocket; do
	node -e '
	const net = require("net");
	const [port, upgrade] = [Number(process.argv[1]), process.argv[2]];
	const s = net.connect(port, "127.0.0.1", () =>
	  s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: ${upgrade}\r\n\r\n`));
	let got = "";
	s.on("data", d => { got += d; });
	s.on("error", () => {});
	s.on("close", () => { console.log(got.split("\r\n")[0]); process.exit(0); });
	setTimeout(() => { console.log(got.split("\r\n")[0]); process.exit(0); }, 1500);
	' "$DAEMON_PORT" "$upgrade" >"$WORK/upgrade.out"
	grep -q '^HTTP/1.1 ' "$WORK/upgrade.out" || fail "no answer to a request before one with Upgrade: $upgrade"
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died of a request with Upgrade: $upgrade pipelined behind another"
	code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$(BASE)/healthz" || true)
	[ "$code" = 200 ] || fail "/healthz answered ${code:-nothing} after a pipelined Upgrade: $upgrade"
done
echo "ok: requests with odd Upgrade headers pipelined behind others leave the daemon well"

# 4. the same with a response larger than the socket buffers take at once
mkdir -p "$WORK/www"
head -c 150000 /dev/urandom | base64 >"$WORK/www/poll-client.js"	# ~200 KB
stop_daemon
start_daemon --web-root "$WORK/www"
wait_healthy
pipeline() {	# N PAUSE_MS: N x (the big file, a snapshot); reads after PAUSE_MS
	node -e '
	const net = require("net");
	const [port, poll, n, pause] = process.argv.slice(1).map(Number);
	const s = net.connect(port, "127.0.0.1", () => {
	  s.pause();
	  s.write(`GET /poll-client.js HTTP/1.1\r\nHost: x\r\n\r\nGET /polls/${poll} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(n));
	  if (pause) setTimeout(() => s.resume(), pause);
	});
	let tail = "", answers = 0;
	s.on("data", d => {
	  const t = tail + d.toString("latin1");
	  answers += (t.match(/HTTP\/1\.1 200 /g) || []).length;
	  tail = t.slice(-12);	/* shorter than what is counted */
	  if (answers === 2 * n) { console.log(`${answers} answers`); process.exit(0); }
	});
	s.on("error", () => {});
	setTimeout(() => { console.log(`${answers} answers`); process.exit(0); }, 60000);
	' "$DAEMON_PORT" "$poll" "$@"
}
pipeline 1000 0 >/dev/null &
stalled=$!
PIDS+=("$stalled")
sleep 1
idle_cpu "a client that pipelined 1 000 requests for a 200 KB file, and snapshots, and reads nothing"
kill "$stalled"
got=$(pipeline 100 2000)
[ "$got" = "200 answers" ] || fail "a client that read its 200 pipelined answers 2 s late got $got"
echo "ok: pipelined requests behind responses the client does not read cost no CPU, and are all answered once it reads"

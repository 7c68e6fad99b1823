#!/usr/bin/env bash
# fanout_bad_input: every bad input gets its error or close — malformed
# JSON, unknown types, bad and unknown poll ids, too many subscriptions,
# oversize frames (1009), floods (rate_limited then close), bad HTTP paths,
# silent and half-sent requests (closed), bad flags (clear message, non-zero
# exit) and --max-clients.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Bad input' Yes No)
first=$(psql_q -c "SELECT min(id) FROM (SELECT poll.create_poll('many ' || i, ARRAY['a','b']) AS id
                   FROM generate_series(1, 65) i) s")
start_daemon
wait_healthy
rejected0=$(metric poll_fanout_rejected_inputs_total)

node "$FANOUT_TESTS/bad_input.js" "$(BASE)" "$poll" "$first" || fail "WebSocket bad input"

rejected=$(metric poll_fanout_rejected_inputs_total)
[ "$rejected" -ge $((rejected0 + 12)) ] || fail "rejected inputs metric did not grow enough: $rejected0 -> $rejected"

# HTTP: bad ids 400, unknown poll and paths 404, each with an error body
check_http() {
	local path=$1 want=$2 code
	code=$(curl -s -o "$WORK/body" -w '%{http_code}' "$(BASE)$path")
	[ "$code" = "$want" ] || fail "GET $path: $code, expected $want"
	grep -q '"type":"error"' "$WORK/body" || fail "GET $path: no error body: $(cat "$WORK/body")"
	echo "ok: GET $path -> $code"
}
check_http /polls/abc 400
check_http /polls/0 400
check_http /polls/-3 400
check_http /polls/99999999999999999999 400
check_http /polls/987654321 404
check_http /polls/987654321/events 404
check_http /polls/1/nothing 404
check_http /no/such/path 404
grep -q '"code":"not_found"' <(curl -s "$(BASE)/polls/987654321") || fail "unknown poll body lacks not_found"
code=$(curl -s -o /dev/null -w "%{http_code}" -X POST -d x "$(BASE)/polls/$poll" || true)
[ "$code" != 200 ] || fail "POST /polls/$poll should not succeed"

# bad flags: a clear message and a non-zero exit, without starting
bad_flag() {
	local out rc=0
	out=$("$FANOUT" "$@" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "poll-fanout $* exited 0"
	[ -n "$out" ] || fail "poll-fanout $* printed nothing"
	echo "ok: poll-fanout $* -> exit $rc: $(echo "$out" | head -1)"
}
bad_flag --throttle abc
bad_flag --throttle -5
bad_flag --listen nowhere
bad_flag --listen 127.0.0.1:99999
bad_flag --max-clients 0
bad_flag --tls-cert /etc/hostname
bad_flag --tls-cert /nonexistent --tls-key /nonexistent
bad_flag --jwt-secret-file /nonexistent
bad_flag --web-root /nonexistent
bad_flag --frobnicate
bad_flag extra-argument
# (lws 4.1 leaks 96 bytes of its own when lws_create_context fails: no leak check for this one)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$FANOUT" --listen "127.0.0.1:$DAEMON_PORT" >"$WORK/busy.log" 2>&1 &&
	fail "a second daemon on a busy port exited 0"
grep -q "cannot listen" "$WORK/busy.log" || fail "busy port: no clear message: $(cat "$WORK/busy.log")"

# slow or silent clients: a connection that sends nothing, and one that never
# finishes its request headers, are closed by the server (lws's handshake
# timeout, kept on time on an idle daemon by the sweep), not held forever
node -e '
const net = require("net");
const port = +process.argv[1], t0 = Date.now();
const closedAfter = (sock) => new Promise(r => { sock.on("close", () => r((Date.now() - t0) / 1000)); sock.on("error", () => {}); });
const silent = net.connect(port, "127.0.0.1");
const partial = net.connect(port, "127.0.0.1", () => partial.write("GET /ws HTTP/1.1\r\nHost: x\r\n"));
const limit = setTimeout(() => { console.error("slow clients still open after 16 s (the handshake timeout is 10 s)"); process.exit(1); }, 16000);
Promise.all([closedAfter(silent), closedAfter(partial)]).then(([a, b]) => {
  clearTimeout(limit);
  console.log("ok: a silent client closed after " + a.toFixed(1) + " s, a half-sent request after " + b.toFixed(1) + " s");
  process.exit(0);
});' "$DAEMON_PORT" || fail "slow clients are not closed"
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$(BASE)/healthz")
[ "$code" = 200 ] || fail "/healthz is $code after the slow clients"

# --max-clients: the third client is refused with 503, the first two keep working
stop_daemon
start_daemon --max-clients 2
wait_healthy
node -e '
const { open, assert, main } = require(process.argv[1] + "/wsprobe");
const ws = process.argv[2].replace(/^http/, "ws") + "/ws";
main(async () => {
  const a = await open(ws), b = await open(ws);
  let status = 0;
  try { await open(ws); } catch (e) { status = e.status || -1; }
  assert(status === 503, "third client: expected HTTP 503, got " + status);
  a.send({ type: "ping", id: 1 });
  assert((await a.next()).type === "pong", "first client stopped working");
  a.close(); await a.closed;
  await new Promise(r => setTimeout(r, 200));
  const c = await open(ws);
  c.send({ type: "ping", id: 2 });
  assert((await c.next()).type === "pong", "a client after one left was not served");
  console.log("ok: --max-clients 2 refuses the third client with 503, admits one after a close");
  process.exit(0);
});' "$FANOUT_TESTS" "$(BASE)" || fail "--max-clients"
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$(BASE)/healthz")
[ "$code" = 200 ] || fail "/healthz is $code with --max-clients reached"
echo "ok: all bad inputs refused"

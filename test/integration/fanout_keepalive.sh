#!/usr/bin/env bash
# fanout_keepalive: with --keepalive SECONDS an otherwise idle SSE stream gets
# a comment line and an idle WebSocket a ping every SECONDS, so that proxies
# with idle timeouts keep them; the default (20 s) sends none within seconds.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Quiet' Yes No)
start_daemon --keepalive 1
wait_healthy
node -e '
const http = require("http");
const { open, assert, main, sleep } = require(process.argv[1] + "/wsprobe");
const [base, poll] = [process.argv[2], Number(process.argv[3])];
main(async () => {
  const ws = await open(base.replace(/^http/, "ws") + "/ws");
  let pings = 0;
  ws.ws.on("ping", () => pings++);
  ws.send({ type: "subscribe", poll });
  let sse = "";
  http.get(base + "/polls/" + poll + "/events", res => res.on("data", d => sse += d));
  await sleep(5200);
  const comments = (sse.match(/^: keepalive$/mg) || []).length;
  assert(/"type":"snapshot"/.test(sse), "SSE: no snapshot");
  assert(comments >= 2 && comments <= 6, "SSE: " + comments + " keepalive comments in 5.2 s at --keepalive 1");
  assert(pings >= 2 && pings <= 6, "WebSocket: " + pings + " pings in 5.2 s at --keepalive 1");
  ws.send({ type: "ping", id: 1 });
  assert((await ws.until(m => m.type === "pong")).id === 1, "the WebSocket still works after pings");
  console.log("ok: idle SSE got " + comments + " comment lines, idle WebSocket " + pings + " pings");
  process.exit(0);
});' "$FANOUT_TESTS" "$(BASE)" "$poll" || fail "keepalives"
stop_daemon
# the default is 20 s: none within 3 s
start_daemon
wait_healthy
node -e '
const { open, main, assert, sleep } = require(process.argv[1] + "/wsprobe");
main(async () => {
  const ws = await open(process.argv[2].replace(/^http/, "ws") + "/ws");
  let pings = 0;
  ws.ws.on("ping", () => pings++);
  await sleep(2500);
  assert(pings === 0, pings + " pings within 2.5 s at the default keepalive");
  console.log("ok: no ping within 2.5 s by default");
});' "$FANOUT_TESTS" "$(BASE)" || fail "default keepalive"
out=$("$FANOUT" --keepalive -1 2>&1) && fail "--keepalive -1 exited 0"
echo "ok: keepalives"

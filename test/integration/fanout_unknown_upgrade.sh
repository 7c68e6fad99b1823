#!/usr/bin/env bash
# fanout_unknown_upgrade: an Upgrade header lws does not know ("Upgrade: foo"),
# sent as the second request of a keep-alive connection.  lws 4.1 answers it
# 403 and completes the transaction, which frees the request's headers and
# the session, then goes on to read the freed Upgrade value (strcasecmp) and
# to serve the request as HTTP without its headers: a heap-use-after-free
# (found by fanout_request_fuzz, seed 3939039270).  The connection must be
# closed after the 403, the daemon must live on, and a real WebSocket
# upgrade after a keep-alive request must still work.  Under the sanitizers
# (make test's second pass) the old daemon fails here with the report.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Upgrades' Yes No)
start_daemon
wait_healthy

node -e '
const net = require("net");
const { statuses } = require(process.argv[1] + "/rawhttp");
const { open, assert, main, sleep } = require(process.argv[1] + "/wsprobe");
const [port, poll] = [Number(process.argv[2]), Number(process.argv[3])];

/* write each step after the answer to the previous one has arrived; resolve
   with everything received and whether the server closed within ms */
function steps(parts, ms = 1500) {
  return new Promise(resolve => {
    const sock = net.connect(port, "127.0.0.1");
    let got = "", i = 0, closed = false, done = false;
    const finish = () => { if (done) return; done = true; clearTimeout(timer); sock.destroy(); resolve({ got, closed }); };
    const timer = setTimeout(finish, ms);
    const next = () => { if (i < parts.length) sock.write(Buffer.from(parts[i++].text, "latin1")); };
    sock.on("connect", next);
    sock.on("data", d => {
      got += d.toString("latin1");
      if (i < parts.length && parts[i - 1].until.test(got)) next();
    });
    sock.on("end", () => { closed = true; finish(); });
    sock.on("close", () => { closed = true; finish(); });
    sock.on("error", finish);
  });
}
const req = (path, extra = "") => "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
const upgrade = (path, value, extra = "") => req(path, "Connection: Upgrade\r\nUpgrade: " + value + "\r\n" + extra);
const healthz = req("/healthz");
const wsKey = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

main(async () => {
  const watcher = await open("ws://127.0.0.1:" + port + "/ws");
  watcher.send({ type: "subscribe", poll });
  assert((await watcher.next()).type === "snapshot", "the watcher gets its snapshot");

  const cases = [
    ["after /healthz", [{ text: healthz, until: /ok\n/ }, { text: upgrade("/ws", "foo") }]],
    ["after /healthz, pipelined", [{ text: healthz + upgrade("/ws", "foo") }]],
    ["after a snapshot, on /polls/ID", [{ text: req("/polls/" + poll), until: /"options"/ },
                                        { text: upgrade("/polls/" + poll, "WebSocket2") }]],
    ["after /healthz, with a body", [{ text: healthz, until: /ok\n/ },
                                     { text: upgrade("/healthz", "x", "Content-Length: 4\r\n") + "abcd" }]],
    ["after /healthz, then /healthz again pipelined", [{ text: healthz, until: /ok\n/ },
                                                       { text: upgrade("/ws", "foo") + healthz }]],
    ["after /healthz, with a WebSocket key", [{ text: healthz, until: /ok\n/ }, { text: upgrade("/ws", "wss", wsKey) }]],
    ["as the first request", [{ text: upgrade("/ws", "foo") }]],
  ];
  for (let round = 0; round < 3; round++)
    for (const [what, parts] of cases) {
      const r = await steps(parts);
      const st = statuses(r.got);
      const before = parts.length === 1 && parts[0].text.startsWith(healthz) ? 1 : parts.length - 1;
      assert(r.closed, "unknown upgrade " + what + ": the connection was not closed: " + JSON.stringify(r.got.slice(-200)));
      assert(st.slice(0, before).every(s => s === 200) && st.length <= before + 1 &&
             st.slice(before).every(s => s === 403),
             "unknown upgrade " + what + ": " + JSON.stringify(r.got.replace(/<html>.*<\/html>/s, "...").slice(0, 400)));
      const h = await steps([{ text: healthz }], 2000);
      assert(statuses(h.got)[0] === 200, "/healthz after an unknown upgrade " + what);
    }

  /* a real WebSocket upgrade as the second request of a connection still works */
  const ok = await steps([{ text: healthz, until: /ok\n/ }, { text: upgrade("/ws", "websocket", wsKey) }], 700);
  assert(/^HTTP\/1\.1 101 /m.test(ok.got) && !ok.closed, "a WebSocket upgrade after /healthz: " + JSON.stringify(ok.got.slice(0, 300)));
  const ok2 = await steps([{ text: upgrade("/ws", "WebSocket", wsKey) }], 700);
  assert(/^HTTP\/1\.1 101 /m.test(ok2.got) && !ok2.closed, "a WebSocket upgrade (WebSocket): " + JSON.stringify(ok2.got.slice(0, 300)));

  /* the daemon still pushes */
  watcher.ws.send(JSON.stringify({ type: "ping", id: "x" }));
  assert((await watcher.until(m => m.type === "pong")).id === "x", "the watcher still gets its pong");
  console.log("ok: " + cases.length + " unknown upgrades x 3, each closed after its 403");
  watcher.close();
});' "$FANOUT_TESTS" "$DAEMON_PORT" "$poll" || fail "unknown upgrades"

psql_q -c "SELECT poll.cast_vote($poll, 'v-$RANDOM-$RANDOM', 1)" >/dev/null
sleep 0.5
kill -0 "$DAEMON_PID" 2>/dev/null || fail "poll-fanout died after unknown upgrades"
[ "$(http_code "$(BASE)/polls/$poll")" = 200 ] || fail "GET /polls/$poll after unknown upgrades"
stop_daemon
echo "ok: unknown upgrades closed after 403, the daemon lives on"

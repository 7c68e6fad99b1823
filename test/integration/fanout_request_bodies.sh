#!/usr/bin/env bash
# fanout_request_bodies: a body on a request that takes none is ignored
# (GET /polls/ID, /polls/ID/events, with and without a token, pipelined);
# a body over 4 KiB gets 413.  Such a request once freed its session while
# the session was still subscribed: the next change of the poll wrote
# through freed memory (issue 10, crash 1).
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Bodies' Yes No)
secret="s3cret-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/secret"

# run_bodies [TOKEN]: the requests, then a change of the poll, then the daemon must be alive
run_bodies() {
	node -e '
const { raw, statuses } = require(process.argv[1] + "/rawhttp");
const { open, assert, main, sleep } = require(process.argv[1] + "/wsprobe");
const [port, poll, token] = [Number(process.argv[2]), process.argv[3], process.argv[4] || ""];
const auth = token ? "Authorization: Bearer " + token + "\r\n" : "";
const req = (path, body, extra = "") => "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + auth + extra +
  "Content-Length: " + body.length + "\r\n\r\n" + body;
const fresh = process.argv[5];
main(async () => {
  /* the poll stays cached while this client watches it */
  const watcher = await open("ws://127.0.0.1:" + port + "/ws" + (token ? "?token=" + token : ""));
  watcher.send({ type: "subscribe", poll: Number(poll) });
  await watcher.next();
  let r = await raw(port, req("/polls/" + poll, "abcd"), { until: /"options"/ });
  assert(statuses(r)[0] === 200 && /"type":"snapshot"/.test(r), "GET with a body: " + r.slice(0, 200));
  /* bytes after a body, before the answer: the connection is closed, never spun on (lws did) */
  for (const path of ["/polls/" + poll, "/polls/" + fresh, "/nowhere", "/polls/" + poll + "/nothing"])
    for (const method of ["GET", "POST", "OPTIONS", "PUT"]) {
      const t = method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 4\r\n\r\nabcd";
      await raw(port, t + t + req("/healthz", ""), { ms: 1000 });
      const t0 = Date.now();
      const h = await raw(port, req("/healthz", ""), { until: /\n$/, ms: 2000 });
      assert(statuses(h).length === 1 && Date.now() - t0 < 1000,
        "stuck after " + method + " " + path + " with a body, twice, and a pipelined request");
    }
  r = await raw(port, req("/polls/" + poll + "/events", "abcd"), { until: /data: .*snapshot/ });
  assert(/data: .*"type":"snapshot"/.test(r), "SSE with a body: " + r.slice(0, 300));
  r = await raw(port, req("/polls/" + poll, "x".repeat(5000)), { until: /\r\n\r\n/ });
  assert(statuses(r)[0] === 413, "a 5000-byte body: expected 413, got " + r.slice(0, 100));
  r = await raw(port, req("/polls/" + poll, "x".repeat(4096)), { until: /"options"/ });
  assert(statuses(r)[0] === 200, "a 4096-byte body is ignored: " + r.slice(0, 100));
  console.log("ok: bodies" + (token ? " with a token" : ""));
});' "$FANOUT_TESTS" "$DAEMON_PORT" "$poll" "${1:-}" "$(new_poll 'Fresh' A B)" || fail "requests with bodies${1:+ (token)}"
	# a change of the poll reaches every session that was subscribed
	psql_q -c "SELECT poll.cast_vote($poll, 'v-$RANDOM-$RANDOM', 1)" >/dev/null
	sleep 0.5
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "poll-fanout died after requests with bodies"
	[ "$(http_code ${1:+-H "Authorization: Bearer $1"} "$(BASE)/polls/$poll")" = 200 ] ||
		fail "GET /polls/$poll after bodies"
}

start_daemon
wait_healthy
run_bodies
stop_daemon

start_daemon --jwt-secret-file "$WORK/secret"
wait_healthy
token=$(node -e '
const c = require("crypto"), b = x => Buffer.from(JSON.stringify(x)).toString("base64url");
const h = b({ alg: "HS256", typ: "JWT" }) + "." + b({ polls: "*", exp: Math.floor(Date.now() / 1000) + 600 });
console.log(h + "." + c.createHmac("sha256", process.argv[1]).update(h).digest("base64url"));' "$secret")
run_bodies "$token"
echo "ok: bodies ignored, 413 over 4 KiB"

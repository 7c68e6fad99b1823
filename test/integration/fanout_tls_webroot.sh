#!/usr/bin/env bash
# fanout_tls_webroot: with --tls-cert/--tls-key the daemon serves HTTPS and
# wss:// (and nothing in clear text); with --web-root the page and the client
# come from that directory instead of the built-in copies.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
command -v openssl >/dev/null || fail "openssl is not installed"

poll=$(new_poll 'Over TLS' Yes No)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || fail "cannot make a certificate"

DAEMON_PORT=$(free_port)
DAEMON_LOG="$WORK/daemon.tls.log"
"$FANOUT" --listen "127.0.0.1:$DAEMON_PORT" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
	>"$DAEMON_LOG" 2>&1 &
DAEMON_PID=$!
PIDS+=("$DAEMON_PID")
for _ in $(seq 1 100); do
	[ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$DAEMON_PORT/healthz")" = 200 ] && break
	sleep 0.1
done
[ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$DAEMON_PORT/healthz")" = 200 ] ||
	fail "/healthz over HTTPS is not 200"
curl -s --cacert "$WORK/cert.pem" "https://127.0.0.1:$DAEMON_PORT/polls/$poll" >"$WORK/body" || true
grep -q '"type":"snapshot"' "$WORK/body" ||
	fail "GET /polls over HTTPS (verified certificate) failed"
code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$DAEMON_PORT/healthz" || true)
[ "$code" != 200 ] || fail "clear-text HTTP is served on the TLS port"
NODE_EXTRA_CA_CERTS="$WORK/cert.pem" node -e '
const { open, assert, main } = require(process.argv[1] + "/wsprobe");
main(async () => {
  const c = await open(`wss://127.0.0.1:${process.argv[2]}/ws`);
  c.send({ type: "subscribe", poll: Number(process.argv[3]) });
  const m = await c.next();
  assert(m.type === "snapshot", "wss subscribe: " + JSON.stringify(m));
  console.log("ok: wss:// subscribe -> snapshot");
});' "$FANOUT_TESTS" "$DAEMON_PORT" "$poll" || fail "wss:// subscription"
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true

mkdir -p "$WORK/www"
echo '<!doctype html><title>custom page</title><p>served from --web-root</p>' >"$WORK/www/index.html"
start_daemon --web-root "$WORK/www"
curl -s "$(BASE)/" >"$WORK/body" || true
grep -q "served from --web-root" "$WORK/body" || fail "--web-root index.html not served"
[ "$(http_code "$(BASE)/poll-client.js")" = 404 ] || fail "a file missing from --web-root should be 404"
stop_daemon
start_daemon
curl -s "$(BASE)/" >"$WORK/body" || true
grep -q "/poll-client.js" "$WORK/body" || fail "the built-in page does not load /poll-client.js"
curl -s "$(BASE)/poll-client.js" >"$WORK/body" || true
grep -q "PollClient" "$WORK/body" || fail "the built-in client is not served"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$(BASE)/poll-client.js")
case "$ctype" in application/javascript*) ;; *) fail "poll-client.js served as $ctype" ;; esac
stop_daemon

# without --listen: 127.0.0.1:8080, loopback only (skipped when 8080 is taken)
if ! ss -ltn | awk '{ print $4 }' | grep -q ':8080$'; then
	"$FANOUT" >"$WORK/default.log" 2>&1 &
	default_pid=$!
	PIDS+=("$default_pid")
	for _ in $(seq 1 50); do ss -ltn | awk '{ print $4 }' | grep -q ':8080$' && break; sleep 0.1; done
	where=$(ss -ltn | awk '{ print $4 }' | grep ':8080$' || true)
	[ "$where" = "127.0.0.1:8080" ] || fail "default listen address is '$where', not 127.0.0.1:8080"
	kill "$default_pid"
	echo "ok: listens on 127.0.0.1:8080 by default"
fi

# the metric families operators rely on
start_daemon
curl -s "$(BASE)/metrics" >"$WORK/metrics"
for m in poll_fanout_clients poll_fanout_subscriptions poll_fanout_messages_sent_total \
	poll_fanout_bytes_sent_total poll_fanout_coalesced_updates_total poll_fanout_replication_lag_bytes \
	poll_fanout_reconnects_total poll_fanout_rejected_inputs_total; do
	grep -q "^# TYPE $m " "$WORK/metrics" || fail "/metrics lacks $m"
done
echo "ok: TLS, --web-root, default listen address, metric families"

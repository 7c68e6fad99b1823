#!/usr/bin/env bash
# fanout_webhooks_https: https certificates are verified.  A receiver on
# https with a self-signed certificate (which curl -k shows serving) gets no
# delivery: the daemon refuses the handshake, logs why, records the attempt
# (last_status 0) and keeps the delivery pending for its retries.
. "$(dirname "$0")/../fanout/lib.sh"
. "$(dirname "$0")/../fanout/webhooks_lib.sh"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
	-addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 ||
	fail "cannot make a certificate"
rport=$(free_port)
receiver_start r "$rport" --secret k --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
# the receiver serves https (a client that skips verification gets through)
code=$(curl -sk -o /dev/null -w '%{http_code}' -X POST --data '{}' "https://127.0.0.1:$rport/probe")
[ "$code" = 200 ] && [ "$(arrivals r)" = 1 ] || fail "the https receiver does not serve (HTTP $code)"
p=$(new_poll 'https' a b)
webhook_add "https://127.0.0.1:$rport/hook" k '{closed}' "ARRAY[$p]::bigint[]"
start_daemon --webhooks
wait_healthy
psql_q -c "SELECT poll.close_poll($p)" >/dev/null
wait_webhook "$HOOK" "pending, last_status" "1|0"	# a failed attempt, recorded
sleep 1.5	# the first retry too
[ "$(arrivals r)" = 1 ] || fail "a delivery reached a receiver whose certificate does not verify"
grep -qi 'certificate' "$DAEMON_LOG" || fail "the refusal is not logged with its reason"
echo "ok: a self-signed receiver got nothing; $(grep -m1 -o 'delivery .*attempt 1' "$DAEMON_LOG")"

#!/usr/bin/env bash
# fanout_webhooks_retries: a receiver that answers 500 twice, then 200, gets
# the same Poll-Delivery three times (1 s, then 2 s apart: the backoff), and
# then nothing more; poll.webhooks and /metrics say so.
. "$(dirname "$0")/../fanout/lib.sh"
. "$(dirname "$0")/../fanout/webhooks_lib.sh"

rport=$(free_port)
receiver_start r "$rport" --fail-first 2 --secret k
p=$(new_poll 'retried' a b)
webhook_add "http://127.0.0.1:$rport/" k '{closed}' "ARRAY[$p]::bigint[]"
start_daemon --webhooks
wait_healthy
psql_q -c "SELECT poll.cast_vote($p, 'v1', 2); SELECT poll.close_poll($p)" >/dev/null
wait_arrivals r 3 "True" 10
sleep 4		# a fourth would come 4 s after the third
python3 - "$WORK/r.jsonl" "$HOOK-$p-" <<'PY' || fail "retries do not follow the SPEC"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["delivery"] for r in recs]
statuses = [r["status"] for r in recs]
gaps = [b["at"] - a["at"] for a, b in zip(recs, recs[1:])]
print("deliveries %s, answers %s, gaps %s s" % (ids, statuses, ["%.2f" % g for g in gaps]))
ok = (len(recs) == 3 and len(set(ids)) == 1 and ids[0].startswith(sys.argv[2]) and statuses == [500, 500, 200]
      and 0.9 <= gaps[0] <= 1.8 and 1.9 <= gaps[1] <= 2.8 and all(r["sig_ok"] for r in recs)
      and json.loads(recs[0]["body"])["event"] == "closed")
sys.exit(0 if ok else 1)
PY
wait_webhook "$HOOK" "last_status, pending, failures" "200|0|0" 1
[ "$(psql_q -c "SELECT attempts || ' ' || state FROM poll.webhook_delivery WHERE webhook_id = $HOOK")" = "3 delivered" ] ||
	fail "delivery state: $(psql_q -c "SELECT * FROM poll.webhook_delivery WHERE webhook_id = $HOOK")"
[ "$(metric poll_fanout_webhook_failed_attempts_total)" = 2 ] || fail "failed attempts metric"
[ "$(metric poll_fanout_webhook_deliveries_total)" = 1 ] || fail "deliveries metric"
echo "ok: 500, 500, 200: one Poll-Delivery three times, 1 s then 2 s apart, then no more"

# after 24 h of retries a delivery counts as failed: one begun 25 h ago (as a
# daemon left it before a long outage), to a port nobody listens on
stop_daemon
first=$HOOK
dead=$(free_port)
p2=$(new_poll 'given up' a b)
webhook_add "http://127.0.0.1:$dead/" k '{closed}' "ARRAY[$p2]::bigint[]"
psql_q -c "INSERT INTO poll.webhook_delivery (webhook_id, poll_id, event, version, state, body, since, attempts)
	VALUES ($HOOK, $p2, 'closed', 7, 'pending', '{\"type\":\"snapshot\"}', now() - interval '25 hours', 17)" >/dev/null
start_daemon --webhooks
wait_webhook "$HOOK" "failures, pending, last_status" "1|0|0" 10	# given up
[ "$(metric poll_fanout_webhook_failures_total)" = 1 ] || fail "failures metric $(metric poll_fanout_webhook_failures_total)"
grep -q "failed for 24 h: given up" "$DAEMON_LOG" || fail "the give-up is not logged"
[ "$(psql_q -c "SELECT state FROM poll.webhook_delivery WHERE webhook_id = $first")" = delivered ] ||
	fail "the delivered one changed after a restart"
[ "$(arrivals r)" = 3 ] || fail "a delivered event was sent again after the restart"
echo "ok: a delivery retried for 24 h is given up and counted in poll.webhooks.failures"

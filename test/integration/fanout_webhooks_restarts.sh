#!/usr/bin/env bash
# fanout_webhooks_restarts: what was delivered is recorded in the database.
# 1. The receiver is down while a poll closes; the daemon (and Postgres) are
#    restarted; once both are back the closed event arrives, once.
# 2. kill -9 of the daemon while a delivery is in flight: after a restart
#    nothing acknowledged is delivered again, the one in flight is (same
#    Poll-Delivery), and later events flow.
. "$(dirname "$0")/../fanout/lib.sh"
. "$(dirname "$0")/../fanout/webhooks_lib.sh"

# ---- 1. receiver down, daemon and Postgres restarted ----
rport=$(free_port)
q=$(new_poll 'closes while the receiver is down' a b)
webhook_add "http://127.0.0.1:$rport/down" k '{closed}' "ARRAY[$q]::bigint[]"
down=$HOOK
start_daemon --webhooks --verbose
wait_healthy
psql_q -c "SELECT poll.cast_vote($q, 'v1', 1); SELECT poll.close_poll($q)" >/dev/null
wait_webhook "$down" "pending, last_status" "1|0"	# a failed attempt, recorded
stop_daemon
if [ -n "${POLL_CLUSTER_DIR:-}" ]; then
	"$POLL_ROOT/scripts/cluster.sh" stop "$POLL_CLUSTER_DIR" >/dev/null
	"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT" >/dev/null
	echo "Postgres restarted too"
fi
receiver_start r "$rport" --secret k
start_daemon --webhooks --verbose
wait_arrivals r 1 "True" 10
sleep 3
[ "$(arrivals r)" = 1 ] || fail "the closed event arrived $(arrivals r) times"
[ "$(arrivals r "r['delivery'] == '$down-$q-' + str(b['version']) and b['event'] == 'closed' and r['sig_ok']")" = 1 ] ||
	fail "not the closed event: $(cat "$WORK/r.jsonl")"
wait_webhook "$down" "pending, last_status" "0|200" 1
echo "ok: the closed event missed while the receiver was down arrived once after the restarts"

# ---- 2. kill -9 mid-delivery ----
rport2=$(free_port)
receiver_start h "$rport2" --secret k --hang 5 --hang-file "$WORK/hang"
webhook_add "http://127.0.0.1:$rport2/all" k '{opened,closed}'
all=$HOOK
polls=()
for i in 1 2 3; do polls+=("$(new_poll "k$i" a b)"); done
wait_arrivals h 3 "b['event'] == 'opened'" 10
touch "$WORK/hang"
psql_q -c "SELECT poll.close_poll(${polls[0]})" >/dev/null
wait_arrivals h 1 "b['event'] == 'closed'" 10
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
rm -f "$WORK/hang"
start_daemon --webhooks --verbose
wait_arrivals h 2 "b['event'] == 'closed'" 10
psql_q -c "SELECT poll.close_poll(${polls[1]})" >/dev/null
wait_arrivals h 3 "b['event'] == 'closed'" 10
sleep 2
python3 - "$WORK/h.jsonl" "$all" "${polls[@]}" <<'PY' || fail "after kill -9: acknowledged deliveries repeated, or the one in flight not resent"
import json, sys, collections
recs = [json.loads(l) for l in open(sys.argv[1])]
hook, polls = sys.argv[2], [int(x) for x in sys.argv[3:]]
count = collections.Counter((json.loads(r["body"])["event"], json.loads(r["body"])["poll"], r["delivery"]) for r in recs)
print(sorted(count.items()))
want = {("opened", p): 1 for p in polls}
want[("closed", polls[0])] = 2		# in flight at the kill: resent, same Poll-Delivery
want[("closed", polls[1])] = 1
got = collections.Counter()
for (ev, p, d), n in count.items():
    got[(ev, p)] += n
    if not d.startswith("%s-%d-" % (hook, p)):
        sys.exit(1)
sys.exit(0 if got == collections.Counter(want) and all(r["sig_ok"] for r in recs) else 1)
PY
echo "ok: after kill -9 mid-delivery, only the delivery in flight came again (same Poll-Delivery)"

# ---- 3. Postgres restarts under a running daemon: it reconnects, takes the lock, goes on ----
if [ -n "${POLL_CLUSTER_DIR:-}" ]; then
	"$POLL_ROOT/scripts/cluster.sh" stop "$POLL_CLUSTER_DIR" >/dev/null
	"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT" >/dev/null
	wait_healthy 30
	psql_q -c "SELECT poll.close_poll(${polls[2]})" >/dev/null
	wait_arrivals h 4 "b['event'] == 'closed'" 15
	sleep 1.5
	[ "$(arrivals h)" = 7 ] || fail "after Postgres restarted: $(arrivals h) requests, expected 7 (3 opened, 4 closed)"
	[ "$(grep -c "this daemon delivers" "$DAEMON_LOG")" = 2 ] ||
		fail "the daemon did not take the lock again after Postgres restarted"
	echo "ok: Postgres restarted under the daemon: it took the lock again and delivered the next closed, once"
fi

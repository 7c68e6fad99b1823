#!/usr/bin/env bash
# fanout_webhooks_slow_receiver: a receiver that hangs for 30 s before
# answering holds only its own deliveries: while twenty of them hang, a
# browser's pushes keep their latency (each under 100 ms from commit) and
# another webhook's receiver gets its events at once.
. "$(dirname "$0")/../fanout/lib.sh"
. "$(dirname "$0")/../fanout/webhooks_lib.sh"
need_node

slow=$(free_port)
fast=$(free_port)
receiver_start slow "$slow" --hang 30
receiver_start fast "$fast" --secret k
webhook_add "http://127.0.0.1:$slow/" k '{opened,closed,tally}'
webhook_add "http://127.0.0.1:$fast/" k '{opened,closed}'
start_daemon --webhooks
wait_healthy
for i in $(seq 1 20); do new_poll "slow $i" a b >/dev/null; done
p=$(new_poll 'watched' a b)
wait_arrivals slow 20 True 10
wait_arrivals fast 21 "b['event'] == 'opened'" 5
[ "$(metric poll_fanout_webhook_pending)" -ge 20 ] || fail "expected 20 deliveries hanging, pending $(metric poll_fanout_webhook_pending)"

node "$FANOUT_TESTS/push_latency.js" "$(BASE)" "$p" 20 >"$WORK/latency.json" 2>"$WORK/latency.err" ||
	fail "push latency client: $(cat "$WORK/latency.err")"
cat "$WORK/latency.json"
max=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['max'])" "$WORK/latency.json")
[ "$max" -lt 100 ] || fail "a browser push took $max ms while a webhook receiver hung"
# the other webhook is not held up either
psql_q -c "SELECT poll.close_poll($p)" >/dev/null
t0=$(date +%s%N)
wait_arrivals fast 1 "b['event'] == 'closed' and b['poll'] == $p" 5
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] || fail "the healthy receiver got closed after $ms ms (its deliveries wait for the hanging ones?)"
echo "ok: with 20 deliveries hanging, browser pushes took at most $max ms and another receiver got closed within $ms ms"

#!/usr/bin/env bash
# A fast shutdown in the middle of a voting load is prompt (the worker leaves at
# once on SIGTERM, even mid-fold), and after the restart nothing is lost.
. "$(dirname "$0")/../lib/common.sh"

first=$(q "SELECT poll.create_poll('Stop 1', ARRAY['a', 'b', 'c', 'd'])")
q "SELECT poll.create_poll('Stop 2', ARRAY['a', 'b', 'c', 'd'])" >/dev/null
q "SELECT poll.create_poll('Stop 3', ARRAY['a', 'b', 'c', 'd'])" >/dev/null
"${PGBIN:-/usr/lib/postgresql/15/bin}"/pgbench -n -c 8 -j 2 -T 30 -D first="$first" \
	-f "$POLL_ROOT/test/lib/vote_mix.pgbench" >"$POLL_WORK/stop.pgbench.out" 2>&1 &
load=$!
sleep 3
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'poll fold worker'")" = 1 ] || fail "no worker"
before=$(cluster_log | wc -l)
t0=$(date +%s%N)
"$POLL_ROOT/scripts/cluster.sh" stop "$POLL_CLUSTER_DIR"
t1=$(date +%s%N)
wait $load || true
ms=$(((t1 - t0) / 1000000))
echo "fast shutdown under load took $ms ms"
[ "$ms" -lt 5000 ] || fail "shutdown took $ms ms"
grep -q 'terminating background worker "poll fold worker"' <<<"$(cluster_log | tail -n +$((before + 1)))" ||
	fail "the worker did not log its shutdown"
"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT"
wait_for 10 "SELECT count(*) = 1 FROM poll.worker_status" || fail "the worker did not come back"
check_invariants
echo "prompt stop, nothing lost"

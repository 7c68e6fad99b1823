#!/usr/bin/env bash
# fanout_snapshot_fairness: requests for polls that do not exist cost no more
# than for polls that do — 150 connections asking for 64 unknown ids each
# must not hold up a legitimate GET /polls/ID (a poll not cached yet) by more
# than a fraction of a second; an unknown id asked again is answered from the
# negative cache, without a query.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Fair' Yes No)
start_daemon
wait_healthy
node "$FANOUT_TESTS/unknown_flood.js" "$(BASE)" "$poll" 150 64 500 || fail "unknown ids held up a snapshot"
# the same unknown id again: no new query
q0=$(metric poll_fanout_snapshots_total)
for _ in 1 2 3 4 5; do
	[ "$(http_code "$(BASE)/polls/1999999999")" = 404 ] || fail "an unknown poll is not 404"
done
q1=$(metric poll_fanout_snapshots_total)
[ $((q1 - q0)) -le 1 ] || fail "five GETs of one unknown id made $((q1 - q0)) queries"
echo "ok: unknown ids are cheap ($((q1 - q0)) query for five GETs of one unknown id)"

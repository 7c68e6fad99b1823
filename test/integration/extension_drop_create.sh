#!/usr/bin/env bash
# Dropping and re-creating the extension while the worker runs: the worker
# logs the absence once (no error, no crash loop: a fold never runs half
# across a DROP EXTENSION) and folds again.
. "$(dirname "$0")/../lib/common.sh"

pid=$(q "SELECT pid FROM poll.worker_status")
[ -n "$pid" ] || fail "no worker"
before=$(cluster_log | wc -l)

q "DROP EXTENSION poll CASCADE" >/dev/null
sleep 4
since() { cluster_log | tail -n +"$((before + 1))"; }
n=$(since | grep -c 'extension "poll" is not installed in database' || true)
[ "$n" = 1 ] || fail "the missing extension was logged $n times, not once"
errors=$(since | grep -c 'ERROR' || true)
[ "$errors" = 0 ] || fail "$errors errors logged while the extension was absent:
$(since | grep ERROR)"

q "CREATE EXTENSION poll" >/dev/null
p=$(q "SELECT poll.create_poll('Again', ARRAY['a', 'b'])")
q "SELECT poll.cast_vote($p, 'v' || i, 1 + i % 2) FROM generate_series(1, 50) i" >/dev/null
wait_for 5 "SELECT pending = 0 FROM poll.worker_status" || fail "the worker did not fold after CREATE EXTENSION"
[ "$(q "SELECT pid FROM poll.worker_status")" = "$pid" ] || fail "the worker restarted (pid $pid -> $(q 'SELECT pid FROM poll.worker_status'))"
grep -q 'extension "poll" found' <<<"$(since)" || fail "the worker did not log that it found the extension"
check_invariants
echo "worker survived DROP/CREATE EXTENSION with one log line"

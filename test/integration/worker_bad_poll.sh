#!/usr/bin/env bash
# One poll whose changes cannot be folded does not stop the folding of the
# others: the worker logs it, keeps running, leaves that poll's changes
# pending (still counted by poll.results), and folds it once it can.
. "$(dirname "$0")/../lib/common.sh"

pid=$(q "SELECT pid FROM poll.worker_status")
bad=$(q "SELECT poll.create_poll('Bad', ARRAY['a', 'b'])")
good=$(q "SELECT poll.create_poll('Good', ARRAY['a', 'b'])")
before=$(cluster_log | wc -l)
errors0=$(q "SELECT errors FROM poll.worker_status")
# a constraint the fold of one segment violates stands in for a damaged poll
q "ALTER TABLE poll.tally_segment ADD CONSTRAINT test_no_boom CHECK (segment <> 'boom')"
trap 'q "ALTER TABLE poll.tally_segment DROP CONSTRAINT IF EXISTS test_no_boom" >/dev/null' EXIT

q "SELECT poll.cast_vote($bad, 'v' || i, 1, 'boom') FROM generate_series(1, 5) i" >/dev/null
q "SELECT poll.cast_vote($good, 'v' || i, 2) FROM generate_series(1, 7) i" >/dev/null
wait_for 5 "SELECT votes[2] = 7 FROM poll.tally WHERE poll_id = $good" ||
	fail "the good poll was not folded while the bad one failed"
[ "$(q "SELECT count(*) FROM poll.change WHERE poll_id = $bad")" = 5 ] || fail "the bad poll's changes were not kept pending"
[ "$(q "SELECT votes FROM poll.results WHERE poll_id = $bad AND option_id = 1")" = 5 ] ||
	fail "poll.results does not count the pending changes of the bad poll"

# later votes keep flowing
q "SELECT poll.cast_vote($good, 'late', 1)" >/dev/null
wait_for 5 "SELECT votes[1] = 1 FROM poll.tally WHERE poll_id = $good" || fail "folding stopped after the quarantine"
sleep 3
since() { cluster_log | tail -n +"$((before + 1))"; }
n=$(since | grep -c 'ERROR' || true)
[ "$n" -ge 1 ] && [ "$n" -le 6 ] || fail "$n errors logged in ~5 s: $(since | grep ERROR | head -3)"
grep -q "changes of poll $bad cannot be folded" <<<"$(since)" || fail "the quarantine was not logged"
[ "$(q "SELECT errors > $errors0 FROM poll.worker_status")" = t ] || fail "worker_status.errors did not count the failure"
[ "$(q "SELECT pid FROM poll.worker_status")" = "$pid" ] || fail "the worker restarted"

# once the cause is gone, the quarantined poll folds within the retry period
q "ALTER TABLE poll.tally_segment DROP CONSTRAINT test_no_boom" >/dev/null
wait_for 8 "SELECT votes[1] = 5 FROM poll.tally WHERE poll_id = $bad" || fail "the quarantined poll was not folded after the fix"
grep -q "poll $bad folds again" <<<"$(since)" || fail "leaving the quarantine was not logged"
check_invariants
echo "a failing poll was quarantined; the others kept folding; it folded after the fix"

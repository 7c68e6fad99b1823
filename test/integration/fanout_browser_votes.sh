#!/usr/bin/env bash
# fanout_browser_votes: headless Chromium votes on the demo page of a daemon
# started with --anonymous-votes (as make run does): a click moves the count
# and marks the reader's choice, a reload keeps the voter (the mark stays and
# a new click changes the same ballot), the keyboard alone retracts, and a
# refused change is explained (test/fanout/browser_votes.js). Screenshots
# are saved under $POLL_WORK/fanout_browser_votes/.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
[ -x /usr/bin/chromium ] || fail "chromium is not installed (apt-get install chromium)"

poll=$(new_poll 'Browser votes: best colour' Red Blue Green)
psql_q -c "SELECT poll.cast_vote($poll, 'early-' || i, 1 + i % 3) FROM generate_series(1, 7) i" >/dev/null
fixed=$(psql_q -c "SELECT poll.create_poll('Browser votes: no second thoughts', ARRAY['Yes', 'No'], allow_change => false)")
psql_q -c "SELECT poll.fold()" >/dev/null
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/voter-secret")
start_daemon --anonymous-votes --voter-secret-file "$WORK/voter-secret"
wait_healthy
timeout 120 node "$FANOUT_TESTS/browser_votes.js" "$(BASE)" "$poll" "$fixed" "$WORK" || fail "browser votes"
ls "$WORK"/vote-clicked.png >/dev/null || fail "no screenshot"
echo "ok: the demo page votes, marks the reader's choice and keeps it across a reload"

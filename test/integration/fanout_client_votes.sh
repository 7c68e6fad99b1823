#!/usr/bin/env bash
# fanout_client_votes: the shipped poll-client.js votes through a daemon with
# --anonymous-votes: one voter token kept in its storage; vote() and retract()
# settle on cast, unchanged, changed, retracted, none and on refusals
# (not_found, bad_vote, closed, rate_limited) with code and ref; votes whose
# answers were lost with the connection are resent after the reconnect, in
# order, answered once and counted once (test/fanout/client_votes.js).
. "$(dirname "$0")/../fanout/lib.sh"
need_node

single=$(new_poll 'Client votes: single' Red Blue Green)
multi=$(psql_q -c "SELECT poll.create_poll('Client votes: multi', ARRAY['a', 'b', 'c'], 'multi')")
closed=$(new_poll 'Client votes: closed' Yes No)
psql_q -c "SELECT poll.close_poll($closed)" >/dev/null
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/voter-secret")
start_daemon --anonymous-votes --voter-secret-file "$WORK/voter-secret" --vote-rate 20
wait_healthy
timeout 90 node "$FANOUT_TESTS/client_votes.js" "$(BASE)" "$single" "$multi" "$closed" || fail "client votes"
echo "ok: poll-client.js votes, retracts, is refused readably and resends after a reconnect"

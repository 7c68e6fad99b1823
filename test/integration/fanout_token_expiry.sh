#!/usr/bin/env bash
# fanout_token_expiry: when the token that granted a subscription expires, the
# client gets `error` `unauthorized` for the poll and nothing more for it (WS);
# an SSE stream gets the error event and is closed.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Expiring' Yes No)
secret="s3cret-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/secret"
start_daemon --jwt-secret-file "$WORK/secret"
wait_healthy
coproc EXPIRY { node "$FANOUT_TESTS/token_expiry.js" "$(BASE)" "$secret" "$poll" 2>&1; }
expiry_pid=$EXPIRY_PID
# bash unsets EXPIRY when the coprocess ends: our own copies of its pipes
exec {from_node}<&"${EXPIRY[0]}" {to_node}>&"${EXPIRY[1]}"
while read -r line <&"$from_node"; do
	echo "$line"
	if [ "$line" = VOTE ]; then
		psql_q -c "SELECT poll.cast_vote($poll, 'v-$RANDOM', 1)" >/dev/null
		echo voted >&"$to_node"
	fi
done
wait "$expiry_pid" || fail "token expiry"
echo "ok: subscriptions end with their token"

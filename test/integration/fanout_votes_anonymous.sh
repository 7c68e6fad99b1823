#!/usr/bin/env bash
# fanout_votes_anonymous: POST /voters hands out anonymous voter tokens that
# survive a daemon restart and that two daemons sharing --voter-secret-file
# agree on; forged ones are refused; a voter token grants votes, never
# reads; /voters is rate-limited per address; a vote on one daemon reaches
# a subscriber of another.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Anonymous' Cats Dogs)
printf 'voter-secret-%s\n' "$(date +%s%N)" >"$WORK/voters"
printf 'jwt-secret-%s\n' "$(date +%s%N)" >"$WORK/jwt"

# flags
"$FANOUT" --anonymous-votes >/dev/null 2>&1 && fail "--anonymous-votes without --voter-secret-file must not start"
"$FANOUT" --voter-secret-file "$WORK/voters" >/dev/null 2>&1 && fail "--voter-secret-file alone must not start"
"$FANOUT" --vote-rate -1 >/dev/null 2>&1 && fail "--vote-rate -1 must not start"

start_daemon --anonymous-votes --voter-secret-file "$WORK/voters"
a_port=$DAEMON_PORT a_pid=$DAEMON_PID
wait_healthy
wait_votes_ready
start_daemon --anonymous-votes --voter-secret-file "$WORK/voters"
b_port=$DAEMON_PORT
wait_healthy
wait_votes_ready
A="http://127.0.0.1:$a_port" B="http://127.0.0.1:$b_port"
client_start sub ws "$poll"	# on B, the last one started

body=$(curl -s -X POST "$A/voters")
tok=$(node -e 'const t = JSON.parse(process.argv[1]).token; if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(t)) process.exit(1); console.log(t)' "$body") ||
	fail "POST /voters: $body"
sub=$(node -e 'console.log(JSON.parse(Buffer.from(process.argv[1].split(".")[1], "base64url")).sub)' "$tok")
[[ "$sub" =~ ^anon:[0-9a-f]{32}$ ]] || fail "the voter token's sub: $sub"
tok2=$(curl -s -X POST "$A/voters" | node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => console.log(JSON.parse(s).token))')
sub2=$(node -e 'console.log(JSON.parse(Buffer.from(process.argv[1].split(".")[1], "base64url")).sub)' "$tok2")
[ "$sub" != "$sub2" ] || fail "two voter tokens with one identity"

vote() {	# vote BASE TOKEN METHOD [BODY] -> "status body"
	curl -s -w ' %{http_code}' -X "$3" -H "Authorization: Bearer $2" ${4:+-d "$4"} "$1/polls/$poll/vote"
}
got=$(vote "$A" "$tok" POST '{"option":1,"ref":"a1"}')
[ "$got" = "{\"type\":\"voted\",\"poll\":$poll,\"ref\":\"a1\",\"result\":\"cast\",\"options\":[1]} 200" ] || fail "vote on A: $got"
[ "$(psql_q -c "SELECT voter FROM poll.ballots WHERE poll_id = $poll")" = "$sub" ] || fail "the ballot's voter is not the token's sub"

# daemon B, same secret: the same voter
got=$(vote "$B" "$tok" GET)
[ "$got" = "{\"type\":\"ballot\",\"poll\":$poll,\"options\":[1]} 200" ] || fail "ballot on B: $got"
got=$(vote "$B" "$tok" POST '{"option":1}')
[[ "$got" == *'"result":"unchanged"'* ]] || fail "the same vote on B: $got"
# a vote on A reaches B's subscriber
got=$(vote "$A" "$tok2" POST '{"option":2}')
[[ "$got" == *'"result":"cast"'* ]] || fail "second voter on A: $got"
wait_client_matches sub "$poll" 15
echo "ok: two daemons agree on the voter, and a vote on one reaches a subscriber of the other"

# the token survives a restart of the daemon
DAEMON_PORT=$a_port DAEMON_PID=$a_pid
stop_daemon
kill -0 "$a_pid" 2>/dev/null && fail "daemon A did not stop"
DAEMON_PORT_WANTED=$a_port start_daemon --anonymous-votes --voter-secret-file "$WORK/voters"
wait_votes_ready
got=$(vote "$A" "$tok" POST '{"option":2}')
[[ "$got" == *'"result":"changed"'*' 200' ]] || fail "the token after a restart: $got"
[ "$(psql_q -c "SELECT option_id FROM poll.ballots WHERE poll_id = $poll AND voter = '$sub'")" = 2 ] ||
	fail "the changed ballot"
echo "ok: the voter token survives a daemon restart"

# forged tokens
forge() {	# forge KEY CLAIMS [ALG]
	node -e '
		const crypto = require("crypto");
		const b = x => Buffer.from(JSON.stringify(x)).toString("base64url");
		const h = b({ alg: process.argv[3] || "HS256", typ: "JWT" }) + "." + b(JSON.parse(process.argv[2]));
		console.log(h + "." + crypto.createHmac("sha256", process.argv[1]).update(h).digest("base64url"));' "$@"
}
exp=$(( $(date +%s) + 600 ))
for t in "$(forge not-the-secret "{\"sub\":\"$sub\",\"vote\":\"*\",\"exp\":$exp}")" \
	"$(forge "$(cat "$WORK/voters")" "{\"sub\":\"$sub\",\"vote\":\"*\",\"exp\":$exp}" none)" \
	"${tok%%.*}.$(node -e 'console.log(Buffer.from(JSON.stringify({sub:"anon:victim",vote:"*",exp:'"$exp"'})).toString("base64url"))').${tok##*.}" \
	"${tok%.*}.AAAA$(printf '%s' "${tok##*.}" | cut -c5-)" \
	"$(forge "$(cat "$WORK/voters")" "{\"sub\":\"$sub\",\"vote\":\"*\",\"exp\":$(( $(date +%s) - 5 ))}")"; do
	got=$(vote "$A" "$t" POST '{"option":1}')
	[[ "$got" == *'"code":"unauthorized"'*' 401' ]] || fail "a forged or expired token: $got"
done
[ "$(psql_q -c "SELECT option_id FROM poll.ballots WHERE poll_id = $poll AND voter = '$sub'")" = 2 ] ||
	fail "a forged token changed the ballot"
echo "ok: forged voter tokens are refused"

# with --jwt-secret-file too: a voter token votes but reads nothing
start_daemon --jwt-secret-file "$WORK/jwt" --anonymous-votes --voter-secret-file "$WORK/voters"
wait_votes_ready
node -e '
	const { open, assert, main } = require(process.argv[1] + "/wsprobe");
	const { wsVote } = require(process.argv[1] + "/votelib");
	main(async () => {
		const c = await open(process.argv[2].replace(/^http/, "ws") + "/ws?token=" + process.argv[3]);
		c.send({ type: "subscribe", poll: Number(process.argv[4]) });
		const m = await c.next();
		assert(m.type === "error" && m.code === "unauthorized", "a voter token must not read: " + JSON.stringify(m));
		const v = await wsVote(c, { type: "vote", poll: Number(process.argv[4]), option: 1, ref: "x" });
		assert(v.type === "voted" && v.result === "changed", "a voter token votes: " + JSON.stringify(v));
		c.close();
	});' "$FANOUT_TESTS" "$(BASE)" "$tok" "$poll" || fail "a voter token under --jwt-secret-file"
[ "$(http_code "$(BASE)/polls/$poll?token=$tok")" = 401 ] || fail "a voter token must not read a snapshot"
echo "ok: a voter token grants votes, never reads"

# POST /voters is rate-limited per address (burst 20)
ok=0 limited=
for i in $(seq 1 60); do
	head=$(curl -s -D - -o /dev/null -X POST "$B/voters")
	case "$head" in
	"HTTP/1.1 200"*) ok=$((ok + 1)) ;;
	"HTTP/1.1 429"*) limited=$head; break ;;
	*) fail "POST /voters: $head" ;;
	esac
done
[ -n "$limited" ] || fail "60 POST /voters in a row, none rate-limited"
[ "$ok" -ge 19 ] && [ "$ok" -le 40 ] || fail "$ok POST /voters before the first 429 (burst 20, 1 a second)"
echo "$limited" | grep -qi '^retry-after: [1-9]' || fail "429 without Retry-After: $limited"
[ "$(http_code "$B/voters")" = 400 ] || fail "GET /voters"
echo "ok: POST /voters is rate-limited per address"
client_clean sub

#!/usr/bin/env bash
# fanout_ws_sse_votes: WebSocket and SSE clients subscribed to two polls see,
# once votes from several SQL sessions stop, exactly poll.results; the HTTP
# snapshot agrees; no client ever sees a version twice or going backwards.
# Votes are folded faster than the throttle window (200 ms here): each
# client gets at most one message per poll per window, fewer messages than
# versions, and last the latest version.  The daemon runs on epoll and exits
# with status 0 on SIGTERM.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

p1=$(new_poll 'Best colour' Red Blue Green)
p2=$(new_poll 'Best "quoted" \ label' 'Ünïcode ✓' 'Two, "quoted" {x} \ y' 'NULL' 'Four')
THROTTLE=200 start_daemon
wait_healthy
grep -q "event loop: libev epoll" "$DAEMON_LOG" ||
	fail "the daemon does not run on libev's epoll backend: $(grep 'event loop' "$DAEMON_LOG" || echo 'not logged')"

client_start ws1 ws "$p1,$p2"
client_start ws2 ws "$p2"
client_start sse1 sse "$p1,$p2"
sleep 1

version() { psql_q -c "SELECT version FROM poll.tally WHERE poll_id = $1"; }
v1_0=$(version "$p1")
v2_0=$(version "$p2")
# four voting sessions at once, each folding and committing every ten
# ballots: a new version of each poll every few milliseconds
vote_and_fold() {	# VOTER_PREFIX POLL N OPTIONS
	psql_q -c "DO \$\$
	BEGIN
		FOR i IN 1..$3 LOOP
			PERFORM poll.cast_vote($2, '$1-' || i, 1 + (i * 7 + length('$1')) % $4);
			IF i % 10 = 0 THEN PERFORM poll.fold(); COMMIT; PERFORM pg_sleep(0.03); END IF;
		END LOOP;
	END \$\$" >/dev/null
}
t0=$(date +%s%N)
vote_and_fold a "$p1" 300 3 & v1=$!
vote_and_fold b "$p1" 200 3 & v2=$!
vote_and_fold c "$p2" 250 4 & v3=$!
vote_and_fold d "$p2" 150 4 & v4=$!
wait $v1 $v2 $v3 $v4 || fail "casting votes failed"
vote_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
psql_q -c "SELECT poll.fold()" >/dev/null

[ "$(psql_q -c "SELECT sum(votes) FROM poll.results WHERE poll_id = $p1")" = 500 ] ||
	fail "poll.results does not hold the 500 ballots cast"
wait_client_matches ws1 "$p1,$p2"
wait_client_matches ws2 "$p2"
wait_client_matches sse1 "$p1,$p2"
for c in ws1 ws2 sse1; do client_clean $c; done

# throttled and coalesced: per client and poll, at most one message per
# window, fewer messages than versions, the last one the latest version
v1_n=$(version "$p1")
v2_n=$(version "$p2")
for check in "ws1 $p1 $v1_0 $v1_n" "ws1 $p2 $v2_0 $v2_n" "ws2 $p2 $v2_0 $v2_n" \
		"sse1 $p1 $v1_0 $v1_n" "sse1 $p2 $v2_0 $v2_n"; do
	set -- $check
	node "$FANOUT_TESTS/throttle_check.js" 200 "$WORK/$1.log" "$2" "$3" "$4" "$vote_ms" ||
		fail "client $1, poll $2: not throttled and coalesced"
done

# the short-polling fallback says the same
body=$(curl -s "$(BASE)/polls/$p2")
node -e '
const m = JSON.parse(process.argv[1]);
const want = process.argv[2].trim().split("\n").map(l => l.split("|").map(Number));
if (m.type !== "snapshot" || m.title !== "Best \"quoted\" \\ label") throw new Error("bad snapshot " + process.argv[1]);
const labels = ["Ünïcode ✓", "Two, \"quoted\" {x} \\ y", "NULL", "Four"];
labels.forEach((l, i) => { if (m.options[i].label !== l) throw new Error("label not round-tripped: " + m.options[i].label); });
want.forEach(([p, o, v]) => { if (m.options[o - 1].votes !== v) throw new Error(`option ${o}: ${m.options[o - 1].votes} != ${v}`); });
' "$body" "$(expected_results "$p2")" || fail "GET /polls/$p2 does not match poll.results: $body"

# a reconnecting EventSource sends Last-Event-ID: nothing until the poll changes past it
v=$(psql_q -c "SELECT version FROM poll.tally WHERE poll_id = $p1")
timeout 1 curl -s -N -H "Last-Event-ID: $v" "$(BASE)/polls/$p1/events" >"$WORK/resume" || true
[ ! -s "$WORK/resume" ] || fail "SSE with Last-Event-ID $v resent: $(head -c 200 "$WORK/resume")"
timeout 1 curl -s -N -H "Last-Event-ID: $((v - 1))" "$(BASE)/polls/$p1/events" >"$WORK/resume" || true
grep -q "^id: $v\$" "$WORK/resume" || fail "SSE with Last-Event-ID $((v - 1)) did not get version $v"

# the metrics agree: messages sent, updates coalesced
sent=$(metric poll_fanout_messages_sent_total)
[ "${sent:-0}" -gt 0 ] || fail "metrics report no messages sent"
coalesced=$(metric poll_fanout_coalesced_updates_total)
[ "${coalesced:-0}" -gt 0 ] || fail "metrics report no coalesced updates"

# SIGTERM stops the loop: the copy ends cleanly and the exit status is 0
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
[ "$rc" = 0 ] || fail "poll-fanout exited with status $rc on SIGTERM"
grep -q "shutting down" "$DAEMON_LOG" || fail "the daemon did not log its shutdown"
echo "ok: 3 clients reached poll.results (messages sent: $sent, coalesced: $coalesced)"

#!/usr/bin/env bash
# haproxy_votes: votes through deploy/haproxy.cfg (unchanged) in front of three
# daemons sharing one --voter-secret-file, with --anonymous-votes, while the
# daemons are killed (kill -9, SIGTERM) and restarted.  Twelve anonymous
# voters (tokens taken from each daemon in turn, so that every daemon checks
# tokens another one signed) vote over WebSockets and HTTP through HAProxy
# (test/fanout/votes_lb.js): a vote sent once is answered cast or changed; a
# vote answered unavailable, or not answered, is sent again and ends cast,
# changed or unchanged (applied once); afterwards poll.ballots holds every
# voter's last acknowledged vote and poll.results counts poll.ballots.  The
# daemons trust the balancer's X-Forwarded-For (--trusted-proxy).
. "$(dirname "$0")/../fanout/lib.sh"
need_node
command -v haproxy >/dev/null || fail "haproxy is not installed (scripts/deps.sh lists it)"
. "$FANOUT_TESTS/haproxy_lib.sh"

poll=$(new_poll 'Balanced votes' A B C)
printf 'voter-secret-%s\n' "$(date +%s%N)" >"$WORK/voters"
flags=(--keepalive 1 --anonymous-votes --voter-secret-file "$WORK/voters" --vote-rate 1000 --trusted-proxy 127.0.0.1)
for n in 1 2 3; do
	fanout "$n" "${flags[@]}"
	wait_votes_ready
done
lb=127.0.0.1:$(free_port)
stats=127.0.0.1:$(free_port)
haproxy_start lb "$lb" "$stats" "127.0.0.1:${PORT[1]}" "127.0.0.1:${PORT[2]}" "127.0.0.1:${PORT[3]}"
wait_lb_up "$stats" "fanout1 fanout2 fanout3"

SECONDS_OF_VOTES=18
node "$FANOUT_TESTS/votes_lb.js" "http://$lb" "$poll" $SECONDS_OF_VOTES "$WORK/votes.json" \
	"http://127.0.0.1:${PORT[1]}" "http://127.0.0.1:${PORT[2]}" "http://127.0.0.1:${PORT[3]}" &
voting=$!
PIDS+=($voting)

acknowledged() {	# the votes acknowledged by daemon N so far
	curl -s "http://127.0.0.1:${PORT[$1]}/metrics" | awk '$1 == "poll_fanout_votes_acknowledged_total" { print $2 }'
}
sleep 3
for n in 1 2 3; do
	[ "$(acknowledged $n)" -ge 1 ] || fail "daemon $n acknowledged no vote: HAProxy did not spread the voters"
done
kill -9 "${PID[1]}"
wait "${PID[1]}" 2>/dev/null || true
echo "killed daemon 1 (pid ${PID[1]}) with kill -9"
wait_lb_up "$stats" "fanout2 fanout3"
sleep 1
fanout 1 "${flags[@]}"
wait_lb_up "$stats" "fanout1 fanout2 fanout3"
kill "${PID[2]}"
wait "${PID[2]}" 2>/dev/null || true
echo "stopped daemon 2 (pid ${PID[2]}) with SIGTERM"
sleep 1
fanout 2 "${flags[@]}"
kill -9 "${PID[3]}"
wait "${PID[3]}" 2>/dev/null || true
echo "killed daemon 3 (pid ${PID[3]}) with kill -9"
sleep 1
fanout 3 "${flags[@]}"
kill -0 $voting 2>/dev/null || fail "test bug: the votes ended before the daemons were back"
wait_lb_up "$stats" "fanout1 fanout2 fanout3"
wait $voting || fail "a voter failed (above)"

# poll.ballots holds every voter's last acknowledged vote, nothing else
node -e '
	const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
	if (r.votes < 100) { console.error("only " + r.votes + " votes acknowledged"); process.exit(1); }
	if (r.resent < 1) { console.error("no vote was sent again: the daemons were not killed under load"); process.exit(1); }
	for (const [sub, option] of Object.entries(r.voters)) console.log(sub + "|" + option);' "$WORK/votes.json" |
	sort >"$WORK/expected" || fail "too few votes or none resent: $(cat "$WORK/votes.json")"
psql_q -c "SELECT voter || '|' || option_id FROM poll.ballots WHERE poll_id = $poll ORDER BY 1" | sort >"$WORK/ballots"
[ "$(wc -l <"$WORK/expected")" = 12 ] || fail "not every voter voted: $(cat "$WORK/expected")"
diff "$WORK/expected" "$WORK/ballots" >&2 || fail "poll.ballots differs from the acknowledged votes (< acknowledged, > poll.ballots)"
psql_q -c "SELECT poll.fold()" >/dev/null
got=$(psql_q -c "SELECT count(*) FROM poll.results r FULL JOIN
	(SELECT option_id, count(*) AS n FROM poll.ballots WHERE poll_id = $poll GROUP BY 1) b USING (option_id)
	WHERE coalesce(r.poll_id, $poll) = $poll AND coalesce(r.votes, 0) IS DISTINCT FROM coalesce(b.n, 0)")
[ "$got" = 0 ] || fail "poll.results does not count poll.ballots"
echo "ok: $(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1])); delete r.voters; console.log(JSON.stringify(r))' "$WORK/votes.json")"
echo "ok: votes through HAProxy while daemons die: every acknowledged vote is in poll.ballots, resent votes applied once"

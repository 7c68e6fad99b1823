#!/usr/bin/env bash
# fanout_request_fuzz: hostile HTTP and WebSocket traffic from many
# connections at once (test/fanout/fuzz_requests.js: bodies on GET,
# pipelining, odd methods, broken handshakes, unmasked, fragmented and
# oversize frames, bad close frames, garbage and hostile signed tokens,
# slowloris pieces, abrupt disconnects), while votes keep the polls
# changing.  The daemon must not die, must keep answering /healthz and
# /metrics between rounds, must still serve a legitimate client at the end,
# and must exit 0 on SIGTERM; under the sanitizers (make test's second
# pass) any report fails the test.  First without tokens, then with
# --jwt-secret-file.  FUZZ_SECONDS (default 45) is the whole run's length;
# FUZZ_SEED replays a seed; FUZZ_CONCURRENCY connections at a time (16);
# FUZZ_PHASES="open jwt" (the default) or either alone; FUZZ_KINDS=http,ws,garbage
# (the default) or some of them.  Both phases take votes (--anonymous-votes):
# hostile vote messages and requests, with validly signed voter tokens, and
# at the end some of them must have been acknowledged.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

seconds=${FUZZ_SECONDS:-45}
open_s=$(( seconds * 3 / 5 ))
jwt_s=$(( seconds - open_s ))
p1=$(new_poll 'Fuzz me' A B C)
p2=$(new_poll 'Fuzz me too' X Y)
p3=$(psql_q -c "SELECT poll.create_poll('Fuzz me, multi', ARRAY['M','N','O','P'], kind => 'multi')")
polls="$p1,$p2,$p3"

# every poll changes a few times a second for the whole run (and at most 30 s
# longer, should the test end early: killing psql does not stop the backend)
PGAPPNAME=fanout_request_fuzz_votes psql_q -c "DO \$\$
DECLARE n int := 0; deadline timestamptz := clock_timestamp() + interval '$((seconds + 30)) seconds';
BEGIN
	WHILE clock_timestamp() < deadline LOOP
		n := n + 1;
		PERFORM poll.cast_vote(p, 'fuzz-' || n || '-' || p, 1 + n % 2) FROM unnest(ARRAY[$polls]) p;
		PERFORM poll.fold();
		COMMIT;
		PERFORM pg_sleep(0.1);
	END LOOP;
END \$\$" >/dev/null 2>&1 &
PIDS+=($!)

fuzz() {	# phase-name seconds [daemon flags]
	local name=$1 secs=$2 rc=0
	shift 2
	start_daemon "$@"
	wait_healthy
	echo "--- $name: $secs s against pid $DAEMON_PID ($(basename "$FANOUT"))"
	node "$FANOUT_TESTS/fuzz_requests.js" --port "$DAEMON_PORT" --pid "$DAEMON_PID" --polls "$polls" \
		--seconds "$secs" --concurrency "${FUZZ_CONCURRENCY:-16}" --record "$WORK/$name-plans.jsonl" \
		${FUZZ_SEED:+--seed "$FUZZ_SEED"} ${FUZZ_KINDS:+--kinds "$FUZZ_KINDS"} ${SECRET_ARG:+--jwt-secret "$SECRET_ARG"} \
		--voter-secret "$WORK/voter-secret" || rc=$?
	if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		wait "$DAEMON_PID" 2>/dev/null || rc=$?
		fail "$name: poll-fanout died (exit status $rc; replay the recorded plans: $WORK/$name-plans.jsonl)"
	fi
	if [ "$rc" != 0 ]; then
		# alive but not answering: where it is stuck, then SIGKILL (it would not heed SIGTERM)
		if command -v gdb >/dev/null; then
			timeout 30 gdb -batch -ex 'bt 30' -p "$DAEMON_PID" 2>&1 | grep -E '^#' >"$WORK/$name-stuck.bt" || true
			echo "the daemon's stack:" >&2
			cat "$WORK/$name-stuck.bt" >&2
		fi
		kill -KILL "$DAEMON_PID" 2>/dev/null || true
		fail "$name: the fuzzer failed (plans: $WORK/$name-plans.jsonl)"
	fi
	# hostile votes did not keep good ones out
	[ "$(metric poll_fanout_votes_acknowledged_total)" -gt 0 ] || fail "$name: no vote acknowledged"
	# SIGTERM still stops it cleanly
	kill -TERM "$DAEMON_PID"
	rc=0
	wait "$DAEMON_PID" || rc=$?
	[ "$rc" = 0 ] || fail "$name: poll-fanout exited with status $rc on SIGTERM after the fuzz"
}

phases=${FUZZ_PHASES:-open jwt}
[ "$phases" = open ] && open_s=$seconds
[ "$phases" = jwt ] && jwt_s=$seconds
head -c 32 /dev/urandom | base64 >"$WORK/voter-secret"
votes=(--anonymous-votes --voter-secret-file "$WORK/voter-secret" --vote-rate 50)
[[ " $phases " != *" open "* ]] || fuzz open "$open_s" "${votes[@]}"
head -c 32 /dev/urandom | base64 >"$WORK/secret"
[[ " $phases " != *" jwt "* ]] || SECRET_ARG="$WORK/secret" fuzz jwt "$jwt_s" --jwt-secret-file "$WORK/secret" "${votes[@]}"
psql_q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
           WHERE application_name = 'fanout_request_fuzz_votes'" >/dev/null
echo "ok: poll-fanout survived ${seconds} s of hostile requests"

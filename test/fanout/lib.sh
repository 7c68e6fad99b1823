# lib.sh — shared set-up for test/integration/fanout_*.sh: the daemon on a
# free loopback port, the node test clients, psql helpers, and a cleanup
# that kills only what the test started and leaves Postgres running.
set -euo pipefail

: "${POLL_ROOT:?POLL_ROOT must point at the repository}"
: "${POLL_WORK:=$(mktemp -d)}"
FANOUT="${FANOUT_BIN:-$POLL_ROOT/fanout/poll-fanout}"
FANOUT_TESTS="$POLL_ROOT/test/fanout"
TEST_NAME=$(basename "$0" .sh)
WORK="$POLL_WORK/$TEST_NAME"
rm -rf "$WORK"
mkdir -p "$WORK"
PIDS=()
DAEMON_PID=
DAEMON_PORT=
DAEMON_LOG=

fail() {
	echo "FAIL $TEST_NAME: $*" >&2
	if [ -n "$DAEMON_LOG" ] && [ -f "$DAEMON_LOG" ]; then
		echo "--- last lines of the daemon log ($DAEMON_LOG):" >&2
		tail -n 20 "$DAEMON_LOG" >&2
	fi
	exit 1
}

cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	# a process that ignores SIGTERM (a daemon spinning in a bug) gets
	# SIGKILL after 5 s, so that no test leaves one behind
	local deadline=$((SECONDS + 5))
	for p in "${PIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then
			echo "FAIL $TEST_NAME: pid $p ignored SIGTERM for 5 s; killed" >&2
			kill -9 "$p" 2>/dev/null || true
			rc=1
		fi
		wait "$p" 2>/dev/null || true
	done
	# under the sanitizers (test/run.sh's second pass) a report in any daemon
	# log fails the test, even one that passed otherwise
	if [ -n "${SANITIZED:-}" ] && grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$WORK"/*.log >/dev/null 2>&1; then
		echo "FAIL $TEST_NAME: sanitizer report:" >&2
		grep -h -A 12 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$WORK"/*.log | head -60 >&2
		rc=1
	fi
	# whatever happened, Postgres is left running for the next test
	if [ -n "${POLL_CLUSTER_DIR:-}" ] && ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
		"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT" || true
	fi
	exit $rc
}
trap cleanup EXIT

[ -x "$FANOUT" ] || make -s -C "$POLL_ROOT/fanout" >/dev/null || fail "cannot build poll-fanout"

need_node() {
	command -v node >/dev/null || fail "node is not installed"
	if [ ! -d "$FANOUT_TESTS/node_modules/ws" ]; then
		(cd "$FANOUT_TESTS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
			fail "npm ci in test/fanout failed"
	fi
}

free_port() {
	node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

psql_q() {
	psql -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# start_daemon [flags...]: on a free port, waits until it listens.
# FANOUT_CMD may prefix the command (valgrind, ...).
start_daemon() {
	DAEMON_PORT=${DAEMON_PORT_WANTED:-$(free_port)}
	DAEMON_LOG="$WORK/daemon.$DAEMON_PORT.log"
	${FANOUT_CMD:-} "$FANOUT" --listen "127.0.0.1:$DAEMON_PORT" --throttle "${THROTTLE:-50}" "$@" \
		>>"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	PIDS+=("$DAEMON_PID")
	for _ in $(seq 1 200); do
		if curl -s -o /dev/null "http://127.0.0.1:$DAEMON_PORT/metrics"; then
			return 0
		fi
		kill -0 "$DAEMON_PID" 2>/dev/null || fail "poll-fanout exited at start"
		sleep 0.05
	done
	fail "poll-fanout did not start listening on $DAEMON_PORT"
}

stop_daemon() {
	kill "$DAEMON_PID" 2>/dev/null || true
	wait "$DAEMON_PID" 2>/dev/null || true
}

BASE() { echo "http://127.0.0.1:$DAEMON_PORT"; }

http_code() {
	curl -s -o /dev/null -w '%{http_code}' "$@"
}

# wait_healthy [seconds]
wait_healthy() {
	local n=$(( ${1:-15} * 10 ))
	for _ in $(seq 1 $n); do
		[ "$(http_code "$(BASE)/healthz")" = 200 ] && return 0
		sleep 0.1
	done
	fail "/healthz did not become 200 within ${1:-15} s"
}

# wait_votes_ready [seconds]: both vote connections of the daemon are up
wait_votes_ready() {
	local n=$(( ${1:-15} * 10 ))
	for _ in $(seq 1 $n); do
		[ "$(metric poll_fanout_vote_connections)" = 2 ] && return 0
		sleep 0.1
	done
	fail "the vote connections did not come up within ${1:-15} s"
}

metric() {
	curl -s "$(BASE)/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

new_poll() {
	# new_poll TITLE LABEL... -> id
	local title=$1
	shift
	local arr
	arr=$(printf "'%s'," "$@")
	psql_q -c "SELECT poll.create_poll('$title', ARRAY[${arr%,}])"
}

# the truth a client must reach: "poll|option|votes" lines, sorted
expected_results() {
	psql_q -c "SELECT poll_id || '|' || option_id || '|' || votes FROM poll.results
	           WHERE poll_id IN ($1) ORDER BY poll_id, option_id"
}

# start a recording client: client_start NAME ws|sse POLLS [extra args]
client_start() {
	local name=$1 kind=$2 polls=$3
	shift 3
	node "$FANOUT_TESTS/client.js" --kind "$kind" --base "$(BASE)" --polls "$polls" \
		--out "$WORK/$name.state" --log "$WORK/$name.log" "$@" 2>>"$WORK/$name.err" &
	PIDS+=($!)
	eval "CLIENT_PID_$name=$!"
}

# wait_client_matches NAME POLLS [seconds]: the client's state equals poll.results
wait_client_matches() {
	local name=$1 polls=$2 secs=${3:-15}
	expected_results "$polls" >"$WORK/expected"
	for _ in $(seq 1 $(( secs * 10 ))); do
		if [ -f "$WORK/$name.state" ] && cmp -s "$WORK/expected" "$WORK/$name.state"; then
			return 0
		fi
		sleep 0.1
	done
	echo "expected (poll.results):" >&2
	cat "$WORK/expected" >&2
	echo "client $name has:" >&2
	cat "$WORK/$name.state" >&2 2>/dev/null || echo "(no state)" >&2
	fail "client $name did not reach poll.results within $secs s"
}

# the client saw no version going backwards, no duplicate, no delta before a snapshot
client_clean() {
	local name=$1
	if [ -s "$WORK/$name.err" ]; then
		cat "$WORK/$name.err" >&2
		fail "client $name reported protocol violations"
	fi
}

# cast_votes_session VOTER_PREFIX POLL N OPTIONS [PAUSE]: N ballots from one
# session, committed ten at a time, PAUSE seconds between commits
cast_votes_session() {
	local prefix=$1 poll=$2 n=$3 nopt=$4 pause=${5:-0}
	psql_q -c "DO \$\$
	BEGIN
		FOR i IN 1..$n LOOP
			PERFORM poll.cast_vote($poll, '$prefix-' || i, 1 + (i * 7 + length('$prefix')) % $nopt);
			IF i % 10 = 0 THEN COMMIT; PERFORM pg_sleep($pause); END IF;
		END LOOP;
	END \$\$" >/dev/null
}

# webhooks_lib.sh — for test/integration/fanout_webhooks_*.sh, after lib.sh:
# a real HTTP receiver (webhook_receiver.py, on loopback), the deliveries it
# recorded, and webhooks removed when the test ends.
HOOKS=()

webhook_add() {	# webhook_add URL SECRET [EVENTS] [POLL_IDS]: its id in HOOK
	local id events=${3:-}
	[ -n "$events" ] || events='{opened,closed}'
	id=$(psql_q -c "SELECT poll.add_webhook('$1', '$2', '$events', ${4:-NULL})") ||
		fail "add_webhook failed"
	HOOKS+=("$id")
	HOOK=$id
}

webhooks_cleanup() {
	local rc=$?
	for h in "${HOOKS[@]}"; do psql_q -c "SELECT poll.remove_webhook($h)" >/dev/null 2>&1 || true; done
	set +e
	(exit $rc)
	cleanup		# reads the test's status from $?, exits with it
}
trap webhooks_cleanup EXIT

# receiver_start NAME PORT [args]: records into $WORK/NAME.jsonl
receiver_start() {
	local name=$1 port=$2
	shift 2
	python3 "$FANOUT_TESTS/webhook_receiver.py" --port "$port" --out "$WORK/$name.jsonl" "$@" \
		>>"$WORK/$name.receiver.log" 2>&1 &
	PIDS+=($!)
	eval "RECEIVER_PID_$name=$!"
	touch "$WORK/$name.jsonl"
	for _ in $(seq 1 50); do
		grep -q listening "$WORK/$name.receiver.log" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "the receiver $name did not start on port $port"
}

receiver_stop() {
	local pid
	pid=$(eval echo "\$RECEIVER_PID_$1")
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# arrivals NAME [python condition on r, b (the body as JSON)]: how many requests
arrivals() {
	python3 - "$WORK/$1.jsonl" "${2:-True}" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    try:
        b = json.loads(r["body"])
    except ValueError:
        b = {}
    if eval(sys.argv[2]):
        n += 1
print(n)
PY
}

# wait_arrivals NAME N CONDITION [seconds]: until at least N requests match
wait_arrivals() {
	local secs=${4:-10}
	for _ in $(seq 1 $((secs * 10))); do
		[ "$(arrivals "$1" "$3")" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "receiver $1: fewer than $2 requests with $3 within $secs s (got $(arrivals "$1" "$3"))"
}

# daemon_leader: poll_fanout_webhook_leader of the daemon on DAEMON_PORT
daemon_leader() {
	curl -s "$(BASE)/metrics" | awk '$1 == "poll_fanout_webhook_leader" { print $2 }'
}

# wait_webhook HOOK COLUMNS WANT [seconds]: until poll.webhooks' COLUMNS (joined by |) read WANT
wait_webhook() {
	local sql="SELECT concat_ws('|', $2) FROM poll.webhooks WHERE webhook_id = $1"
	for _ in $(seq 1 $((${4:-5} * 10))); do
		[ "$(psql_q -c "$sql")" = "$3" ] && return 0
		sleep 0.1
	done
	fail "webhook $1: $2 is \"$(psql_q -c "$sql")\", not \"$3\", after ${4:-5} s"
}

#!/usr/bin/env bash
# fanout_webhooks_two_daemons: two daemons with --webhooks on one database:
# exactly one delivers (the advisory lock), each event arrives once, and
# after kill -9 of the one delivering the other takes over within seconds
# and delivers what came meanwhile, once.  The second runs as poll_fanout
# (deploy/poll_fanout_role.sql with its --webhooks grants), not a superuser.
. "$(dirname "$0")/../fanout/lib.sh"
. "$(dirname "$0")/../fanout/webhooks_lib.sh"

rport=$(free_port)
receiver_start r "$rport" --secret k
webhook_add "http://127.0.0.1:$rport/" k '{opened,closed}'
start_daemon --webhooks
wait_healthy
pid_a=$DAEMON_PID port_a=$DAEMON_PORT
for _ in $(seq 1 50); do [ "$(daemon_leader)" = 1 ] && break; sleep 0.1; done
[ "$(daemon_leader)" = 1 ] || fail "daemon A does not deliver"
# B runs with least privilege: deploy/poll_fanout_role.sql and its --webhooks grants
psql_q -f "$POLL_ROOT/deploy/poll_fanout_role.sql" >/dev/null || fail "deploy/poll_fanout_role.sql failed"
sed -n '/started with --webhooks/,$p' "$POLL_ROOT/deploy/poll_fanout_role.sql" | grep '^--   ' | sed 's/^-- *//' >"$WORK/grants.sql"
grep -q 'TO poll_fanout;' "$WORK/grants.sql" || fail "the --webhooks grants are not in deploy/poll_fanout_role.sql"
psql_q -f "$WORK/grants.sql" >/dev/null || fail "the --webhooks grants failed: $(cat "$WORK/grants.sql")"
start_daemon --webhooks --db "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=poll_fanout"
wait_healthy
pid_b=$DAEMON_PID port_b=$DAEMON_PORT
sleep 1.5
leaders() { for p in "$port_a" "$port_b"; do DAEMON_PORT=$p daemon_leader; done | paste -sd' '; }
[ "$(leaders)" = "1 0" ] || fail "leaders (A B): $(leaders), expected 1 0"

polls=()
for i in 1 2 3; do polls+=("$(new_poll "two daemons $i" a b)"); done
for p in "${polls[@]}"; do psql_q -c "SELECT poll.close_poll($p)" >/dev/null; done
wait_arrivals r 6 True 10
sleep 1
[ "$(arrivals r)" = 6 ] || fail "$(arrivals r) requests for 3 opened and 3 closed events"

kill -9 "$pid_a"
wait "$pid_a" 2>/dev/null || true
t0=$(date +%s.%N)
# events while nobody delivers: the new leader finds them in the database
late=$(new_poll "while A is gone" a b)
for _ in $(seq 1 100); do [ "$(DAEMON_PORT=$port_b daemon_leader)" = 1 ] && break; sleep 0.1; done
[ "$(DAEMON_PORT=$port_b daemon_leader)" = 1 ] || fail "daemon B did not take over within 10 s"
took=$(python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 2))" "$(date +%s.%N)" "$t0")
psql_q -c "SELECT poll.close_poll($late)" >/dev/null
wait_arrivals r 8 True 10
sleep 1.5
python3 - "$WORK/r.jsonl" <<'PY' || fail "an event was delivered twice or not at all"
import json, sys, collections
recs = [json.loads(l) for l in open(sys.argv[1])]
c = collections.Counter(r["delivery"] for r in recs)
print("%d requests, %d distinct Poll-Delivery" % (len(recs), len(c)))
sys.exit(0 if len(recs) == 8 and len(c) == 8 and all(r["sig_ok"] for r in recs) else 1)
PY
echo "ok: one daemon delivered, each event once; B took over ${took} s after kill -9 of A"

#!/usr/bin/env bash
# poll.database names a database that does not exist: the worker says so a
# bounded number of times (one FATAL at its first connect, one "waiting"
# line), not once every restart interval; when the database appears, a
# worker connects to it within seconds and folds its votes.
. "$(dirname "$0")/../lib/common.sh"

db=poll_missing_$$
restart() { "$POLL_ROOT/scripts/cluster.sh" stop "$POLL_CLUSTER_DIR" && "$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT" >/dev/null; }
restore() {
	q "ALTER SYSTEM RESET poll.database" >/dev/null 2>&1 || true
	restart >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap restore EXIT

q "ALTER SYSTEM SET poll.database = '$db'" >/dev/null
before=$(cluster_log | wc -l)
restart
since() { cluster_log | tail -n +"$((before + 1))"; }

# three restart intervals (5 s each) without the database
sleep 16
fatal=$(since | grep "database \"$db\" does not exist" | grep -vc "waiting for it" || true)
waiting=$(since | grep -c "database \"$db\" (poll.database) does not exist; waiting for it" || true)
[ "$fatal" -le 1 ] || fail "the missing database was reported $fatal times in 16 s:
$(since | grep "does not exist")"
[ "$waiting" = 1 ] || fail "the worker logged its wait $waiting times, not once"
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'poll fold worker' AND datname IS NULL")" = 1 ] ||
	fail "no worker waiting without a database: $(q "SELECT backend_type, datname, state FROM pg_stat_activity")"
echo "ok: missing database reported $fatal + $waiting times in 16 s"

# the database appears: a worker connects to it and folds
q "CREATE DATABASE $db" >/dev/null
PGDATABASE=$db q "CREATE EXTENSION poll" >/dev/null
p=$(PGDATABASE=$db q "SELECT poll.create_poll('Late database', ARRAY['a', 'b'])")
PGDATABASE=$db q "SELECT poll.cast_vote($p, 'v' || i, 1 + i % 2) FROM generate_series(1, 20) i" >/dev/null
PGDATABASE=$db wait_for 15 "SELECT ballots = 20 FROM poll.tally WHERE poll_id = $p" ||
	fail "votes in the new database were not folded within 15 s: $(PGDATABASE=$db q 'SELECT * FROM poll.worker_status')"
ws=$(PGDATABASE=$db q "SELECT database FROM poll.worker_status")
[ "$ws" = "$db" ] || fail "worker_status names \"$ws\", not $db"
since | grep -q "database \"$db\" exists now" || fail "the worker did not log that the database appeared"
echo "ok: the worker connected to $db after it was created and folded its votes"

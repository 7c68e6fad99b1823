#!/usr/bin/env bash
# poll.database names a database that does not exist when the server starts:
# the launcher says so once and starts no worker (so no FATAL at connect).
# When the database is created and gets the extension, a vote is folded
# within a second of CREATE EXTENSION; the same when an existing database
# gets the extension again; and the log holds no FATAL and no ERROR.
. "$(dirname "$0")/../lib/common.sh"

db=poll_late_$$
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
# the log of this server only (the old one's shutdown is before its "ready" line)
since() { cluster_log | tail -n +"$((before + 1))" | sed -n '/database system is ready to accept connections/,$p'; }

# the wait is logged (within 15 s, however loaded the machine), and only
# once: three more of the launcher's one-second looks add no line
waits() { since | grep -c "database \"$db\" (poll.database) does not exist; waiting for it" || true; }
deadline=$((SECONDS + 15))
while [ "$(waits)" = 0 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
sleep 3
waiting=$(waits)
[ "$waiting" = 1 ] || fail "the launcher logged its wait $waiting times, not once"
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'poll launcher' AND datname IS NULL")" = 1 ] ||
	fail "no launcher connected to no database: $(q "SELECT backend_type, datname, state FROM pg_stat_activity")"
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'poll fold worker'")" = 0 ] ||
	fail "a fold worker runs while its database is missing"
[ "$(q "SELECT count(*) FROM poll.worker_status")" = 0 ] || fail "worker_status has a row while no worker runs"
echo "ok: the missing database was logged once; no worker started"

# served_ms LABEL: CREATE EXTENSION in $db, a new poll, one vote; prints
# the milliseconds from CREATE EXTENSION's commit to the vote in the tally
served_ms() {
	local p t0 t1
	PGDATABASE=$db q "CREATE EXTENSION poll" >/dev/null
	t0=$(date +%s%N)
	p=$(PGDATABASE=$db q "SELECT poll.create_poll('$1', ARRAY['a', 'b'])")
	PGDATABASE=$db q "SELECT poll.cast_vote($p, 'v', 2)" >/dev/null
	PGDATABASE=$db wait_for 15 "SELECT ballots = 1 FROM poll.tally WHERE poll_id = $p" ||
		fail "$1: the vote was not folded within 15 s: $(PGDATABASE=$db q 'SELECT * FROM poll.worker_status')"
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

# the database appears, and gets the extension at once
q "CREATE DATABASE $db" >/dev/null
ms=$(served_ms "Created database")
[ "$(PGDATABASE=$db q "SELECT to_regprocedure('poll._worker_wake()') IS NOT NULL")" = t ] ||
	fail "the install script lacks poll._worker_wake(), which it calls last so that a new database is served at once ($ms ms here)"
echo "created database: CREATE EXTENSION to the first vote folded: $ms ms"
[ "$ms" -lt 1000 ] || fail "a created database was served $ms ms after CREATE EXTENSION, not within a second"
[ "$(PGDATABASE=$db q "SELECT database FROM poll.worker_status")" = "$db" ] ||
	fail "worker_status: $(PGDATABASE=$db q 'SELECT * FROM poll.worker_status')"
[ "$(PGDATABASE=$db q "SELECT pid FROM poll.worker_status")" = \
	"$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'poll fold worker' AND datname = '$db'")" ] ||
	fail "worker_status.pid is not the fold worker's"
since | grep -q "database \"$db\" exists now" || fail "the launcher did not log that the database appeared"

# the served database gets the extension again, the worker waiting for it
PGDATABASE=$db q "DROP EXTENSION poll CASCADE" >/dev/null
sleep 1.5
ms=$(served_ms "Extension again")
echo "extension created again: CREATE EXTENSION to the first vote folded: $ms ms"
[ "$ms" -lt 1000 ] || fail "the extension was served $ms ms after CREATE EXTENSION, not within a second"

bad=$(since | grep -E 'FATAL|ERROR|PANIC' || true)
[ -z "$bad" ] || fail "the log holds:
$bad"
echo "ok: $db served within a second of CREATE EXTENSION, with no FATAL or ERROR"

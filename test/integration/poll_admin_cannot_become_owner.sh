#!/usr/bin/env bash
# No grant lets a role run code as the extension's owner or the worker (SPEC
# "Roles"): a login granted poll_admin cannot create a trigger on poll.ballot,
# poll.tally or poll.change (it would run as the owner inside the vote path or
# the worker), truncate, reference, alter, index or write poll's tables, or
# set their sequences; it still reads every table and view (poll.ballots too)
# and runs every function of the interface.  poll_reader reads the views but
# poll.ballots, and no table; PUBLIC gets nothing.  Every attempt runs in a
# transaction that is rolled back, so that nothing stays even where it works.
. "$(dirname "$0")/../sql_clients/lib.sh"

cleanup() {
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS t_priv CASCADE;
	   DROP ROLE IF EXISTS t_priv_admin; DROP ROLE IF EXISTS t_priv_reader; DROP ROLE IF EXISTS t_priv_nobody"
}
trap cleanup EXIT
cleanup
q "CREATE ROLE t_priv_admin LOGIN IN ROLE poll_admin; CREATE ROLE t_priv_reader LOGIN IN ROLE poll_reader;
   CREATE ROLE t_priv_nobody LOGIN; CREATE SCHEMA t_priv AUTHORIZATION t_priv_admin"
p=$(q "SELECT poll.create_poll('Privileges', ARRAY['a', 'b'])")
q "SELECT poll.cast_vote($p, 'ann', 1, 'eu')" >/dev/null

as() {	# ROLE STATE WHAT SQL: as a login of ROLE, SQL ends in STATE ("ok" or an SQLSTATE)
	local got
	got=$(PGUSER=$1 sqlstate "$4")
	[ "$got" = "$2" ] || fail "$1: $3: expected $2, got ${got:-no SQLSTATE}"
}

# ---- poll_admin: nothing of the owner's ----
trap_fn="CREATE FUNCTION t_priv.trap() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'"
for t in ballot tally change; do
	as t_priv_admin 42501 "a trigger on poll.$t" "$trap_fn; CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON poll.$t FOR EACH ROW EXECUTE FUNCTION t_priv.trap()"
	as t_priv_admin 42501 "a statement trigger on poll.$t" "$trap_fn; CREATE TRIGGER trap AFTER TRUNCATE ON poll.$t EXECUTE FUNCTION t_priv.trap()"
done
as t_priv_admin 42501 "TRUNCATE poll.change" "TRUNCATE poll.change"
as t_priv_admin 42501 "TRUNCATE poll.ballot" "TRUNCATE poll.ballot"
as t_priv_admin 42501 "a foreign key to poll.poll" "CREATE TABLE t_priv.r (p bigint REFERENCES poll.poll)"
as t_priv_admin 42501 "a foreign key to poll.ballot" "CREATE TABLE t_priv.r (p bigint, v text, FOREIGN KEY (p, v) REFERENCES poll.ballot)"
as t_priv_admin 42501 "ALTER TABLE poll.ballot" "ALTER TABLE poll.ballot ADD COLUMN x int"
as t_priv_admin 42501 "ALTER TABLE poll.tally OWNER" "ALTER TABLE poll.tally OWNER TO t_priv_admin"
as t_priv_admin 42501 "row level security on poll.ballot" "ALTER TABLE poll.ballot ENABLE ROW LEVEL SECURITY"
as t_priv_admin 42501 "an index on poll.ballot" "CREATE INDEX ON poll.ballot (cast_at)"
as t_priv_admin 42501 "INSERT INTO poll.ballot" "INSERT INTO poll.ballot VALUES ($p, 'eve', '{2}', NULL, now())"
as t_priv_admin 42501 "INSERT INTO poll.change" "INSERT INTO poll.change VALUES ($p, 2, NULL, 1000, 1000, now())"
as t_priv_admin 42501 "UPDATE poll.tally" "UPDATE poll.tally SET version = version + 1"
as t_priv_admin 42501 "UPDATE poll.poll" "UPDATE poll.poll SET closed_at = NULL"
as t_priv_admin 42501 "DELETE FROM poll.change" "DELETE FROM poll.change"
as t_priv_admin 42501 "DELETE FROM poll.rollup" "DELETE FROM poll.rollup"
as t_priv_admin 42501 "setval on poll's sequence" "SELECT setval(pg_get_serial_sequence('poll.poll', 'poll_id'), 1)"
# the same, for every table, column and sequence of the schema, from the catalog
bad=$(q "SELECT string_agg(format('%s %s', c.oid::regclass, x.privilege), ', ')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS x(privilege)
          WHERE n.nspname = 'poll' AND c.relkind IN ('r', 'p', 'v')
            AND (has_table_privilege('t_priv_admin', c.oid, x.privilege)
                 OR (x.privilege IN ('INSERT', 'UPDATE', 'REFERENCES')
                     AND has_any_column_privilege('t_priv_admin', c.oid, x.privilege))
                 OR pg_has_role('t_priv_admin', c.relowner, 'USAGE'))")
[ -z "$bad" ] || fail "poll_admin holds: $bad"
bad=$(q "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'poll' AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('t_priv_admin', c.oid, 'UPDATE') END")
[ -z "$bad" ] || fail "poll_admin may set the sequences $bad"

# ---- poll_admin: everything the SPEC gives it ----
# (but webhooks' secrets: "never the secret", so poll.webhook_secret is the
# owner's alone, and poll_admin must not read it)
bad=$(q "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'poll' AND c.relkind IN ('r', 'p', 'v') AND c.relname <> 'webhook_secret'
            AND NOT has_table_privilege('t_priv_admin', c.oid, 'SELECT')")
[ -z "$bad" ] || fail "poll_admin cannot read $bad"
as t_priv_admin 42501 "reading the webhooks' secrets" "SELECT count(*) FROM poll.webhook_secret"
for v in $(q "SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'poll' AND c.relkind IN ('r', 'v') AND c.relname <> 'webhook_secret'"); do
	as t_priv_admin ok "SELECT FROM $v" "SELECT count(*) FROM $v"
done
interface="'create_poll', 'close_poll', 'cast_vote', 'cast_votes', 'retract_vote', 'fold', 'ballot_of', 'series', 'add_webhook', 'remove_webhook'"
bad=$(q "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'poll' AND p.proname IN ($interface) AND NOT has_function_privilege('t_priv_admin', p.oid, 'EXECUTE')")
[ -z "$bad" ] || fail "poll_admin cannot run $bad"
as t_priv_admin ok "the interface" "SELECT poll.create_poll('Admin', ARRAY['x', 'y']) AS a \\gset
	SELECT poll.cast_vote(:a, 'v1', 1), poll.cast_vote(:a, 'v2', 2, 'eu'), poll.cast_votes(:a, ARRAY['v3', 'v4'], ARRAY[1, 2]);
	SELECT poll.retract_vote(:a, 'v4'), poll.ballot_of(:a, 'v1'), poll.fold();
	SELECT count(*) FROM poll.series(:a);
	SELECT count(*) FROM poll.ballots WHERE poll_id = :a;
	SELECT poll.close_poll(:a)"

# ---- poll_reader: the views but poll.ballots, never a table ----
for v in results results_by_segment poll_summary votes_per_minute votes_per_hour votes_per_day worker_status; do
	as t_priv_reader ok "SELECT FROM poll.$v" "SELECT count(*) FROM poll.$v"
done
as t_priv_reader ok "poll.series" "SELECT count(*) FROM poll.series($p)"
for t in ballots ballot change poll tally tally_segment rollup; do
	as t_priv_reader 42501 "SELECT FROM poll.$t" "SELECT count(*) FROM poll.$t"
done
as t_priv_reader 42501 "cast_vote" "SELECT poll.cast_vote($p, 'rita', 1)"

# ---- PUBLIC: nothing ----
as t_priv_nobody 42501 "SELECT FROM poll.results" "SELECT count(*) FROM poll.results"
as t_priv_nobody 42501 "cast_vote" "SELECT poll.cast_vote($p, 'nobody', 1)"
bad=$(q "SELECT string_agg(format('%s %s', o, a.privilege_type), ', ')
           FROM (SELECT c.oid::regclass::text AS o, c.relacl AS acl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'poll'
                 UNION ALL
                 SELECT p.oid::regprocedure::text, coalesce(p.proacl, acldefault('f', p.proowner)) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'poll'
                 UNION ALL
                 SELECT 'schema poll', nspacl FROM pg_namespace WHERE nspname = 'poll') x,
                aclexplode(x.acl) a
          WHERE a.grantee = 0")
[ -z "$bad" ] || fail "PUBLIC holds: $bad"
[ "$(q "SELECT count(*) FROM poll.ballot WHERE poll_id = $p")" = 1 ] || fail "an attempt changed poll $p's ballots"
echo "poll_admin holds none of the owner's powers and all the SPEC gives it; readers and PUBLIC as the SPEC says"

#!/usr/bin/env bash
# ALTER EXTENSION poll UPDATE from 1.0 to 1.1 (SPEC "Versions"): a database
# installed at 1.0 from poll--1.0.sql and filled through the 1.1 library (which
# must serve a 1.0 schema until it is updated) keeps every row and every view's
# answer, and ends with a schema identical to a fresh CREATE EXTENSION poll.
#
# Databases of its own, dropped on exit (the worker serves only 'postgres', so
# nothing folds in them unless poll.fold() is called):
#   old    1.0, filled, then updated: the subject
#   ref    a copy of old at 1.0 that is never updated: folds must agree
#   live   a copy of old updated while a session that has voted stays
#          connected; that session votes on after the update
#   fresh  CREATE EXTENSION poll (1.1)
# The schema comparison is generic (test/upgrade/catalog.sql and pg_dump
# --binary-upgrade, both without OIDs), so it follows whatever 1.1 adds; a
# self-check proves that it sees a difference in each of its sections.
. "$(dirname "$0")/../lib/common.sh"

from=1.0
to=1.1
old=poll_upgrade_old
ref=poll_upgrade_ref
live=poll_upgrade_live
fresh=poll_upgrade_fresh
catalog="$POLL_ROOT/test/upgrade/catalog.sql"
work="$POLL_WORK/upgrade"
mkdir -p "$work"
export PGOPTIONS='-c TimeZone=UTC'	# timestamps print alike in every file
live_pid=

drop_databases() {
	local db
	for db in $old $ref $live $fresh; do
		psql -X -qAt -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	done
}
cleanup() {
	[ -n "$live_pid" ] && kill "$live_pid" 2>/dev/null
	drop_databases
}
trap cleanup EXIT
drop_databases

sql() {	# DB SQL
	psql -X -qAt -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}
expect() {	# DB SQL WANT: the query prints WANT
	local got
	got=$(sql "$1" "$2") || fail "in $1: $2"
	[ "$got" = "$3" ] || fail "in $1: $2
  expected: $3
  got:      $got"
}
expect_sqlstate() {	# DB SQL STATE: SQL fails with STATE (expect_error, test/invariants.sql)
	expect "$1" "SELECT left(expect_error(\$q\$$2\$q\$), 5)" "$3"
}
expect_version() {	# DB VERSION
	expect "$1" "SELECT extversion FROM pg_extension WHERE extname = 'poll'" "$2"
}
differ() {	# WHAT EXPECTED-FILE ACTUAL-FILE: fails printing the diff
	diff -u --label "$2" --label "$3" "$2" "$3" >"$work/diff" && return 0
	fail "$1:
$(head -200 "$work/diff")"
}

# ---- both versions and the direct update script are installed ----
[ "$(q "SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions
		 WHERE name = 'poll' AND version IN ('$from', '$to')")" = "$from,$to" ] ||
	fail "poll $from and $to are not both installed (Makefile DATA must list poll--$from.sql, poll--$to.sql and poll--$from--$to.sql)"
[ "$(q "SELECT default_version FROM pg_available_extensions WHERE name = 'poll'")" = "$to" ] ||
	fail "the default version is not $to"
[ "$(q "SELECT path FROM pg_extension_update_paths('poll') WHERE source = '$from' AND target = '$to'")" = "$from--$to" ] ||
	fail "no direct update script poll--$from--$to.sql is installed"
sharedir=$("${PGBIN:-/usr/lib/postgresql/15/bin}/pg_config" --sharedir)
for f in poll--$from.sql poll--$to.sql poll--$from--$to.sql; do
	cmp -s "$POLL_ROOT/$f" "$sharedir/extension/$f" ||
		echo "warning: the installed $f differs from the tree's (installed by a later or earlier make install?)"
done

# ---- 1.0, filled through the 1.1 library ----
sql postgres "CREATE DATABASE $old" >/dev/null
sql $old "CREATE EXTENSION poll VERSION '$from'" >/dev/null
expect_version $old $from
sql $old "\\i $POLL_ROOT/test/invariants.sql" >/dev/null

single=$(sql $old "SELECT poll.create_poll('Single', ARRAY['red', 'green', 'blue'], metadata => '{\"source\": \"upgrade\"}')")
multi=$(sql $old "SELECT poll.create_poll('Multi', ARRAY['a', 'b', 'c', 'd'], 'multi', 2)")
scheduled=$(sql $old "SELECT poll.create_poll('Scheduled', ARRAY['x', 'y'],
	opens_at => now() + interval '2 days', closes_at => now() + interval '3 days')")
closed=$(sql $old "SELECT poll.create_poll('Closed by close_poll', ARRAY['yes', 'no'])")
past=$(sql $old "SELECT poll.create_poll('Closed by the clock', ARRAY['early', 'late', 'never'],
	opens_at => now() - interval '3 days', closes_at => now() - interval '1 hour')")
fixed=$(sql $old "SELECT poll.create_poll('No second thoughts', ARRAY['p', 'q'], allow_change => false)")

# single: cast, unchanged, changed, retracted; bulk new ballots, then bulk changes and new ones
expect $old "SELECT poll.cast_vote($single, 'alice', 1, 'north')" cast
expect $old "SELECT poll.cast_vote($single, 'alice', 1, 'north')" unchanged
expect $old "SELECT poll.cast_vote($single, 'alice', 2, 'north')" changed
expect $old "SELECT poll.cast_vote($single, 'bob', 3)" cast
expect $old "SELECT poll.retract_vote($single, 'bob')" t
expect $old "SELECT poll.retract_vote($single, 'bob')" f
expect $old "SELECT poll.cast_votes($single, array_agg('bulk' || i ORDER BY i), array_agg(1 + i % 3 ORDER BY i),
	array_agg((ARRAY['north', 'south', 'east', NULL])[1 + i % 4] ORDER BY i)) FROM generate_series(1, 300) i" 300
expect $old "SELECT poll.cast_votes($single, array_agg('bulk' || i ORDER BY i), array_agg(1 + (i + 1) % 3 ORDER BY i))
	FROM generate_series(291, 320) i" 30
expect_sqlstate $old "SELECT poll.cast_votes($single, ARRAY['x1', 'x2'], ARRAY[1, 9])" 22023
# multi
expect $old "SELECT poll.cast_vote($multi, 'carol', ARRAY[1, 3], 'west')" cast
expect $old "SELECT poll.cast_vote($multi, 'carol', ARRAY[3, 1], 'west')" unchanged
expect $old "SELECT poll.cast_vote($multi, 'carol', ARRAY[2])" changed
expect $old "SELECT poll.cast_vote($multi, 'dave', 4)" cast
expect $old "SELECT count(*) FILTER (WHERE r = 'cast') FROM (SELECT poll.cast_vote($multi, 'm' || i,
	ARRAY[1 + i % 4, 1 + (i + 1) % 4], (ARRAY['west', 'east'])[1 + i % 2]) AS r FROM generate_series(1, 60) i) s" 60
expect $old "SELECT count(*) FROM (SELECT poll.cast_vote($multi, 'e' || i, ARRAY[1], 'edge') FROM generate_series(1, 11) i) s" 11
expect_sqlstate $old "SELECT poll.cast_vote($multi, 'erin', ARRAY[1, 2, 3])" 22023
expect_sqlstate $old "SELECT poll.cast_votes($multi, ARRAY['erin'], ARRAY[1])" 42809
# closed by close_poll (twice: idempotent), scheduled, past its closes_at, no changes allowed
expect $old "SELECT count(*) FROM (SELECT poll.cast_vote($closed, 'c' || i, 1 + i % 2) FROM generate_series(1, 25) i) s" 25
expect $old "SELECT poll.close_poll($closed)" ""
expect $old "SELECT poll.close_poll($closed)" ""
expect_sqlstate $old "SELECT poll.cast_vote($closed, 'late', 1)" 55000
expect_sqlstate $old "SELECT poll.cast_vote($scheduled, 'early', 1)" 55000
expect_sqlstate $old "SELECT poll.cast_vote($past, 'late', 1)" 55000
expect $old "SELECT poll.cast_vote($fixed, 'frank', 1)" cast
expect_sqlstate $old "SELECT poll.cast_vote($fixed, 'frank', 2)" 23505
expect_sqlstate $old "SELECT poll.retract_vote($fixed, 'frank')" 23505
# The past poll's history, written as the vote path would have written it
# then (a ballot and its change record; the clock cannot be set back):
# rollups over many minutes, hours and three days.
sql $old "INSERT INTO poll.ballot (poll_id, voter, options, segment, cast_at)
	SELECT $past, 'h' || i, ARRAY[1 + i % 3], (ARRAY['north', 'south', NULL])[1 + i % 3],
		   p.opens_at + i * interval '17 minutes 13 seconds'
	  FROM poll.poll p, generate_series(1, 150) i WHERE p.poll_id = $past;
	INSERT INTO poll.change (poll_id, option_id, segment, votes, ballots, at)
	SELECT poll_id, options[1], segment, 1, 1, cast_at FROM poll.ballot WHERE poll_id = $past" >/dev/null

# fold all that; 1.1's library folds a 1.0 schema
expect $old "SELECT poll.fold() > 0" t
expect $old "SELECT count(*) FROM poll_invariant_violations()" 0
expect $old "SELECT sum(votes) FROM poll.series($past, '1 hour')" 150
expect $old "SELECT count(DISTINCT grain) || ' ' || count(DISTINCT bucket) FILTER (WHERE grain = 'day')
	FROM poll.rollup WHERE poll_id = $past" "3 3"

# then more, left pending: casts, changes, retractions, a new segment, a close with pending ballots
expect $old "SELECT count(*) FROM (SELECT poll.cast_vote($single, 'p' || i, 1 + i % 3, 'north') FROM generate_series(1, 5) i) s" 5
expect $old "SELECT string_agg(poll.cast_vote($single, 'bulk' || i, 1 + (i + 2) % 3), ',') FROM generate_series(30, 32) i" changed,changed,changed
expect $old "SELECT bool_and(poll.retract_vote($single, 'bulk' || i)) FROM generate_series(40, 42) i" t
expect $old "SELECT poll.cast_votes($single, array_agg('later' || i ORDER BY i), array_agg(1 + i % 2 ORDER BY i),
	array_agg(CASE WHEN i % 5 = 0 THEN 'pending only' END ORDER BY i)) FROM generate_series(1, 50) i" 50
expect $old "SELECT poll.cast_vote($multi, 'carol', ARRAY[1, 2], 'east')" changed
expect $old "SELECT poll.retract_vote($multi, 'dave')" t
expect $old "SELECT poll.cast_vote($multi, 'e1', ARRAY[2], 'west')" changed	# 'edge' down to 10 ballots
expect $old "SELECT poll.cast_vote($fixed, 'grace', 2, 'south')" cast
expect $old "SELECT poll.close_poll($fixed)" ""
expect $old "SELECT count(*) FROM poll_invariant_violations() WHERE what IN ('results', 'results_by_segment', 'ballots')" 0
expect $old "SELECT count(*) > 0 FROM poll.change" t
expect $old "SELECT count(*) FROM poll.worker_status WHERE database = current_database()" 0
expect $old "SELECT count(*) > 0 FROM poll.tally_segment" t

# ---- what 1.0 holds: every member table, sequence and view (its 1.0 columns), and series ----
# The queries are written now, from 1.0's catalog, and run again after the update.
# worker_status is left out: it shows the worker's clock, not this database's data.
stamp=$(sql $old "SELECT now()")
data_queries() {	# DB EXCLUDED-COLUMNS (a condition on c, the relation, and a, the column)
	echo '\pset format unaligned'
	echo '\pset tuples_only on'
	echo "\\pset fieldsep ' | '"
	sql "$1" "SELECT format('SELECT %L, t::text FROM (SELECT %s FROM %s) t ORDER BY t::text COLLATE \"C\";',
				c.oid::regclass, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), c.oid::regclass)
		  FROM pg_extension e
		  JOIN pg_depend d ON d.refobjid = e.oid AND d.deptype = 'e' AND d.classid = 'pg_class'::regclass
		  JOIN pg_class c ON c.oid = d.objid
		  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE e.extname = 'poll' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
		   AND c.oid <> 'poll.worker_status'::regclass AND NOT (c.relkind = 'S' AND a.attname = 'log_cnt')
		   AND NOT ($2)
		 GROUP BY c.oid ORDER BY c.oid::regclass::text"
	local w
	for w in '1 minute' '1 hour' '1 day'; do
		echo "SELECT 'series $past $w', s::text FROM poll.series($past, '$w', until => '$stamp') s;"
		echo "SELECT 'series $single $w', s::text FROM poll.series($single, '$w', until => '$stamp') s;"
	done
}
data_queries $old false >"$work/data.sql"
# after a fold, the folds' own clock (tally.folded_at) differs
data_queries $old "c.oid = 'poll.tally'::regclass AND a.attname = 'folded_at'" >"$work/folded.sql"
grep -q "FROM poll.change" "$work/data.sql" || fail "data.sql misses poll.change:
$(cat "$work/data.sql")"
sql $old "\\i $work/data.sql" >"$work/data.1.0"
grep -q "^poll.change | " "$work/data.1.0" || fail "no pending change recorded before the update"

sql postgres "CREATE DATABASE $ref TEMPLATE $old" >/dev/null
sql postgres "CREATE DATABASE $live TEMPLATE $old" >/dev/null

# ---- the update keeps every row and every view's answer ----
sql $old "ALTER EXTENSION poll UPDATE" >/dev/null || fail "ALTER EXTENSION poll UPDATE failed"
expect_version $old $to
sql $old "\\i $work/data.sql" >"$work/data.$to" || fail "the 1.0 columns cannot be read after the update"
differ "rows or view results differ after the update (- before, + after)" "$work/data.1.0" "$work/data.$to"

# results_by_segment's floor (1.1) counts the live ballots of each segment,
# those the update found folded and pending included: as poll_reader with
# poll.segment_min_ballots = 11 ('edge' has 10 ballots, 'pending only' 10),
# small segments merge into NULL exactly as the ballots say
segment_floor_holds() {	# DB
	local want got
	want=$(sql "$1" "WITH live AS (SELECT poll_id, voter, option_id, segment FROM poll.ballots),
			n AS (SELECT poll_id, segment, count(DISTINCT voter) AS ballots
					FROM live WHERE segment IS NOT NULL GROUP BY 1, 2)
		SELECT l.poll_id, CASE WHEN n.ballots >= 11 THEN l.segment END AS segment, l.option_id, o.label, count(*)
		  FROM live l LEFT JOIN n USING (poll_id, segment) JOIN poll.option o USING (poll_id, option_id)
		 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3")
	got=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$1" -c "SET poll.segment_min_ballots = 11" -c "SET ROLE poll_reader" \
		-c "SELECT poll_id, segment, option_id, label, votes FROM poll.results_by_segment ORDER BY 1, 2, 3")
	[ "$got" = "$want" ] || fail "in $1, results_by_segment with a floor of 11 ballots (- expected, + got):
$(diff <(echo "$want") <(echo "$got"))"
}
grep -qxF "poll.results_by_segment | ($multi,edge,1,a,10)" "$work/data.1.0" ||
	fail "the 'edge' segment does not hold 10 ballots before the update"
segment_floor_holds $old

# ---- the schema is the fresh one's ----
sql postgres "CREATE DATABASE $fresh" >/dev/null
sql $fresh "CREATE EXTENSION poll" >/dev/null
expect_version $fresh $to
sql $fresh "\\i $POLL_ROOT/test/invariants.sql" >/dev/null	# as in old: the same objects outside poll
psql -X -q -d $fresh -f "$catalog" >"$work/catalog.fresh"
psql -X -q -d $old -f "$catalog" >"$work/catalog.updated"
[ "$(grep -c '^member | ' "$work/catalog.fresh")" -ge 30 ] || fail "catalog.sql lists too few members"
differ "the updated schema differs from a fresh CREATE EXTENSION poll (- fresh, + updated)" \
	"$work/catalog.fresh" "$work/catalog.updated"

# pg_dump --binary-upgrade writes out every member; without OIDs, xids,
# physical details (dropped columns, fast defaults) and the value of the
# sequence (data, compared above) it must be the same
schema_dump() {	# DB
	pg_dump --binary-upgrade --schema-only -d "$1" | sed -E \
		-e '/^-- For binary upgrade, recreate dropped column/,/DROP COLUMN/d' \
		-e '/pg\.dropped\./d' \
		-e '/^\\(un)?restrict /d' \
		-e '/binary_upgrade_set_next_|^-- set missing value\.$|binary_upgrade_set_missing_value/d' \
		-e '/^SELECT pg_catalog\.setval\(/d' \
		-e '/^SET relfrozenxid = |^WHERE oid = '"'"'[0-9]+'"'"';$/d' \
		-e "s/(binary_upgrade_create_empty_extension\\('poll', 'poll', [a-z]+, '[^']*', )'\\{[0-9,]*\\}'/\\1'{OIDs}'/" \
		-e 's/(pg_toast_|RI_ConstraintTrigger_[ac]_)[0-9]+/\1N/g' | cat -s
}
schema_dump $fresh >"$work/dump.fresh"
schema_dump $old >"$work/dump.updated"
grep -q "ALTER EXTENSION poll ADD TABLE poll.ballot;" "$work/dump.fresh" || fail "pg_dump --binary-upgrade did not write the members"
differ "pg_dump --binary-upgrade --schema-only differs (- fresh, + updated)" "$work/dump.fresh" "$work/dump.updated"

# ---- self-check: each kind of difference shows in the comparison ----
# Each change is made in fresh inside a transaction that is rolled back; the
# section it must show in comes first.
mutations=(
	"comment|COMMENT ON COLUMN poll.tally.version IS 'self-check'"
	"relation|GRANT SELECT ON poll.ballot TO poll_reader"
	"column|ALTER TABLE poll.tally ADD COLUMN self_check int"
	"column|ALTER TABLE poll.rollup ALTER COLUMN votes SET DEFAULT 0"
	"constraint|ALTER TABLE poll.poll ADD CONSTRAINT self_check CHECK (title <> '')"
	"index|CREATE INDEX self_check ON poll.change (poll_id)"
	"relation|ALTER TABLE poll.ballot REPLICA IDENTITY FULL"
	"relation|ALTER TABLE poll.rollup SET (fillfactor = 90)"
	"view|CREATE OR REPLACE VIEW poll.votes_per_day AS SELECT poll_id, option_id, bucket, votes FROM poll.rollup WHERE grain = 'day' AND votes <> 0"
	"function|ALTER FUNCTION poll.fold() SET work_mem = '1MB'"
	"function|REVOKE EXECUTE ON FUNCTION poll.retract_vote(bigint, text) FROM poll_voter"
	"sequence|ALTER SEQUENCE poll.poll_poll_id_seq CACHE 10"
	"publication_table|ALTER PUBLICATION poll_feed ADD TABLE poll.poll"
	"trigger|CREATE TRIGGER self_check BEFORE UPDATE ON poll.option FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()"
	"policy|CREATE POLICY self_check ON poll.ballot USING (true)"
	"type|CREATE TYPE poll.self_check AS ENUM ('a')"
	"default_acl|ALTER DEFAULT PRIVILEGES IN SCHEMA poll GRANT SELECT ON TABLES TO poll_reader"
	"extconfig|ALTER EXTENSION poll DROP TABLE poll.rollup"
)
{
	for i in "${!mutations[@]}"; do
		echo "BEGIN;"
		echo "${mutations[$i]#*|};"
		echo "\\o $work/catalog.self-check.$i"
		echo "\\i $catalog"
		echo "\\o"
		echo "ROLLBACK;"
	done
} >"$work/self-check.sql"
psql -X -q -v ON_ERROR_STOP=1 -d $fresh -f "$work/self-check.sql" >/dev/null || fail "the self-check's changes failed"
for i in "${!mutations[@]}"; do
	section=${mutations[$i]%%|*}
	{ diff "$work/catalog.fresh" "$work/catalog.self-check.$i" || true; } | grep -q "^[<>] $section | " ||
		fail "self-check: the comparison misses «${mutations[$i]#*|}» (nothing in section $section)"
done
expect $fresh "SELECT count(*) FROM pg_description WHERE description = 'self-check'" 0	# all rolled back
sql $fresh "COMMENT ON COLUMN poll.tally.version IS 'self-check'" >/dev/null
schema_dump $fresh >"$work/dump.self-check"
! diff -q "$work/dump.fresh" "$work/dump.self-check" >/dev/null || fail "self-check: the pg_dump comparison misses a comment"

# ---- after a fold: the same answers as 1.0 folding the same data, and the invariants ----
for db in $old $ref; do
	expect $db "SELECT poll.fold() > 0" t
	expect $db "SELECT count(*) FROM poll.change" 0
	expect $db "SELECT count(*) FROM poll_invariant_violations()" 0
	sql $db "\\i $work/folded.sql" >"$work/folded.$db"
done
segment_floor_holds $old
expect_version $ref $from
differ "folding after the update differs from folding at 1.0 (- 1.0, + $to)" "$work/folded.$ref" "$work/folded.$old"
views='^poll\.(results|results_by_segment|poll_summary|ballots) \| '
grep -E "$views" "$work/data.1.0" >"$work/views.before-fold"
grep -E "$views" "$work/folded.$old" >"$work/views.after-fold"
differ "the views' answers changed with the fold (- before, + after)" "$work/views.before-fold" "$work/views.after-fold"

# ---- a session that voted before the update votes on after it (and calls 1.1's ballot_of) ----
cat >"$work/live.sql" <<SQL
SELECT poll.cast_vote($single, 'live', 1, 'north');
SELECT poll.cast_votes($single, ARRAY['live bulk'], ARRAY[2]);
SELECT poll.retract_vote($single, 'alice');
DO \$\$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
	WHILE (SELECT extversion FROM pg_extension WHERE extname = 'poll') <> '$to' LOOP
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'not updated within 30 s';
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
END
\$\$;
SELECT poll.cast_vote($single, 'live', 3, 'north');
SELECT poll.ballot_of($single, 'live');
SELECT poll.cast_vote($multi, 'live', ARRAY[1, 4]);
SELECT poll.cast_votes($single, ARRAY['live bulk', 'live bulk 2'], ARRAY[3, 1]);
SELECT poll.retract_vote($single, 'live bulk');
SELECT poll.close_poll($multi);
SELECT poll.fold() > 0;
SELECT count(*) FROM poll_invariant_violations();
SQL
PGAPPNAME=poll-upgrade-live psql -X -qAt -v ON_ERROR_STOP=1 -d $live -f "$work/live.sql" >"$work/live.out" 2>&1 &
live_pid=$!
wait_for 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'poll-upgrade-live' AND query LIKE 'DO %'" ||
	fail "the live session did not vote: $(cat "$work/live.out")"
sql $live "ALTER EXTENSION poll UPDATE" >/dev/null || fail "ALTER EXTENSION poll UPDATE failed with a session connected"
wait $live_pid || fail "the live session failed after the update: $(cat "$work/live.out")"
live_pid=
[ "$(cat "$work/live.out")" = "$(printf 'cast\n1\nt\nchanged\n{3}\ncast\n2\nt\n\nt\n0')" ] ||
	fail "the live session's votes: $(cat "$work/live.out")"

echo "1.0 -> $to: rows, views and series kept; schema equal to a fresh $to ($(grep -c . "$work/catalog.fresh") catalog lines, ${#mutations[@]} self-checks); folds agree; a live session votes on"

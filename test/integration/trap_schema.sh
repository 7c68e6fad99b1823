#!/usr/bin/env bash
# trap_schema: no object in a user-writable schema ever runs code as the
# extension's owner, the worker or poll-fanout (SPEC "Roles", issue 9).
#
# A cluster of its own, whose worker serves a database owned by a role that
# is not a superuser.  That owner fills a schema "trap" (and public) with a
# trap for every function, aggregate, operator, type and relation name the
# project's SQL uses (test/trap/make_traps.sql, from the tokens that
# test/trap/sql_tokens.pl reads in poll--*.sql and in the string literals of
# src/*.c and fanout/*.c) and, unless TRAP_ONLY_USED=1, for every other name
# in pg_catalog too; and puts it first: search_path = trap, public,
# pg_catalog for the database and every role.  Then everything poll does runs:
# polls of each kind, votes (each form, each outcome, errors), bulk votes,
# retractions, batches, closes, folds by hand and by the worker, its status ticks and
# retention, series, every view, every function of schema poll (checked from
# the catalog), and poll-fanout's snapshot, stream and HTTP API.  A trap
# that fires logs "TRAP FIRED"; any such line but the sanity checks' fails
# the test, and is printed with the statement that called it.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../fanout/lib.sh"

TRAP_SQL=$POLL_ROOT/test/trap
CLUSTER=$WORK/cluster
LOG=$CLUSTER/postgres.log
DB=trapdb
TRAP_PATH='trap, public, pg_catalog'
TPORT=$(free_port)
ROLES="trap_owner trap_voter trap_reader trap_admin postgres"

finish() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	"$POLL_ROOT/scripts/cluster.sh" stop "$CLUSTER" >/dev/null 2>&1 || true
	return $rc
}
trap 'finish; cleanup' EXIT

# sql ROLE SQL: a session that cannot reach the traps (set-up and checks)
sql() {
	PGOPTIONS="-c search_path=pg_catalog,pg_temp" PGAPPNAME=trap_setup \
		psql -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$TPORT" -U "$1" -d "$DB" -c "$2"
}
# probe ROLE SQL: a session with the role's own settings, the traps first;
# what it runs names nothing unqualified itself, so a trap that fires here
# was reached by poll's code
probe() {
	PGOPTIONS= PGAPPNAME=${APP:-trap_probe} \
		psql -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$TPORT" -U "$1" -d "$DB" -c "$2"
}
# probe_error ROLE SQLSTATE SQL: the call fails with that SQLSTATE
probe_error() {
	local out
	if out=$(PGOPTIONS= PGAPPNAME=trap_probe psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
		-h 127.0.0.1 -p "$TPORT" -U "$1" -d "$DB" -c "$3" 2>&1); then
		fail "expected SQLSTATE $2, but it succeeded: $3"
	fi
	grep -q "ERROR:  $2:" <<<"$out" || fail "expected SQLSTATE $2 from: $3
got: $out"
}
# twait SECONDS SQL: until the query (in a set-up session) returns t
twait() {
	PGPORT=$TPORT PGDATABASE=$DB PGUSER=postgres PGAPPNAME=trap_setup \
		PGOPTIONS="-c search_path=pg_catalog,pg_temp" wait_for "$@"
}
# until SECONDS COMMAND...: until the command succeeds
until_ok() {
	local n=$(($1 * 10))
	shift
	for _ in $(seq 1 $n); do "$@" && return 0; sleep 0.1; done
	return 1
}
exists() { [ "$(sql postgres "SELECT to_regprocedure('$1') IS NOT NULL")" = t ]; }
at() { date -u -d "$1 seconds" '+%Y-%m-%d %H:%M:%S.%N+00'; }	# at +3, at -60
fired() { grep -a 'TRAP FIRED' "$LOG" || true; }

# ---- the cluster, the database, its owner and the roles that use poll ----
"$POLL_ROOT/scripts/cluster.sh" start "$CLUSTER" "$TPORT" "poll.database='$DB'" \
	"log_line_prefix='%m [%p] %b %q%a %u@%d '" "log_min_messages=warning" \
	"log_min_error_statement=warning" "track_functions=all" || fail "cannot start a cluster on port $TPORT"
DB=postgres sql postgres "CREATE ROLE trap_owner LOGIN" >/dev/null
DB=postgres sql postgres "CREATE DATABASE $DB OWNER trap_owner" >/dev/null
sql postgres "CREATE EXTENSION poll" >/dev/null
sql postgres "CREATE ROLE trap_voter LOGIN IN ROLE poll_voter;
	CREATE ROLE trap_reader LOGIN IN ROLE poll_reader;
	CREATE ROLE trap_admin LOGIN IN ROLE poll_admin" >/dev/null

# ---- the traps, made by the owner ----
perl "$TRAP_SQL/sql_tokens.pl" "$POLL_ROOT"/poll--*.sql "$POLL_ROOT"/src/*.[ch] "$POLL_ROOT"/fanout/*.[ch] \
	>"$WORK/tokens.used"
{
	cat "$WORK/tokens.used"
	printf 'ident\t%s\n' make_interval array_agg count text pg_roles	# the sanity checks' own
	# and every name in pg_catalog, whether our SQL uses it or not (a name
	# built at run time is not in the sources); TRAP_ONLY_USED=1: not these
	[ -n "${TRAP_ONLY_USED:-}" ] || sql postgres "SELECT 'ident' || E'\t' || proname FROM pg_proc
		UNION SELECT 'ident' || E'\t' || typname FROM pg_type UNION SELECT 'ident' || E'\t' || relname FROM pg_class
		UNION SELECT 'op' || E'\t' || oprname FROM pg_operator"
} | sort -u >"$WORK/tokens"
PGOPTIONS= psql -X -qAt -h 127.0.0.1 -p "$TPORT" -U trap_owner -d "$DB" -f "$TRAP_SQL/make_traps.sql" \
	<"$WORK/tokens" >"$WORK/traps.out" 2>&1 || { cat "$WORK/traps.out"; fail "make_traps.sql failed"; }
[ "$(sql postgres "SELECT rolsuper FROM pg_roles WHERE rolname = 'trap_owner'")" = f ] || fail "trap_owner is a superuser"
echo "traps made by trap_owner (not a superuser) for $(wc -l <"$WORK/tokens") names and operator symbols," \
	"$(wc -l <"$WORK/tokens.used") of them read in poll's SQL and C sources (kind|schema|made|skipped):"
grep '^made|' "$WORK/traps.out" | sed 's/^made|/  /'
echo "pg_catalog's functions, aggregates and operators: shadowed in trap with the same signature | named | all:"
grep '^shadowed|' "$WORK/traps.out" | sed 's/^shadowed|/  /'
echo "skipped in schema trap, by reason (kind|why|how many):"
grep '^why|' "$WORK/traps.out" | sed 's/^why|/  /'
echo "skipped in schema trap, of the names poll's sources use:"
awk -F'\t' 'NR == FNR { used[$2] = 1; next }
	{ split($0, f, "|"); name = f[3]; sub(/^trap\./, "", name); sub(/\(.*/, "", name) }
	/^skipped\|/ && (name in used) { sub(/^skipped\|/, "  "); print }' "$WORK/tokens.used" "$WORK/traps.out"
for kind in function aggregate operator type; do
	grep -q "^made|$kind|trap|[1-9]" "$WORK/traps.out" || fail "no $kind trap was made"
done

# ---- the traps first, for the database (its owner can) and every role ----
sql trap_owner "ALTER DATABASE $DB SET search_path = $TRAP_PATH" >/dev/null
for r in trap_owner trap_voter trap_reader trap_admin; do
	sql postgres "ALTER ROLE $r SET search_path = $TRAP_PATH" >/dev/null
done
sql postgres "ALTER ROLE postgres IN DATABASE $DB SET search_path = $TRAP_PATH" >/dev/null
# the settings' code paths: segments beyond a limit, small segments hidden
for s in "poll.max_segments = 4" "poll.segment_min_ballots = 2"; do
	sql postgres "ALTER DATABASE $DB SET $s" >/dev/null 2>&1 || echo "note: cannot set $s (not in this version)"
done
# the worker connects with these settings: restart, so that it serves the
# database from now on
"$POLL_ROOT/scripts/cluster.sh" stop "$CLUSTER"
"$POLL_ROOT/scripts/cluster.sh" start "$CLUSTER" "$TPORT"
for r in $ROLES; do
	got=$(probe "$r" "SHOW search_path")
	[ "$got" = "$TRAP_PATH" ] || fail "role $r has search_path \"$got\", not \"$TRAP_PATH\""
done

# ---- sanity: a trap of each kind fires for an unqualified statement ----
control() {	# control NAME EXPECTED SQL
	APP=trap_control_$1 probe trap_voter "$3" >/dev/null 2>"$WORK/control.err" ||
		fail "sanity check $1 failed: $3: $(grep -v WARNING "$WORK/control.err")"
	grep -aF "TRAP FIRED: $2" "$LOG" | grep -qF "application_name \"trap_control_$1\"" ||
		fail "the trap schema does not work: \"$3\" did not fire \"$2\""
}
control function 'function trap.make_interval(' "SELECT make_interval(secs => 1)"
control operator 'operator trap.=(bigint, bigint)' "SELECT 1::bigint = 1::bigint"
control aggregate 'aggregate trap.array_agg(anynonarray)' "SELECT array_agg(x) FROM pg_catalog.generate_series(1, 3) x"
control type 'type trap.text' "SELECT 'x'::text"
control relation 'relation trap.pg_roles' "SELECT FROM pg_roles LIMIT 1"
control public 'function public.make_interval(' "SET search_path = public, pg_catalog; SELECT make_interval(secs => 1)"
# with pg_catalog searched first, as by default, an exact type beats "any"
control any 'aggregate public.count(integer)' 'SET search_path = "$user", public; SELECT count(x) FROM pg_catalog.generate_series(1, 3) x'
echo "ok: each kind of trap fires for an unqualified call (function, operator, aggregate, type, relation, public, \"any\")"

# ---- poll, as each role uses it ----
# old rollups that retention (the worker's tick) must drop
p0=$(probe trap_admin "SELECT poll.create_poll('retention', ARRAY['a', 'b'])")
sql postgres "INSERT INTO poll.rollup VALUES ('minute', $p0, 1, now() - interval '30 days', 1),
	('hour', $p0, 1, now() - interval '200 days', 1)" >/dev/null
single=$(probe trap_admin "SELECT poll.create_poll('single', ARRAY['a', 'b', 'c'], metadata => '{\"k\": 1}')")
multi=$(probe trap_admin "SELECT poll.create_poll('multi', ARRAY['a', 'b', 'c', 'd'], kind => 'multi', max_choices => 3)")
fixed=$(probe trap_admin "SELECT poll.create_poll('fixed', ARRAY['a', 'b'], allow_change => false)")
sched=$(probe trap_admin "SELECT poll.create_poll('scheduled', ARRAY['a', 'b'], opens_at => '$(at +600)')")
# the clock opens and closes this one, and closes the next: the worker records it
clock=$(probe trap_admin "SELECT poll.create_poll('clock', ARRAY['a', 'b'], opens_at => '$(at +1)', closes_at => '$(at +2)')")
soon=$(probe trap_admin "SELECT poll.create_poll('closes soon', ARRAY['a', 'b'], closes_at => '$(at +4)')")
[ "$(probe trap_voter "SELECT poll.cast_vote($soon, 's1', 1)")" = cast ] || fail "a vote before closes_at was refused"

expect() {	# expect WANT GOT WHAT
	[ "$1" = "$2" ] || fail "$3: expected \"$1\", got \"$2\""
}
v() { probe trap_voter "$1"; }
expect cast "$(v "SELECT poll.cast_vote($single, 'v1', 1)")" "new voter"
expect changed "$(v "SELECT poll.cast_vote($single, 'v1', 2)")" "change"
expect unchanged "$(v "SELECT poll.cast_vote($single, 'v1', 2)")" "same ballot"
expect cast "$(v "SELECT poll.cast_vote($single, 'v2', 3, 'eu')")" "with a segment"
expect changed "$(v "SELECT poll.cast_vote($single, 'v2', 1, 'us')")" "change of segment"
expect cast "$(v "SELECT poll.cast_vote($multi, 'm1', '{1,3}')")" "multi, new"
expect changed "$(v "SELECT poll.cast_vote($multi, 'm1', ARRAY[2])")" "multi, change"
expect unchanged "$(v "SELECT poll.cast_vote($multi, 'm1', '{2}'::int[])")" "multi, same"
expect cast "$(v "SELECT poll.cast_vote($multi, 'm2', ARRAY[4, 1], 'eu')")" "multi with a segment"
expect cast "$(v "SELECT poll.cast_vote($multi, 'm3', 2)")" "multi, one option"
expect cast "$(v "SELECT poll.cast_vote($fixed, 'f1', 1)")" "no change allowed, new"
expect 3 "$(v "SELECT poll.cast_votes($single, ARRAY['b1', 'b2', 'b3'], ARRAY[1, 2, 3])")" "bulk, new voters"
expect 3 "$(v "SELECT poll.cast_votes($single, ARRAY['b4', 'b5', 'b6'], ARRAY[1, 1, 2], ARRAY['eu', NULL, 'us'])")" "bulk with segments"
expect 2 "$(v "SELECT poll.cast_votes($single, ARRAY['b1', 'b7', 'b2'], ARRAY[3, 1, 2], ARRAY['eu', 'eu', NULL])")" "bulk, changes"
expect t "$(v "SELECT poll.retract_vote($single, 'b3')")" "retraction"
expect f "$(v "SELECT poll.retract_vote($single, 'nobody')")" "retraction without a ballot"
expect t "$(v "SELECT poll.retract_vote($multi, 'm3')")" "multi retraction"
# batches (cast_vote_batch): every outcome, errors of single elements, segments, untyped parameters
batch() {	# batch ROLE ARGS: the outcomes, space-separated, in element order
	probe "$1" "SELECT pg_catalog.string_agg(coalesce(r.result, r.sqlstate), ' ') FROM poll.cast_vote_batch($2) r"
}
expect "cast changed unchanged cast retracted none 22023 42809 cast 23505 cast" "$(batch trap_voter \
	"ARRAY[$single, $single, $single, $single, $single, $single, $single, $single, $multi, $fixed, $fixed],
	 ARRAY['k1', 'k1', 'k1', 'k2', 'k2', 'k3', 'k4', 'k4', 'k5', 'f1', 'k6'],
	 ARRAY['1', '2', '2', '3', NULL, NULL, '9', '{1,2}', '[3,1]', '2', '1'],
	 ARRAY['eu', NULL, 'us', NULL, NULL, NULL, NULL, NULL, 'eu', NULL, NULL]")" "batch of every outcome"
expect "cast" "$(batch trap_admin "ARRAY[$single], ARRAY['k7'], ARRAY['2']")" "batch as poll_admin"
v "PREPARE b AS SELECT * FROM poll.cast_vote_batch(\$1, \$2, \$3, \$4);
	EXECUTE b('{$single,$multi}', '{k8,k8}', '{1,\"{2,4}\"}', '{eu,NULL}')" >/dev/null
probe_error trap_voter 22023 "SELECT * FROM poll.cast_vote_batch(ARRAY[$single], ARRAY['k9', 'k9'], ARRAY['1'])"
if exists 'poll.ballot_of(bigint,text)'; then
	expect '{2}' "$(v "SELECT poll.ballot_of($single, 'v1')")" "ballot_of"
	expect '' "$(v "SELECT poll.ballot_of($single, 'nobody')")" "ballot_of without a ballot"
fi
# untyped parameters, as node-postgres sends them
for args in "$single, 'u1', '2'" "$multi, 'u2', '{1,3}'" "$multi, 'u3', '[2,4]'" "$single, 'u4', '1', 'eu'"; do
	case "$args" in *eu*) params='$1, $2, $3, $4' ;; *) params='$1, $2, $3' ;; esac
	v "PREPARE c AS SELECT poll.cast_vote($params); EXECUTE c($args)" >/dev/null 2>"$WORK/untyped.err" ||
		echo "note: untyped cast_vote($args) fails, that path is not covered: $(head -1 "$WORK/untyped.err")"
done
# errors
probe_error trap_voter P0002 "SELECT poll.cast_vote(999999, 'x', 1)"
probe_error trap_voter 22023 "SELECT poll.cast_vote($single, 'x', 9)"
probe_error trap_voter 22023 "SELECT poll.cast_vote($single, '', 1)"
probe_error trap_voter 42809 "SELECT poll.cast_vote($single, 'x', ARRAY[1])"
probe_error trap_voter 42809 "SELECT poll.cast_votes($multi, ARRAY['x'], ARRAY[1])"
probe_error trap_voter 23505 "SELECT poll.cast_vote($fixed, 'f1', 2)"
probe_error trap_voter 23505 "SELECT poll.retract_vote($fixed, 'f1')"
probe_error trap_voter 22023 "SELECT poll.cast_votes($single, ARRAY['e1', 'e1'], ARRAY[1, 2])"
probe_error trap_voter 55000 "SELECT poll.cast_vote($sched, 'x', 1)"
probe_error trap_admin 22023 "SELECT poll.create_poll('bad', ARRAY['a'])"
if [ "$(sql postgres "SHOW poll.max_segments" 2>/dev/null)" = 4 ]; then
	v "SELECT poll.cast_votes($single, ARRAY['g1', 'g2'], ARRAY[1, 1], ARRAY['seg1', 'seg2'])" >/dev/null
	probe_error trap_voter 54000 "SELECT poll.cast_vote($single, 'g9', 1, 'one too many')"
	expect "54000 cast" "$(batch trap_voter "ARRAY[$single, $single], ARRAY['g9', 'g10'], ARRAY['1', '1'],
		ARRAY['one too many', 'seg1']")" "batch past the segment limit"
fi
# the SQL path the vote path takes when poll.ballot is not as the extension
# made it (here: an index of someone else's)
sql postgres "CREATE INDEX trap_ballot_cast_at ON poll.ballot (cast_at)" >/dev/null
expect cast "$(v "SELECT poll.cast_vote($single, 'q1', 1, 'eu')")" "SQL path, new voter"
expect changed "$(v "SELECT poll.cast_vote($single, 'q1', 2)")" "SQL path, change"
expect cast "$(v "SELECT poll.cast_vote($multi, 'q2', ARRAY[1, 2])")" "SQL path, multi"
expect 2 "$(v "SELECT poll.cast_votes($single, ARRAY['q3', 'q4'], ARRAY[1, 2])")" "SQL path, bulk"
expect 2 "$(v "SELECT poll.cast_votes($single, ARRAY['q3', 'q5'], ARRAY[2, 2], ARRAY['us', NULL])")" "SQL path, bulk change"
expect t "$(v "SELECT poll.retract_vote($single, 'q4')")" "SQL path, retraction"
expect "cast changed retracted cast" "$(batch trap_voter "ARRAY[$single, $single, $single, $single],
	ARRAY['q6', 'q6', 'q3', 'q7'], ARRAY['1', '2', NULL, '3'], ARRAY['eu', NULL, NULL, 'us']")" "SQL path, batch"
sql postgres "DROP INDEX poll.trap_ballot_cast_at" >/dev/null
# and as a superuser
expect cast "$(probe postgres "SELECT poll.cast_vote($single, 'su1', 3)")" "superuser vote"
echo "ok: votes of each form and outcome, bulk votes, batches, retractions and errors, through both write paths"

# a manual fold, a wake-up of the worker (owner only: as superuser), a close (twice), webhooks
probe trap_admin "SELECT poll.fold()" >/dev/null
! exists 'poll._worker_wake()' || probe postgres "SELECT poll._worker_wake()" >/dev/null
probe trap_admin "SELECT poll.close_poll($fixed); SELECT poll.close_poll($fixed)" >/dev/null
probe_error trap_voter 55000 "SELECT poll.cast_vote($fixed, 'f2', 1)"
if exists 'poll.add_webhook(text,text,text[],bigint[])'; then
	w=$(probe trap_admin "SELECT poll.add_webhook('http://127.0.0.1:9/hook', 'secret', '{opened,closed,tally}', ARRAY[$single])")
	w2=$(probe trap_admin "SELECT poll.add_webhook('http://127.0.0.1:9/all', 'secret')")
	expect t "$(probe trap_admin "SELECT poll.remove_webhook($w2)")" "remove_webhook"
	expect f "$(probe trap_admin "SELECT poll.remove_webhook($w2)")" "remove_webhook again"
fi

# a poll the worker cannot fold (a constraint stands in for damage): its
# quarantine, and the fold of it alone, until the constraint goes
boom=$(probe trap_admin "SELECT poll.create_poll('boom', ARRAY['a', 'b'])")
sql postgres "ALTER TABLE poll.tally_segment ADD CONSTRAINT trap_no_boom CHECK (segment <> 'boom')" >/dev/null
probe trap_voter "SELECT poll.cast_vote($boom, 'x1', 1, 'boom')" >/dev/null

# the worker: folds, a quarantine, the clock's status changes, retention
failed_fold() { grep -aq 'violates check constraint "trap_no_boom"' "$LOG"; }
until_ok 10 failed_fold || fail "the worker did not try to fold poll $boom within 10 s"
twait 10 "SELECT NOT EXISTS (SELECT FROM poll.change WHERE poll_id <> $boom)" ||
	fail "the worker did not fold the other polls while poll $boom failed"
sql postgres "ALTER TABLE poll.tally_segment DROP CONSTRAINT trap_no_boom" >/dev/null
twait 15 "SELECT count(*) = 0 FROM poll.change" || fail "the worker did not fold everything within 15 s"
twait 15 "SELECT count(*) = 2 FROM poll.tally WHERE poll_id IN ($clock, $soon) AND status = 'closed'" ||
	fail "the worker did not record the clock's status changes within 15 s: $(sql postgres "SELECT poll_id, status FROM poll.tally")"
twait 15 "SELECT NOT EXISTS (SELECT FROM poll.rollup WHERE grain <> 'day' AND bucket < now() - interval '20 days')" ||
	fail "the worker's retention did not drop old rollups within 15 s"
echo "ok: the worker folded, failed on one poll and folded the others, then it, recorded status changes, applied retention"

# series and every view, as each role that may read it
for width in "'1 minute'" "'5 minutes'" "'1 hour'" "'1 day'" "'2 days'"; do
	probe trap_reader "SELECT * FROM poll.series($single, $width)" >/dev/null
done
probe trap_reader "SELECT * FROM poll.series($single, '15 minutes', '$(at -3600)', '$(at +60)')" >/dev/null
probe trap_admin "SELECT * FROM poll.series($multi)" >/dev/null
views=$(sql postgres "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_class c
	WHERE c.relnamespace = 'poll'::regnamespace AND c.relkind IN ('v', 'm')")
for view in $views; do
	for r in trap_reader trap_voter trap_admin postgres; do
		if [ "$(sql postgres "SELECT has_table_privilege('$r', 'poll.$view', 'SELECT')")" = t ]; then
			probe "$r" "SELECT * FROM poll.$view" >/dev/null
		fi
	done
done
echo "ok: series of several widths and every view (${views// /, })"

# ---- poll-fanout against this database ----
secret=trap-secret-$$
printf '%s' "$secret" >"$WORK/jwt.secret"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
jwt() {
	local h p
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	p=$(printf '%s' "$1" | b64url)
	printf '%s.%s.%s' "$h" "$p" "$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)"
}
token=$(jwt "{\"polls\":\"*\",\"vote\":\"*\",\"sub\":\"web1\",\"seg\":\"web\",\"admin\":true,\"exp\":$(($(date +%s) + 600))}")
auth=(-H "Authorization: Bearer $token")
flags=(--jwt-secret-file "$WORK/jwt.secret")
usage=$("$FANOUT" --help 2>&1 || true)
grep -q -- --webhooks <<<"$usage" && flags+=(--webhooks)
start_daemon --db "host=127.0.0.1 port=$TPORT dbname=$DB user=postgres" "${flags[@]}"
wait_healthy 20
code=$(curl -s -o "$WORK/snapshot.json" -w '%{http_code}' "${auth[@]}" "$(BASE)/polls/$single")
[ "$code" = 200 ] && grep -q '"type":"snapshot"' "$WORK/snapshot.json" ||
	fail "GET /polls/$single: HTTP $code $(cat "$WORK/snapshot.json")"
curl -s -N --max-time 60 "${auth[@]}" "$(BASE)/polls/$multi/events" >"$WORK/sse.out" 2>/dev/null &
PIDS+=($!)
until_ok 10 grep -q '"type":"snapshot"' "$WORK/sse.out" || fail "no snapshot on the SSE stream"
v "SELECT poll.cast_vote($multi, 'sse1', ARRAY[1, 2])" >/dev/null
until_ok 10 grep -q '"type":"tally"' "$WORK/sse.out" || fail "no tally on the SSE stream after a vote"
# --webhooks: a tally for webhook $w (to a closed port): what is due, begun, retried
if [ -n "${w:-}" ] && grep -q -- --webhooks <<<"$usage"; then
	v "SELECT poll.cast_vote($single, 'hook1', 3)" >/dev/null
	twait 15 "SELECT coalesce(max(attempts), 0) > 0 FROM poll.webhook_delivery WHERE webhook_id = $w" ||
		fail "poll-fanout --webhooks made no attempt for webhook $w"
fi
# the HTTP API, where this version of the daemon has it
api() {	# api METHOD PATH [BODY]: the status, noted unless 2xx
	local c
	c=$(curl -s -o "$WORK/api.out" -w '%{http_code}' -X "$1" "${auth[@]}" -H 'Content-Type: application/json' \
		${3:+--data "$3"} "$(BASE)$2")
	case "$c" in 2??) ;; *) echo "note: $1 $2: HTTP $c (not covered by this run)" ;; esac
}
api POST "/polls/$single/vote" '{"option":2}'
api GET "/polls/$single/vote"
api POST "/polls/$multi/vote" '{"options":[1,3]}'
api DELETE "/polls/$multi/vote"
api GET "/polls/$single/series?width=5m"
api GET "/polls/$single/segments"
api GET "/polls/$single/ballots.csv"
api POST /polls '{"title":"from the daemon","options":["x","y"]}'
api POST "/polls/$soon/close"
echo "ok: poll-fanout served a snapshot and a live tally ($(grep -c '^data:' "$WORK/sse.out") SSE messages)"

# ---- every function of schema poll ran, and none has a mutable search_path ----
unsafe=$(sql postgres "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
	JOIN pg_language l ON l.oid = p.prolang
	WHERE p.pronamespace = 'poll'::regnamespace AND l.lanname <> 'c'
	  AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c
					  WHERE c LIKE 'search\\_path=%'
						AND string_to_array(replace(substr(c, 13), ' ', ''), ',') <@ '{pg_catalog,pg_temp,poll}')")
problems=()	# reported with the traps that fired, at the end
[ -z "$unsafe" ] || problems+=("functions without a fixed search_path of pg_catalog, pg_temp (and poll): $unsafe")
stats_missing="SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
	LEFT JOIN pg_stat_user_functions s ON s.funcid = p.oid
	WHERE p.pronamespace = 'poll'::regnamespace AND coalesce(s.calls, 0) = 0"
twait 10 "SELECT ($stats_missing) IS NULL" ||
	problems+=("functions of schema poll that this test never ran under the traps (add them): $(sql postgres "$stats_missing")")
[ ${#problems[@]} -gt 0 ] ||
	echo "ok: every function of schema poll ran ($(sql postgres "SELECT count(*) FROM pg_proc WHERE pronamespace = 'poll'::regnamespace")), each non-C one with a fixed search_path"

# ---- the verdict: no trap fired but the sanity checks' ----
stop_daemon
holes=$(fired | grep -v 'application_name "trap_control_' || true)
if [ -n "$holes" ]; then
	echo "TRAPS FIRED: each trap, how often, the first process and statement that reached it" >&2
	awk '
		/TRAP FIRED: / {
			flush(); cur = ""
			if ($0 ~ /application_name "trap_control_/) next
			msg = $0; sub(/.*TRAP FIRED: /, "", msg); sub(/ \(current_user.*/, "", msg)
			who = $0; sub(/ WARNING: .*/, "", who); sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", who)
			user = $0; sub(/.*\(current_user /, "", user); sub(/,.*/, "", user)
			if (!(msg in n)) { order[++k] = msg; from[msg] = who " as " user; cur = msg }
			n[msg]++
			next
		}
		# the statements that reached the trap (not the frames of the trap
		# itself), innermost first, each on one line
		cur != "" && /(CONTEXT|STATEMENT): / { flush() }
		cur != "" && /(CONTEXT|STATEMENT): |^\t/ {
			line = $0; sub(/.*(CONTEXT|STATEMENT): +/, "", line)
			if (line ~ /^\t(SQL statement|PL\/pgSQL|SQL function)/ || frame == "") {
				flush(); frame = line
			} else
				frame = frame " " line
			next
		}
		{ flush(); cur = "" }
		function flush() {
			if (cur == "" || frame == "" || frame ~ /_trap_|function (trap|public)\./) { frame = ""; return }
			gsub(/[ \t]+/, " ", frame); sub(/^ /, "", frame)
			if (length(frame) > 300) frame = substr(frame, 1, 300) "..."
			ctx[cur] = ctx[cur] "\n      " frame; frame = ""
		}
		END {
			flush()
			for (i = 1; i <= k; i++)
				printf "  %s  x%d\n    first in %s%s\n", order[i], n[order[i]], from[order[i]], ctx[order[i]]
		}
	' "$LOG" >&2
	problems+=("$(grep -c . <<<"$holes") trap firings: poll's code reached objects in user-writable schemas")
else
	echo "ok: no trap fired ($(fired | wc -l) firings, all from the sanity checks)"
fi
[ ${#problems[@]} = 0 ] || fail "$(printf '%s\n' "${problems[@]}")"

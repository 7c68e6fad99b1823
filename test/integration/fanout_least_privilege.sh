#!/usr/bin/env bash
# fanout_least_privilege: poll-fanout runs as the role of
# deploy/poll_fanout_role.sql (LOGIN REPLICATION, poll_reader, poll_voter,
# SELECT on poll.poll, poll.option and poll.tally), not as a superuser:
# both its connections use it, snapshots, the stream and subscriptions over
# WebSocket and SSE work, clients converge to poll.results, and votes
# through the daemon are committed and looked up.  The role
# is no superuser, holds exactly those table privileges, cannot read
# poll.ballot or poll.ballots, write any table or become poll_admin.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

psql_q -f "$POLL_ROOT/deploy/poll_fanout_role.sql" >/dev/null || fail "deploy/poll_fanout_role.sql failed"
psql_q -f "$POLL_ROOT/deploy/poll_fanout_role.sql" >/dev/null || fail "deploy/poll_fanout_role.sql failed when run again"
as_fanout() {	# SQL as poll_fanout; prints the error's SQLSTATE on failure
	PGUSER=poll_fanout psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -c "$1" 2>&1
}

# ---- what the role is, and what it is not ----
[ "$(psql_q -c "SELECT rolsuper::text || rolreplication || rolcanlogin || rolcreatedb || rolcreaterole || rolbypassrls
                FROM pg_roles WHERE rolname = 'poll_fanout'")" = "falsetruetruefalsefalsefalse" ] ||
	fail "poll_fanout's attributes: $(psql_q -c "SELECT * FROM pg_roles WHERE rolname = 'poll_fanout'")"
# table privileges, direct or through its roles: SELECT on the snapshot's tables, the views of poll_reader
got=$(psql_q -c "SELECT string_agg(c.relname || ':' || p.priv, ' ' ORDER BY c.relname, p.priv)
                 FROM pg_class c, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(priv)
                 WHERE c.relnamespace = 'poll'::regnamespace AND c.relkind IN ('r', 'v', 'p')
                   AND has_table_privilege('poll_fanout', c.oid, p.priv)")
want=$(psql_q -c "SELECT string_agg(c.relname || ':SELECT', ' ' ORDER BY c.relname)
                  FROM pg_class c WHERE c.relnamespace = 'poll'::regnamespace
                   AND (c.relname IN ('poll', 'option', 'tally') OR has_table_privilege('poll_reader', c.oid, 'SELECT'))")
[ "$got" = "$want" ] || fail "poll_fanout's privileges on poll's tables and views:
  has:  $got
  want: $want"
echo "poll_fanout holds: $got"
for sql in "SELECT count(*) FROM poll.ballots" "SELECT count(*) FROM poll.ballot" \
	"INSERT INTO poll.change (poll_id, option_id, votes, ballots, at) VALUES (1, 1, 1, 1, now())" \
	"UPDATE poll.tally SET ballots = 0" "DELETE FROM poll.option" "UPDATE poll.poll SET title = 'x'" \
	"SET ROLE poll_admin" "SELECT poll.close_poll(1)" "CREATE TABLE poll.mine ()"; do
	out=$(as_fanout "$sql") && fail "poll_fanout could: $sql"
	grep -q "ERROR:  42501$" <<<"$out" || fail "poll_fanout: $sql failed otherwise than with 42501: $out"
done
echo "ok: poll_fanout cannot read ballots, write tables, close polls or become poll_admin"
# what it may: vote for the voters its tokens name (one by one, and in batches as
# the daemon's group commit does), read the BI views and series
pv=$(psql_q -c "SELECT poll.create_poll('Voted by the daemon''s role', ARRAY['a', 'b'])")
[ "$(as_fanout "SELECT poll.cast_vote($pv, 'tok-1', 2)")" = cast ] || fail "poll_fanout cannot cast a vote"
[ "$(as_fanout "SELECT poll.ballot_of($pv, 'tok-1')")" = "{2}" ] || fail "poll_fanout cannot read a ballot it cast"
[ "$(as_fanout "SELECT poll.retract_vote($pv, 'tok-1')")" = t ] || fail "poll_fanout cannot retract a vote"
out=$(as_fanout "SELECT string_agg(result, ',' ORDER BY ord)
                 FROM poll.cast_vote_batch(ARRAY[$pv, $pv, $pv], ARRAY['tok-2', 'tok-3', 'tok-2'], ARRAY['1', '2', NULL])")
[ "$out" = "cast,cast,retracted" ] || fail "poll_fanout's group commit (poll.cast_vote_batch): $out"
[ "$(as_fanout "SELECT count(*) FROM poll.series($pv)")" -ge 2 ] || fail "poll_fanout cannot read poll.series"
[ "$(as_fanout "SELECT ballots FROM poll.poll_summary WHERE poll_id = $pv")" = 1 ] || fail "poll_fanout cannot read poll_summary"

# ---- the daemon as poll_fanout ----
p1=$(new_poll 'Least privilege' A B C)
p2=$(new_poll 'Least privilege too' X Y)
printf 'lp-voters-%s\n' "$(date +%s%N)" >"$WORK/voters"
start_daemon --db "user=poll_fanout" --anonymous-votes --voter-secret-file "$WORK/voters"
wait_healthy
wait_votes_ready
users=$(psql_q -c "SELECT string_agg(DISTINCT usename || ':' || backend_type, ' ')
                   FROM pg_stat_activity WHERE application_name = 'poll-fanout'")
[ "$users" = "poll_fanout:client backend poll_fanout:walsender" ] ||
	fail "the daemon's connections are not both poll_fanout's: $users"
slot=$(psql_q -c "SELECT temporary FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
                  WHERE a.usename = 'poll_fanout' AND s.slot_name LIKE 'poll\_fanout\_%'")
[ "$slot" = t ] || fail "no temporary slot of poll_fanout's"
snap=$(curl -s "$(BASE)/polls/$p1")
grep -q '"type":"snapshot"' <<<"$snap" && grep -q '"label":"C"' <<<"$snap" || fail "snapshot as poll_fanout: $snap"
[ "$(http_code "$(BASE)/polls/999999999")" = 404 ] || fail "an unknown poll is not 404 as poll_fanout"

client_start ws ws "$p1,$p2"
client_start sse sse "$p1,$p2"
wait_client_matches ws "$p1,$p2" 15
cast_votes_session lp1 "$p1" 200 3 0.01 & v1=$!
cast_votes_session lp2 "$p2" 200 2 0.01 & v2=$!
wait $v1 $v2 || fail "casting votes failed"
psql_q -c "SELECT poll.fold()" >/dev/null
wait_client_matches ws "$p1,$p2" 15
wait_client_matches sse "$p1,$p2" 15
client_clean ws
client_clean sse
# votes through the daemon as poll_fanout: group commit and the ballot lookup
tok=$(curl -s -X POST "$(BASE)/voters" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$tok" ] || fail "POST /voters as poll_fanout"
got=$(curl -s -X POST -H "Authorization: Bearer $tok" -d '{"option":2}' "$(BASE)/polls/$p1/vote")
[[ "$got" == *'"type":"voted"'*'"result":"cast"'* ]] || fail "a vote through the daemon as poll_fanout: $got"
got=$(curl -s -H "Authorization: Bearer $tok" "$(BASE)/polls/$p1/vote")
[ "$got" = "{\"type\":\"ballot\",\"poll\":$p1,\"options\":[2]}" ] || fail "the ballot through the daemon as poll_fanout: $got"
grep -iE 'permission denied|must be superuser' "$DAEMON_LOG" && fail "the daemon logged a privilege error"
echo "ok: poll-fanout serves snapshots, the stream and subscriptions as poll_fanout"

# the role is the test's own: gone with its grants, for the tests after this one
stop_daemon
psql_q -c "DROP OWNED BY poll_fanout" -c "DROP ROLE poll_fanout" || fail "poll_fanout could not be dropped"

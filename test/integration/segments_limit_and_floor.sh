#!/usr/bin/env bash
# Segments (SPEC "Functions", "Views", "Settings"):
# - poll.max_segments: a vote that would add one segment more than the limit
#   is refused with 54000 (single, multi and bulk votes, and changes; a bulk
#   call fails whole, its detail naming the element), segments the poll holds
#   still take votes, ballots without a segment are no segment; only a
#   superuser may set it.
# - poll.segment_min_ballots: poll_reader sees a segment with fewer ballots
#   (ballots, not votes; pending and folded) under segment NULL, summed with
#   the unsegmented ballots; poll_admin sees every segment; the default shows
#   every segment; no reader can lower it for a session.
. "$(dirname "$0")/../sql_clients/lib.sh"

roles="t_seg_voter t_seg_reader t_seg_admin"
cleanup() {
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segment_holder'" >/dev/null
	q "ALTER SYSTEM RESET poll.segment_min_ballots" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	for r in $roles; do q "DROP ROLE IF EXISTS $r"; done
}
trap cleanup EXIT
cleanup
q "CREATE ROLE t_seg_voter LOGIN IN ROLE poll_voter; CREATE ROLE t_seg_reader LOGIN IN ROLE poll_reader; CREATE ROLE t_seg_admin LOGIN IN ROLE poll_admin"

# ---- poll.max_segments ----
[ "$(q "SHOW poll.max_segments")" = 1000 ] || fail "poll.max_segments is not 1000 by default"
limit="SET poll.max_segments = 3; SET ROLE t_seg_voter"
vote() {	# SQL: as poll_voter, with at most 3 segments a poll
	q "$limit; $1"
}
refused() {	# WHAT SQL [DETAIL]: as vote, refused with 54000 (and that detail)
	local err
	err=$(sql_error "$limit; $2")
	grep -q 'ERROR:  54000:' <<<"$err" || fail "$1: expected 54000, got: $err"
	[ -z "${3:-}" ] || grep -q "DETAIL: .*$3" <<<"$err" || fail "$1: the detail does not name $3: $err"
}
s=$(q "SELECT poll.create_poll('Segments', ARRAY['a', 'b', 'c'])")
for i in 1 2 3; do
	[ "$(vote "SELECT poll.cast_vote($s, 'v$i', 1, 's$i')")" = cast ] || fail "segment s$i of 3 was refused"
done
refused "a fourth segment" "SELECT poll.cast_vote($s, 'v4', 1, 's4')"
refused "a change into a fourth segment" "SELECT poll.cast_vote($s, 'v1', 1, 's4')"
[ "$(vote "SELECT poll.cast_vote($s, 'v5', 2, 's2')")" = cast ] || fail "a held segment refused a vote"
[ "$(vote "SELECT poll.cast_vote($s, 'v1', 3, 's1')")" = changed ] || fail "a change within a held segment was refused"
[ "$(vote "SELECT poll.cast_vote($s, 'v6', 2)")" = cast ] || fail "a ballot without a segment was refused at the limit"

m=$(q "SELECT poll.create_poll('Segments multi', ARRAY['a', 'b', 'c'], 'multi')")
for i in 1 2 3; do
	[ "$(vote "SELECT poll.cast_vote($m, 'm$i', ARRAY[$i, $i % 3 + 1], 'x$i')")" = cast ] || fail "multi: segment x$i of 3 was refused"
done
refused "multi: a fourth segment" "SELECT poll.cast_vote($m, 'm4', ARRAY[2, 3], 'x4')"
[ "$(vote "SELECT poll.cast_vote($m, 'm5', ARRAY[2, 3], 'x3')")" = cast ] || fail "multi: a held segment refused a vote"

b=$(q "SELECT poll.create_poll('Segments bulk', ARRAY['a', 'b'])")
[ "$(vote "SELECT poll.cast_votes($b, ARRAY['w1', 'w2'], ARRAY[1, 1], ARRAY['b1', 'b2'])")" = 2 ] || fail "bulk: two segments refused"
refused "bulk: two new segments where one is left" \
	"SELECT poll.cast_votes($b, ARRAY['n1', 'n2', 'n3', 'n4'], ARRAY[1, 2, 1, 2], ARRAY['b1', 'b3', NULL, 'b4'])" "element 4"
[ "$(q "SELECT count(*) FROM poll.ballot WHERE poll_id = $b")" = 2 ] || fail "bulk: a refused call wrote ballots"
[ "$(vote "SELECT poll.cast_votes($b, ARRAY['n1', 'n2', 'n3'], ARRAY[1, 2, 1], ARRAY['b1', 'b3', NULL])")" = 3 ] ||
	fail "bulk: the third segment was refused"
refused "bulk: a change into a new segment" \
	"SELECT poll.cast_votes($b, ARRAY['n5', 'w1'], ARRAY[1, 2], ARRAY['b2', 'b9'])" "element 2"
[ "$(q "SELECT count(*) FROM poll.ballot WHERE poll_id = $b")" = 5 ] || fail "bulk: a refused change wrote ballots"
[ "$(q "SELECT string_agg(DISTINCT segment, ',') FROM poll.ballot WHERE poll_id IN ($s, $m, $b)")" = b1,b2,b3,s1,s2,s3,x1,x2,x3 ] ||
	fail "segments beyond the limit were written"

[ "$(PGUSER=t_seg_voter sqlstate "SET poll.max_segments = 100000")" = 42501 ] || fail "poll_voter could set poll.max_segments"
[ "$(PGUSER=t_seg_voter sqlstate "SET poll.segment_min_ballots = 1")" = 42501 ] || fail "poll_voter could set poll.segment_min_ballots"

# ---- poll.segment_min_ballots ----
r=$(q "SELECT poll.create_poll('Floor', ARRAY['a', 'b', 'c'], 'multi')")
# folded: trio 2 ballots of 3 options (6 votes), mixed 2, tiny 1, and 1 without a segment
q "SELECT poll.cast_vote($r, 'trio' || i, ARRAY[1, 2, 3], 'trio') FROM generate_series(1, 2) i;
   SELECT poll.cast_vote($r, 'mixed' || i, ARRAY[1], 'mixed') FROM generate_series(1, 2) i;
   SELECT poll.cast_vote($r, 'tiny', ARRAY[2], 'tiny');
   SELECT poll.cast_vote($r, 'none', ARRAY[3])" >/dev/null
wait_for 10 "SELECT ballots = 6 FROM poll.tally WHERE poll_id = $r" || fail "the floor poll was not folded"
# pending, while a session holds the poll's tally row: big 3 ballots, mixed 1 more
PGAPPNAME=segment_holder psql -X -q -c "BEGIN" -c "SELECT FROM poll.tally WHERE poll_id = $r FOR UPDATE" \
	-c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
wait_for 10 "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'segment_holder' AND query LIKE '%pg_sleep%')" ||
	fail "the tally row holder did not start"
q "SELECT poll.cast_vote($r, 'big1', ARRAY[1], 'big'), poll.cast_vote($r, 'big2', ARRAY[2], 'big'),
          poll.cast_vote($r, 'big3', ARRAY[1, 2], 'big'), poll.cast_vote($r, 'mixed3', ARRAY[2], 'mixed')" >/dev/null
sleep 0.3
[ "$(q "SELECT sum(ballots) FROM poll.change WHERE poll_id = $r")" = 4 ] || fail "the floor poll's new ballots are not pending"

by_segment="SELECT string_agg(concat_ws(':', coalesce(segment, '-'), option_id, votes), ' ' ORDER BY segment NULLS LAST, option_id) FROM poll.results_by_segment WHERE poll_id = $r"
apart="big:1:2 big:2:2 mixed:1:2 mixed:2:1 tiny:2:1 trio:1:2 trio:2:2 trio:3:2 -:3:1"
[ "$(PGUSER=t_seg_reader q "$by_segment")" = "$apart" ] || fail "with the default floor, poll_reader sees: $(PGUSER=t_seg_reader q "$by_segment")"

q "ALTER SYSTEM SET poll.segment_min_ballots = 3" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_for 5 "SELECT current_setting('poll.segment_min_ballots') = '3'" || fail "the floor was not reloaded"
# big (3 pending) and mixed (2 folded + 1 pending) reach the floor; trio (2 ballots, 6 votes) and tiny do not
floored="big:1:2 big:2:2 mixed:1:2 mixed:2:1 -:1:2 -:2:3 -:3:3"
got=$(PGUSER=t_seg_reader q "$by_segment")
[ "$got" = "$floored" ] || fail "with the floor at 3, poll_reader sees: $got (expected $floored)"
# a fresh reader session that tries to lower the floor first still gets it
got=$(PGUSER=t_seg_reader psql -X -qAt -c "SET poll.segment_min_ballots = 1" -c "$by_segment" 2>/dev/null)
[ "$got" = "$floored" ] || fail "poll_reader lowered the floor for its session: $got"
[ "$(PGUSER=t_seg_reader sqlstate "SET poll.segment_min_ballots = 1")" = 42501 ] || fail "poll_reader could set poll.segment_min_ballots"
got=$(PGUSER=t_seg_admin q "$by_segment")
[ "$got" = "$apart" ] || fail "poll_admin does not see every segment apart: $got"

q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segment_holder'" >/dev/null
check_invariants
echo "segments: the limit holds for every kind of vote; the floor hides small segments from readers alone"

#!/usr/bin/env bash
# standby_bi: a streaming standby made with pg_basebackup serves the BI views
# read-only — poll.results (exact, pending changes included), poll.series,
# poll.results_by_segment (as poll_admin and as poll_reader) and
# poll.poll_summary — with the primary's answers once it has replayed.  On
# the standby the launcher and the fold worker do not run (poll.worker_status
# has no row) and log no error; a vote there is refused as read-only.  After
# pg_ctl promote the worker starts, folds the changes the primary left
# pending, and goes on folding while votes, changes and retractions arrive:
# the invariants hold (test/invariants.sql).
. "$(dirname "$0")/../lib/common.sh"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
standby="$POLL_WORK/standby_bi"
rm -rf "$standby"
mkdir -p "$standby"
[ "$(id -u)" = 0 ] && chown postgres: "$standby"
# a free port for the standby
sport=
for p in $(shuf -i 20000-29999 -n 50); do
	ss -Hltn "sport = :$p" | grep -q . || { sport=$p; break; }
done
[ -n "$sport" ] || fail "no free port for the standby"
qs() { PGPORT=$sport q "$1"; }

cleanup() {
	local rc=$?
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'standby_bi_holder'" >/dev/null 2>&1 || true
	"$POLL_ROOT/scripts/cluster.sh" stop "$standby" >/dev/null 2>&1 || true
	exit $rc
}
trap cleanup EXIT

# ---- on the primary: polls, segmented and multi ballots, one poll held pending ----
p1=$(q "SELECT poll.create_poll('Standby single', ARRAY['a', 'b', 'c'], opens_at => now() - interval '3 hours')")
p2=$(q "SELECT poll.create_poll('Standby multi', ARRAY['x', 'y', 'z'], 'multi', 2)")
p3=$(q "SELECT poll.create_poll('Standby held', ARRAY['u', 'v'])")
q "SELECT poll.cast_votes($p1, array_agg('s' || i), array_agg(1 + i % 3), array_agg(CASE WHEN i % 4 = 0 THEN NULL ELSE 'seg' || i % 3 END))
     FROM generate_series(1, 300) i" >/dev/null
q "SELECT poll.cast_vote($p1, 'lonely', 2, 'tiny')" >/dev/null
q "SELECT poll.cast_vote($p2, 'm' || i, ARRAY[1 + i % 3, 1 + (i + 1) % 3]) FROM generate_series(1, 40) i" >/dev/null
q "SELECT poll.retract_vote($p1, 's7')" >/dev/null
q "SELECT poll.cast_votes($p3, ARRAY['h1', 'h2', 'h3'], ARRAY[1, 2, 2])" >/dev/null
wait_for 10 "SELECT count(*) = 0 FROM poll.change WHERE poll_id IN ($p1, $p2, $p3)" || fail "the primary's worker did not fold"

# the holder keeps poll 3's tally row locked: its next votes stay pending
PGAPPNAME=standby_bi_holder psql -X -q -v ON_ERROR_STOP=1 -c "BEGIN" \
	-c "SELECT FROM poll.tally WHERE poll_id = $p3 FOR UPDATE" -c "SELECT pg_sleep(120)" -c "COMMIT" \
	>"$POLL_WORK/standby_bi_holder.out" 2>&1 &
wait_for 10 "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'standby_bi_holder' AND query LIKE '%pg_sleep%')" ||
	fail "the holder did not start: $(cat "$POLL_WORK/standby_bi_holder.out")"
q "SELECT poll.cast_votes($p3, ARRAY['h4', 'h5', 'h6', 'h7'], ARRAY[1, 1, 1, 2])" >/dev/null
q "SELECT poll.cast_vote($p3, 'h2', 1)" >/dev/null
sleep 0.3
[ "$(q "SELECT count(*) > 0 FROM poll.change WHERE poll_id = $p3")" = t ] || fail "poll $p3's votes are not pending on the primary"

# ---- the standby ----
as_pg "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$standby/data" -R -X stream -c fast ||
	fail "pg_basebackup failed"
echo "port = $sport" | as_pg tee -a "$standby/data/postgresql.conf" >/dev/null
"$POLL_ROOT/scripts/cluster.sh" start "$standby" "$sport" || { cat "$standby/postgres.log" >&2; fail "the standby did not start"; }
[ "$(qs "SELECT pg_is_in_recovery()")" = t ] || fail "the standby is not in recovery"

# a last change on the primary, then wait until the standby has replayed it
q "SELECT poll.cast_vote($p1, 'late', 3, 'seg1')" >/dev/null
wait_for 10 "SELECT count(*) = 0 FROM poll.change WHERE poll_id = $p1" || fail "the primary did not fold the late vote"
lsn=$(q "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 100); do
	[ "$(qs "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
	sleep 0.1
done
[ "$(qs "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] || fail "the standby did not replay up to $lsn within 10 s"

# ---- the BI views: the standby answers as the primary does ----
until=$(q "SELECT now()")
same() {	# NAME SQL: the same rows on the primary and on the standby, and some
	local a b
	a=$(q "$2") || fail "$1 on the primary"
	b=$(qs "$2") || fail "$1 on the standby"
	[ -n "$a" ] || fail "$1: no rows on the primary; the comparison proves nothing"
	[ "$a" = "$b" ] || fail "$1 differs on the standby:
primary:
$a
standby:
$b"
	echo "same on the standby: $1 ($(wc -l <<<"$a") rows)"
}
polls="$p1, $p2, $p3"
same "poll.results" "SELECT * FROM poll.results WHERE poll_id IN ($polls) ORDER BY 1, 2"
same "poll.poll_summary" "SELECT * FROM poll.poll_summary WHERE poll_id IN ($polls) ORDER BY 1"
same "poll.series" "SELECT $p1, * FROM poll.series($p1, '1 hour', until => '$until') UNION ALL
                    SELECT $p2, * FROM poll.series($p2, '1 minute', until => '$until') ORDER BY 1, 2, 3"
same "poll.results_by_segment" "SELECT * FROM poll.results_by_segment WHERE poll_id IN ($polls) ORDER BY 1, 2 NULLS FIRST, 3"
same "poll.results_by_segment as poll_reader, floor 2" \
	"SET poll.segment_min_ballots = 2; SET ROLE poll_reader;
	 SELECT * FROM poll.results_by_segment WHERE poll_id IN ($polls) ORDER BY 1, 2 NULLS FIRST, 3"
same "poll.results as poll_reader" "SET ROLE poll_reader; SELECT * FROM poll.results WHERE poll_id IN ($polls) ORDER BY 1, 2"

# exact on the standby: poll 3's pending changes count, as its ballots say
[ "$(qs "SELECT count(*) > 0 FROM poll.change WHERE poll_id = $p3")" = t ] || fail "poll $p3 has no pending change on the standby"
[ "$(qs "SELECT string_agg(votes::text, ',' ORDER BY option_id) FROM poll.results WHERE poll_id = $p3")" = "5,2" ] ||
	fail "poll.results on the standby is not exact for the pending votes: $(qs "SELECT * FROM poll.results WHERE poll_id = $p3")"
[ "$(qs "SELECT ballots FROM poll.tally WHERE poll_id = $p3")" = 3 ] || fail "poll $p3's tally should still be unfolded on the standby"

# read-only, and no worker: nothing runs, nothing fails; every vote path
# refuses before it writes (25006), as in any read-only transaction
for call in "poll.cast_vote($p1, 'on-standby', 1)" "poll.retract_vote($p1, 'on-standby')" \
	"poll.cast_votes($p1, ARRAY['on-standby'], ARRAY[1])" \
	"poll.cast_vote_batch(ARRAY[$p1]::bigint[], ARRAY['on-standby'], ARRAY['1'])"; do
	out=$(qs "SELECT $call" 2>&1) && fail "$call on the standby succeeded"
	grep -qE "cannot execute poll\.[a-z_]+\(\) in a read-only transaction" <<<"$out" ||
		fail "$call on the standby failed otherwise than read-only: $out"
done
sleep 2
[ "$(qs "SELECT count(*) FROM poll.worker_status")" = 0 ] || fail "poll.worker_status shows a worker on the standby: $(qs "SELECT * FROM poll.worker_status")"
[ "$(qs "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('poll launcher', 'poll fold worker')")" = 0 ] ||
	fail "the launcher or the worker runs on the standby"
errors() { grep -E '(ERROR|FATAL|PANIC):' "$standby/postgres.log" | grep -vE 'cannot execute poll\.[a-z_]+\(\) in a read-only transaction|terminating walreceiver process due to administrator command' || true; }
[ -z "$(errors)" ] || fail "the standby logged errors:
$(errors)"
echo "ok: the standby answers the BI views read-only, without a worker"

# ---- promotion: the worker takes over ----
as_pg "$PGBIN/pg_ctl" -D "$standby/data" promote -w -t 30 >/dev/null || fail "pg_ctl promote failed"
[ "$(qs "SELECT pg_is_in_recovery()")" = f ] || fail "the promoted server is still in recovery"
PGPORT=$sport wait_for 15 "SELECT count(*) = 1 FROM poll.worker_status WHERE database = 'postgres'" ||
	fail "no fold worker on the promoted server within 15 s"
PGPORT=$sport wait_for 10 "SELECT count(*) = 0 FROM poll.change WHERE poll_id = $p3" ||
	fail "the promoted server's worker did not fold poll $p3's pending changes"
[ "$(qs "SELECT ballots || ' ' || votes::text FROM poll.tally WHERE poll_id = $p3")" = "7 {5,2}" ] ||
	fail "poll $p3's tally after the takeover: $(qs "SELECT ballots, votes FROM poll.tally WHERE poll_id = $p3")"
echo "promoted: worker pid $(qs "SELECT pid FROM poll.worker_status"), poll $p3's pending votes folded"

# votes keep coming on the promoted server: casts, changes, retractions, bulk
for round in 1 2 3; do
	qs "SELECT poll.cast_vote($p1, 'pr' || i, 1 + (i + $round) % 3, 'seg' || i % 2) FROM generate_series(1, 60) i" >/dev/null
	qs "SELECT poll.retract_vote($p1, 's' || i) FROM generate_series($round * 10, $round * 10 + 9) i" >/dev/null
	qs "SELECT poll.cast_vote($p2, 'pm' || i, ARRAY[1 + (i + $round) % 3]) FROM generate_series(1, 30) i" >/dev/null
	qs "SELECT poll.cast_votes($p3, array_agg('pb$round-' || i), array_agg(1 + i % 2)) FROM generate_series(1, 100) i" >/dev/null
done
PGPORT=$sport check_invariants
PGPORT=$sport wait_for 5 "SELECT folds > 0 AND pending = 0 FROM poll.worker_status" ||
	fail "poll.worker_status on the promoted server: $(qs "SELECT * FROM poll.worker_status")"
[ -z "$(errors)" ] || fail "the standby or the promoted server logged errors:
$(errors)"
echo "ok: after promotion the worker folds and the invariants hold"

#!/usr/bin/env bash
# Without shared_preload_libraries everything but the worker works (SPEC
# "Settings"): on a cluster of its own that does not preload poll,
# CREATE EXTENSION, LOAD and every function succeed in fresh sessions,
# poll.results is exact with the changes still pending, nothing folds by
# itself, poll.fold() folds by hand, every view answers, worker_status has
# no row, and the server logs no FATAL or PANIC.  (1.0 defined a
# PGC_POSTMASTER setting in _PG_init: FATAL in the backend that loaded it.)
#
# The shared cluster is stopped for the duration: this one takes its port.
. "$(dirname "$0")/../lib/common.sh"

dir="$POLL_WORK/no-preload"
cluster() { "$POLL_ROOT/scripts/cluster.sh" "$@"; }
finish() {
	cluster stop "$dir" >/dev/null 2>&1 || true
	if [ -f "$POLL_CLUSTER_DIR/data/PG_VERSION" ]; then cluster start "$POLL_CLUSTER_DIR" "$PGPORT" >/dev/null 2>&1 || true; fi
}
trap finish EXIT
cluster stop "$POLL_CLUSTER_DIR"
rm -rf "$dir"
# cluster.sh writes shared_preload_libraries = 'poll'; the later line wins
cluster start "$dir" "$PGPORT" "shared_preload_libraries=''"
[ -z "$(q "SHOW shared_preload_libraries")" ] || fail "the cluster preloads $(q "SHOW shared_preload_libraries")"

q "CREATE EXTENSION poll" >/dev/null
[ "$(psql -X -qAt -v ON_ERROR_STOP=1 -c "LOAD 'poll'" -c "SHOW poll.database")" = postgres ] ||
	fail "poll.database is not defined after LOAD"

# every function, each in a fresh session (each loads the library)
s=$(q "SELECT poll.create_poll('Single', ARRAY['a', 'b', 'c'])")
m=$(q "SELECT poll.create_poll('Multi', ARRAY['x', 'y', 'z'], kind => 'multi', max_choices => 2)")
[ "$(q "SELECT poll.cast_vote($s, 'ann', 1, 'north')")" = cast ] || fail "cast_vote (single) did not cast"
[ "$(q "SELECT poll.cast_vote($s, 'ann', 2, 'north')")" = changed ] || fail "cast_vote (single) did not change"
[ "$(q "SELECT poll.cast_vote($m, 'ann', ARRAY[1, 3])")" = cast ] || fail "cast_vote (multi) did not cast"
[ "$(q "SELECT poll.cast_vote($m, 'bob', 2)")" = cast ] || fail "cast_vote of one option on a multi poll did not cast"
[ "$(q "SELECT poll.cast_votes($s, ARRAY['v1', 'v2', 'v3', 'v4', 'v5'], ARRAY[1, 1, 3, 3, 3],
								  ARRAY['north', NULL, 'south', 'south', NULL])")" = 5 ] || fail "cast_votes did not cast 5"
[ "$(q "SELECT poll.retract_vote($s, 'v5')")" = t ] || fail "retract_vote found no ballot"
[ "$(q "SELECT poll.retract_vote($s, 'nobody')")" = f ] || fail "retract_vote of no ballot was not false"
q "SELECT poll.close_poll($m)" >/dev/null
err=$(q "SELECT poll.cast_vote($m, 'late', 1)" 2>&1 || true)
grep -q 'closed' <<<"$err" || fail "a vote on a closed poll was not refused: $err"

# exact with the changes pending: no worker folds them
sleep 1
[ "$(q "SELECT count(*) > 0 FROM poll.change")" = t ] || fail "changes were folded without a worker"
[ "$(q "SELECT sum(ballots) FROM poll.tally")" = 0 ] || fail "a tally was folded without a worker"
[ "$(q "SELECT string_agg(votes::text, ',' ORDER BY poll_id, option_id) FROM poll.results")" = "2,1,2,1,1,1" ] ||
	fail "results with pending changes: $(q "SELECT poll_id, option_id, votes FROM poll.results ORDER BY 1, 2")"
[ "$(q "SELECT count(*) FROM poll.worker_status")" = 0 ] || fail "worker_status has a row without a worker"

# every view answers, before and after the fold
views=$(q "SELECT string_agg(format('%I.%I', schemaname, viewname), ' ') FROM pg_views WHERE schemaname = 'poll'")
[ "$(wc -w <<<"$views")" -ge 8 ] || fail "only these views: $views"
for v in $views; do q "SELECT count(*) FROM $v" >/dev/null || fail "SELECT from $v failed"; done

# poll.fold() by hand folds every pending change, and the invariants hold
n=$(q "SELECT count(*) FROM poll.change")
[ "$(q "SELECT poll.fold()")" = "$n" ] || fail "poll.fold() did not report the $n pending changes"
[ "$(q "SELECT count(*) FROM poll.change")" = 0 ] || fail "poll.fold() left changes pending"
[ "$(q "SELECT array_to_string(votes, ',') FROM poll.tally WHERE poll_id = $s")" = "2,1,2" ] ||
	fail "tally after poll.fold(): $(q "SELECT votes FROM poll.tally WHERE poll_id = $s")"
for v in $views; do q "SELECT count(*) FROM $v" >/dev/null || fail "SELECT from $v failed after the fold"; done
[ "$(q "SELECT count(*) FROM poll.worker_status")" = 0 ] || fail "worker_status has a row without a worker"
check_invariants

# series, from the rollups poll.fold() wrote
[ "$(q "SELECT string_agg(cumulative::text, ',' ORDER BY option_id) FROM poll.series($s, '1 hour')
		 WHERE bucket = date_bin('1 hour', now(), '2000-01-01+00')")" = "2,1,2" ] ||
	fail "series: $(q "SELECT * FROM poll.series($s, '1 hour')")"
[ "$(q "SELECT count(*) FROM poll.series($m) WHERE option_id = 2 AND votes = 1")" = 1 ] ||
	fail "series of the multi poll: $(q "SELECT * FROM poll.series($m)")"

# an error in a poll function leaves the session usable, without the preload too
[ "$(psql -X -qAt -c "SELECT poll.cast_vote($m, 'late', 1)" -c "SELECT 'usable'" 2>/dev/null)" = usable ] ||
	fail "the session was not usable after an error"

log=$(grep -E 'FATAL|PANIC' "$dir/postgres.log" || true)
[ -z "$log" ] || fail "the server logged:
$log"
echo "without the preload: every function and view works, results exact while pending, poll.fold() folds, no FATAL"

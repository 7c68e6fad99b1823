#!/usr/bin/env bash
# poll.segment_min_ballots and poll.max_segments bind every non-superuser
# even where poll is not preloaded (SPEC "Settings"): there a session can SET
# poll.* before the library is loaded, as a placeholder; once a poll function
# loads it, the configured superuser-only values must hold, not the
# session's.  On a cluster of its own (shared cluster stopped meanwhile, its
# port reused) without shared_preload_libraries, floor 3 and 2 segments in
# postgresql.conf: a fresh poll_reader session that first sets the floor to 1
# still sees small segments merged, and a fresh poll_voter session that first
# raises the limit still gets 54000 for a third segment.
. "$(dirname "$0")/../sql_clients/lib.sh"

dir="$POLL_WORK/settings-no-preload"
restore_shared_cluster() {
	"$POLL_ROOT/scripts/cluster.sh" stop "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
	if [ -f "$POLL_CLUSTER_DIR/data/PG_VERSION" ]; then
		"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT" >/dev/null 2>&1 || true
	fi
}
trap restore_shared_cluster EXIT
"$POLL_ROOT/scripts/cluster.sh" stop "$POLL_CLUSTER_DIR"
rm -rf "$dir"
# cluster.sh writes shared_preload_libraries = 'poll'; the later line wins
"$POLL_ROOT/scripts/cluster.sh" start "$dir" "$PGPORT" "shared_preload_libraries=''" \
	"poll.segment_min_ballots=3" "poll.max_segments=2"
[ -z "$(q "SHOW shared_preload_libraries")" ] || fail "the cluster preloads poll"

q "CREATE EXTENSION poll; CREATE ROLE t_np_reader LOGIN IN ROLE poll_reader; CREATE ROLE t_np_voter LOGIN IN ROLE poll_voter" >/dev/null
s=$(q "SELECT poll.create_poll('Floor', ARRAY['a', 'b'])")
q "SELECT poll.cast_votes($s, ARRAY['a1', 'a2', 'a3', 'b1', 'n1'], ARRAY[1, 1, 2, 2, 1], ARRAY['big', 'big', 'big', 'small', NULL])" >/dev/null

by_segment="SELECT string_agg(concat_ws(':', coalesce(segment, '-'), option_id, votes), ' ' ORDER BY segment NULLS LAST, option_id) FROM poll.results_by_segment WHERE poll_id = $s"
# small (1 ballot) is under the floor: merged with the unsegmented ballot
floored="big:1:2 big:2:1 -:1:1 -:2:1"
got=$(PGUSER=t_np_reader psql -X -qAt -c "SET poll.segment_min_ballots = 1" -c "$by_segment" -c "SHOW poll.segment_min_ballots" 2>/dev/null)
[ "$got" = "$floored
3" ] || fail "a reader's placeholder lowered the floor: $got"

err=$(PGUSER=t_np_voter psql -X -qAt -v VERBOSITY=verbose -c "SET poll.max_segments = 100" \
	-c "SELECT poll.cast_vote($s, 'c1', 1, 'third')" 2>&1 >/dev/null || true)
grep -q 'ERROR:  54000:' <<<"$err" || fail "a voter's placeholder raised poll.max_segments: $err"
[ "$(q "SELECT count(*) FROM poll.ballot WHERE poll_id = $s AND segment = 'third'")" = 0 ] || fail "the third segment was written"
! grep -E 'FATAL|PANIC' "$dir/postgres.log" || fail "the server logged a FATAL or PANIC"
echo "without the preload, sessions cannot lower the floor or raise the segment limit"

#!/usr/bin/env bash
# kill -9 of the postmaster in the middle of a voting load: after restart every
# acknowledged ballot is there, counted exactly once in tallies and rollups.
. "$(dirname "$0")/../lib/common.sh"

p=$(q "SELECT poll.create_poll('Crash', ARRAY['a', 'b', 'c'])")
first=$(q "SELECT poll.create_poll('Churn 1', ARRAY['a', 'b', 'c', 'd'])")
q "SELECT poll.create_poll('Churn 2', ARRAY['a', 'b', 'c', 'd'])" >/dev/null
q "SELECT poll.create_poll('Churn 3', ARRAY['a', 'b', 'c', 'd'])" >/dev/null

# writers whose acknowledged casts are recorded: psql prints "cast" after each commit
pids=()
for c in 1 2 3 4; do
	seq 1 200000 | sed "s/.*/SELECT poll.cast_vote($p, 'c$c-&', 1 + & % 3);/" >"$POLL_WORK/crash.$c.sql"
	psql -X -qAt -f "$POLL_WORK/crash.$c.sql" >"$POLL_WORK/crash.$c.out" 2>/dev/null &
	pids+=($!)
done
# and churn: changes and retractions on three other polls
"${PGBIN:-/usr/lib/postgresql/15/bin}"/pgbench -n -c 8 -j 2 -T 60 -D first="$first" \
	-f "$POLL_ROOT/test/lib/vote_mix.pgbench" >"$POLL_WORK/crash.pgbench.out" 2>&1 &
pids+=($!)

sleep 6
"$POLL_ROOT/scripts/cluster.sh" kill "$POLL_CLUSTER_DIR"
for pid in "${pids[@]}"; do wait "$pid" || true; done
"$POLL_ROOT/scripts/cluster.sh" start "$POLL_CLUSTER_DIR" "$PGPORT"

total=0
for c in 1 2 3 4; do
	acked=$(grep -c '^cast$' "$POLL_WORK/crash.$c.out" || true)
	[ "$acked" -gt 100 ] || fail "writer $c had only $acked casts acknowledged before the crash"
	total=$((total + acked))
	# every acknowledged cast committed; at most the one in flight more
	got=$(q "SELECT count(*) FROM poll.ballot WHERE poll_id = $p AND voter LIKE 'c$c-%'")
	[ "$got" -ge "$acked" ] && [ "$got" -le $((acked + 1)) ] || fail "writer $c: $acked acknowledged, $got stored"
	missing=$(q "SELECT count(*) FROM generate_series(1, $acked) i
				  WHERE NOT EXISTS (SELECT FROM poll.ballot WHERE poll_id = $p AND voter = 'c$c-' || i)")
	[ "$missing" = 0 ] || fail "writer $c: $missing acknowledged ballots lost"
done
check_invariants
echo "$total acknowledged casts survived kill -9; tallies and rollups exact"

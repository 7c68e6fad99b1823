#!/usr/bin/env bash
# Drivers that send parameters untyped call poll.cast_vote($1, $2, $3) and
# poll.cast_vote($1, $2, $3, $4) without casts, for single and multi polls
# (SPEC "Functions"): node-postgres and postgres.js (test/sql_clients/
# untyped_driver_parameters.js), then pgbench -M extended and -M prepared,
# whose variables are sent as untyped text.
. "$(dirname "$0")/../sql_clients/lib.sh"

sql_client untyped_driver_parameters

single=$(q "SELECT poll.create_poll('pgbench single', ARRAY['a', 'b', 'c'])")
multi=$(q "SELECT poll.create_poll('pgbench multi', ARRAY['a', 'b', 'c'], 'multi')")
script="$POLL_WORK/untyped.pgbench"
cat >"$script" <<'PGBENCH'
\set voter random(1, 40)
\set option random(1, 3)
SELECT poll.cast_vote(:single, :voter, :option);
SELECT poll.cast_vote(:single, 's' || :voter, :option, :segment);
SELECT poll.cast_vote(:multi, :voter, :option);
SELECT poll.cast_vote(:multi, :voter, :list);
SELECT poll.cast_vote(:multi, 'j' || :voter, :json, :segment);
PGBENCH
for mode in extended prepared; do
	"${PGBIN:-/usr/lib/postgresql/15/bin}"/pgbench -n -M $mode -t 100 -D single="$single" -D multi="$multi" \
		-D segment=eu -D list='{1,3}' -D json='[2, 3]' -f "$script" >"$POLL_WORK/untyped.$mode.out" 2>&1 ||
		fail "pgbench -M $mode: $(grep -m3 -i 'error\|abort' "$POLL_WORK/untyped.$mode.out")"
	grep -q 'number of transactions actually processed: 100/100' "$POLL_WORK/untyped.$mode.out" ||
		fail "pgbench -M $mode: $(tail -5 "$POLL_WORK/untyped.$mode.out")"
done
# every voter's last ballot: single ones of one option, multi ones of {1,3} (or {2,3} with a segment)
[ "$(q "SELECT count(*) > 0 AND bool_and(cardinality(options) = 1 AND (segment = 'eu') = (voter LIKE 's%'))
          FROM poll.ballot WHERE poll_id = $single")" = t ] || fail "pgbench: the single poll's ballots are wrong"
[ "$(q "SELECT count(*) > 0 AND bool_and(CASE WHEN voter LIKE 'j%' THEN options = '{2,3}' AND segment = 'eu'
                                               ELSE options = '{1,3}' AND segment IS NULL END)
          FROM poll.ballot WHERE poll_id = $multi")" = t ] || fail "pgbench: the multi poll's ballots are wrong"
check_invariants
echo "pgbench -M extended and -M prepared vote with untyped parameters"

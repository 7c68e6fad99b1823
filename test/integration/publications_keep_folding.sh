#!/usr/bin/env bash
# Other replication never interferes (SPEC "Settings"): with a publication
# FOR ALL TABLES, and then one FOR TABLES IN SCHEMA poll (as Debezium and most
# CDC tools create), votes, changes, bulk votes and retractions are recorded,
# the worker and poll.fold() fold them, and poll.tally's changes still reach a
# logical slot decoding the change feed (pgoutput, publication poll_feed).
. "$(dirname "$0")/../lib/common.sh"

# the publications affect every test that shares the cluster: never leave one
drop_publications() {
	q "SET client_min_messages = warning; DROP PUBLICATION IF EXISTS t_cdc_all; DROP PUBLICATION IF EXISTS t_cdc_schema" >/dev/null
}
trap drop_publications EXIT

for pub in "t_cdc_all FOR ALL TABLES" "t_cdc_schema FOR TABLES IN SCHEMA poll"; do
	q "CREATE PUBLICATION $pub" >/dev/null
	errors0=$(q "SELECT errors FROM poll.worker_status")
	p=$(q "SELECT poll.create_poll('Published', ARRAY['a', 'b'])")
	# one session: its temporary slot sees what the session does and the worker folds
	out=$(psql -X -qAt -v ON_ERROR_STOP=1 -v p="$p" 2>&1 <<'SQL'
SELECT 't_feed_' || pg_backend_pid() AS slot \gset
SELECT FROM pg_create_logical_replication_slot(:'slot', 'pgoutput', true);
SELECT poll.cast_vote(:p, 'a', 1);
SELECT poll.cast_vote(:p, 'a', 2);
SELECT poll.cast_votes(:p, ARRAY['b', 'c', 'd'], ARRAY[1, 1, 2]);
SELECT poll.retract_vote(:p, 'd');
SELECT set_config('t.poll', :'p', false) \g /dev/null
-- waits (5 s at most) until the poll's tally row holds t.ballots ballots
\set wait_folded 'DO $$ BEGIN FOR i IN 1..50 LOOP EXIT WHEN (SELECT ballots = current_setting(''t.ballots'')::bigint FROM poll.tally WHERE poll_id = current_setting(''t.poll'')::bigint); PERFORM pg_sleep(0.1); END LOOP; END $$'
SELECT set_config('t.ballots', '3', false) \g /dev/null
:wait_folded;
SELECT 'worker', ballots, votes FROM poll.tally WHERE poll_id = :p;
SELECT poll.cast_vote(:p, 'e', 2);
SELECT poll.fold() >= 0;
SELECT set_config('t.ballots', '4', false) \g /dev/null
:wait_folded;
SELECT 'fold', ballots, votes FROM poll.tally WHERE poll_id = :p;
SELECT 'feed', count(*) FILTER (WHERE get_byte(data, 0) = ascii('U')) > 0,
	   count(*) FILTER (WHERE get_byte(data, 0) = ascii('R') AND position('tally' IN encode(data, 'escape')) > 0) > 0
  FROM pg_logical_slot_get_binary_changes(:'slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'poll_feed');
SQL
	) || fail "$pub: $out"
	expected="cast
changed
3
t
worker|3|{2,1}
cast
t
fold|4|{2,2}
feed|t|t"
	[ "$out" = "$expected" ] || fail "$pub: got
$out
expected
$expected
(worker: $(q "SELECT errors, last_error FROM poll.worker_status"))"
	[ "$(q "SELECT errors FROM poll.worker_status")" = "$errors0" ] ||
		fail "$pub: the worker failed: $(q "SELECT last_error FROM poll.worker_status")"
	check_invariants
	q "DROP PUBLICATION ${pub%% *}" >/dev/null
	echo "publication $pub: votes, folds and the feed work"
done

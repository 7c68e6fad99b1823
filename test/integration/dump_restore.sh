#!/usr/bin/env bash
# pg_dump and restore keep every poll, ballot, pending change, tally and rollup:
# the extension marks its tables for dumping.  The only complaint of the restore is
# that publication poll_feed exists already (CREATE EXTENSION made it).
. "$(dirname "$0")/../lib/common.sh"

p=$(q "SELECT poll.create_poll('Dump', ARRAY['a', 'b', 'c'], 'multi')")
q "SELECT poll.cast_vote($p, 'v' || i, ARRAY[1 + i % 3]) FROM generate_series(1, 40) i" >/dev/null
wait_for 5 "SELECT count(*) = 0 FROM poll.change" || fail "not folded"
# one more, folded or still pending when the dump runs: either way it must survive
q "SELECT poll.cast_vote($p, 'late', ARRAY[1, 2])" >/dev/null

dump="$POLL_WORK/dump.sql"
pg_dump -d postgres >"$dump"
q "DROP DATABASE IF EXISTS restored" >/dev/null
q "CREATE DATABASE restored" >/dev/null
errors=$(psql -X -q -d restored -f "$dump" 2>&1 >/dev/null | grep ERROR || true)
[ "$errors" = "" ] || [ "$(grep -vc 'publication "poll_feed" already exists' <<<"$errors")" = 0 ] ||
	fail "restore errors: $errors"
same() {	# query: equal in both databases
	[ "$(psql -X -qAt -d postgres -c "$1")" = "$(psql -X -qAt -d restored -c "$1")" ] ||
		fail "differs after restore: $1"
}
same "SELECT * FROM poll.results ORDER BY poll_id, option_id"
same "SELECT poll_id, version, status, ballots, votes FROM poll.tally ORDER BY poll_id"
same "SELECT * FROM poll.ballots ORDER BY poll_id, voter, option_id"
same "SELECT * FROM poll.votes_per_day ORDER BY poll_id, option_id, bucket"
same "SELECT poll_id, title, kind, status, ballots FROM poll.poll_summary ORDER BY poll_id"
[ "$(psql -X -qAt -d restored -c "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'poll_feed'")" = 1 ] ||
	fail "the restored database has no change feed"
# new polls continue the sequence
next=$(psql -X -qAt -d restored -c "SELECT poll.create_poll('After', ARRAY['a', 'b'])")
[ "$next" -gt "$(q 'SELECT max(poll_id) FROM poll.poll')" ] || fail "poll ids restart after restore: $next"
q "DROP DATABASE restored" >/dev/null
echo "dump and restore keep everything"

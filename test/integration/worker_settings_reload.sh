#!/usr/bin/env bash
# SIGHUP reaches the worker: retention settings changed with ALTER SYSTEM and
# pg_reload_conf() take effect, and retention drops exactly the buckets past it.
. "$(dirname "$0")/../lib/common.sh"

p=$(q "SELECT poll.create_poll('Retention', ARRAY['a', 'b'])")
q "SELECT poll.cast_vote($p, 'now', 1)" >/dev/null
wait_for 5 "SELECT count(*) = 0 FROM poll.change" || fail "not folded"
# old buckets laid down by hand next to the fresh ones (the day rollup keeps everything)
q "INSERT INTO poll.rollup VALUES ('minute', $p, 2, date_bin('1 minute', now() - interval '3 hours', '2000-01-01+00'), 5),
								  ('minute', $p, 2, date_bin('1 minute', now() - interval '20 minutes', '2000-01-01+00'), 7),
								  ('hour', $p, 2, date_bin('1 hour', now() - interval '3 days', '2000-01-01+00'), 5)"
sleep 1.5
[ "$(q "SELECT count(*) FROM poll.votes_per_minute WHERE poll_id = $p")" = 3 ] || fail "default retention dropped recent minutes"

q "ALTER SYSTEM SET poll.minute_retention = '1h'" >/dev/null
q "ALTER SYSTEM SET poll.hour_retention = '1d'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_for 5 "SELECT count(*) = 2 FROM poll.votes_per_minute WHERE poll_id = $p" ||
	fail "minute retention of 1h not applied: $(q "SELECT count(*) FROM poll.votes_per_minute WHERE poll_id = $p")"
wait_for 5 "SELECT count(*) = 1 FROM poll.votes_per_hour WHERE poll_id = $p" ||
	fail "hour retention of 1d not applied"
# the 20-minute-old bucket and the current one stay
[ "$(q "SELECT sum(votes) FROM poll.votes_per_minute WHERE poll_id = $p")" = 8 ] || fail "retention dropped a bucket within it"
[ "$(q "SELECT count(*) FROM poll.votes_per_day WHERE poll_id = $p")" -ge 1 ] || fail "day rollups must be kept"

q "ALTER SYSTEM RESET poll.minute_retention" >/dev/null
q "ALTER SYSTEM RESET poll.hour_retention" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "DELETE FROM poll.poll WHERE poll_id = $p; DELETE FROM poll.ballot WHERE poll_id = $p;
   DELETE FROM poll.votes_per_minute WHERE poll_id = $p; DELETE FROM poll.votes_per_hour WHERE poll_id = $p;
   DELETE FROM poll.votes_per_day WHERE poll_id = $p; DELETE FROM poll.tally_segment WHERE poll_id = $p" >/dev/null
echo "settings reloaded; retention exact"

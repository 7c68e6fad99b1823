-- Folding into tallies and UTC-aligned rollups, and the time series served from them.
SET TimeZone = 'Asia/Kolkata';
SELECT poll.create_poll('Fold', ARRAY['a', 'b', 'c']) AS p \gset
SELECT poll.fold() >= 0 AS clean_start;
SELECT count(*) FROM (SELECT poll.cast_vote(:p, 'v' || i, 1 + i % 3) FROM generate_series(1, 30) i) s;
SELECT poll.cast_vote(:p, 'v1', 3);
SELECT poll.retract_vote(:p, 'v2');
SELECT count(*) AS pending FROM poll.change WHERE poll_id = :p;
-- results are exact before the fold, from the tally plus pending changes
SELECT option_id, votes FROM poll.results WHERE poll_id = :p ORDER BY 1;
SELECT version, ballots, votes FROM poll.tally WHERE poll_id = :p;
SELECT poll.fold();
SELECT poll.fold();
SELECT version, ballots, votes, last_vote_at IS NOT NULL AS has_last_vote FROM poll.tally WHERE poll_id = :p;
SELECT option_id, votes FROM poll.results WHERE poll_id = :p ORDER BY 1;
-- buckets are aligned in UTC, whatever the session's TimeZone (+05:30 here)
SELECT bool_and(bucket = date_trunc('minute', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS minute_utc
  FROM poll.votes_per_minute WHERE poll_id = :p;
SELECT bool_and(bucket = date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS hour_utc
  FROM poll.votes_per_hour WHERE poll_id = :p;
SELECT bool_and(bucket = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day_utc
  FROM poll.votes_per_day WHERE poll_id = :p;
SELECT option_id, sum(votes) FROM poll.votes_per_day WHERE poll_id = :p GROUP BY 1 ORDER BY 1;
SELECT * FROM poll_invariant_violations();

-- series over rollups laid down by hand at known times (a poll of January)
SELECT poll.create_poll('January', ARRAY['x', 'y'], opens_at => '2026-01-01 00:00+00') AS jan \gset
INSERT INTO poll.rollup VALUES
	('minute', :jan, 1, '2026-01-01 10:05+00', 2), ('minute', :jan, 2, '2026-01-01 10:59+00', 1),
	('minute', :jan, 1, '2026-01-01 11:30+00', 1), ('minute', :jan, 2, '2026-01-02 00:10+00', 1),
	('hour', :jan, 1, '2026-01-01 10:00+00', 2), ('hour', :jan, 2, '2026-01-01 10:00+00', 1),
	('hour', :jan, 1, '2026-01-01 11:00+00', 1), ('hour', :jan, 2, '2026-01-02 00:00+00', 1),
	('day', :jan, 1, '2026-01-01 00:00+00', 3), ('day', :jan, 2, '2026-01-01 00:00+00', 1),
	('day', :jan, 2, '2026-01-02 00:00+00', 1);
SET TimeZone = 'UTC';
-- hourly, from the hour rollup; cumulative counts from the poll's beginning
SELECT * FROM poll.series(:jan, '1 hour', '2026-01-01 10:30+00', '2026-01-01 12:00+00');
-- by the minute: the tally before 11:29 comes from hours and minutes
SELECT * FROM poll.series(:jan, '1 minute', '2026-01-01 11:29+00', '2026-01-01 11:31+00');
-- 15 minutes, from the minute rollup
SELECT * FROM poll.series(:jan, '15 minutes', '2026-01-01 10:00+00', '2026-01-01 11:00+00');
-- daily from opens_at, the default since
SELECT * FROM poll.series(:jan, '1 day', NULL, '2026-01-02 12:00+00');
-- the same buckets in another time zone
SET TimeZone = 'America/New_York';
SELECT bucket AT TIME ZONE 'UTC' AS bucket_utc, option_id, votes, cumulative
  FROM poll.series(:jan, '1 day', NULL, '2026-01-02 12:00+00');
SET TimeZone = 'UTC';
-- bad arguments
SELECT expect_error(format('SELECT * FROM poll.series(%s, %L)', :jan, '90 seconds'));
SELECT expect_error(format('SELECT * FROM poll.series(%s, %L)', :jan, '1 month'));
SELECT expect_error(format('SELECT * FROM poll.series(%s, %L)', :jan, '0 minutes'));
SELECT expect_error(format('SELECT * FROM poll.series(%s, %L)', :jan, '-5 minutes'));
SELECT expect_error(format('SELECT * FROM poll.series(%s, %L, %L, %L)', :jan, '1 hour', '2026-01-02', '2026-01-01'));
SELECT expect_error(format('SELECT * FROM poll.series(%s, %L, %L, %L)', :jan, '1 minute', '2000-01-01', '2026-01-01'));
SELECT expect_error(format('SELECT * FROM poll.series(%s, NULL)', :jan));
SELECT expect_error($$SELECT * FROM poll.series(987654321)$$);
SELECT expect_error($$SELECT * FROM poll.series(NULL)$$);

-- retention drops whole buckets past it, in minute and hour rollups only
SELECT poll._apply_retention('1 minute', '1 hour') >= 7 AS dropped;
SELECT count(*) AS minute_rows FROM poll.votes_per_minute WHERE poll_id = :jan;
SELECT count(*) AS hour_rows FROM poll.votes_per_hour WHERE poll_id = :jan;
SELECT * FROM poll.series(:jan, '1 day', NULL, '2026-01-02 12:00+00');
-- recent buckets are kept
SELECT count(*) > 0 AS recent_kept FROM poll.votes_per_minute WHERE poll_id = :p;
DELETE FROM poll.rollup WHERE poll_id = :jan;
DELETE FROM poll.poll WHERE poll_id = :jan;

-- the worker's clock records a status change once, bumping the version
SELECT poll.create_poll('Short', ARRAY['a', 'b'], opens_at => now() - interval '2 hours',
						closes_at => now() + interval '1 hour') AS short \gset
UPDATE poll.poll SET closes_at = now() - interval '1 hour' WHERE poll_id = :short;
SELECT status, version FROM poll.tally WHERE poll_id = :short;
SELECT poll._record_status() >= 1 AS recorded;
SELECT status, version FROM poll.tally WHERE poll_id = :short;
SELECT poll._record_status() AS again;

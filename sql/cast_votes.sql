-- Bulk ingest: all or nothing, the first bad element named, 10 000 at a time.
SELECT poll.create_poll('Bulk', ARRAY['a', 'b', 'c', 'd']) AS bulk \gset
SELECT poll.create_poll('Multi', ARRAY['a', 'b'], 'multi') AS multi \gset
SELECT poll.create_poll('Fixed', ARRAY['a', 'b'], allow_change => false) AS fixed \gset

SELECT poll.cast_votes(:bulk, ARRAY['v1', 'v2', 'v3'], ARRAY[1, 2, 2]);
-- the same again changes nothing; a change and a new voter count 2
SELECT poll.cast_votes(:bulk, ARRAY['v1', 'v2', 'v3'], ARRAY[1, 2, 2]);
SELECT poll.cast_votes(:bulk, ARRAY['v1', 'v4', 'v3'], ARRAY[4, 4, 2]);
SELECT option_id, votes FROM poll.results WHERE poll_id = :bulk ORDER BY 1;
-- segments, NULL among them
SELECT poll.cast_votes(:bulk, ARRAY['s1', 's2', 's3'], ARRAY[1, 1, 3], ARRAY['eu', NULL, 'us']);
SELECT segment, option_id, votes FROM poll.results_by_segment WHERE poll_id = :bulk ORDER BY 1, 2;
-- empty arrays cast nothing
SELECT poll.cast_votes(:bulk, '{}', '{}');

-- errors: NULL arguments and elements (22004), the element named
SELECT expect_error($$SELECT poll.cast_votes(NULL, ARRAY['x'], ARRAY[1])$$);
SELECT expect_error(format('SELECT poll.cast_votes(%s, NULL, ARRAY[1])', :bulk));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L], NULL)', :bulk, 'x'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, NULL, %L], ARRAY[1, 2, 3])', :bulk, 'x', 'y'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L], ARRAY[1, NULL])', :bulk, 'x', 'y'));
-- invalid elements (22023), the first one named
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L, %L], ARRAY[1, 0, 9])', :bulk, 'x', 'y', 'z'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L, %L], ARRAY[1, 2, 5])', :bulk, 'x', 'y', 'z'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L, %L, %L], ARRAY[1, 2, 3, 1])', :bulk, 'x', 'y', 'x', 'y'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L], ARRAY[1, 2])', :bulk, 'x', ''));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L], ARRAY[1, 2])', :bulk, 'x', repeat('v', 10240)));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L], ARRAY[1, 2], ARRAY[%L, %L])', :bulk, 'x', 'y', 'eu', ''));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L], ARRAY[1])', :bulk, 'x', 'y'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L], ARRAY[1, 2], ARRAY[%L])', :bulk, 'x', 'y', 'eu'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, %L::text[], %L::int[])', :bulk, '{{a,b},{c,d}}', '{{1,2},{3,4}}'));
-- unknown poll, wrong kind, closed poll, change not allowed
SELECT expect_error($$SELECT poll.cast_votes(987654321, ARRAY['x'], ARRAY[1])$$);
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L], ARRAY[1])', :multi, 'x'));
SELECT poll.cast_votes(:fixed, ARRAY['f1', 'f2'], ARRAY[1, 2]);
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L, %L], ARRAY[1, 1, 1])', :fixed, 'f3', 'f1', 'f2'));
SELECT option_id, votes FROM poll.results WHERE poll_id = :fixed ORDER BY 1;

-- 10 000 elements with one bad element in the middle: nothing is written
SELECT count(*) AS before FROM poll.ballot WHERE poll_id = :bulk \gset
SELECT expect_error(format('SELECT poll.cast_votes(%s, %L, %L)', :bulk,
	(SELECT array_agg('big' || i) FROM generate_series(1, 10000) i),
	(SELECT array_agg(CASE WHEN i = 5000 THEN 99 ELSE 1 + i % 4 END) FROM generate_series(1, 10000) i)));
SELECT count(*) = :before AS nothing_written FROM poll.ballot WHERE poll_id = :bulk;
SELECT count(*) AS pending_for_bad_call FROM poll.change WHERE poll_id = :bulk AND votes > 100;
-- a repeated voter in the middle of 10 000 is named too
SELECT expect_error(format('SELECT poll.cast_votes(%s, %L, %L)', :bulk,
	(SELECT array_agg(CASE WHEN i = 7000 THEN 'big3' ELSE 'big' || i END) FROM generate_series(1, 10000) i),
	(SELECT array_agg(1 + i % 4) FROM generate_series(1, 10000) i)));
-- and 10 000 good ones are all cast, in one change record per option
SELECT poll.cast_votes(:bulk, (SELECT array_agg('big' || i) FROM generate_series(1, 10000) i),
					   (SELECT array_agg(1 + i % 4) FROM generate_series(1, 10000) i));
SELECT count(*) = 4 AS aggregated FROM poll.change WHERE poll_id = :bulk AND votes = 2500;
-- half of them change their mind, a quarter stay, a quarter are new
SELECT poll.cast_votes(:bulk, (SELECT array_agg('big' || i) FROM generate_series(5001, 15000) i),
					   (SELECT array_agg(CASE WHEN i <= 7500 THEN 1 + i % 4 ELSE 1 END) FROM generate_series(5001, 15000) i));
SELECT option_id, votes FROM poll.results WHERE poll_id = :bulk ORDER BY 1;

SELECT poll.fold() > 0 AS folded;
SELECT * FROM poll_invariant_violations();

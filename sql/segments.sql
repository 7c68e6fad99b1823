-- Segments: a poll holds at most poll.max_segments distinct ones (54000
-- beyond), and results_by_segment shows a segment apart to roles other than
-- poll_admin only when it holds poll.segment_min_ballots ballots.
SELECT poll.create_poll('Regions', ARRAY['a', 'b', 'c']) AS p \gset
SELECT poll.create_poll('Regions multi', ARRAY['a', 'b', 'c'], 'multi') AS m \gset
SHOW poll.max_segments;
SHOW poll.segment_min_ballots;

SET poll.max_segments = 3;
SELECT poll.cast_vote(:p, 'v1', 1, 'eu'), poll.cast_vote(:p, 'v2', 2, 'us'), poll.cast_vote(:p, 'v3', 1, 'eu');
SELECT poll.cast_votes(:p, ARRAY['v4', 'v5', 'v6'], ARRAY[1, 2, 3], ARRAY['asia', NULL, 'eu']);
-- a fourth segment is refused, for a single vote, a multi ballot and a bulk call
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1, %L)', :p, 'v7', 'africa'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 3, %L)', :p, 'v1', 'africa'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L, %L, %L], ARRAY[1, 1, 1], ARRAY[%L, %L, %L])',
						   :p, 'w1', 'w2', 'w3', 'eu', 'africa', 'oceania'));
-- the bulk call was atomic: none of its voters has a ballot
SELECT count(*) FROM poll.ballots WHERE poll_id = :p AND voter IN ('w1', 'w2', 'w3');
-- known segments still take votes; each poll has its own segments
SELECT poll.cast_vote(:p, 'v8', 3, 'us'), poll.cast_vote(:m, 'v1', ARRAY[1, 2], 'africa');
SELECT segment FROM poll.segment WHERE poll_id IN (:p, :m) ORDER BY poll_id, segment;
RESET poll.max_segments;
SELECT poll.cast_vote(:p, 'v7', 1, 'africa');

-- only a superuser sets them
CREATE ROLE seg_reader LOGIN IN ROLE poll_reader;
CREATE ROLE seg_admin LOGIN IN ROLE poll_admin;
SET ROLE seg_reader;
SELECT expect_error('SET poll.max_segments = 100000');
SELECT expect_error('SET poll.segment_min_ballots = 1');
RESET ROLE;

-- a multi ballot counts once in its segment; a change that moves a ballot
-- to another segment moves its count; pending and folded ballots both count
SELECT poll.cast_vote(:m, 'v2', ARRAY[1, 2, 3], 'africa');
SELECT poll.cast_vote(:m, 'v3', ARRAY[3], 'europe');
SELECT poll.cast_vote(:m, 'v4', ARRAY[1], 'europe');
SELECT poll.cast_vote(:m, 'v4', ARRAY[2], 'asia');
SELECT poll.cast_vote(:m, 'v5', ARRAY[2]);
SET poll.segment_min_ballots = 2;
SET ROLE seg_reader;
SELECT segment, option_id, votes FROM poll.results_by_segment WHERE poll_id = :m ORDER BY 1 NULLS FIRST, 2;
RESET ROLE;
SELECT poll.fold() > 0 AS folded;
SELECT segment, ballots FROM poll.segment WHERE poll_id = :m ORDER BY 1;
SET ROLE seg_reader;
SELECT segment, option_id, votes FROM poll.results_by_segment WHERE poll_id = :m ORDER BY 1 NULLS FIRST, 2;
RESET ROLE;
-- poll_admin sees every segment apart
SET ROLE seg_admin;
SELECT segment, option_id, votes FROM poll.results_by_segment WHERE poll_id = :m ORDER BY 1 NULLS FIRST, 2;
RESET ROLE;
-- with the default floor, everybody does
RESET poll.segment_min_ballots;
SET ROLE seg_reader;
SELECT count(DISTINCT segment) AS segments_apart FROM poll.results_by_segment WHERE poll_id = :m;
RESET ROLE;

DROP ROLE seg_reader, seg_admin;
SELECT * FROM poll_invariant_violations();

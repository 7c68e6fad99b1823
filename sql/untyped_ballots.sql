-- Ballots given as text, as drivers that send parameters untyped do
-- (node-postgres, postgres.js, pgbench -M extended): an unknown-typed third
-- argument resolves to cast_vote(bigint, text, text, text), which votes as
-- the int or the int[] form would; and ballot_of, the voter's live ballot.
SELECT poll.create_poll('Untyped', ARRAY['a', 'b', 'c']) AS single \gset
SELECT poll.create_poll('Untyped multi', ARRAY['a', 'b', 'c', 'd'], 'multi', 3) AS multi \gset

PREPARE vote3(unknown, unknown, unknown) AS SELECT poll.cast_vote($1, $2, $3);
PREPARE vote4(unknown, unknown, unknown, unknown) AS SELECT poll.cast_vote($1, $2, $3, $4);
EXECUTE vote3(:single, 'ann', '2');
EXECUTE vote3(:single, 'ann', ' 2 ');
EXECUTE vote3(:single, 'ann', '3');
EXECUTE vote4(:single, 'bob', '1', 'north');
EXECUTE vote3(:multi, 'ann', '{1,3}');
EXECUTE vote3(:multi, 'bob', '[4, 2]');
EXECUTE vote3(:multi, 'bob', '{2,4}');
EXECUTE vote3(:multi, 'cy', '1');
EXECUTE vote4(:multi, 'dee', '[1]', 'south');
-- node-postgres sends a JavaScript array quoted, postgres.js bare
EXECUTE vote3(:multi, 'gus', '{"1","4"}');
EXECUTE vote3(:multi, 'hal', '2,3');
EXECUTE vote3(:multi, 'hal', '["3", "2"]');
-- literals without a type take the same path; typed arguments keep theirs
SELECT poll.cast_vote(:multi, 'eve', '{3}');
SELECT poll.cast_vote(:single, 'eve', 1), poll.cast_vote(:multi, 'fay', ARRAY[1, 2]);

-- the same errors, with the same SQLSTATEs, as the typed forms
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '[1]'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '1,2'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '{"1"}'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{"1}'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{1"}'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '1,'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', ',1'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '9'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{1,2,3,4}'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{1,1}'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '[]'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, NULL)', :multi, 'x'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', 'two'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '2 3'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{1,2]'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{1,,2}'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '{1,2'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '-'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', '99999999999'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :single, 'x', ''));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', :multi, 'x', '[' || repeat('1,', 64) || '1]'));
SELECT expect_error(format('EXECUTE vote3(%s, %L, %L)', 424242, 'x', '1'));

-- the voter's live ballot, ascending; NULL without one
SELECT poll.ballot_of(:multi, 'bob'), poll.ballot_of(:multi, 'ann'), poll.ballot_of(:single, 'ann');
SELECT poll.ballot_of(:multi, 'nobody') IS NULL AS none;
SELECT poll.retract_vote(:multi, 'bob');
SELECT poll.ballot_of(:multi, 'bob') IS NULL AS retracted;
SELECT expect_error('SELECT poll.ballot_of(424242, ''ann'')');
SELECT expect_error('SELECT poll.ballot_of(NULL, ''ann'')');
SELECT expect_error(format('SELECT poll.ballot_of(%s, NULL)', :multi));
SELECT expect_error(format('SELECT poll.ballot_of(%s, %L)', :multi, ''));

SELECT option_id, votes FROM poll.results WHERE poll_id IN (:single, :multi) ORDER BY poll_id, option_id;
SELECT * FROM poll_invariant_violations() WHERE what IN ('results', 'ballots', 'results_by_segment');

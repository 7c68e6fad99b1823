-- A read-only transaction (BEGIN READ ONLY, default_transaction_read_only,
-- and every transaction of a hot standby) writes nothing through poll: each
-- writing function refuses with 25006 before it touches a table, and the
-- session stays usable.
SELECT poll.create_poll('Read only', ARRAY['a', 'b', 'c']) AS ro \gset
SELECT poll.create_poll('Read only multi', ARRAY['a', 'b', 'c'], 'multi') AS rom \gset
SELECT poll.cast_vote(:ro, 'kept', 1);

SET default_transaction_read_only = on;
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 2)', :ro, 'ro1'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, ARRAY[1, 2])', :rom, 'ro1'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, %L::text)', :ro, 'ro1', '2'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 2, %L)', :ro, 'ro1', 'eu'));
SELECT expect_error(format('SELECT poll.cast_votes(%s, ARRAY[%L], ARRAY[2])', :ro, 'ro1'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s]::bigint[], ARRAY[%L], ARRAY[%L])', :ro, 'ro1', '2'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s]::bigint[], ARRAY[%L], ARRAY[NULL]::text[])', :ro, 'kept'));
SELECT expect_error(format('SELECT poll.retract_vote(%s, %L)', :ro, 'kept'));
SELECT expect_error(format('SELECT poll.close_poll(%s)', :ro));
SELECT expect_error($$SELECT poll.create_poll('no', ARRAY['a', 'b'])$$);
SELECT expect_error($$SELECT poll.fold()$$);
-- reading still works, and nothing was written
SELECT option_id, votes FROM poll.results WHERE poll_id = :ro ORDER BY 1;
SELECT poll.ballot_of(:ro, 'kept'), poll.ballot_of(:ro, 'ro1');
RESET default_transaction_read_only;

-- BEGIN READ ONLY, then the same session writes normally after the refusal
BEGIN READ ONLY;
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 3)', :ro, 'kept'));
COMMIT;
SELECT poll.cast_vote(:ro, 'kept', 3);
SELECT poll.cast_vote(:ro, 'ro1', 2);
SELECT option_id, votes FROM poll.results WHERE poll_id = :ro ORDER BY 1;
SELECT voter, option_id FROM poll.ballots WHERE poll_id = :ro ORDER BY 1;

-- Roles: readers see aggregates and never voters; voters vote and read nothing;
-- PUBLIC gets nothing; admins get everything.
CREATE ROLE reader LOGIN IN ROLE poll_reader;
CREATE ROLE voter LOGIN IN ROLE poll_voter;
CREATE ROLE admin LOGIN IN ROLE poll_admin;
CREATE ROLE outsider LOGIN;
SELECT poll.create_poll('Roles', ARRAY['a', 'b']) AS r \gset

SET ROLE voter;
SELECT poll.cast_vote(:r, 'alice', 1);
SELECT poll.cast_votes(:r, ARRAY['bob', 'carol'], ARRAY[2, 2]);
SELECT poll.retract_vote(:r, 'carol');
SELECT expect_error('SELECT count(*) FROM poll.results');
SELECT expect_error('SELECT count(*) FROM poll.ballots');
SELECT expect_error('SELECT count(*) FROM poll.ballot');
SELECT expect_error('SELECT count(*) FROM poll.change');
SELECT expect_error($$SELECT poll.create_poll('x', ARRAY['a', 'b'])$$);
SELECT expect_error('SELECT poll.fold()');
SELECT expect_error(format('SELECT poll.close_poll(%s)', :r));
SELECT expect_error(format('INSERT INTO poll.change VALUES (%s, 1, NULL, 1000, 1000, now())', :r));
RESET ROLE;

SET ROLE reader;
SELECT option_id, votes FROM poll.results WHERE poll_id = :r ORDER BY 1;
SELECT ballots FROM poll.poll_summary WHERE poll_id = :r;
SELECT count(*) FROM poll.results_by_segment WHERE poll_id = :r;
SELECT count(*) FROM poll.votes_per_minute WHERE poll_id = :r;
SELECT count(*) FROM poll.votes_per_hour WHERE poll_id = :r;
SELECT count(*) FROM poll.votes_per_day WHERE poll_id = :r;
SELECT count(*) >= 0 AS readable FROM poll.worker_status;
SELECT count(*) FROM poll.series(:r);
SELECT expect_error('SELECT count(*) FROM poll.ballots');
SELECT expect_error('SELECT voter FROM poll.ballot');
SELECT expect_error('SELECT count(*) FROM poll.change');
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :r, 'reader'));
RESET ROLE;

SET ROLE outsider;
SELECT expect_error('SELECT count(*) FROM poll.results');
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :r, 'outsider'));
SELECT expect_error(format('SELECT * FROM poll.series(%s)', :r));
RESET ROLE;

SET ROLE admin;
SELECT voter, option_id FROM poll.ballots WHERE poll_id = :r ORDER BY voter;
SELECT poll.fold() >= 0 AS folded;
SELECT poll.close_poll(:r);
RESET ROLE;

-- which roles may read voter identities, according to the catalog
SELECT r.rolname, has_table_privilege(r.rolname, 'poll.ballots', 'SELECT') AS ballots,
	   has_table_privilege(r.rolname, 'poll.ballot', 'SELECT') AS ballot,
	   has_table_privilege(r.rolname, 'poll.results', 'SELECT') AS results
  FROM pg_roles r WHERE r.rolname IN ('poll_reader', 'poll_voter', 'poll_admin', 'outsider') ORDER BY 1;
DROP ROLE reader, voter, admin, outsider;

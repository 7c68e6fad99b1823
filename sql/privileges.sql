-- Roles: readers see aggregates and never voters; voters vote and read nothing;
-- PUBLIC gets nothing; admins read everything and run every function of the
-- interface, and can never run code as the owner of poll's tables.
CREATE ROLE reader LOGIN IN ROLE poll_reader;
CREATE ROLE voter LOGIN IN ROLE poll_voter;
CREATE ROLE admin LOGIN IN ROLE poll_admin;
CREATE ROLE outsider LOGIN;
SELECT poll.create_poll('Roles', ARRAY['a', 'b']) AS r \gset

SET ROLE voter;
SELECT poll.cast_vote(:r, 'alice', 1);
SELECT poll.cast_votes(:r, ARRAY['bob', 'carol'], ARRAY[2, 2]);
SELECT poll.retract_vote(:r, 'carol');
SELECT ord, result, options FROM poll.cast_vote_batch(ARRAY[:r, :r]::bigint[], ARRAY['dave', 'carol'], ARRAY['1', NULL]);
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
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], ARRAY[%L], ARRAY[%L])', :r, 'reader', '1'));
RESET ROLE;

SET ROLE outsider;
SELECT expect_error('SELECT count(*) FROM poll.results');
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :r, 'outsider'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], ARRAY[%L], ARRAY[%L])', :r, 'outsider', '1'));
SELECT expect_error(format('SELECT * FROM poll.series(%s)', :r));
RESET ROLE;

-- as superuser: a trigger function and a schema of the admin's own
CREATE FUNCTION public.admin_trigger() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE SCHEMA admin_own AUTHORIZATION admin;
SET ROLE admin;
SELECT voter, option_id FROM poll.ballots WHERE poll_id = :r ORDER BY voter;
SELECT count(*) FROM poll.ballot WHERE poll_id = :r;
SELECT poll.ballot_of(:r, 'alice');
SELECT ord, result, options FROM poll.cast_vote_batch(ARRAY[:r]::bigint[], ARRAY['erin'], ARRAY['2']);
SELECT poll.fold() >= 0 AS folded;
-- a trigger of poll_admin's own on a table the vote path or the worker
-- writes would run as their owner: refused, as are writes and TRUNCATE
SELECT expect_error('CREATE TRIGGER t BEFORE INSERT ON poll.ballot FOR EACH ROW EXECUTE FUNCTION public.admin_trigger()');
SELECT expect_error('CREATE TRIGGER t BEFORE UPDATE ON poll.tally FOR EACH ROW EXECUTE FUNCTION public.admin_trigger()');
SELECT expect_error('CREATE TRIGGER t BEFORE INSERT ON poll.change FOR EACH ROW EXECUTE FUNCTION public.admin_trigger()');
SELECT expect_error('TRUNCATE poll.change');
SELECT expect_error(format('UPDATE poll.tally SET ballots = 0 WHERE poll_id = %s', :r));
SELECT expect_error(format('DELETE FROM poll.ballot WHERE poll_id = %s', :r));
SELECT expect_error($$SELECT poll._apply_retention('0 s', '0 s')$$);
SELECT expect_error('CREATE TABLE admin_own.fk (p bigint REFERENCES poll.poll)');
SELECT poll.close_poll(:r);
RESET ROLE;
DROP FUNCTION public.admin_trigger();
DROP SCHEMA admin_own;

-- which roles may read voter identities, according to the catalog
SELECT r.rolname, has_table_privilege(r.rolname, 'poll.ballots', 'SELECT') AS ballots,
	   has_table_privilege(r.rolname, 'poll.ballot', 'SELECT') AS ballot,
	   has_table_privilege(r.rolname, 'poll.results', 'SELECT') AS results
  FROM pg_roles r WHERE r.rolname IN ('poll_reader', 'poll_voter', 'poll_admin', 'outsider') ORDER BY 1;

-- every privilege any poll role or PUBLIC holds on poll's tables, views and
-- sequences: nothing but SELECT, and SELECT on voter identities for poll_admin only
SELECT c.relname, r.rolname,
	   string_agg(p.priv, ',' ORDER BY p.priv) AS privileges
  FROM pg_class c
 CROSS JOIN (SELECT rolname FROM pg_roles WHERE rolname IN ('poll_reader', 'poll_voter', 'poll_admin')
			 UNION ALL SELECT 'outsider') r
 CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(priv)
 WHERE c.relnamespace = 'poll'::regnamespace AND c.relkind IN ('r', 'v', 'S')
   AND CASE WHEN c.relkind = 'S' THEN p.priv IN ('SELECT', 'UPDATE')
			   AND has_sequence_privilege(r.rolname, c.oid, p.priv)
			ELSE has_table_privilege(r.rolname, c.oid, p.priv) END
 GROUP BY 1, 2 ORDER BY 1, 2;

-- who may run each function
SELECT p.oid::regprocedure AS function,
	   coalesce(string_agg(r.rolname, ',' ORDER BY r.rolname), '(owner only)') AS roles
  FROM pg_proc p
  LEFT JOIN (SELECT rolname FROM pg_roles WHERE rolname IN ('poll_reader', 'poll_voter', 'poll_admin')
			 UNION ALL SELECT 'outsider') r ON has_function_privilege(r.rolname, p.oid, 'EXECUTE')
 WHERE p.pronamespace = 'poll'::regnamespace
 GROUP BY p.oid ORDER BY p.oid::regprocedure::text;
DROP ROLE reader, voter, admin, outsider;

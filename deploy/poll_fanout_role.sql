-- deploy/poll_fanout_role.sql — the role poll-fanout connects as, with least privilege.
--
-- Run it as a superuser in the database that has the extension (poll.database), after
-- CREATE EXTENSION poll; it can run again (make run does, on every start):
--     psql -d yourdb -v ON_ERROR_STOP=1 -f deploy/poll_fanout_role.sql
-- then give the role a password (or a client certificate) and let it in through
-- pg_hba.conf twice, once for the query connection and once for the stream:
--     ALTER ROLE poll_fanout PASSWORD '...';
--     host  yourdb       poll_fanout  10.0.0.0/8  scram-sha-256
--     host  replication  poll_fanout  10.0.0.0/8  scram-sha-256
-- and start each daemon with --db 'host=... dbname=yourdb user=poll_fanout' (the password
-- in ~/.pgpass or PGPASSFILE, never on the command line).
--
-- What it holds and why (test/integration/fanout_least_privilege.sh checks each):
--   LOGIN REPLICATION  the stream: CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL pgoutput
--                      and START_REPLICATION on the publication poll_feed (poll.tally only);
--                      no superuser, no CREATEDB, no CREATEROLE, no BYPASSRLS
--   poll_reader        the BI views and poll.series (GET /polls/ID/series, /segments):
--                      never voter identities
--   poll_voter         votes through the daemon: it acts for the voters its tokens name
--   SELECT on poll.poll, poll.option, poll.tally
--                      snapshots (GET /polls/ID, the first message of every subscription):
--                      titles, labels, versions, status and counts; none of them holds a
--                      voter identity
-- It cannot read poll.ballot or poll.ballots (who voted what), write any table (votes go
-- through poll.cast_vote and its kin only), or become another role.
SET client_min_messages = warning;	-- quiet when run again
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'poll_fanout') THEN
		CREATE ROLE poll_fanout LOGIN REPLICATION;
	END IF;
END
$$;
ALTER ROLE poll_fanout LOGIN REPLICATION INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
-- running it again resets the role to exactly these grants
REVOKE ALL ON ALL TABLES IN SCHEMA poll FROM poll_fanout;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA poll FROM poll_fanout;
GRANT poll_reader, poll_voter TO poll_fanout;
GRANT SELECT ON poll.poll, poll.option, poll.tally TO poll_fanout;

-- Only for daemons that serve the admin API (after the lines above) (admin tokens: POST /polls, POST /polls/ID/close,
-- GET /polls/ID/ballots.csv); the export reads voter identities:
--   GRANT EXECUTE ON FUNCTION poll.create_poll(text, text[], text, int, timestamptz, timestamptz, boolean, jsonb),
--                             poll.close_poll(bigint) TO poll_fanout;
--   GRANT SELECT ON poll.ballot TO poll_fanout;

-- Only for daemons started with --webhooks (after the lines above): the three functions
-- that read what is due (with each webhook's secret, to sign) and record each delivery:
--   GRANT EXECUTE ON FUNCTION poll._webhook_due(bigint[]),
--                             poll._webhook_begin(bigint, bigint, text, bigint, text, timestamptz),
--                             poll._webhook_result(bigint, bigint, text, bigint, int, text) TO poll_fanout;

/*
 * poll--1.0--1.1.sql — ALTER EXTENSION poll UPDATE from 1.0 to 1.1.
 *
 * Every change to the schema between 1.0 and 1.1 is made here and in
 * poll--1.1.sql, in step: after this script a 1.0 installation holds the
 * same tables, columns, constraints, indexes, functions, grants and
 * comments as a fresh CREATE EXTENSION poll (test/integration/
 * upgrade_1_0_to_1_1.sh proves it), and keeps every poll, ballot,
 * pending change, tally and rollup.
 */

\echo Use "ALTER EXTENSION poll UPDATE TO '1.1'" to load this file. \quit

-- Votes and folds wait while the schema changes: the segment registry is
-- filled from a ballot table and a change queue that stand still.
LOCK TABLE poll.change IN ACCESS EXCLUSIVE MODE;
LOCK TABLE poll.ballot IN SHARE MODE;

-- Other replication must not break the fold: a publication FOR ALL TABLES
-- (or FOR TABLES IN SCHEMA poll), as CDC tools create, publishes the
-- fold's DELETEs from this table, which needs a replica identity; it has
-- no key (no index: the vote path appends without one), so the whole row.
ALTER TABLE poll.change REPLICA IDENTITY FULL;

-- The registry of each poll's segments, which bounds them (src/segment.c):
-- a row is added by the vote path, under a lock of the poll's poll.poll
-- row, before the first ballot carrying the segment; ballots is written
-- by the fold only.
CREATE TABLE poll.segment (
	poll_id			bigint NOT NULL,
	segment			text COLLATE "C" NOT NULL,
	ballots			bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (poll_id, segment)
);
COMMENT ON TABLE poll.segment IS 'The distinct segments of each poll (at most poll.max_segments), with their folded number of live ballots.';
COMMENT ON COLUMN poll.segment.poll_id IS 'The poll.';
COMMENT ON COLUMN poll.segment.segment IS 'A segment that ballots of the poll carry or carried.';
COMMENT ON COLUMN poll.segment.ballots IS 'Folded live ballots carrying the segment (pending change records add theirs).';

-- Every segment the poll's ballots and tallies carry.  ballots is what the
-- fold would hold: the live ballots less what the pending change records
-- still add when they are folded.
INSERT INTO poll.segment (poll_id, segment, ballots)
SELECT x.poll_id, x.segment, sum(x.ballots)
  FROM (SELECT b.poll_id, b.segment, count(*) AS ballots
		  FROM poll.ballot b WHERE b.segment IS NOT NULL GROUP BY 1, 2
		UNION ALL
		SELECT c.poll_id, c.segment, -sum(c.ballots)
		  FROM poll.change c WHERE c.segment IS NOT NULL GROUP BY 1, 2
		UNION ALL
		SELECT ts.poll_id, ts.segment, 0
		  FROM poll.tally_segment ts WHERE ts.segment <> '' GROUP BY 1, 2) x
 GROUP BY 1, 2;

SELECT pg_catalog.pg_extension_config_dump('poll.segment', '');

CREATE FUNCTION poll._segment_floor() RETURNS int
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'poll_segment_floor';
COMMENT ON FUNCTION poll._segment_floor() IS
	'Fewest ballots a segment needs for results_by_segment to show it apart to the current user: 0 for poll_admin, else poll.segment_min_ballots.';

CREATE FUNCTION poll.cast_vote(poll_id bigint, voter text, ballot text, segment text DEFAULT NULL)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'poll_cast_vote_text';
COMMENT ON FUNCTION poll.cast_vote(bigint, text, text, text) IS
	'For drivers that send parameters untyped: the ballot as text, one option id (2) or a list ({1,3} or [1,3]); votes as the int or int[] form.';

CREATE FUNCTION poll.ballot_of(poll_id bigint, voter text) RETURNS int[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	chosen	int[];
BEGIN
	IF ballot_of.poll_id IS NULL THEN
		RAISE EXCEPTION 'poll_id must not be null' USING ERRCODE = '22004';
	ELSIF ballot_of.voter IS NULL THEN
		RAISE EXCEPTION 'voter must not be null' USING ERRCODE = '22004';
	ELSIF length(ballot_of.voter) NOT BETWEEN 1 AND 256 THEN
		RAISE EXCEPTION 'voter must be 1 to 256 characters, not %', length(ballot_of.voter)
			USING ERRCODE = '22023';
	END IF;
	SELECT b.options INTO chosen
	  FROM poll.ballot b
	 WHERE b.poll_id = ballot_of.poll_id AND b.voter = ballot_of.voter;
	IF NOT FOUND AND NOT EXISTS (SELECT FROM poll.poll p WHERE p.poll_id = ballot_of.poll_id) THEN
		RAISE EXCEPTION 'poll % does not exist', ballot_of.poll_id USING ERRCODE = 'P0002';
	END IF;
	RETURN chosen;
END
$$;
COMMENT ON FUNCTION poll.ballot_of(bigint, text) IS
	'The options of the voter''s live ballot, ascending; NULL when the voter has none.';

-- One call, many votes, each with its own outcome: poll-fanout's group
-- commit (src/batch.c).  Element i is (poll_ids[i], voters[i], ballots[i],
-- segments[i]); a NULL ballot retracts.
CREATE FUNCTION poll.cast_vote_batch(poll_ids bigint[], voters text[], ballots text[],
	segments text[] DEFAULT NULL)
RETURNS TABLE(ord int, result text, options int[], sqlstate text, message text)
LANGUAGE c VOLATILE ROWS 100 AS 'MODULE_PATHNAME', 'poll_cast_vote_batch';
COMMENT ON FUNCTION poll.cast_vote_batch(bigint[], text[], text[], text[]) IS
	'Votes and retractions (ballot NULL), at most 10000, each applied as cast_vote(bigint, text, text, text) or retract_vote would apply it alone: one row per element, in order, with its result (cast, changed, unchanged, retracted, none) and the voter''s ballot after it, or the SQLSTATE and message of its error; one bad element never fails the others.';

-- only_poll: fold that poll alone (NULL: all); skip_polls: leave these
-- polls' changes pending (the worker's quarantine, see src/worker.c).
CREATE OR REPLACE FUNCTION poll._fold(only_poll bigint, skip_polls bigint[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	polls	bigint[];
	n		bigint;
BEGIN
	-- The polls folded now: those with pending changes whose tally row
	-- this fold can lock at once.  A row another transaction holds (a
	-- close_poll not committed yet, a concurrent fold) is skipped and its
	-- changes stay pending for the next fold: one blocked poll never
	-- delays the folding of the others.
	SELECT array_agg(l.poll_id) INTO polls
	  FROM (SELECT t.poll_id
			  FROM poll.tally t
			 WHERE t.poll_id IN (SELECT c.poll_id FROM poll.change c
								  WHERE (only_poll IS NULL OR c.poll_id = only_poll)
									AND c.poll_id <> ALL (skip_polls))
			 ORDER BY t.poll_id
			   FOR NO KEY UPDATE SKIP LOCKED) l;
	IF polls IS NULL THEN
		RETURN 0;
	END IF;

	-- One statement: every part sees the same set of moved changes.  They
	-- are aggregated once, by poll, option, segment and minute; everything
	-- downstream reads that small set.
	WITH moved AS (
		DELETE FROM poll.change c
		 WHERE c.poll_id = ANY (polls)
		RETURNING *
	), agg AS (
		SELECT m.poll_id, m.option_id, m.segment,
			   date_bin('1 minute', m.at, '2000-01-01 00:00:00+00') AS minute,
			   sum(m.votes) AS votes, sum(m.ballots) AS ballots, max(m.at) AS last_at,
			   count(*) AS changes
		  FROM moved m GROUP BY 1, 2, 3, 4
	), per_option AS (
		SELECT a.poll_id, a.option_id, sum(a.votes) AS votes
		  FROM agg a GROUP BY a.poll_id, a.option_id
	), per_poll AS (
		SELECT a.poll_id, sum(a.ballots) AS ballots, max(a.last_at) AS last_at
		  FROM agg a GROUP BY a.poll_id
	), tally AS (
		UPDATE poll.tally t
		   SET votes = (SELECT array_agg(t.votes[i] + coalesce(po.votes, 0) ORDER BY i)
						  FROM generate_subscripts(t.votes, 1) AS i
						  LEFT JOIN per_option po
							ON po.poll_id = t.poll_id AND po.option_id = i),
			   ballots = t.ballots + pp.ballots,
			   last_vote_at = greatest(t.last_vote_at, pp.last_at),
			   folded_at = now(),
			   version = t.version + 1
		  FROM per_poll pp
		 WHERE t.poll_id = pp.poll_id
	), seg AS (
		INSERT INTO poll.tally_segment AS r (poll_id, segment, option_id, votes)
		SELECT a.poll_id, coalesce(a.segment, ''), a.option_id, sum(a.votes)
		  FROM agg a GROUP BY 1, 2, 3
		ON CONFLICT (poll_id, segment, option_id)
		DO UPDATE SET votes = r.votes + excluded.votes
	), seg_ballots AS (
		INSERT INTO poll.segment AS g (poll_id, segment, ballots)
		SELECT a.poll_id, a.segment, sum(a.ballots)
		  FROM agg a WHERE a.segment IS NOT NULL
		 GROUP BY 1, 2 HAVING sum(a.ballots) <> 0
		ON CONFLICT (poll_id, segment)
		DO UPDATE SET ballots = g.ballots + excluded.ballots
	), rollup AS (
		INSERT INTO poll.rollup AS r (grain, poll_id, option_id, bucket, votes)
		SELECT g.grain, a.poll_id, a.option_id,
			   date_bin(g.width, a.minute, '2000-01-01 00:00:00+00'), sum(a.votes)
		  FROM agg a
		 CROSS JOIN (VALUES ('minute', interval '1 minute'), ('hour', interval '1 hour'),
							('day', interval '1 day')) AS g(grain, width)
		 GROUP BY 1, 2, 3, 4 HAVING sum(a.votes) <> 0
		ON CONFLICT (grain, poll_id, option_id, bucket)
		DO UPDATE SET votes = r.votes + excluded.votes
	)
	SELECT coalesce(sum(a.changes), 0) INTO n FROM agg a;
	RETURN n;
END
$$;
COMMENT ON FUNCTION poll._fold(bigint, bigint[]) IS
	'Folds the pending changes of one poll or of all polls but some, skipping polls whose tally row another transaction holds; returns the number of change records folded.';

-- The worker's clock: records status changes made by opens_at/closes_at so
-- that they reach the change feed like any other change.
CREATE OR REPLACE FUNCTION poll._record_status() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	due		bigint[];
	n		bigint;
BEGIN
	-- as the fold does, a tally row another transaction holds is left for
	-- the next tick rather than waited for
	SELECT array_agg(l.poll_id) INTO due
	  FROM (SELECT t.poll_id
			  FROM poll.tally t
			  JOIN poll.poll p ON p.poll_id = t.poll_id
			 WHERE t.status <> 'closed'
			   AND t.status <> poll._status(p.opens_at, p.closes_at, p.closed_at, now())
			 ORDER BY t.poll_id
			   FOR NO KEY UPDATE OF t SKIP LOCKED) l;
	IF due IS NULL THEN
		RETURN 0;
	END IF;
	UPDATE poll.tally t
	   SET status = s.status, version = t.version + 1
	  FROM (SELECT p.poll_id, poll._status(p.opens_at, p.closes_at, p.closed_at, now()) AS status
			  FROM poll.poll p
			 WHERE p.poll_id = ANY (due)) s
	 WHERE t.poll_id = s.poll_id AND t.status <> s.status AND t.status <> 'closed';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION poll._record_status() IS
	'Records status changes made by the clock (opens_at or closes_at reached); returns how many polls changed.';

-- A segment with fewer ballots than poll._segment_floor() (the caller's
-- poll.segment_min_ballots; none for poll_admin) is reported under NULL,
-- merged with the ballots cast without a segment.
CREATE OR REPLACE VIEW poll.results_by_segment AS
SELECT s.poll_id,
	   nullif(s.segment, '') AS segment,
	   s.option_id,
	   o.label,
	   s.votes::bigint AS votes
  FROM (SELECT v.poll_id, CASE WHEN sm.segment IS NULL THEN v.segment ELSE '' END AS segment,
			   v.option_id, sum(v.votes) AS votes
		  FROM (SELECT u.poll_id, u.segment, u.option_id, sum(u.votes) AS votes
				  FROM (SELECT ts.poll_id, ts.segment, ts.option_id, ts.votes
						  FROM poll.tally_segment ts
						UNION ALL
						SELECT c.poll_id, coalesce(c.segment, ''), c.option_id, c.votes
						  FROM poll.change c) u
				 GROUP BY u.poll_id, u.segment, u.option_id) v
		  LEFT JOIN (SELECT b.poll_id, b.segment
					   FROM (SELECT g.poll_id, g.segment, g.ballots
							   FROM poll.segment g
							 UNION ALL
							 SELECT c.poll_id, c.segment, c.ballots
							   FROM poll.change c
							  WHERE c.segment IS NOT NULL) b
					  WHERE poll._segment_floor() > 1
					  GROUP BY b.poll_id, b.segment
					 HAVING sum(b.ballots) < poll._segment_floor()) sm
			ON sm.poll_id = v.poll_id AND sm.segment = v.segment
		 GROUP BY 1, 2, 3) s
  JOIN poll.option o ON o.poll_id = s.poll_id AND o.option_id = s.option_id
 WHERE s.votes <> 0;
COMMENT ON VIEW poll.results_by_segment IS 'Exact votes per poll, segment and option (segment NULL: ballots cast without one, and for roles other than poll_admin the segments with fewer than poll.segment_min_ballots ballots); combinations without votes are left out.';

CREATE FUNCTION poll._worker_wake() RETURNS void
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'poll_worker_wake';
COMMENT ON FUNCTION poll._worker_wake() IS
	'Wakes the launcher and the fold worker at the commit of the calling transaction (the install script calls it last, so that a new poll.database is served at once); does nothing without the preload.';

-- Privileges, as poll--1.1.sql grants them.
REVOKE ALL ON ALL TABLES IN SCHEMA poll FROM poll_admin;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA poll FROM poll_admin;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA poll FROM poll_admin;
REVOKE ALL ON TABLE poll.segment FROM PUBLIC;
REVOKE ALL ON FUNCTION poll._segment_floor(), poll.cast_vote(bigint, text, text, text),
	poll.ballot_of(bigint, text), poll._worker_wake() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poll._segment_floor() TO poll_reader;
GRANT EXECUTE ON FUNCTION poll.cast_vote(bigint, text, text, text),
	poll.ballot_of(bigint, text) TO poll_voter;

-- poll_admin reads every table and runs every function of the interface,
-- and holds nothing more: no write, TRIGGER, TRUNCATE or REFERENCES on a
-- table (a trigger of its own on poll.ballot or poll.tally would run as
-- the owner inside the vote path or the worker), and not the internal
-- functions that write as the owner (_fold with its arguments,
-- _record_status, _apply_retention, _poll_changed).
GRANT SELECT ON ALL TABLES IN SCHEMA poll TO poll_admin;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA poll TO poll_admin;
GRANT EXECUTE ON FUNCTION
	poll.create_poll(text, text[], text, int, timestamptz, timestamptz, boolean, jsonb),
	poll.close_poll(bigint),
	poll.cast_vote(bigint, text, int, text),
	poll.cast_vote(bigint, text, int[], text),
	poll.cast_vote(bigint, text, text, text),
	poll.cast_votes(bigint, text[], int[], text[]),
	poll.retract_vote(bigint, text),
	poll.ballot_of(bigint, text),
	poll.fold(),
	poll.series(bigint, interval, timestamptz, timestamptz),
	poll._status(timestamptz, timestamptz, timestamptz, timestamptz),
	poll._worker_status(),
	poll._segment_floor() TO poll_admin;

-- cast_vote_batch: voters and admins, as the other vote functions
REVOKE ALL ON FUNCTION poll.cast_vote_batch(bigint[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poll.cast_vote_batch(bigint[], text[], text[], text[]) TO poll_voter, poll_admin;

----------------------------------------------------------------------------
-- poll.series: the tally before the first bucket is computed once per
-- option (a MATERIALIZED CTE); inlined, it ran once per bucket and option
-- (720 hourly buckets of 4 options: ~60 ms, now ~5 ms)
----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION poll.series(poll_id bigint, width interval DEFAULT '1 minute',
							since timestamptz DEFAULT NULL, until timestamptz DEFAULT now())
RETURNS TABLE(bucket timestamptz, option_id int, votes bigint, cumulative bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	origin	constant timestamptz := '2000-01-01 00:00:00+00';
	p		poll.poll;
	secs	numeric;
	src_grain text;
	g		interval;
	first	timestamptz;
	last	timestamptz;
	n		bigint;
BEGIN
	IF series.poll_id IS NULL THEN
		RAISE EXCEPTION 'poll_id must not be null' USING ERRCODE = '22004';
	ELSIF width IS NULL THEN
		RAISE EXCEPTION 'width must not be null' USING ERRCODE = '22004';
	ELSIF until IS NULL THEN
		RAISE EXCEPTION 'until must not be null' USING ERRCODE = '22004';
	END IF;
	SELECT * INTO p FROM poll.poll WHERE poll.poll.poll_id = series.poll_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'poll % does not exist', series.poll_id USING ERRCODE = 'P0002';
	END IF;

	secs := extract(epoch FROM width);
	IF extract(month FROM width) <> 0 OR extract(year FROM width) <> 0
	   OR secs <= 0 OR secs % 60 <> 0 THEN
		RAISE EXCEPTION 'width must be a whole number of minutes, hours or days, not "%"', width
			USING ERRCODE = '22023';
	END IF;
	-- the coarsest rollup whose grain divides the width
	IF secs % 86400 = 0 THEN
		src_grain := 'day'; g := '1 day';
	ELSIF secs % 3600 = 0 THEN
		src_grain := 'hour'; g := '1 hour';
	ELSE
		src_grain := 'minute'; g := '1 minute';
	END IF;
	-- fixed-length buckets, aligned in UTC
	width := make_interval(secs => secs);

	first := date_bin(width, coalesce(since, p.opens_at), origin);
	last := date_bin(width, until, origin);
	IF last < first THEN
		RAISE EXCEPTION 'until (%) is before since (%)', until, coalesce(since, p.opens_at)
			USING ERRCODE = '22023';
	END IF;
	n := ((extract(epoch FROM last - first)) / secs)::bigint + 1;
	IF n * p.n_options > 1000000 THEN
		RAISE EXCEPTION 'series would return % rows; use a wider width or a shorter range',
			n * p.n_options
			USING ERRCODE = '22023',
				  HINT = 'At most 1000000 rows (buckets times options) are returned.';
	END IF;

	RETURN QUERY
		WITH buckets AS (
			SELECT b FROM generate_series(first, last, width) AS b
		), options AS (
			SELECT generate_series(1, p.n_options) AS option_id
		), deltas AS (
			SELECT date_bin(width, r.bucket, origin) AS b, r.option_id, sum(r.votes) AS votes
			  FROM poll.rollup r
			 WHERE r.grain = src_grain AND r.poll_id = series.poll_id
			   AND r.bucket >= first AND r.bucket < last + width
			 GROUP BY 1, 2
		), before AS MATERIALIZED (
			-- the tally when the first bucket begins, counted from the
			-- poll's beginning: days, then hours, then minutes up to it
			-- (once per option: inlined, it ran once per bucket and option)
			SELECT o.option_id,
				   coalesce((SELECT sum(d.votes) FROM poll.rollup d
							  WHERE d.grain = 'day' AND d.poll_id = series.poll_id
								AND d.option_id = o.option_id
								AND d.bucket < date_bin('1 day', first, origin)), 0)
				 + coalesce((SELECT sum(h.votes) FROM poll.rollup h
							  WHERE h.grain = 'hour' AND h.poll_id = series.poll_id
								AND h.option_id = o.option_id
								AND h.bucket >= date_bin('1 day', first, origin)
								AND h.bucket < date_bin('1 hour', first, origin)), 0)
				 + coalesce((SELECT sum(m.votes) FROM poll.rollup m
							  WHERE m.grain = 'minute' AND m.poll_id = series.poll_id
								AND m.option_id = o.option_id
								AND m.bucket >= date_bin('1 hour', first, origin)
								AND m.bucket < first), 0) AS votes
			  FROM options o
		)
		SELECT bk.b, o.option_id, coalesce(d.votes, 0)::bigint,
			   (bf.votes + sum(coalesce(d.votes, 0))
						   OVER (PARTITION BY o.option_id ORDER BY bk.b))::bigint
		  FROM buckets bk CROSS JOIN options o
		  JOIN before bf ON bf.option_id = o.option_id
		  LEFT JOIN deltas d ON d.b = bk.b AND d.option_id = o.option_id
		 ORDER BY bk.b, o.option_id;
END
$$;

-- the launcher and the worker look now, not at their next one-second look
SELECT poll._worker_wake();

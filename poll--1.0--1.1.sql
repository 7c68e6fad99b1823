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

----------------------------------------------------------------------------
-- Webhooks (since 1.1): registered by poll_admin (add_webhook), delivered
-- by poll-fanout --webhooks.  The secret sits in a table of its own that no
-- role but the owner reads, so no view and no grant shows it; the daemon
-- reads it through poll._webhook_due, which no poll role may run (the
-- daemon connects as the extension's owner, or is granted these three
-- functions by name).  Delivery state, per webhook, poll and event, is
-- written by the daemon only, through _webhook_begin and _webhook_result.
----------------------------------------------------------------------------

CREATE TABLE poll.webhook (
	webhook_id		bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	url				text NOT NULL,
	events			text[] NOT NULL,
	poll_ids		bigint[],
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE poll.webhook IS 'Registered webhooks (add_webhook); their secrets are in poll.webhook_secret.';

CREATE TABLE poll.webhook_secret (
	webhook_id		bigint PRIMARY KEY REFERENCES poll.webhook ON DELETE CASCADE,
	secret			text NOT NULL
);
COMMENT ON TABLE poll.webhook_secret IS 'The HMAC key of each webhook: readable by the extension''s owner only.';

CREATE TABLE poll.webhook_delivery (
	webhook_id		bigint NOT NULL REFERENCES poll.webhook ON DELETE CASCADE,
	poll_id			bigint NOT NULL,
	event			text NOT NULL CHECK (event IN ('opened', 'closed', 'tally')),
	version			bigint NOT NULL,
	state			text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
	body			text,
	vote_at			timestamptz,
	since			timestamptz NOT NULL,
	attempts		int NOT NULL DEFAULT 0,
	last_attempt_at	timestamptz,
	last_status		int,
	delivered_at	timestamptz,
	failures		bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (webhook_id, poll_id, event)
);
COMMENT ON TABLE poll.webhook_delivery IS 'The latest delivery of each event of each poll to each webhook: pending (its body, resent as is after a restart), delivered or failed (after 24 h of retries); written by poll-fanout only.';

SELECT pg_catalog.pg_extension_config_dump('poll.webhook', '');
SELECT pg_catalog.pg_extension_config_dump('poll.webhook_webhook_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('poll.webhook_secret', '');
SELECT pg_catalog.pg_extension_config_dump('poll.webhook_delivery', '');

CREATE FUNCTION poll.add_webhook(url text, secret text, events text[] DEFAULT '{opened,closed}',
								 poll_ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	authority	text;
	host		text;
	port		text;
	bad			text;
	badid		bigint;
	id			bigint;
BEGIN
	IF url IS NULL THEN
		RAISE EXCEPTION 'url must not be null' USING ERRCODE = '22004';
	ELSIF secret IS NULL THEN
		RAISE EXCEPTION 'secret must not be null' USING ERRCODE = '22004';
	ELSIF events IS NULL THEN
		RAISE EXCEPTION 'events must not be null' USING ERRCODE = '22004';
	END IF;
	IF length(url) > 2048 THEN
		RAISE EXCEPTION 'url must be at most 2048 characters, not %', length(url) USING ERRCODE = '22023';
	ELSIF url !~* '^https?://' THEN
		RAISE EXCEPTION 'url must start with http:// or https://, not %', quote_literal(left(url, 100))
			USING ERRCODE = '22023';
	ELSIF url ~ '[[:space:][:cntrl:]]' THEN
		RAISE EXCEPTION 'url must not contain spaces or control characters: %', quote_literal(left(url, 100))
			USING ERRCODE = '22023';
	END IF;
	authority := substring(url FROM '^[A-Za-z]+://([^/?#]*)');
	IF strpos(authority, '@') > 0 THEN
		RAISE EXCEPTION 'url must not carry credentials (the secret signs each delivery): %',
			quote_literal(left(url, 100)) USING ERRCODE = '22023';
	END IF;
	IF authority ~ '^\[' THEN
		host := substring(authority FROM '^(\[[0-9A-Fa-f:.]+\])');
		port := substring(authority FROM '^\[[0-9A-Fa-f:.]+\](.*)$');
	ELSE
		host := substring(authority FROM '^([^:]*)');
		port := substring(authority FROM '^[^:]*(.*)$');
	END IF;
	IF coalesce(host, '') = '' OR host !~ '^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$' OR length(host) > 253 THEN
		RAISE EXCEPTION 'url must name a host: %', quote_literal(left(url, 100)) USING ERRCODE = '22023';
	ELSIF port <> '' AND (port !~ '^:[0-9]{1,5}$' OR substr(port, 2)::int NOT BETWEEN 1 AND 65535) THEN
		RAISE EXCEPTION 'url has a bad port: %', quote_literal(left(url, 100)) USING ERRCODE = '22023';
	END IF;
	IF length(secret) NOT BETWEEN 1 AND 1024 THEN
		RAISE EXCEPTION 'secret must be 1 to 1024 characters, not %', length(secret) USING ERRCODE = '22023';
	END IF;
	IF array_ndims(events) IS DISTINCT FROM 1 THEN
		RAISE EXCEPTION 'events must be a one-dimensional array of opened, closed, tally'
			USING ERRCODE = '22023';
	END IF;
	IF array_position(events, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'events must not contain NULL' USING ERRCODE = '22004';
	END IF;
	SELECT e INTO bad FROM unnest(events) e WHERE e NOT IN ('opened', 'closed', 'tally') LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'unknown event %: events are opened, closed, tally', quote_literal(bad)
			USING ERRCODE = '22023';
	ELSIF (SELECT count(DISTINCT e) FROM unnest(events) e) <> cardinality(events) THEN
		RAISE EXCEPTION 'events must not repeat an event: %', events USING ERRCODE = '22023';
	END IF;
	IF poll_ids IS NOT NULL THEN
		IF array_ndims(poll_ids) IS DISTINCT FROM 1 OR cardinality(poll_ids) > 10000 THEN
			RAISE EXCEPTION 'poll_ids must be NULL (every poll) or a one-dimensional array of 1 to 10000 poll ids'
				USING ERRCODE = '22023';
		ELSIF array_position(poll_ids, NULL) IS NOT NULL THEN
			RAISE EXCEPTION 'poll_ids must not contain NULL' USING ERRCODE = '22004';
		ELSIF (SELECT count(DISTINCT i) FROM unnest(poll_ids) i) <> cardinality(poll_ids) THEN
			RAISE EXCEPTION 'poll_ids must not repeat a poll' USING ERRCODE = '22023';
		END IF;
		SELECT i INTO badid FROM unnest(poll_ids) i
		 WHERE NOT EXISTS (SELECT FROM poll.poll p WHERE p.poll_id = i) LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'poll % does not exist', badid USING ERRCODE = 'P0002';
		END IF;
	END IF;
	INSERT INTO poll.webhook (url, events, poll_ids)
	VALUES (add_webhook.url, add_webhook.events, add_webhook.poll_ids)
	RETURNING webhook_id INTO id;
	INSERT INTO poll.webhook_secret (webhook_id, secret) VALUES (id, add_webhook.secret);
	RETURN id;
END
$$;
COMMENT ON FUNCTION poll.add_webhook(text, text, text[], bigint[]) IS
	'Registers a webhook: an http:// or https:// url, the secret that signs each delivery, the events (opened, closed, tally) and the polls (NULL: every poll); returns its id.';

CREATE FUNCTION poll.remove_webhook(webhook_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF remove_webhook.webhook_id IS NULL THEN
		RAISE EXCEPTION 'webhook_id must not be null' USING ERRCODE = '22004';
	END IF;
	DELETE FROM poll.webhook w WHERE w.webhook_id = remove_webhook.webhook_id;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION poll.remove_webhook(bigint) IS
	'Removes a webhook, its secret and its delivery state; false when there was none.';

-- What poll-fanout has to deliver for the given polls (NULL: every poll):
-- the deliveries begun and not done (resent as they were, body and
-- version), then the events not begun, with the poll's state to render.
-- An event is due only if it happened after the webhook was registered;
-- closed waits for the poll's last changes to be folded.
CREATE FUNCTION poll._webhook_due(poll_ids bigint[])
RETURNS TABLE(webhook_id bigint, url text, secret text, poll_id bigint, event text, version bigint,
			  body text, attempts int, age float8, wait float8, vote_at timestamptz, title text,
			  status text, ballots bigint, votes bigint[], labels text[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT d.webhook_id, w.url, s.secret, d.poll_id, d.event, d.version, d.body, d.attempts,
		   extract(epoch FROM now() - d.since)::float8, 0::float8, d.vote_at,
		   NULL::text, NULL::text, NULL::bigint, NULL::bigint[], NULL::text[]
	  FROM poll.webhook_delivery d
	  JOIN poll.webhook w ON w.webhook_id = d.webhook_id
	  JOIN poll.webhook_secret s ON s.webhook_id = d.webhook_id
	 WHERE d.state = 'pending' AND ($1 IS NULL OR d.poll_id = ANY ($1))
	UNION ALL
	SELECT w.webhook_id, w.url, s.secret, p.poll_id, e.event, t.version, NULL::text, 0, 0::float8,
		   CASE WHEN e.event = 'tally' AND d.last_attempt_at IS NOT NULL
				THEN greatest(0, 5 - extract(epoch FROM now() - d.last_attempt_at))::float8
				ELSE 0::float8 END,
		   t.last_vote_at, p.title, t.status, t.ballots, t.votes,
		   (SELECT array_agg(o.label ORDER BY o.option_id) FROM poll.option o WHERE o.poll_id = p.poll_id)
	  FROM poll.webhook w
	  JOIN poll.webhook_secret s ON s.webhook_id = w.webhook_id
	  JOIN poll.poll p ON (w.poll_ids IS NULL OR p.poll_id = ANY (w.poll_ids))
					  AND ($1 IS NULL OR p.poll_id = ANY ($1))
	  JOIN poll.tally t ON t.poll_id = p.poll_id
	 CROSS JOIN LATERAL unnest(w.events) e(event)
	  LEFT JOIN poll.webhook_delivery d
		ON d.webhook_id = w.webhook_id AND d.poll_id = p.poll_id AND d.event = e.event
	 WHERE CASE e.event
		   WHEN 'opened' THEN d.webhook_id IS NULL
				AND (t.status = 'open' OR (t.status = 'closed' AND least(p.closed_at, p.closes_at) > p.opens_at))
				AND greatest(p.opens_at, p.created_at) >= w.created_at
		   WHEN 'closed' THEN t.status = 'closed' AND least(p.closed_at, p.closes_at) >= w.created_at
				AND (d.webhook_id IS NULL OR (d.state = 'pending' AND d.version < t.version))
				AND NOT EXISTS (SELECT FROM poll.change c WHERE c.poll_id = p.poll_id)	-- final counts
		   WHEN 'tally' THEN t.status <> 'scheduled'
				AND t.last_vote_at > coalesce(d.vote_at, w.created_at)
				AND NOT (t.status = 'closed' AND 'closed' = ANY (w.events))	-- closed tells
		   ELSE false END
$$;
COMMENT ON FUNCTION poll._webhook_due(bigint[]) IS
	'poll-fanout: the deliveries to make for these polls (NULL: all), with each webhook''s url and secret; owner only.';

-- A delivery begins (before its first attempt): recorded pending with its
-- body, so that a restart resends the same one.  NULL: the webhook is gone.
CREATE FUNCTION poll._webhook_begin(webhook_id bigint, poll_id bigint, event text, version bigint,
									body text, vote_at timestamptz)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO poll.webhook_delivery AS d (webhook_id, poll_id, event, version, state, body, vote_at, since)
	SELECT $1, $2, $3, $4, 'pending', $5, $6, now()
	 WHERE EXISTS (SELECT FROM poll.webhook w WHERE w.webhook_id = $1)
	ON CONFLICT (webhook_id, poll_id, event) DO UPDATE
	   SET version = excluded.version, body = excluded.body, vote_at = excluded.vote_at, state = 'pending',
		   since = CASE WHEN d.state = 'pending' THEN d.since ELSE excluded.since END,
		   attempts = CASE WHEN d.state = 'pending' THEN d.attempts ELSE 0 END
	RETURNING true
$$;
COMMENT ON FUNCTION poll._webhook_begin(bigint, bigint, text, bigint, text, timestamptz) IS
	'poll-fanout: a delivery is about to be attempted (a newer state replaces a pending one); owner only.';

-- An attempt's outcome: delivered (2xx), retry, or failed (24 h of retries).
CREATE FUNCTION poll._webhook_result(webhook_id bigint, poll_id bigint, event text, version bigint,
									 http_status int, outcome text)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE poll.webhook_delivery d
	   SET attempts = d.attempts + 1, last_attempt_at = now(), last_status = $5,
		   state = CASE WHEN $6 = 'delivered' THEN 'delivered' WHEN $6 = 'failed' THEN 'failed' ELSE d.state END,
		   body = CASE WHEN $6 = 'delivered' OR $6 = 'failed' THEN NULL ELSE d.body END,
		   delivered_at = CASE WHEN $6 = 'delivered' THEN now() ELSE d.delivered_at END,
		   failures = d.failures + CASE WHEN $6 = 'failed' THEN 1 ELSE 0 END
	 WHERE d.webhook_id = $1 AND d.poll_id = $2 AND d.event = $3 AND d.version = $4 AND d.state = 'pending'
	RETURNING true
$$;
COMMENT ON FUNCTION poll._webhook_result(bigint, bigint, text, bigint, int, text) IS
	'poll-fanout: the outcome of an attempt (delivered, retry or failed); owner only.';

CREATE VIEW poll.webhooks AS
SELECT w.webhook_id, w.url, w.events, w.poll_ids, w.created_at,
	   d.last_delivery_at, d.last_status,
	   coalesce(d.pending, 0)::bigint AS pending, coalesce(d.failures, 0)::bigint AS failures
  FROM poll.webhook w
  LEFT JOIN LATERAL (
	SELECT max(x.delivered_at) AS last_delivery_at,
		   (array_agg(x.last_status ORDER BY x.last_attempt_at DESC)
				FILTER (WHERE x.last_attempt_at IS NOT NULL))[1] AS last_status,
		   count(*) FILTER (WHERE x.state = 'pending') AS pending,
		   sum(x.failures) AS failures
	  FROM poll.webhook_delivery x
	 WHERE x.webhook_id = w.webhook_id) d ON true;
COMMENT ON VIEW poll.webhooks IS 'Each webhook with its delivery state: poll_admin only; never the secret.';
COMMENT ON COLUMN poll.webhooks.webhook_id IS 'The webhook''s id, as returned by add_webhook.';
COMMENT ON COLUMN poll.webhooks.url IS 'Where deliveries are POSTed (http:// or https://).';
COMMENT ON COLUMN poll.webhooks.events IS 'The events delivered: opened, closed, tally.';
COMMENT ON COLUMN poll.webhooks.poll_ids IS 'The polls whose events are delivered; NULL: every poll.';
COMMENT ON COLUMN poll.webhooks.created_at IS 'When the webhook was registered (earlier events are not delivered).';
COMMENT ON COLUMN poll.webhooks.last_delivery_at IS 'When a delivery to it last succeeded (2xx).';
COMMENT ON COLUMN poll.webhooks.last_status IS 'HTTP status of the last attempt (0: no answer within 10 s or no connection).';
COMMENT ON COLUMN poll.webhooks.pending IS 'Deliveries begun and not yet acknowledged.';
COMMENT ON COLUMN poll.webhooks.failures IS 'Deliveries given up after 24 h of retries.';

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

REVOKE ALL ON FUNCTION poll.add_webhook(text, text, text[], bigint[]), poll.remove_webhook(bigint),
	poll._webhook_due(bigint[]), poll._webhook_begin(bigint, bigint, text, bigint, text, timestamptz),
	poll._webhook_result(bigint, bigint, text, bigint, int, text) FROM PUBLIC;
-- Webhooks: poll_admin registers them and reads their state, never a secret;
-- the daemon's functions (_webhook_due, _begin, _result) are the owner's.
GRANT SELECT ON poll.webhooks TO poll_admin;
REVOKE SELECT ON poll.webhook_secret FROM poll_admin;
GRANT EXECUTE ON FUNCTION poll.add_webhook(text, text, text[], bigint[]),
	poll.remove_webhook(bigint) TO poll_admin;

-- the launcher and the worker look now, not at their next one-second look
SELECT poll._worker_wake();

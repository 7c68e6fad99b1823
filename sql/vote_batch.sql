-- cast_vote_batch: many votes and retractions in one call, as poll-fanout's
-- group commit sends them.  Each element gets its own outcome: the result
-- and the voter's ballot after it, or the SQLSTATE and message cast_vote
-- (or retract_vote) would have raised for it alone; one bad element never
-- fails the others.  Whole-call errors are for malformed calls only.
SELECT poll.create_poll('Batch', ARRAY['a', 'b', 'c']) AS s \gset
SELECT poll.create_poll('Batch multi', ARRAY['a', 'b', 'c', 'd'], 'multi', 3) AS m \gset
SELECT poll.create_poll('Batch fixed', ARRAY['a', 'b'], allow_change => false) AS f \gset
SELECT poll.create_poll('Batch later', ARRAY['a', 'b'], opens_at => now() + interval '1 day') AS later \gset
SELECT poll.create_poll('Batch closed', ARRAY['a', 'b']) AS closed \gset
SELECT poll.close_poll(:closed);
SELECT poll.cast_vote(:f, 'fixed voter', 1);

-- poll ids in messages depend on the suites before this one: name the poll instead
CREATE FUNCTION pg_temp.named(msg text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(regexp_replace(msg, 'poll \d+', 'poll "' || p.title || '"'), msg)
	  FROM (SELECT (regexp_match(msg, 'poll (\d+)'))[1]::bigint AS id) x
	  LEFT JOIN poll.poll p ON p.poll_id = x.id
$$;
CREATE TEMP TABLE batch (poll_id bigint, voter text, ballot text, segment text, n serial);

-- every error of an element, each between two good ones
INSERT INTO batch (poll_id, voter, ballot, segment) VALUES
	(:s, 'ok1', '1', NULL),
	(NULL, 'x', '1', NULL),				-- 22004 poll_id
	(:s, NULL, '1', NULL),				-- 22004 voter
	(:s, '', '1', NULL),				-- 22023 empty voter
	(:s, repeat('v', 257), '1', NULL),	-- 22023 voter too long
	(:s, 'x', '1', repeat('s', 65)),	-- 22023 segment too long
	(:s, 'x', '9', NULL),				-- 22023 no such option
	(:m, 'x', '{1,1}', NULL),			-- 22023 an option twice
	(:m, 'x', '{1,2,3,4}', NULL),		-- 22023 more than max_choices
	(:m, 'x', '[]', NULL),				-- 22023 no option
	(:s, 'x', 'two', NULL),				-- 22P02 not a ballot
	(:s, 'x', '99999999999', NULL),		-- 22003 out of range
	(999999999, 'x', '1', NULL),		-- P0002 no such poll
	(999999999, 'x', NULL, NULL),		-- P0002, retracting
	(:later, 'x', '1', NULL),			-- 55000 not open yet
	(:closed, 'x', '1', NULL),			-- 55000 closed
	(:closed, 'x', NULL, NULL),			-- 55000, retracting
	(:s, 'x', '{1}', NULL),				-- 42809 a list on a single-choice poll
	(:s, 'x', '1,2', NULL),				-- 42809 the same, bare
	(:f, 'fixed voter', '2', NULL),		-- 23505 a change where none is allowed
	(:f, 'fixed voter', NULL, NULL),	-- 23505 a retraction, the same
	(:f, 'fixed voter', '1', NULL),		-- unchanged is no change
	(:m, 'ok2', '[3, 1]', 'eu');
CREATE TEMP TABLE outcome AS
SELECT r.* FROM poll.cast_vote_batch((SELECT array_agg(poll_id ORDER BY n) FROM batch),
									 (SELECT array_agg(voter ORDER BY n) FROM batch),
									 (SELECT array_agg(ballot ORDER BY n) FROM batch),
									 (SELECT array_agg(segment ORDER BY n) FROM batch)) r;
SELECT ord, result, options, sqlstate, pg_temp.named(message) AS message FROM outcome ORDER BY ord;
-- each error is the one the element raises alone, through cast_vote's
-- untyped overload or retract_vote (the detail aside)
SELECT count(*) AS errors, count(*) FILTER (WHERE a.alone = o.sqlstate || ': ' || o.message) AS as_alone,
	   string_agg(o.ord || ' ' || o.message || ' / ' || a.alone, '; ')
		   FILTER (WHERE a.alone IS DISTINCT FROM o.sqlstate || ': ' || o.message) AS differences
  FROM outcome o JOIN batch b ON b.n = o.ord,
	   LATERAL (SELECT split_part(expect_error(CASE WHEN b.ballot IS NULL
					THEN format('SELECT poll.retract_vote(%s, %L)', coalesce(b.poll_id::text, 'NULL'), b.voter)
					ELSE format('SELECT poll.cast_vote(%s, %L::text, %L::text, %L::text)',
								coalesce(b.poll_id::text, 'NULL'), b.voter, b.ballot, b.segment) END),
				' [', 1) AS alone) a
 WHERE o.sqlstate IS NOT NULL;
SELECT poll_id = :s AS single, voter, option_id, segment FROM poll.ballots
 WHERE poll_id IN (:s, :m, :f) ORDER BY 1, 2, 3;

-- 200 new voters, 20 of them with a bad ballot: the 180 others are cast
TRUNCATE batch;
INSERT INTO batch (poll_id, voter, ballot)
SELECT :s, 'many' || g, CASE WHEN g % 10 = 0 THEN '4' ELSE (g % 3 + 1)::text END
  FROM generate_series(1, 200) g;
-- (in a transaction that began earlier: ballots take the statement's clock, as cast_vote's;
-- and no subtransaction xid: the bad elements wrote nothing that needed one)
SELECT pg_current_xact_id() AS xid_before \gset
BEGIN;
SELECT pg_sleep(0.01);
CREATE TEMP TABLE many AS
SELECT r.*, statement_timestamp() AS clock
  FROM poll.cast_vote_batch((SELECT array_agg(poll_id ORDER BY n) FROM batch),
							(SELECT array_agg(voter ORDER BY n) FROM batch),
							(SELECT array_agg(ballot ORDER BY n) FROM batch)) r;
SELECT coalesce(result, sqlstate) AS outcome, count(*), min(ord), max(ord) FROM many GROUP BY 1 ORDER BY 1;
SELECT count(*) AS ballots, count(*) FILTER (WHERE voter IN ('many10', 'many200')) AS bad_ones,
	   count(*) FILTER (WHERE cast_at = (SELECT min(clock) FROM many) AND cast_at > now()) AS at_statement_clock
  FROM poll.ballots WHERE poll_id = :s AND voter LIKE 'many%';
COMMIT;
SELECT pg_current_xact_id()::text::bigint - :'xid_before'::text::bigint AS xids_since;

-- one voter's elements apply in array order, whatever the other voters between them
SELECT * FROM poll.cast_vote_batch(ARRAY[:s, :s, :s, :s, :s, :s, :s]::bigint[],
	ARRAY['ord', 'zed', 'ord', 'abe', 'ord', 'ord', 'ord'],
	ARRAY['1', '1', '2', '2', '2', NULL, '3']);
-- the same voter twice, and retractions with and without a ballot
SELECT * FROM poll.cast_vote_batch(ARRAY[:s, :s, :s, :s, :s]::bigint[],
	ARRAY['twice', 'twice', 'ord', 'ord', 'nobody'], ARRAY['3', '3', NULL, NULL, NULL]);
SELECT voter, option_id FROM poll.ballots WHERE poll_id = :s AND voter IN ('ord', 'zed', 'abe', 'twice', 'nobody')
 ORDER BY 1;

-- several polls in one call; one voter in two polls, a multi ballot changed
SELECT * FROM poll.cast_vote_batch(ARRAY[:m, :s, :m, :s, :m]::bigint[],
	ARRAY['both', 'both', 'both', 'other', 'ok2'],
	ARRAY['{4,2}', '3', '[1,2,3]', '1', '2']);
SELECT poll_id = :s AS single, voter, array_agg(option_id ORDER BY option_id) FROM poll.ballots
 WHERE poll_id IN (:s, :m) AND voter IN ('both', 'other', 'ok2') GROUP BY 1, 2 ORDER BY 1, 2;

-- segments: a ballot's segment is the latest change's; past poll.max_segments, 54000 for that element alone
SET poll.max_segments = 3;
SELECT poll.create_poll('Batch segments', ARRAY['a', 'b']) AS g \gset
SELECT ord, result, options, sqlstate, pg_temp.named(message) AS message
  FROM poll.cast_vote_batch(array_fill(:g::bigint, ARRAY[7]),
	ARRAY['g1', 'g2', 'g3', 'g4', 'g5', 'g1', 'g6'],
	ARRAY['1', '1', '2', '1', '2', '2', NULL],
	ARRAY['eu', NULL, 'us', 'asia', 'africa', 'asia', 'africa']);
SELECT voter, option_id, segment FROM poll.ballots WHERE poll_id = :g ORDER BY 1;
SELECT segment FROM poll.segment WHERE poll_id = :g ORDER BY 1;
RESET poll.max_segments;
-- segments NULL, or an element's NULL: none
SELECT * FROM poll.cast_vote_batch(ARRAY[:g, :g]::bigint[], ARRAY['g7', 'g8'], ARRAY['1', '2'], NULL);
SELECT * FROM poll.cast_vote_batch(ARRAY[:g]::bigint[], ARRAY['g9'], ARRAY['1'], ARRAY[NULL]::text[]);
SELECT voter, segment FROM poll.ballots WHERE poll_id = :g AND voter IN ('g7', 'g8', 'g9') ORDER BY 1;

-- an untyped call, as a driver sends the arrays: text parameters of unknown type
\set ids '{' :s ',' :m ',' :s '}'
\set one '{' :m '}'
PREPARE batch4 AS SELECT * FROM poll.cast_vote_batch($1, $2, $3, $4);
EXECUTE batch4(:'ids', '{drv1,drv2,"drv 3"}', '{2,"{1,3}",NULL}', '{web,NULL,NULL}');
PREPARE batch3(unknown, unknown, unknown) AS SELECT * FROM poll.cast_vote_batch($1, $2, $3);
EXECUTE batch3(:'one', '{drv2}', '{"[3,1]"}');
EXECUTE batch3(:'one', '{drv2}', '{"{\"1\",\"3\"}"}');

-- the path through SQL, when poll.ballot has an index of someone else's
CREATE INDEX batch_cast_at ON poll.ballot (cast_at);
SELECT * FROM poll.cast_vote_batch(ARRAY[:s, :s, :s, :s]::bigint[],
	ARRAY['sql1', 'sql1', 'sql2', 'many1'], ARRAY['1', '2', '3', NULL]);
DROP INDEX poll.batch_cast_at;

-- malformed calls fail as a whole
SELECT * FROM poll.cast_vote_batch('{}', '{}', '{}');
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s, %s], ARRAY[%L], ARRAY[%L])', :s, :s, 'x', '1'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], ARRAY[%L], ARRAY[%L, %L])', :s, 'x', '1', '2'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], ARRAY[%L], ARRAY[%L], ARRAY[%L, %L])', :s, 'x', '1', 'a', 'b'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[[%s]], ARRAY[[%L]], ARRAY[[%L]])', :s, 'x', '1'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], ARRAY[%L], ARRAY[%L], ARRAY[[%L]])', :s, 'x', '1', 'a'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(NULL, ARRAY[%L], ARRAY[%L])', 'x', '1'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], NULL, ARRAY[%L])', :s, '1'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(ARRAY[%s], ARRAY[%L], NULL)', :s, 'x'));
SELECT expect_error(format('SELECT * FROM poll.cast_vote_batch(array_fill(%s::bigint, ARRAY[10001]),
	array_fill(%L::text, ARRAY[10001]), array_fill(%L::text, ARRAY[10001]))', :s, 'x', '1'));
-- 10000 is allowed
SELECT count(*), count(result) FROM poll.cast_vote_batch(array_fill(:s::bigint, ARRAY[10000]),
	ARRAY(SELECT 'max' || g FROM generate_series(1, 10000) g), array_fill('2'::text, ARRAY[10000]));

-- tallies, rollups and segments agree with the ballots
SELECT poll.fold() > 0 AS folded;
SELECT * FROM poll_invariant_violations();

-- invariants.sql — the SPEC's invariants as one query: every row returned is a violation.
-- Used by the regression suite and the integration tests (worker, crash, restart).
-- Call poll.fold() first when checking folded state.
CREATE OR REPLACE FUNCTION public.poll_invariant_violations()
RETURNS TABLE(what text, poll_id bigint, option_id int, expected bigint, got bigint)
LANGUAGE sql AS $$
	WITH live AS (
		SELECT o.poll_id, o.option_id, count(b.voter) AS n
		  FROM poll.option o
		  LEFT JOIN poll.ballots b ON b.poll_id = o.poll_id AND b.option_id = o.option_id
		 GROUP BY o.poll_id, o.option_id
	), rollup AS (
		SELECT 'votes_per_day' AS what, r.poll_id, r.option_id, sum(r.votes) AS n
		  FROM poll.votes_per_day r GROUP BY 1, 2, 3
		UNION ALL
		SELECT 'votes_per_hour', r.poll_id, r.option_id, sum(r.votes)
		  FROM poll.votes_per_hour r GROUP BY 1, 2, 3
		UNION ALL
		SELECT 'votes_per_minute', r.poll_id, r.option_id, sum(r.votes)
		  FROM poll.votes_per_minute r GROUP BY 1, 2, 3
	), grains AS (
		SELECT g.what, l.poll_id, l.option_id, l.n
		  FROM live l,
			   (VALUES ('votes_per_day'), ('votes_per_hour'), ('votes_per_minute')) AS g(what)
	)
	-- poll.results.votes = rows of poll.ballots choosing the option
	SELECT 'results', l.poll_id, l.option_id, l.n, r.votes
	  FROM live l JOIN poll.results r USING (poll_id, option_id)
	 WHERE r.votes <> l.n
	UNION ALL
	-- sum of each rollup over all buckets = poll.results.votes (after a fold)
	SELECT g.what, g.poll_id, g.option_id, g.n, coalesce(ru.n, 0)::bigint
	  FROM grains g LEFT JOIN rollup ru USING (what, poll_id, option_id)
	 WHERE coalesce(ru.n, 0) <> g.n
	UNION ALL
	-- the folded tally row (what browsers see) = live ballots (after a fold)
	SELECT 'tally', l.poll_id, l.option_id, l.n, t.votes[l.option_id]
	  FROM live l JOIN poll.tally t USING (poll_id)
	 WHERE t.votes[l.option_id] <> l.n
	UNION ALL
	-- ballots in the summary and in the tally row = live ballots
	SELECT 'ballots', s.poll_id, NULL, count(b.voter), s.ballots
	  FROM poll.poll_summary s LEFT JOIN poll.ballot b USING (poll_id)
	 GROUP BY s.poll_id, s.ballots HAVING s.ballots <> count(b.voter)
	UNION ALL
	SELECT 'tally.ballots', t.poll_id, NULL, count(b.voter), t.ballots
	  FROM poll.tally t LEFT JOIN poll.ballot b USING (poll_id)
	 GROUP BY t.poll_id, t.ballots HAVING t.ballots <> count(b.voter)
	UNION ALL
	-- segments add up to the results
	SELECT 'results_by_segment', r.poll_id, r.option_id, r.votes, coalesce(s.n, 0)::bigint
	  FROM poll.results r
	  LEFT JOIN (SELECT rs.poll_id, rs.option_id, sum(rs.votes) AS n
				   FROM poll.results_by_segment rs GROUP BY 1, 2) s USING (poll_id, option_id)
	 WHERE r.votes <> coalesce(s.n, 0)
	ORDER BY 1, 2, 3
$$;

-- Turns an error into a line of output: SQLSTATE, message and detail.
CREATE OR REPLACE FUNCTION public.expect_error(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	state	text;
	msg		text;
	detail	text;
BEGIN
	EXECUTE query;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RETURN state || ': ' || msg || CASE WHEN detail <> '' THEN ' [' || detail || ']' ELSE '' END;
END
$$;

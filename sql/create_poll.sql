-- Creating and closing polls: options numbered in array order, a tally row
-- per poll, and every invalid argument refused with its SQLSTATE.
SELECT poll.create_poll('Best colour', ARRAY['Red', 'Blue', 'Green']) AS colour \gset
SELECT option_id, label FROM poll.option WHERE poll_id = :colour ORDER BY option_id;
SELECT version, status, ballots, votes FROM poll.tally WHERE poll_id = :colour;
SELECT title, kind, status, ballots, last_vote_at FROM poll.poll_summary WHERE poll_id = :colour;
SELECT option_id, label, votes, share FROM poll.results WHERE poll_id = :colour ORDER BY option_id;

-- multi: max_choices defaults to the number of options
SELECT poll.create_poll('Toppings', ARRAY['Cheese', 'Ham', 'Olives', 'Basil'], 'multi') AS toppings \gset
SELECT kind, n_options, max_choices, allow_change FROM poll.poll WHERE poll_id = :toppings;
SELECT poll.create_poll('Two of four', ARRAY['a', 'b', 'c', 'd'], 'multi', 2) AS two \gset
SELECT max_choices FROM poll.poll WHERE poll_id = :two;

-- scheduled, with a schedule and metadata
SELECT poll.create_poll('Later', ARRAY['yes', 'no'], opens_at => now() + interval '1 hour',
						closes_at => now() + interval '2 hours', metadata => '{"team": "web"}') AS later \gset
SELECT status FROM poll.poll_summary WHERE poll_id = :later;
SELECT status FROM poll.tally WHERE poll_id = :later;
SELECT metadata FROM poll.poll WHERE poll_id = :later;

-- labels and titles in any script
SELECT poll.create_poll('Ünïcödé ✓', ARRAY['日本語', 'Ελληνικά', 'emoji 🎉', '  spaced  ']) AS uni \gset
SELECT p.title, o.label FROM poll.option o JOIN poll.poll p USING (poll_id)
 WHERE poll_id = :uni ORDER BY option_id;

-- NULL for a required argument: 22004
SELECT expect_error($$SELECT poll.create_poll(NULL, ARRAY['a', 'b'])$$);
SELECT expect_error($$SELECT poll.create_poll('t', NULL)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], NULL)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], opens_at => NULL)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], allow_change => NULL)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], metadata => NULL)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', NULL, 'c'])$$);

-- invalid arguments: 22023
SELECT expect_error($$SELECT poll.create_poll('', ARRAY['a', 'b'])$$);
SELECT expect_error($$SELECT poll.create_poll(repeat('x', 501), ARRAY['a', 'b'])$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['only'])$$);
SELECT expect_error($$SELECT poll.create_poll('t', '{}')$$);
SELECT expect_error($$SELECT poll.create_poll('t', (SELECT array_agg(i::text) FROM generate_series(1, 65) i))$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', '', 'c'])$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', repeat('y', 201)])$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['Red', 'Blue', 'Red'])$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], 'ranked')$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], 'single', 2)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], 'multi', 0)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], 'multi', 3)$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], opens_at => '2030-01-01', closes_at => '2029-01-01')$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], opens_at => '2030-01-01', closes_at => '2030-01-01')$$);
SELECT expect_error($$SELECT poll.create_poll('t', ARRAY['a', 'b'], metadata => '[1, 2]')$$);
-- 64 options is the most
SELECT poll.create_poll('64', (SELECT array_agg(i::text) FROM generate_series(1, 64) i)) AS sixty_four \gset
SELECT n_options FROM poll.poll WHERE poll_id = :sixty_four;

-- close_poll: closes now, bumps the version once, is idempotent
SELECT poll.close_poll(:colour);
SELECT status, version FROM poll.tally WHERE poll_id = :colour;
SELECT poll.close_poll(:colour);
SELECT status, version FROM poll.tally WHERE poll_id = :colour;
SELECT status, closes_at IS NOT NULL AS has_closes_at FROM poll.poll_summary WHERE poll_id = :colour;
-- a scheduled poll closes without opening
SELECT poll.close_poll(:later);
SELECT status FROM poll.poll_summary WHERE poll_id = :later;
SELECT expect_error($$SELECT poll.close_poll(NULL)$$);
SELECT expect_error($$SELECT poll.close_poll(999999)$$);

-- documentation: every table, view, function and view column has a comment
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'poll' AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'poll' AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE n.nspname = 'poll' AND c.relkind = 'v' AND col_description(c.oid, a.attnum) IS NULL;
-- every SQL-language function pins its search_path
SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = 'poll' AND l.lanname <> 'c'
   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);

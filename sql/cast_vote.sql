-- Casting, changing and retracting single ballots: one ballot per voter,
-- every rule and every hostile input refused with its SQLSTATE.
SELECT poll.create_poll('Lunch', ARRAY['Pizza', 'Sushi', 'Salad']) AS lunch \gset
SELECT poll.create_poll('Toppings', ARRAY['Cheese', 'Ham', 'Olives', 'Basil'], 'multi', 3) AS toppings \gset
SELECT poll.create_poll('Final', ARRAY['yes', 'no'], allow_change => false) AS final \gset
SELECT poll.create_poll('Soon', ARRAY['yes', 'no'], opens_at => now() + interval '1 day') AS soon \gset

-- cast, unchanged, changed
SELECT poll.cast_vote(:lunch, 'ann', 1);
SELECT poll.cast_vote(:lunch, 'ann', 1);
SELECT poll.cast_vote(:lunch, 'ann', 2);
SELECT poll.cast_vote(:lunch, 'bob', 2, 'north');
-- voters are compared exactly: case and spaces make other voters
SELECT poll.cast_vote(:lunch, 'Ann', 3), poll.cast_vote(:lunch, ' ann', 3), poll.cast_vote(:lunch, 'ann ', 3);
SELECT option_id, label, votes, round(share, 4) AS share FROM poll.results WHERE poll_id = :lunch ORDER BY 1;
SELECT voter, option_id, segment FROM poll.ballots WHERE poll_id = :lunch ORDER BY voter;

-- retract: true, then false when there is nothing left; a retracted voter may vote again
SELECT poll.retract_vote(:lunch, 'bob');
SELECT poll.retract_vote(:lunch, 'bob');
SELECT poll.retract_vote(:lunch, 'nobody');
SELECT poll.cast_vote(:lunch, 'bob', 1);
SELECT option_id, votes FROM poll.results WHERE poll_id = :lunch ORDER BY 1;
SELECT ballots FROM poll.poll_summary WHERE poll_id = :lunch;

-- multi: a set of options, in any order; the same set again is unchanged
SELECT poll.cast_vote(:toppings, 'ann', ARRAY[3, 1]);
SELECT poll.cast_vote(:toppings, 'ann', ARRAY[1, 3]);
SELECT poll.cast_vote(:toppings, 'ann', ARRAY[1, 2, 4]);
SELECT poll.cast_vote(:toppings, 'bob', 4);
SELECT poll.cast_vote(:toppings, 'bob', ARRAY[4]);
SELECT option_id, votes, round(share, 4) AS share FROM poll.results WHERE poll_id = :toppings ORDER BY 1;
SELECT voter, array_agg(option_id ORDER BY option_id) FROM poll.ballots WHERE poll_id = :toppings GROUP BY voter ORDER BY 1;
SELECT poll.retract_vote(:toppings, 'ann');
SELECT option_id, votes FROM poll.results WHERE poll_id = :toppings ORDER BY 1;

-- allow_change = false: the same ballot is fine, a change or retraction is not (23505)
SELECT poll.cast_vote(:final, 'ann', 1);
SELECT poll.cast_vote(:final, 'ann', 1);
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 2)', :final, 'ann'));
SELECT expect_error(format('SELECT poll.retract_vote(%s, %L)', :final, 'ann'));
SELECT option_id, votes FROM poll.results WHERE poll_id = :final ORDER BY 1;

-- not open yet, and closed (55000); closing takes effect at once in this session
SELECT split_part(expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :soon, 'ann')), ' [', 1);
SELECT expect_error(format('SELECT poll.retract_vote(%s, %L)', :soon, 'ann')) ~ '^55000' AS refused;
SELECT poll.close_poll(:final);
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :final, 'zed'));
SELECT expect_error(format('SELECT poll.retract_vote(%s, %L)', :final, 'ann'));

-- NULL for a required argument (22004)
SELECT expect_error($$SELECT poll.cast_vote(NULL, 'ann', 1)$$);
SELECT expect_error(format('SELECT poll.cast_vote(%s, NULL, 1)', :lunch));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, NULL::int)', :lunch, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, NULL::int[])', :toppings, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, ARRAY[1, NULL])', :toppings, 'ann'));
SELECT expect_error($$SELECT poll.retract_vote(NULL, 'ann')$$);
SELECT expect_error(format('SELECT poll.retract_vote(%s, NULL)', :lunch));

-- unknown poll (P0002)
SELECT expect_error($$SELECT poll.cast_vote(987654321, 'ann', 1)$$);
SELECT expect_error($$SELECT poll.cast_vote(-1, 'ann', ARRAY[1])$$);
SELECT expect_error($$SELECT poll.retract_vote(987654321, 'ann')$$);

-- options: 0, n+1, negative, too many, duplicates, empty, two dimensions (22023)
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 0)', :lunch, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 4)', :lunch, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, -2147483648)', :lunch, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, ARRAY[1, 2, 3, 4])', :toppings, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, ARRAY[2, 2])', :toppings, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, ARRAY[5])', :toppings, 'ann'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, %L::int[])', :toppings, 'ann', '{}'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, %L::int[])', :toppings, 'ann', '{{1,2},{3,4}}'));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, (SELECT array_agg(i) FROM generate_series(1, 100) i))', :toppings, 'ann'));

-- an array ballot on a single poll is the wrong kind (42809), even with one element
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, ARRAY[1])', :lunch, 'ann'));

-- voters: 1 to 256 characters, counted as characters (22023)
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :lunch, ''));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :lunch, repeat('v', 257)));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :lunch, repeat('v', 10240)));
SELECT expect_error(format('SELECT poll.retract_vote(%s, %L)', :lunch, repeat('v', 10240)));
SELECT poll.cast_vote(:lunch, repeat('v', 256), 1);
SELECT poll.cast_vote(:lunch, repeat('é', 256), 1);
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :lunch, repeat('é', 257)));
SELECT poll.cast_vote(:lunch, '🗳️ voter ☃', 2, 'région');
-- segments: NULL or 1 to 64 characters (22023)
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1, %L)', :lunch, 'seg', ''));
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1, %L)', :lunch, 'seg', repeat('s', 65)));
SELECT poll.cast_vote(:lunch, 'seg', 1, repeat('s', 64));

-- nothing refused above was written
SELECT count(*) FROM poll.ballots WHERE voter IN ('', 'zed') OR length(voter) > 256;
SELECT option_id, votes FROM poll.results WHERE poll_id = :lunch ORDER BY 1;
SELECT segment, option_id, votes FROM poll.results_by_segment WHERE poll_id = :lunch ORDER BY 1, 2;

-- a poll created in a transaction that rolls back leaves no trace, even in this session's cache
BEGIN;
SELECT poll.create_poll('Ghost', ARRAY['a', 'b']) AS ghost \gset
SELECT poll.cast_vote(:ghost, 'ann', 1);
ROLLBACK;
SELECT expect_error(format('SELECT poll.cast_vote(%s, %L, 1)', :ghost, 'ann'));

-- the vote path names every object with its schema: an empty search_path changes nothing
SET search_path = '';
SELECT poll.cast_vote(:lunch, 'pathless', 3);
RESET search_path;

-- the invariants hold before and after a fold
SELECT * FROM poll_invariant_violations() WHERE what IN ('results', 'ballots', 'results_by_segment');
SELECT poll.fold() > 0 AS folded;
SELECT * FROM poll_invariant_violations();
SELECT count(*) AS pending FROM poll.change;

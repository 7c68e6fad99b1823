-- Webhooks: registration (poll_admin only), validation with specific
-- SQLSTATEs, the secret never shown, the view, the daemon's functions.
SELECT poll.create_poll('Hooked', ARRAY['a', 'b']) AS p \gset
SELECT poll.create_poll('Hooked too', ARRAY['a', 'b']) AS q \gset

-- a webhook for every poll, with the default events, and one for two polls
SELECT poll.add_webhook('https://hooks.example.com/poll?team=1', 'secret-1') AS w1 \gset
SELECT poll.add_webhook('http://127.0.0.1:8090/hook', 'secret-2', '{tally,closed}', ARRAY[:p, :q]) AS w2 \gset
SELECT poll.add_webhook('http://[::1]:8443/x', 's', '{opened}') IS NOT NULL AS ipv6;
SELECT url, events, poll_ids = ARRAY[:p, :q]::bigint[] AS polls, pending, failures, last_status,
	   last_delivery_at IS NULL AS never
  FROM poll.webhooks WHERE webhook_id IN (:w1, :w2) ORDER BY webhook_id;
-- the view has the SPEC's columns, and no secret
SELECT attname FROM pg_attribute WHERE attrelid = 'poll.webhooks'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) AS shown FROM poll.webhooks w WHERE w::text LIKE '%secret-%';

-- bad input: NULLs (22004), bad urls, events, secrets and poll ids (22023), unknown polls (P0002)
SELECT expect_error($$SELECT poll.add_webhook(NULL, 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x/', NULL)$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x/', 's', NULL)$$);
SELECT expect_error($$SELECT poll.add_webhook('ftp://x/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('javascript:alert(1)', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http:///path', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://:80/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://user:pw@x.example/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example:0/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example:65536/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example:8o/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://bad host/', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook(E'http://x.example/\n', 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/' || repeat('a', 2100), 's')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', '')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', repeat('s', 1025))$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{}')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{opened,voted}')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', ARRAY['opened', NULL])$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{tally,tally}')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{{opened},{closed}}')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{opened}', '{}')$$);
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{opened}', ARRAY[1, NULL]::bigint[])$$);
SELECT expect_error(format('SELECT poll.add_webhook(%L, %L, %L, ARRAY[%s, %s])', 'http://x.example/', 's', '{opened}', :p, :p));
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's', '{opened}', ARRAY[987654321]::bigint[])$$);
SELECT expect_error('SELECT poll.remove_webhook(NULL)');
SELECT count(*) AS webhooks FROM poll.webhook;

-- the daemon's side: what is due, a delivery begun, retried, acknowledged
SELECT poll.cast_vote(:p, 'v1', 1);
SELECT poll.fold() > 0 AS folded;
SELECT webhook_id = :w2 AS w2, poll_id = :p AS p, event, version, body IS NULL AS new, secret, title, status,
	   ballots, votes, labels
  FROM poll._webhook_due(ARRAY[:p]) WHERE webhook_id IN (:w1, :w2) ORDER BY 1, event;
SELECT poll._webhook_begin(:w2, :p, 'tally', 2, '{"type":"tally"}', now());
SELECT poll._webhook_result(:w2, :p, 'tally', 2, 500, 'retry');
SELECT pending, last_status, failures FROM poll.webhooks WHERE webhook_id = :w2;
-- begun and not done: offered again as it was, with its body
SELECT event, version, body, attempts FROM poll._webhook_due(ARRAY[:p]) WHERE webhook_id = :w2;
SELECT poll._webhook_result(:w2, :p, 'tally', 2, 204, 'delivered');
SELECT pending, last_status, failures, last_delivery_at IS NOT NULL AS delivered FROM poll.webhooks WHERE webhook_id = :w2;
SELECT count(*) AS due FROM poll._webhook_due(ARRAY[:p]) WHERE webhook_id = :w2;
-- an outcome for a version not pending changes nothing
SELECT poll._webhook_result(:w2, :p, 'tally', 2, 200, 'delivered') IS NULL AS ignored;
-- a closed poll: closed is due (after the fold of its last votes), tally no more
SELECT poll.cast_vote(:q, 'v1', 2);
SELECT poll.close_poll(:q);
SELECT count(*) AS due_before_fold FROM poll._webhook_due(ARRAY[:q]) WHERE webhook_id = :w2 AND event = 'closed';
SELECT poll.fold() > 0 AS folded;
SELECT event, status, votes FROM poll._webhook_due(ARRAY[:q]) WHERE webhook_id = :w2 ORDER BY event;
SELECT poll._webhook_begin(:w2, :q, 'closed', 4, '{}', NULL);
SELECT poll._webhook_result(:w2, :q, 'closed', 4, 0, 'failed');
SELECT pending, last_status, failures FROM poll.webhooks WHERE webhook_id = :w2;
-- a removed webhook: begin refuses it, its state goes with it
SELECT poll.remove_webhook(:w2), poll.remove_webhook(:w2);
SELECT poll._webhook_begin(:w2, :p, 'tally', 9, '{}', NULL) IS NULL AS refused;
SELECT count(*) FROM poll.webhook_delivery WHERE webhook_id = :w2;
SELECT count(*) FROM poll.webhook_secret WHERE webhook_id = :w2;

-- roles: poll_admin registers and reads, never a secret; reader, voter and
-- PUBLIC see and change nothing, nor run the daemon's functions
CREATE ROLE hook_admin IN ROLE poll_admin;
CREATE ROLE hook_reader IN ROLE poll_reader;
CREATE ROLE hook_voter IN ROLE poll_voter;
SET ROLE hook_admin;
SELECT poll.add_webhook('https://admin.example/', 'admin-secret') AS w3 \gset
SELECT url FROM poll.webhooks WHERE webhook_id = :w3;
SELECT count(*) > 0 AS reads FROM poll.webhook;
SELECT expect_error('SELECT secret FROM poll.webhook_secret');
SELECT expect_error('SELECT * FROM poll._webhook_due(NULL)');
SELECT expect_error($$SELECT poll._webhook_begin(1, 1, 'opened', 1, '{}', NULL)$$);
SELECT expect_error($$SELECT poll._webhook_result(1, 1, 'opened', 1, 200, 'delivered')$$);
SELECT expect_error(format('UPDATE poll.webhook SET url = %L', 'http://evil.example/'));
SELECT expect_error('DELETE FROM poll.webhook_delivery');
SELECT poll.remove_webhook(:w3);
RESET ROLE;
SET ROLE hook_reader;
SELECT expect_error('SELECT * FROM poll.webhooks');
SELECT expect_error('SELECT * FROM poll.webhook');
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's')$$);
SELECT expect_error('SELECT poll.remove_webhook(1)');
RESET ROLE;
SET ROLE hook_voter;
SELECT expect_error('SELECT * FROM poll.webhooks');
SELECT expect_error($$SELECT poll.add_webhook('http://x.example/', 's')$$);
SELECT expect_error('SELECT * FROM poll._webhook_due(NULL)');
RESET ROLE;
DROP ROLE hook_admin, hook_reader, hook_voter;
SELECT poll.remove_webhook(:w1);
DELETE FROM poll.webhook;

-- push_baseline.sql — the hand-rolled push that poll-fanout is measured against:
-- every update of a poll.tally row (one per fold per poll, the same folded state
-- the daemon decodes) sends its full row as a NOTIFY on channel poll_<id>, in the
-- daemon's tally shape. bench/push.sh creates it only around the baseline's runs.
CREATE OR REPLACE FUNCTION public.push_baseline_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('poll_' || NEW.poll_id,
		format('{"type":"tally","poll":%s,"version":%s,"ballots":%s,"options":[%s]}',
			NEW.poll_id, NEW.version, NEW.ballots,
			(SELECT string_agg(format('{"id":%s,"votes":%s}', i, NEW.votes[i]), ',' ORDER BY i)
			   FROM generate_subscripts(NEW.votes, 1) AS i)));
	RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS push_baseline_notify ON poll.tally;
CREATE TRIGGER push_baseline_notify AFTER UPDATE ON poll.tally
	FOR EACH ROW EXECUTE FUNCTION public.push_baseline_notify();

/*
 * snapshots.c — loading polls from Postgres: which snapshot queries run,
 * in what order, and what their results do to the poll cache.
 *
 * Fairness: the polls a client waits for are asked for client by client,
 * round-robin — a session with a poll still loading is on a ring, and each
 * query takes at most one poll from each session in turn (a batch of up to
 * SNAP_BATCH polls in one query, poll_id = ANY($1)).  A client asking for
 * 64 polls delays another client's one poll by one batch, not by 64
 * queries.  After a reconnection every cached poll is re-snapshotted
 * (the resync queue), after the clients' polls in each batch.
 *
 * Unknown ids: a poll id no row came back for is remembered for
 * NEG_TTL_US in a fixed-size, direct-mapped negative cache (NEG_SLOTS
 * entries, a collision replaces the older entry: bounded whatever the
 * ids), so asking for it again costs no query; a row of the id on the
 * replication stream (the poll was created) forgets it at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define SNAP_BATCH	64
#define NEG_SLOTS	4096
#define NEG_TTL_US	(10 * 1000 * 1000)

/*
 * Every name schema-qualified, and the connection runs with search_path =
 * pg_catalog, pg_temp (replication.c): no name resolves in a schema a user
 * could write to (a public.array_agg(text) would beat pg_catalog's
 * polymorphic one and run under the daemon's role).
 */
static const char *const snapshot_sql =
"SELECT p.poll_id, p.title, t.version, t.status, t.ballots, t.votes,"
" pg_catalog.array_agg(o.label ORDER BY o.option_id)"
" FROM poll.poll p"
" JOIN poll.tally t ON t.poll_id OPERATOR(pg_catalog.=) p.poll_id"
" JOIN poll.option o ON o.poll_id OPERATOR(pg_catalog.=) p.poll_id"
" WHERE p.poll_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])"
" GROUP BY p.poll_id, p.title, t.version, t.status, t.ballots, t.votes";

static struct neg_entry {
	int64_t		id;
	int64_t		until_us;
}			neg[NEG_SLOTS];

static unsigned
neg_slot(int64_t id)
{
	return (unsigned) (((uint64_t) id * 11400714819323198485ull) >> 52) % NEG_SLOTS;
}

bool
snap_known_missing(struct fanout *f, int64_t id)
{
	struct neg_entry *e = &neg[neg_slot(id)];

	(void) f;
	return e->id == id && e->until_us > now_us();
}

void
snap_seen(struct fanout *f, int64_t id)
{
	struct neg_entry *e = &neg[neg_slot(id)];

	(void) f;
	if (e->id == id)
		e->until_us = 0;
}

static void
neg_add(int64_t id)
{
	struct neg_entry *e = &neg[neg_slot(id)];

	e->id = id;
	e->until_us = now_us() + NEG_TTL_US;
}

/* the first poll of s still to be asked for, NULL if none; *loading: any loading */
static struct poll *
next_wanted(struct session *s, bool *loading)
{
	*loading = false;
	for (int i = 0; i < s->n_subs; i++)
	{
		struct poll *p = s->subs[i]->poll;

		if (p->state != POLL_LOADING)
			continue;
		*loading = true;
		if (!p->in_flight)
			return p;
	}
	return NULL;
}

void
snap_want(struct fanout *f, struct session *s)
{
	if (lws_dll2_is_detached(&s->snap_node))
		lws_dll2_add_tail(&s->snap_node, &f->snap_ring);
	snap_next(f);
}

void
snap_forget_session(struct fanout *f, struct session *s)
{
	(void) f;
	lws_dll2_remove(&s->snap_node);
}

/* a cached poll to re-snapshot (after a reconnection) */
static void
queue_resync(struct fanout *f, struct poll *p)
{
	if (p->queued)
		return;
	p->queued = true;
	p->next_queued = NULL;
	if (f->snap_queue_tail)
		f->snap_queue_tail->next_queued = p;
	else
		f->snap_queue_head = p;
	f->snap_queue_tail = p;
}

void
snap_forget_poll(struct fanout *f, struct poll *p)
{
	struct poll *prev = NULL;

	if (!p->queued)
		return;
	for (struct poll *q = f->snap_queue_head; q; prev = q, q = q->next_queued)
		if (q == p)
		{
			if (prev)
				prev->next_queued = q->next_queued;
			else
				f->snap_queue_head = q->next_queued;
			if (f->snap_queue_tail == q)
				f->snap_queue_tail = prev;
			break;
		}
	p->queued = false;
}

/* the query connection is up: every cached poll gets a fresh snapshot, taken after the slot */
void
snap_connected(struct fanout *f)
{
	f->snap_busy = false;
	f->snap_n = 0;
	f->snap_queue_head = f->snap_queue_tail = NULL;
	for (int b = 0; b < POLL_BUCKETS; b++)
		for (struct poll *p = f->buckets[b]; p; p = p->next_in_bucket)
		{
			p->queued = false;
			p->in_flight = false;
			if (p->state == POLL_READY)
				queue_resync(f, p);
		}
	snap_next(f);
}

/* no query in flight any more: its polls can be asked for again */
static void
batch_clear(struct fanout *f)
{
	for (int i = 0; i < f->snap_n; i++)
	{
		struct poll *p = poll_find(f, f->snap_ids[i]);

		if (p)
			p->in_flight = false;
	}
	f->snap_n = 0;
	f->snap_busy = false;
}

/* the query connection is gone: what was in flight is asked again after the reconnection */
void
snap_disconnected(struct fanout *f)
{
	batch_clear(f);
}

static void
batch_add(struct fanout *f, struct poll *p)
{
	p->in_flight = true;
	f->snap_ids[f->snap_n++] = p->id;
}

/* the next batch: one poll per waiting session in turn, then the resync queue */
void
snap_next(struct fanout *f)
{
	char		ids[SNAP_BATCH * 21 + 3];
	const char *params[1] = {ids};
	size_t		len = 0;
	int			visits;

	if (f->snap_busy || !db_connected(f))
		return;
	f->snap_n = 0;
	for (visits = (int) f->snap_ring.count; visits > 0 && f->snap_n < SNAP_BATCH; visits--)
	{
		struct lws_dll2 *d = lws_dll2_get_head(&f->snap_ring);
		struct session *s = lws_container_of(d, struct session, snap_node);
		bool		loading;
		struct poll *p = next_wanted(s, &loading);

		lws_dll2_remove(d);
		if (p)
			batch_add(f, p);
		if (loading)
			lws_dll2_add_tail(d, &f->snap_ring);	/* its turn again after the others */
	}
	while (f->snap_n < SNAP_BATCH && f->snap_queue_head)
	{
		struct poll *p = f->snap_queue_head;

		f->snap_queue_head = p->next_queued;
		if (!f->snap_queue_head)
			f->snap_queue_tail = NULL;
		p->queued = false;
		if (!p->in_flight)
			batch_add(f, p);
	}
	if (f->snap_n == 0)
	{
		if (!f->db.resynced && f->verbose)
			logmsg("postgres: resync done");
		f->db.resynced = true;
		return;
	}
	ids[len++] = '{';
	for (int i = 0; i < f->snap_n; i++)
		len += (size_t) snprintf(ids + len, sizeof(ids) - len, "%s%lld", i ? "," : "",
								 (long long) f->snap_ids[i]);
	ids[len++] = '}';
	ids[len] = '\0';
	if (db_query_send(f, snapshot_sql, 1, params) == 0)
		f->snap_busy = true;
}

/* one row of the result: the poll's title, tally and labels */
static void
apply_row(struct fanout *f, PGresult *res, int r)
{
	struct tally_row row;
	char	  **labels = NULL;
	int			n_labels = 0;
	struct poll *p;

	memset(&row, 0, sizeof(row));
	if (parse_int64(PQgetvalue(res, r, 0), (size_t) PQgetlength(res, r, 0), &row.poll_id) < 0 ||
		!(p = poll_find(f, row.poll_id)))
		return;					/* nobody waits for it any more */
	p->in_flight = false;
	if (parse_int64(PQgetvalue(res, r, 2), (size_t) PQgetlength(res, r, 2), &row.version) < 0 ||
		(row.status = parse_status(PQgetvalue(res, r, 3), (size_t) PQgetlength(res, r, 3))) < 0 ||
		parse_int64(PQgetvalue(res, r, 4), (size_t) PQgetlength(res, r, 4), &row.ballots) < 0 ||
		parse_votes(PQgetvalue(res, r, 5), (size_t) PQgetlength(res, r, 5), row.votes,
					TALLY_MAX_VOTES, &row.n_votes) < 0 ||
		parse_text_array(PQgetvalue(res, r, 6), MAX_OPTIONS, &labels, &n_labels) < 0)
	{
		logmsg("postgres: snapshot of poll %lld is not understood", (long long) p->id);
		for (int i = 0; i < n_labels; i++)
			free(labels[i]);
		free(labels);
		poll_not_found(f, p);
		return;
	}
	poll_apply_snapshot(f, p, PQgetvalue(res, r, 1), labels, n_labels, &row);
}

/* the batch's result: rows for the polls that exist; the others do not */
void
snap_result(struct fanout *f, PGresult *res, bool connection_ok)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		logmsg("postgres: a snapshot query of %d polls failed: %s", f->snap_n,
			   PQresultErrorMessage(res));
		/*
		 * The connection going away is not the polls' fault: they are
		 * asked again after the reconnection.  Otherwise a poll being
		 * loaded is reported unknown; a loaded one keeps its state.
		 */
		if (!state || !connection_ok || strncmp(state, "08", 2) == 0 ||
			strncmp(state, "57", 2) == 0)
			return;
		for (int i = 0; i < f->snap_n; i++)
		{
			struct poll *p = poll_find(f, f->snap_ids[i]);

			if (p && p->state == POLL_LOADING)
				poll_not_found(f, p);
		}
		return;
	}
	f->m.snapshots++;
	for (int r = 0; r < PQntuples(res); r++)
		apply_row(f, res, r);
	/* still in flight: no row came back for it */
	for (int i = 0; i < f->snap_n; i++)
	{
		struct poll *p = poll_find(f, f->snap_ids[i]);

		if (p && p->in_flight)
		{
			p->in_flight = false;
			neg_add(p->id);
			poll_not_found(f, p);
		}
	}
}

/* the batch is done (its last result read): the next one */
void
snap_done(struct fanout *f)
{
	batch_clear(f);
	snap_next(f);
}

/*
 * snapshots.c — loading polls from Postgres on the query connection:
 * which snapshot queries run, in what order, and what their results do to
 * the poll cache.
 *
 * Fairness: the polls a client waits for are asked for client by client,
 * round-robin — a session with a poll still loading is on a ring, and each
 * query takes at most one poll from each session in turn (a batch of up to
 * SNAP_BATCH polls in one query, poll_id = ANY($1)).  A client asking for
 * 64 polls delays another client's one poll by one batch, not by 64
 * queries.  After a reconnection every cached poll is re-snapshotted (the
 * resync list of ids), after the clients' polls in each batch.  An id no
 * row came back for is not found, and remembered so (polls.c's negative
 * cache).
 *
 * Calls polls.c, stream.c (is it streaming), db.c and loop.c; the query
 * connection's callbacks (on_ready, on_readable, on_down) are ours.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define SNAP_BATCH	64

/*
 * Every name schema-qualified, and the connection runs with search_path =
 * pg_catalog, pg_temp (db.c): no name resolves in a schema a user
 * could write to (a public.array_agg(text) would beat pg_catalog's
 * polymorphic one and run under the daemon's role).  $1: the polls' ids
 * as an int8[] literal; api.c asks it for one poll too.
 */
const char *const snapshot_sql =
"SELECT p.poll_id, p.title, t.version, t.status, t.ballots, t.votes,"
" pg_catalog.array_agg(o.label ORDER BY o.option_id), p.kind, p.max_choices"
" FROM poll.poll p"
" JOIN poll.tally t ON t.poll_id OPERATOR(pg_catalog.=) p.poll_id"
" JOIN poll.option o ON o.poll_id OPERATOR(pg_catalog.=) p.poll_id"
" WHERE p.poll_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])"
" GROUP BY p.poll_id, p.title, t.version, t.status, t.ballots, t.votes, p.kind, p.max_choices";

static struct poll *next_wanted(struct session *s, bool *loading);
static void query_connected(struct fanout *f);
static void query_readable(struct fanout *f);
static void query_down(struct fanout *f);
static void batch_clear(struct fanout *f);
static void batch_add(struct fanout *f, struct poll *p);
static void snap_next(struct fanout *f);
static void apply_row(struct fanout *f, PGresult *res, int r);
static void snap_result(struct fanout *f, PGresult *res, bool connection_ok);
static void snap_done(struct fanout *f);

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

/* the query connection is up: every cached poll gets a fresh snapshot, taken after the slot */
static void
query_connected(struct fanout *f)
{
	db_connected(f);
	f->snap_busy = false;
	f->snap_n = 0;
	f->snap_resync_n = f->snap_resync_at = 0;
	for (int b = 0; b < POLL_BUCKETS; b++)
		for (struct poll *p = f->buckets[b]; p; p = p->next_in_bucket)
		{
			p->in_flight = false;
			if (p->state != POLL_READY)
				continue;
			if (f->snap_resync_n == f->snap_resync_cap)
			{
				int			cap = f->snap_resync_cap ? f->snap_resync_cap * 2 : 256;
				int64_t    *ids = realloc(f->snap_resync, sizeof(*ids) * (size_t) cap);

				if (!ids)
					break;		/* not resynced: /healthz stays 503 */
				f->snap_resync = ids;
				f->snap_resync_cap = cap;
			}
			f->snap_resync[f->snap_resync_n++] = p->id;
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
static void
query_down(struct fanout *f)
{
	batch_clear(f);
	f->snap_resynced = false;
}

static void
batch_add(struct fanout *f, struct poll *p)
{
	p->in_flight = true;
	f->snap_ids[f->snap_n++] = p->id;
}

/* the next batch: one poll per waiting session in turn, then the resync list */
static void
snap_next(struct fanout *f)
{
	char		ids[SNAP_BATCH * 21 + 3];
	const char *params[1] = {ids};
	size_t		len = 0;
	int			visits;

	if (f->snap_busy || !stream_connected(f))
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
	while (f->snap_n < SNAP_BATCH && f->snap_resync_at < f->snap_resync_n)
	{
		struct poll *p = poll_find(f, f->snap_resync[f->snap_resync_at++]);

		if (p && !p->in_flight)	/* not gone meanwhile, not asked for already */
			batch_add(f, p);
	}
	if (f->snap_n == 0)
	{
		if (!f->snap_resynced && f->verbose)
			logmsg("postgres: resync done");
		f->snap_resynced = true;
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
		poll_not_found(f, p, false);
		return;
	}
	/* a poll's kind and max_choices never change: taken as they come */
	p->multi = strcmp(PQgetvalue(res, r, 7), "multi") == 0;
	p->max_choices = atoi(PQgetvalue(res, r, 8));
	poll_apply_snapshot(f, p, PQgetvalue(res, r, 1), labels, n_labels, &row);
}

/* the batch's result: rows for the polls that exist; the others do not */
static void
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
				poll_not_found(f, p, false);
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
			poll_not_found(f, p, true);
		}
	}
}

/* the batch is done (its last result read): the next one */
static void
snap_done(struct fanout *f)
{
	batch_clear(f);
	snap_next(f);
}

static void
query_readable(struct fanout *f)
{
	PGconn	   *conn = f->db.query.conn;

	if (!PQconsumeInput(conn))
	{
		db_fail(f, "query connection", conn);
		return;
	}
	while (f->snap_busy && !PQisBusy(conn))
	{
		PGresult   *res = PQgetResult(conn);

		if (!res)
		{
			snap_done(f);
			return;
		}
		snap_result(f, res, PQstatus(conn) == CONNECTION_OK);
		PQclear(res);
	}
}

void
snap_init(struct fanout *f)
{
	f->db.query.on_ready = query_connected;
	f->db.query.on_readable = query_readable;
	f->db.query.on_down = query_down;
}

/* streaming, caught up, and every cached poll re-snapshotted since the connection */
bool
snap_healthy(const struct fanout *f)
{
	return stream_healthy(f) && f->snap_resynced;
}

void
snap_stop(struct fanout *f)
{
	free(f->snap_resync);
	f->snap_resync = NULL;
	f->snap_resync_n = f->snap_resync_cap = f->snap_resync_at = 0;
}

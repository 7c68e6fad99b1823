/*
 * queries.c — the HTTP API's queries (create, close, series, segments), one
 * at a time in arrival order on a connection of their own, opened when the
 * first one comes and kept: a slow series never delays the snapshots on
 * the query connection, and what the API runs never waits for them.
 *
 * A request (struct apireq) belongs to this file from q_submit() until its
 * session has taken the answer (q_free()): the layer above gave it the
 * query and a callback, on_result, that reads the outcome and says what
 * the answer is (or which query runs next).  When it is done, the session
 * is woken with a writeable callback; a session that goes away first is
 * cut loose (q_forget_session(), from session_detach()) and its request
 * freed when its query ends.  Calls db.c and loop.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define QUEUE_MAX	256			/* more waiting: 503 at once */

static void q_event(struct pgc *c, enum pgc_event ev);
static void q_failed(struct fanout *f, struct pgc *c, const char *why);
static void q_next(struct fanout *f);
static void q_finish(struct fanout *f, struct apireq *r, PGresult *res);
static void q_down(struct fanout *f);

static void
free_params(struct apireq *r)
{
	free(r->sql);
	r->sql = NULL;
	for (int i = 0; i < r->n_params; i++)
		free(r->params[i]);
	r->n_params = 0;
}

/* the next query of r (params copied; a NULL param is SQL NULL) */
void
q_set(struct apireq *r, const char *sql, int n_params, const char *const *params)
{
	free_params(r);
	r->sql = sql ? strdup(sql) : NULL;
	r->n_params = n_params;
	for (int i = 0; i < n_params; i++)
		r->params[i] = params[i] ? strdup(params[i]) : NULL;
}

struct apireq *
q_new(const char *sql, int n_params, const char *const *params)
{
	struct apireq *r = calloc(1, sizeof(*r));

	if (r)
		q_set(r, sql, n_params, params);
	return r;
}

void
q_free(struct apireq *r)
{
	if (!r)
		return;
	free_params(r);
	free(r->body);
	free(r);
}

/* answers r with a JSON error at once (no query) */
static void
q_error(struct apireq *r, int status, const char *code, const char *msg)
{
	char		buf[512];
	size_t		n = render_error(buf, sizeof(buf), code, msg, r->poll > 0 ? r->poll : -1);

	free(r->body);
	r->body = malloc(n + 1);
	if (r->body)
		memcpy(r->body, buf, n);
	r->body_len = r->body ? n : 0;
	r->status = status;
	r->done = true;
}

static void
wake(struct apireq *r)
{
	if (r->s && r->s->wsi)
		lws_callback_on_writable(r->s->wsi);
}

/* queues r for s (s->req points to it until the session takes the answer) */
void
q_submit(struct fanout *f, struct session *s, struct apireq *r)
{
	struct apiq *q = &f->api;

	r->s = s;
	s->req = r;
	if (q->n_queued >= QUEUE_MAX || f->stopping)
	{
		q_error(r, 503, "unavailable", "too many API requests waiting");
		wake(r);
		return;
	}
	r->next = NULL;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->n_queued++;
	if (!q->c.conn)
	{
		db_pgc_init(f, &q->c, "API connection");
		q->c.on_event = q_event;
		q->c.on_fail = q_failed;
		q->c.owner = q;
		if (!db_open(f, &q->c))
		{
			q_down(f);
			return;
		}
	}
	q_next(f);
}

/* the session went away: its request, if still with us, is cut loose */
void
q_forget_session(struct session *s)
{
	struct apireq *r = s->req;

	s->req = NULL;
	if (!r)
		return;
	r->s = NULL;
	if (r->done)
		q_free(r);				/* answered, not taken: nobody else has it */
	/* queued or running: freed when its query ends (q_finish) */
}

static void
q_next(struct fanout *f)
{
	struct apiq *q = &f->api;
	struct apireq *r;
	int			ok;

	while (q->up && !q->running && (r = q->head) != NULL)
	{
		if (r->simple)
			ok = PQsendQuery(q->c.conn, r->sql);
		else
			ok = PQsendQueryParams(q->c.conn, r->sql, r->n_params, NULL,
								   (const char *const *) r->params, NULL, NULL, 0);
		if (!ok || db_flush(&q->c) < 0)
		{
			logmsg("postgres: API connection: %s", PQerrorMessage(q->c.conn));
			q_down(f);
			return;
		}
		q->running = true;
	}
}

/* the head's query is over (res: its outcome, NULL: the connection failed) */
static void
q_finish(struct fanout *f, struct apireq *r, PGresult *res)
{
	struct apiq *q = &f->api;

	q->running = false;
	if (r->s && r->on_result && r->on_result(r, res) > 0 && res)
	{
		q_next(f);				/* r stays at the head: its next query */
		return;
	}
	q->head = r->next;
	if (!q->head)
		q->tail = NULL;
	q->n_queued--;
	if (!r->s)
		q_free(r);
	else
	{
		if (!r->done)
			q_error(r, 503, "unavailable", "postgres is away");
		r->done = true;
		wake(r);
	}
	q_next(f);					/* the next in line (none while the connection is down) */
}

/*
 * The connection is gone (or could not be opened): every waiting request
 * gets 503; the next request opens a new one.
 */
static void
q_down(struct fanout *f)
{
	struct apiq *q = &f->api;

	db_close(&q->c);
	q->up = false;
	PQclear(q->res);
	q->res = NULL;
	while (q->head)
		q_finish(f, q->head, NULL);
	q->running = false;
}

static void
q_event(struct pgc *c, enum pgc_event ev)
{
	struct fanout *f = c->f;
	struct apiq *q = &f->api;
	PGresult   *res;

	switch (ev)
	{
		case PGC_READY:
			q->up = true;
			q_next(f);
			return;
		case PGC_FAILED:
			q_down(f);
			return;
		case PGC_READABLE:
			break;
	}
	if (!PQconsumeInput(c->conn))
	{
		logmsg("postgres: API connection: %s", PQerrorMessage(c->conn));
		q_down(f);
		return;
	}
	if (!q->running)
		return;
	/* the outcome: the first error, else the last result */
	while (!PQisBusy(c->conn))
	{
		res = PQgetResult(c->conn);
		if (!res)
		{
			res = q->res;
			q->res = NULL;
			q_finish(f, q->head, res);
			PQclear(res);
			return;
		}
		if (q->res && PQresultStatus(q->res) == PGRES_FATAL_ERROR)
			PQclear(res);
		else
		{
			PQclear(q->res);
			q->res = res;
		}
	}
}

/* db.c closed the connection (its reason is logged here) */
static void
q_failed(struct fanout *f, struct pgc *c, const char *why)
{
	logmsg("postgres: %s: %s", c->what, why);
	q_down(f);
}

/* at exit */
void
q_stop(struct fanout *f)
{
	q_down(f);
}

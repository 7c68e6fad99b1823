/*
 * csv.c — GET /polls/ID/ballots.csv: every live ballot of a poll as
 * RFC 4180 CSV (voter,options,segment,cast_at; CRLF line ends, fields with
 * commas, quotes or line breaks quoted, quotes doubled), streamed.
 *
 * Each export has a connection of its own (the query connection keeps
 * serving snapshots meanwhile), runs COPY ... TO STDOUT (FORMAT csv) on it,
 * and moves rows to the client only as fast as the client's socket takes
 * them: the export reads from Postgres only when the client is writable
 * (its libpq socket is not watched otherwise, so Postgres's own send
 * buffer holds the rest), and each writeable callback sends at most
 * CHUNK bytes.  A million ballots never sit in the daemon's memory.  The
 * body is chunked: a client can tell a complete export (the last, empty
 * chunk) from one cut short by an error.
 *
 * Calls db.c and loop.c; http.c calls csv_write() from the session's
 * writeable callbacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define CHUNK			(64 * 1024)
#define MAX_EXPORTS		8
#define CSV_STALL_SECS	30		/* a client that takes nothing for this long is closed */

struct csv_export {
	struct pgc		c;
	struct session *s;
	int64_t			poll;
	int				step;		/* 0 connecting, 1 the poll's existence, 2 the COPY */
	bool			copying;	/* PGRES_COPY_OUT: rows come */
	bool			copy_ended;	/* the last row was read: the COPY's result comes */
	bool			eof;		/* and it said the COPY succeeded */
	bool			final_sent;
	int				status;		/* an answer instead of the CSV: 404, 503 */
};

static const char *const exists_sql =
"SELECT 1 FROM poll.poll p WHERE p.poll_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8";

/*
 * COPY takes no parameters: the id is a validated integer, printed.  The
 * ballots in primary-key order (an index scan, no sort), the options of
 * multi-choice ballots joined by ';', times in UTC.
 */
static const char *const copy_sql =
"COPY (SELECT b.voter,"
" pg_catalog.array_to_string(b.options, ';') AS options,"
" b.segment,"
" pg_catalog.to_char(b.cast_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS cast_at"
" FROM poll.ballot b WHERE b.poll_id OPERATOR(pg_catalog.=) %lld::pg_catalog.int8"
" ORDER BY b.poll_id, b.voter)"
" TO STDOUT WITH (FORMAT csv, HEADER true)";

static void csv_event(struct pgc *c, enum pgc_event ev);
static void fail(struct csv_export *x, int status);

/* db.c closed the connection */
static void
csv_failed(struct fanout *f, struct pgc *c, const char *why)
{
	struct csv_export *x = c->owner;

	(void) f;
	logmsg("postgres: CSV export of poll %lld: %s", (long long) x->poll, why);
	fail(x, 503);
}

static void
wake(struct csv_export *x)
{
	if (x->s && x->s->wsi)
		lws_callback_on_writable(x->s->wsi);
}

static void
fail(struct csv_export *x, int status)
{
	if (!x->status)
		x->status = status;
	db_close(&x->c);
	wake(x);
}

bool
csv_start(struct fanout *f, struct session *s, int64_t poll_id)
{
	struct csv_export *x;

	if (f->n_exports >= MAX_EXPORTS || !(x = calloc(1, sizeof(*x))))
		return false;
	x->s = s;
	x->poll = poll_id;
	db_pgc_init(f, &x->c, "CSV export connection");
	x->c.on_event = csv_event;
	x->c.on_fail = csv_failed;
	x->c.owner = x;
	s->csv = x;
	f->n_exports++;
	if (!db_open(f, &x->c))
		fail(x, 503);
	return true;
}

void
csv_forget_session(struct session *s)
{
	struct csv_export *x = s->csv;

	if (!x)
		return;
	s->csv = NULL;
	db_close(&x->c);			/* the backend ends its COPY when it sees the close */
	s->f->n_exports--;
	free(x);
}

/* what the connection has for us; rows are left for csv_write() */
static void
advance(struct csv_export *x)
{
	PGconn	   *conn = x->c.conn;
	PGresult   *res;
	char		sql[1024];

	if (!PQconsumeInput(conn))
	{
		logmsg("postgres: CSV export of poll %lld: %s", (long long) x->poll, PQerrorMessage(conn));
		fail(x, 503);
		return;
	}
	if (x->copying)
	{
		/* rows (or the end) arrived: the client's next writeable callback takes them */
		db_pause(&x->c, true);
		wake(x);
		return;
	}
	while (!PQisBusy(conn))
	{
		res = PQgetResult(conn);
		if (!res)
		{
			if (x->step != 1)
				return;
			/* the poll exists: the COPY */
			snprintf(sql, sizeof(sql), copy_sql, (long long) x->poll);
			if (!PQsendQuery(conn, sql) || db_flush(&x->c) < 0)
			{
				fail(x, 503);
				return;
			}
			x->step = 2;
			continue;
		}
		switch (PQresultStatus(res))
		{
			case PGRES_TUPLES_OK:
				if (PQntuples(res) == 0)
					x->status = 404;
				break;
			case PGRES_COPY_OUT:
				x->copying = true;
				PQclear(res);
				db_pause(&x->c, true);
				wake(x);		/* the headers go */
				return;
			default:
				logmsg("postgres: CSV export of poll %lld: %s%s", (long long) x->poll,
					   PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
					   PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "failed",
					   PQresultErrorField(res, PG_DIAG_SQLSTATE) &&
					   strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42501") == 0 ?
					   " (the export needs GRANT poll_admin TO the daemon's role)" : "");
				x->status = 503;
				break;
		}
		PQclear(res);
		if (x->status)
		{
			fail(x, x->status);
			return;
		}
	}
}

static void
csv_event(struct pgc *c, enum pgc_event ev)
{
	struct csv_export *x = c->owner;
	char		id[24];
	const char *params[1] = {id};

	switch (ev)
	{
		case PGC_READY:
			snprintf(id, sizeof(id), "%lld", (long long) x->poll);
			if (!PQsendQueryParams(c->conn, exists_sql, 1, NULL, params, NULL, NULL, 0) ||
				db_flush(c) < 0)
			{
				fail(x, 503);
				return;
			}
			x->step = 1;
			return;
		case PGC_FAILED:
			fail(x, 503);
			return;
		case PGC_READABLE:
			advance(x);
			return;
	}
}

/* 0: not known yet; 200: the CSV can start (headers now); else the status to answer with */
int
csv_state(struct session *s)
{
	struct csv_export *x = s->csv;

	if (!x)
		return 503;
	return x->status ? x->status : x->copying ? 200 : 0;
}

/*
 * From the session's writeable callback, once the headers went: up to
 * CHUNK bytes of rows as one chunk of the chunked body (and the last,
 * empty chunk once the COPY ended).  Returns 0 to go on (a writeable
 * callback comes when there is more: asked for here, or when Postgres
 * sends rows), 1 when the last chunk is written, -1 when the connection
 * must close (the export failed midway: the body stays incomplete).
 */
int
csv_write(struct session *s)
{
	struct csv_export *x = s->csv;
	unsigned char *out = s->f->scratch + LWS_PRE;
	size_t		len = 16;		/* room for the chunk's size line */
	int			r = 0;
	char	   *row;

	if (!x || x->status || !x->c.conn)
		return -1;
	if (x->final_sent)
		return 1;
	while (!x->copy_ended && len + 2 < CHUNK && (r = PQgetCopyData(x->c.conn, &row, 1)) > 0)
	{
		/* one row per message; its line end becomes CRLF (RFC 4180) */
		size_t		n = (size_t) r;

		if (n > 0 && row[n - 1] == '\n')
			n--;
		if (len + n + 4 > SCRATCH_SIZE - 16)
		{
			PQfreemem(row);
			logmsg("http: CSV export of poll %lld: a row over %d bytes", (long long) x->poll,
				   SCRATCH_SIZE);
			return -1;
		}
		memcpy(out + len, row, n);
		len += n;
		out[len++] = '\r';
		out[len++] = '\n';
		PQfreemem(row);
	}
	if (r == -2)
	{
		logmsg("postgres: CSV export of poll %lld: %s", (long long) x->poll,
			   PQerrorMessage(x->c.conn));
		return -1;
	}
	if (r == -1)
		x->copy_ended = true;
	if (x->copy_ended)
	{
		/*
		 * The COPY is over: did it succeed?  Its result is read only once
		 * it is all in (PQgetResult would wait for the rest).
		 */
		PGresult   *res;

		while (!x->eof && !PQisBusy(x->c.conn))
		{
			if ((res = PQgetResult(x->c.conn)) == NULL)
			{
				x->eof = true;
				break;
			}
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				logmsg("postgres: CSV export of poll %lld: %s", (long long) x->poll,
					   PQresultErrorMessage(res));
				PQclear(res);
				return -1;
			}
			PQclear(res);
		}
		r = 0;
	}
	if (len > 16)
	{
		/* the chunk: its size in hex and CRLF right before the data */
		char		head[16];
		int			hl = snprintf(head, sizeof(head), "%zx\r\n", len - 16);

		memcpy(out + 16 - hl, head, (size_t) hl);
		out[len++] = '\r';
		out[len++] = '\n';
		if (x->eof)
		{
			memcpy(out + len, "0\r\n\r\n", 5);
			len += 5;
		}
		if (lws_write(s->wsi, out + 16 - hl, len - 16 + (size_t) hl, LWS_WRITE_HTTP) <
			(int) (len - 16 + (size_t) hl))
			return -1;
	}
	else if (x->eof)
	{
		memcpy(out, "0\r\n\r\n", 5);
		if (lws_write(s->wsi, out, 5, LWS_WRITE_HTTP) < 5)
			return -1;
	}
	/* a client that takes nothing for this long is closed */
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, CSV_STALL_SECS);
	if (x->eof)
	{
		x->final_sent = true;
		db_close(&x->c);
		return 1;
	}
	if (r == 0 && len == 16)
		db_pause(&x->c, false);	/* nothing buffered (or the result not all in): wait for Postgres */
	else
		lws_callback_on_writable(s->wsi);	/* more, as soon as the socket takes it */
	return 0;
}

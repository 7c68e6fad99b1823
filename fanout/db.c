/*
 * db.c — the two libpq connections as connections: opened without
 * blocking (PQconnectStartParams, then PQconnectPoll from the socket, a
 * libev watcher on our loop, re-armed when libpq moves to another socket),
 * our own connect timeout, flushing what libpq could not send, and on any
 * failure both dropped and retried with backoff (250 ms doubling to 10 s).
 * What runs on them is the business of the layers above (stream.c on the
 * replication connection, snapshots.c on the query connection), which set
 * each connection's callbacks: on_ready, on_readable, on_down.  The vote
 * connections (votes.c) are opened the same way but are connections of
 * their own (on_fail set): each fails, times out and is retried alone, by
 * votes.c.  Calls only loop.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define BACKOFF_MIN_MS		250
#define BACKOFF_MAX_MS		10000
#define CONNECT_TIMEOUT_US	(10 * 1000 * 1000)
#define SAFE_SEARCH_PATH	"-c search_path=pg_catalog,pg_temp"

static const char *conn_options(struct fanout *f, char *buf, size_t cap);
static PGconn *connect_start(struct fanout *f, struct pgc *c);
static void pgc_failed(struct fanout *f, struct pgc *c, const char *what);
static void pgc_watch(struct pgc *c, int events);

static void pgc_io(struct ev_loop *loop, ev_io *w, int revents);
static void connect_timeout_cb(struct fanout *f);
static void schedule_retry(struct fanout *f);
static void retry_cb(struct fanout *f);

/*
 * The backend options of both connections: the user's own (from --db or
 * PGOPTIONS), then our search_path, which wins as the later -c.
 */
static const char *
conn_options(struct fanout *f, char *buf, size_t cap)
{
	const char *user = getenv("PGOPTIONS");
	PQconninfoOption *opts = f->conninfo && *f->conninfo ?
		PQconninfoParse(f->conninfo, NULL) : NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			user = o->val;
	if (user && strlen(user) + sizeof(SAFE_SEARCH_PATH) + 1 > cap)
	{
		logmsg("postgres: the options of --db or PGOPTIONS are too long, ignored");
		user = NULL;
	}
	snprintf(buf, cap, "%s%s" SAFE_SEARCH_PATH, user ? user : "", user && *user ? " " : "");
	if (opts)
		PQconninfoFree(opts);
	return buf;
}

/*
 * The keywords of either connection.  Opened with PQconnectStartParams and
 * driven by PQconnectPoll from the connection's socket on our loop: nothing
 * here waits for Postgres (our own connect timeout replaces libpq's, which
 * only the blocking calls honour).
 */
static PGconn *
connect_start(struct fanout *f, struct pgc *c)
{
	bool		replication = c->replication;
	const char *keys[8];
	const char *vals[8];
	char		options[1024];
	int			n = 0;
	PGconn	   *conn;

	if (f->conninfo && *f->conninfo)
	{
		keys[n] = "dbname";
		vals[n++] = f->conninfo;
	}
	keys[n] = "application_name";
	vals[n++] = "poll-fanout";
	keys[n] = "client_encoding";	/* labels go out as JSON, which is UTF-8 */
	vals[n++] = "UTF8";
	keys[n] = "options";		/* after dbname: overrides its expansion's */
	vals[n++] = conn_options(f, options, sizeof(options));
	if (replication)
	{
		keys[n] = "replication";
		vals[n++] = "database";
	}
	keys[n] = NULL;
	vals[n] = NULL;
	conn = PQconnectStartParams(keys, vals, 1);
	if (!conn || PQstatus(conn) == CONNECTION_BAD || PQsetnonblocking(conn, 1) != 0)
	{
		char		reason[300];

		if (!c->on_fail)
			db_fail(f, c->what, conn);
		db_reason(conn, reason, sizeof(reason));
		PQfinish(conn);
		if (c->on_fail)
			c->on_fail(f, c, reason);
		return NULL;
	}
	return conn;
}

/* watches the connection's current socket (PQconnectPoll may change it) */
static void
pgc_watch(struct pgc *c, int events)
{
	int			fd = PQsocket(c->conn);

	if (fd == c->fd && events == c->events && ev_is_active(&c->io))
		return;
	ev_io_stop(c->f->loop, &c->io);
	c->fd = fd;
	c->events = events;
	if (fd < 0)
		return;
	ev_io_set(&c->io, fd, events);
	ev_io_start(c->f->loop, &c->io);
}

/* what libpq has not sent yet goes when the socket takes it */
int
db_flush(struct pgc *c)
{
	int			r = PQflush(c->conn);

	if (r >= 0)
		pgc_watch(c, r > 0 ? EV_READ | EV_WRITE : EV_READ);
	return r;
}

void
db_close(struct pgc *c)
{
	if (c->f)
		ev_io_stop(c->f->loop, &c->io);
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->fd = -1;
	c->events = 0;
	c->connecting = false;
}

/*
 * A failure of c: a connection of its own (on_fail set, votes.c) closes
 * alone; the replication and query connections go down together.
 */
static void
pgc_failed(struct fanout *f, struct pgc *c, const char *what)
{
	char		reason[300];

	if (!c->on_fail)
	{
		db_fail(f, what, c->conn);
		return;
	}
	db_reason(c->conn, reason, sizeof(reason));
	db_close(c);
	c->on_fail(f, c, reason);
}

static void
pgc_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pgc *c = lws_container_of(w, struct pgc, io);
	struct fanout *f = c->f;

	(void) loop;
	if (c->connecting)
	{
		switch (PQconnectPoll(c->conn))
		{
			case PGRES_POLLING_READING:
				pgc_watch(c, EV_READ);
				return;
			case PGRES_POLLING_WRITING:
				pgc_watch(c, EV_WRITE);
				return;
			case PGRES_POLLING_OK:
				c->connecting = false;
				pgc_watch(c, EV_READ);
				if (!f->db.repl.connecting && !f->db.query.connecting)
					timer_stop(&f->db.connect_timer);
				c->on_ready(f);
				return;
			default:
				pgc_failed(f, c, c->what);
				return;
		}
	}
	if ((revents & EV_WRITE) && db_flush(c) < 0)
	{
		pgc_failed(f, c, c->what);
		return;
	}
	if (revents & EV_READ)
		c->on_readable(f);
}

/* starts connecting c; its on_ready runs once it is up, db_fail() if it cannot be */
bool
db_open(struct fanout *f, struct pgc *c)
{
	c->fd = -1;
	c->events = 0;
	c->conn = connect_start(f, c);
	if (!c->conn)
		return false;
	c->connecting = true;
	pgc_watch(c, EV_WRITE);
	if (!c->on_fail)			/* one of its own keeps its own time */
		timer_start(&f->db.connect_timer, CONNECT_TIMEOUT_US);
	return true;
}

static void
connect_timeout_cb(struct fanout *f)
{
	if (f->db.repl.connecting || f->db.query.connecting)
		db_fail(f, "connection timed out", NULL);
}

/*
 * Records why (in the log only: /healthz never shows it), drops both
 * connections, schedules a reconnection.
 */
/* libpq's multi-line error message, on one log line */
void
db_reason(PGconn *conn, char *reason, size_t cap)
{
	const char *msg = conn ? PQerrorMessage(conn) : "";
	char	   *w = reason;

	snprintf(reason, cap, "%s", msg && *msg ? msg : "connection lost");
	for (char *c = reason; *c; c++)
	{
		char		ch = (*c == '\n' || *c == '\t' || *c == '\r') ? ' ' : *c;

		if (ch == ' ' && (w == reason || w[-1] == ' '))
			continue;
		*w++ = ch;
	}
	while (w > reason && w[-1] == ' ')
		w--;
	*w = '\0';
}

void
db_fail(struct fanout *f, const char *what, PGconn *conn)
{
	char		reason[300];

	db_reason(conn, reason, sizeof(reason));
	db_stop(f);
	if (!f->stopping)
	{
		logmsg("postgres: %s: %s; reconnecting in %d ms", what, reason, f->db.backoff_ms);
		schedule_retry(f);
	}
}

static void
schedule_retry(struct fanout *f)
{
	timer_start(&f->db.retry_timer, (int64_t) f->db.backoff_ms * 1000);
	f->db.backoff_ms *= 2;
	if (f->db.backoff_ms > BACKOFF_MAX_MS)
		f->db.backoff_ms = BACKOFF_MAX_MS;
}

static void
retry_cb(struct fanout *f)
{
	f->m.reconnects++;
	db_start(f);
}

/* a connection of another layer's (votes.c), opened with db_open() */
void
db_pgc_init(struct fanout *f, struct pgc *c, const char *what)
{
	c->f = f;
	c->fd = -1;
	c->what = what;
	ev_init(&c->io, pgc_io);
}

/* before anything connects; the layers above set each connection's callbacks */
void
db_init(struct fanout *f)
{
	struct pgc *cs[2] = {&f->db.repl, &f->db.query};

	timer_init(f, &f->db.retry_timer, retry_cb);
	timer_init(f, &f->db.connect_timer, connect_timeout_cb);
	for (int i = 0; i < 2; i++)
	{
		cs[i]->f = f;
		cs[i]->fd = -1;
		ev_init(&cs[i]->io, pgc_io);
	}
	f->db.repl.replication = true;
	f->db.repl.what = "replication connection";
	f->db.query.what = "query connection";
}

/* (re)connects: the replication connection first (stream.c takes it from there) */
void
db_start(struct fanout *f)
{
	if (f->stopping || f->db.repl.conn)
		return;
	db_open(f, &f->db.repl);
}

/* closes both connections; the layers above hear of it (on_down) */
void
db_stop(struct fanout *f)
{
	db_close(&f->db.repl);
	db_close(&f->db.query);
	timer_stop(&f->db.connect_timer);
	if (f->db.repl.on_down)
		f->db.repl.on_down(f);
	if (f->db.query.on_down)
		f->db.query.on_down(f);
}

/* the backoff starts again from its minimum once a connection did its work */
void
db_connected(struct fanout *f)
{
	f->db.backoff_ms = BACKOFF_MIN_MS;
}

bool
db_query_ready(const struct fanout *f)
{
	return f->db.query.conn && !f->db.query.connecting;
}

/* one query on the query connection; -1: it failed, and both connections are dropped */
int
db_query_send(struct fanout *f, const char *sql, int n_params, const char *const *params)
{
	if (!PQsendQueryParams(f->db.query.conn, sql, n_params, NULL, params, NULL, NULL, 0) ||
		db_flush(&f->db.query) < 0)
	{
		db_fail(f, "snapshot query", f->db.query.conn);
		return -1;
	}
	return 0;
}

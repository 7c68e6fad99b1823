/*
 * replication.c — the two libpq connections: the logical replication
 * stream of poll.tally (a TEMPORARY pgoutput slot, so Postgres never keeps
 * WAL for us while we are down) and the query connection that takes
 * snapshots.  Both are opened without blocking (PQconnectStartParams,
 * PQconnectPoll) with their sockets watched on our libev loop; every read
 * drains libpq's buffer without blocking.
 *
 * Order after every (re)connection: create the slot, start streaming,
 * then re-snapshot every cached poll.  A snapshot taken after the slot
 * exists, plus the stream from the slot's start, deduplicated by version,
 * misses nothing.  Any error (or 30 s without a word from the stream)
 * drops both connections and retries with backoff; clients keep being
 * served from the cache meanwhile.  At shutdown the copy ends cleanly:
 * our CopyDone, then the server's, then the close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fanout.h"

#define BACKOFF_MIN_MS		250
#define BACKOFF_MAX_MS		10000
#define STATUS_INTERVAL_US	(10 * LWS_US_PER_SEC)
#define SILENCE_US			(30 * LWS_US_PER_SEC)	/* nothing at all from the stream: reconnect */
#define CONNECT_TIMEOUT_US	(10 * LWS_US_PER_SEC)
#define STOP_TIMEOUT_US		(2 * 1000 * 1000)	/* for the server's CopyDone at shutdown */
#define PG_EPOCH_OFFSET_US	INT64_C(946684800000000)	/* 2000-01-01 - 1970-01-01 */

/* no name resolves in a schema a user could write to: see snapshots.c */
#define SAFE_SEARCH_PATH	"-c search_path=pg_catalog,pg_temp"

static const char *conn_options(struct fanout *f, char *buf, size_t cap);
static PGconn *connect_start(struct fanout *f, bool replication);
static bool pgc_open(struct fanout *f, struct pgc *c, bool replication);
static void pgc_close(struct pgc *c);
static int	pgc_flush(struct pgc *c);
static void db_fail(struct fanout *f, const char *what, PGconn *conn);
static void schedule_retry(struct fanout *f);
static void retry_cb(struct fanout *f);
static void status_cb(struct fanout *f);
static void stop_timeout_cb(struct fanout *f);
static void stopped(struct fanout *f);
static int	send_status(struct fanout *f, bool ping);
static void repl_connected(struct fanout *f);
static void repl_readable(struct fanout *f);
static void repl_stopping_readable(struct fanout *f);
static void repl_setup_results(struct fanout *f);
static int	send_start_replication(struct fanout *f);
static void start_streaming(struct fanout *f);
static void query_connected(struct fanout *f);
static void query_readable(struct fanout *f);
static void handle_copy_data(struct fanout *f, const unsigned char *buf, size_t len);
static void handle_pgoutput(struct fanout *f, const struct pgo_msg *m);
static uint64_t get_u64(const unsigned char *p);
static void put_u64(unsigned char *p, uint64_t v);

static uint64_t
get_u64(const unsigned char *p)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (unsigned char) v;
		v >>= 8;
	}
}

static int64_t
pg_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - PG_EPOCH_OFFSET_US;
}

bool
db_connected(const struct fanout *f)
{
	return f->db.state == REPL_STREAMING && f->db.query.conn && !f->db.query.connecting;
}

bool
db_healthy(const struct fanout *f)
{
	return db_connected(f) && f->db.resynced && f->db.received_lsn >= f->db.server_end &&
		now_us() - f->db.last_msg_us < SILENCE_US;
}

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
connect_start(struct fanout *f, bool replication)
{
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
		db_fail(f, replication ? "replication connection" : "query connection", conn);
		PQfinish(conn);
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
static int
pgc_flush(struct pgc *c)
{
	int			r = PQflush(c->conn);

	if (r >= 0)
		pgc_watch(c, r > 0 ? EV_READ | EV_WRITE : EV_READ);
	return r;
}

static void
pgc_close(struct pgc *c)
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

static void
pgc_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pgc *c = lws_container_of(w, struct pgc, io);
	struct fanout *f = c->f;
	bool		is_repl = c == &f->db.repl;

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
				if (is_repl)
					repl_connected(f);
				else
					query_connected(f);
				return;
			default:
				db_fail(f, is_repl ? "replication connection" : "query connection", c->conn);
				return;
		}
	}
	if ((revents & EV_WRITE) && pgc_flush(c) < 0)
	{
		db_fail(f, is_repl ? "replication connection" : "query connection", c->conn);
		return;
	}
	if (revents & EV_READ)
	{
		if (is_repl)
			repl_readable(f);
		else
			query_readable(f);
	}
}

static bool
pgc_open(struct fanout *f, struct pgc *c, bool replication)
{
	c->f = f;
	c->fd = -1;
	c->events = 0;
	c->conn = connect_start(f, replication);
	if (!c->conn)
		return false;
	c->connecting = true;
	pgc_watch(c, EV_WRITE);
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
static void
db_fail(struct fanout *f, const char *what, PGconn *conn)
{
	char		reason[300];
	const char *msg = conn ? PQerrorMessage(conn) : "";
	char	   *w = reason;

	/* libpq's multi-line messages, on one log line */
	snprintf(reason, sizeof(reason), "%s", msg && *msg ? msg : "connection lost");
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

void
db_start(struct fanout *f)
{
	if (!f->db.retry_timer.f)
	{
		timer_init(f, &f->db.retry_timer, retry_cb);
		timer_init(f, &f->db.status_timer, status_cb);
		timer_init(f, &f->db.connect_timer, connect_timeout_cb);
		timer_init(f, &f->db.stop_timer, stop_timeout_cb);
		ev_init(&f->db.repl.io, pgc_io);
		ev_init(&f->db.query.io, pgc_io);
		f->db.repl.fd = f->db.query.fd = -1;
	}
	if (f->stopping || f->db.repl.conn)
		return;
	pgc_open(f, &f->db.repl, true);
}

/* the replication connection is up: create the slot */
static void
repl_connected(struct fanout *f)
{
	char		sql[256];

	snprintf(f->db.slot, sizeof(f->db.slot), "poll_fanout_%d_%lld", (int) getpid(),
			 (long long) (now_us() / 1000));
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput",
			 f->db.slot);
	if (!PQsendQuery(f->db.repl.conn, sql) || pgc_flush(&f->db.repl) < 0)
	{
		db_fail(f, "create slot", f->db.repl.conn);
		return;
	}
	f->db.state = REPL_SLOT;
	f->db.resynced = false;
	if (f->verbose)
		logmsg("postgres: connected, creating slot %s", f->db.slot);
}

void
db_stop(struct fanout *f)
{
	pgc_close(&f->db.repl);
	pgc_close(&f->db.query);
	snap_disconnected(f);
	f->db.state = REPL_DOWN;
	f->db.resynced = false;
	pgo_relcache_free(&f->db.rels);
	timer_stop(&f->db.status_timer);
	timer_stop(&f->db.connect_timer);
	timer_stop(&f->db.stop_timer);
}

/*
 * A clean end of the copy, as pg_recvlogical does: a last status, our
 * CopyDone, then (on the loop, at most STOP_TIMEOUT_US) the server's
 * CopyDone and CommandComplete before the connection closes, so that the
 * walsender never writes to a closed socket.  done() runs either way.
 */
void
db_shutdown(struct fanout *f, void (*done) (struct fanout *f))
{
	f->db.on_stopped = done;
	timer_stop(&f->db.retry_timer);
	if (f->db.state != REPL_STREAMING || !f->db.repl.conn ||
		send_status(f, false) < 0 || PQputCopyEnd(f->db.repl.conn, NULL) <= 0 ||
		pgc_flush(&f->db.repl) < 0)
	{
		db_stop(f);
		done(f);
		return;
	}
	pgc_close(&f->db.query);
	f->db.state = REPL_STOPPING;
	timer_start(&f->db.stop_timer, STOP_TIMEOUT_US);
}

static void
stop_timeout_cb(struct fanout *f)
{
	if (f->db.state != REPL_STOPPING)
		return;
	logmsg("postgres: the server did not end the copy within %d ms", STOP_TIMEOUT_US / 1000);
	stopped(f);
}

static void
stopped(struct fanout *f)
{
	void		(*done) (struct fanout *f) = f->db.on_stopped;

	db_stop(f);
	f->db.on_stopped = NULL;
	if (done)
		done(f);
}

/* after our CopyDone: the server's CopyDone, then the command's results */
static void
repl_stopping_readable(struct fanout *f)
{
	PGconn	   *conn = f->db.repl.conn;
	char	   *buf;
	int			n;

	if (!PQconsumeInput(conn))
	{
		stopped(f);
		return;
	}
	/* what the server sent before its CopyDone; -1 once that came, -2 past the copy */
	while ((n = PQgetCopyData(conn, &buf, 1)) > 0)
		PQfreemem(buf);
	if (n == 0)
		return;
	while (!PQisBusy(conn))
	{
		PGresult   *res = PQgetResult(conn);

		if (!res)
		{
			stopped(f);			/* CommandComplete and ReadyForQuery are in: close */
			return;
		}
		PQclear(res);
	}
}

/*
 * Once a second while streaming: the silence watchdog, and every
 * STATUS_INTERVAL_US a standby status update that asks the server for a
 * reply, so that even an idle stream brings a keepalive well within
 * SILENCE_US (the walsender only pings on its own after half its
 * wal_sender_timeout without hearing from us, and we talk every 10 s).
 */
static void
status_cb(struct fanout *f)
{
	int64_t		now = now_us();

	if (f->db.state != REPL_STREAMING)
		return;
	if (now - f->db.last_msg_us >= SILENCE_US)
	{
		db_fail(f, "nothing from the replication stream for 30 s", NULL);
		return;
	}
	if (now - f->db.last_status_us >= STATUS_INTERVAL_US && send_status(f, true) < 0)
	{
		db_fail(f, "standby status update", f->db.repl.conn);
		return;
	}
	timer_start(&f->db.status_timer, 1000 * 1000);
}

/* standby status update: everything received is also flushed and applied */
static int
send_status(struct fanout *f, bool ping)
{
	unsigned char msg[34];
	uint64_t	lsn = f->db.received_lsn;

	msg[0] = 'r';
	put_u64(msg + 1, lsn);
	put_u64(msg + 9, lsn);
	put_u64(msg + 17, lsn);
	put_u64(msg + 25, (uint64_t) pg_now_us());
	msg[33] = ping ? 1 : 0;		/* asks the server to answer now */
	if (PQputCopyData(f->db.repl.conn, (const char *) msg, sizeof(msg)) <= 0 ||
		pgc_flush(&f->db.repl) < 0)
		return -1;
	f->db.last_status_us = now_us();
	return 0;
}

/* START_REPLICATION answered: stream, then open the query connection */
static void
start_streaming(struct fanout *f)
{
	f->db.state = REPL_STREAMING;
	f->db.last_msg_us = now_us();
	f->db.last_status_us = now_us();
	logmsg("postgres: streaming from slot %s (publication %s)", f->db.slot, f->publication);
	timer_start(&f->db.status_timer, 1000 * 1000);
	pgc_open(f, &f->db.query, false);
}

/* the query connection is up: snapshots can go */
static void
query_connected(struct fanout *f)
{
	f->db.backoff_ms = BACKOFF_MIN_MS;
	snap_connected(f);
}

/* one query on the query connection; -1: it failed, and both connections are dropped */
int
db_query_send(struct fanout *f, const char *sql, int n_params, const char *const *params)
{
	if (!PQsendQueryParams(f->db.query.conn, sql, n_params, NULL, params, NULL, NULL, 0) ||
		pgc_flush(&f->db.query) < 0)
	{
		db_fail(f, "snapshot query", f->db.query.conn);
		return -1;
	}
	return 0;
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

/* one pgoutput message: Relation messages fill the cache, tally rows are applied */
static void
handle_pgoutput(struct fanout *f, const struct pgo_msg *m)
{
	const struct pgo_relation *rel;
	struct tally_row row;
	struct poll *p;

	switch (m->type)
	{
		case 'R':
			pgo_relcache_put(&f->db.rels, m);
			break;
		case 'I':
		case 'U':
			rel = pgo_relcache_get(&f->db.rels, m->relid);
			if (!rel || !rel->is_tally)
				break;
			if (tally_from_tuple(rel, m, &row) < 0)
			{
				logmsg("postgres: a poll.tally row was not understood");
				break;
			}
			f->m.stream_rows++;
			snap_seen(f, row.poll_id);	/* it exists: not unknown any more */
			p = poll_find(f, row.poll_id);	/* polls nobody watches are not cached */
			if (p)
				poll_apply_row(f, p, &row);
			break;
		case 'C':
			f->db.last_commit_ts = m->ts;
			if (m->end_lsn > f->db.received_lsn)
				f->db.received_lsn = m->end_lsn;
			break;
		default:
			break;
	}
}

static void
handle_copy_data(struct fanout *f, const unsigned char *buf, size_t len)
{
	static struct pgo_att atts[PGO_MAX_COLS];
	static struct pgo_col cols[PGO_MAX_COLS];
	struct pgo_msg m = {.atts = atts, .cols = cols};
	uint64_t	start, end;

	f->db.last_msg_us = now_us();
	if (len >= 18 && buf[0] == 'k')
	{
		/* primary keepalive: walEnd, sendTime, replyRequested */
		end = get_u64(buf + 1);
		if (end > f->db.server_end)
			f->db.server_end = end;
		/* what came before it on the connection is all processed */
		if (end > f->db.received_lsn)
			f->db.received_lsn = end;
		if (buf[17] && send_status(f, true) < 0)
			db_fail(f, "keepalive reply", f->db.repl.conn);
		return;
	}
	if (len < 25 || buf[0] != 'w')
	{
		logmsg("postgres: unexpected copy message '%c' (%zu bytes) ignored", buf[0], len);
		return;
	}
	/* XLogData: dataStart, walEnd, sendTime, then the pgoutput message */
	start = get_u64(buf + 1);
	end = get_u64(buf + 9);
	if (end > f->db.server_end)
		f->db.server_end = end;
	if (pgo_parse(buf + 25, len - 25, &m) < 0)
	{
		logmsg("postgres: malformed pgoutput message at %X/%X ignored",
			   (unsigned) (start >> 32), (unsigned) start);
		return;
	}
	handle_pgoutput(f, &m);
}

/* the results of CREATE_REPLICATION_SLOT, then of START_REPLICATION */
static void
repl_setup_results(struct fanout *f)
{
	PGconn	   *conn = f->db.repl.conn;

	while (!PQisBusy(conn))
	{
		PGresult   *res = PQgetResult(conn);
		ExecStatusType st;

		if (!res)
		{
			if (f->db.state == REPL_SLOT)
			{
				/* the slot exists: stream from it */
				if (send_start_replication(f) < 0)
					return;
				continue;
			}
			return;
		}
		st = PQresultStatus(res);
		PQclear(res);
		if (f->db.state == REPL_SLOT && st != PGRES_TUPLES_OK)
		{
			db_fail(f, "create replication slot", conn);
			return;
		}
		if (f->db.state == REPL_STARTING)
		{
			if (st != PGRES_COPY_BOTH)
			{
				db_fail(f, "start replication", conn);
				return;
			}
			start_streaming(f);
			return;
		}
	}
}

static int
send_start_replication(struct fanout *f)
{
	char		sql[512];
	PGconn	   *conn = f->db.repl.conn;
	char	   *pub = PQescapeLiteral(conn, f->publication, strlen(f->publication));

	if (!pub)
	{
		db_fail(f, "publication name", conn);
		return -1;
	}
	snprintf(sql, sizeof(sql),
			 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s)",
			 f->db.slot, pub);
	PQfreemem(pub);
	if (!PQsendQuery(conn, sql) || pgc_flush(&f->db.repl) < 0)
	{
		db_fail(f, "start replication", conn);
		return -1;
	}
	f->db.state = REPL_STARTING;
	return 0;
}

static void
repl_readable(struct fanout *f)
{
	PGconn	   *conn = f->db.repl.conn;

	if (f->db.state == REPL_STOPPING)
	{
		repl_stopping_readable(f);
		return;
	}
	if (!PQconsumeInput(conn))
	{
		db_fail(f, "replication connection", conn);
		return;
	}
	if (f->db.state == REPL_SLOT || f->db.state == REPL_STARTING)
		repl_setup_results(f);
	/* everything libpq has buffered, without blocking */
	while (f->db.state == REPL_STREAMING && f->db.repl.conn)
	{
		char	   *buf = NULL;
		int			n = PQgetCopyData(conn, &buf, 1);

		if (n == 0)
			return;
		if (n < 0)
		{
			if (buf)
				PQfreemem(buf);
			db_fail(f, n == -1 ? "replication stream ended" : "replication stream", conn);
			return;
		}
		handle_copy_data(f, (const unsigned char *) buf, (size_t) n);
		PQfreemem(buf);
	}
}

/* reads what the replication stream has for us now, without waiting */
void
db_poll_stream(struct fanout *f)
{
	if (f->db.repl.conn && f->db.state == REPL_STREAMING)
		repl_readable(f);
}

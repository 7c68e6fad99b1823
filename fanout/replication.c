/*
 * replication.c — the two libpq connections: the logical replication
 * stream of poll.tally (a TEMPORARY pgoutput slot, so Postgres never keeps
 * WAL for us while we are down) and the query connection that takes
 * snapshots.  Both sockets are dup()ed into the lws loop as raw file
 * descriptors; every read drains libpq's buffer without blocking.
 *
 * Order after every (re)connection: create the slot, start streaming,
 * then re-snapshot every cached poll.  A snapshot taken after the slot
 * exists, plus the stream from the slot's start, deduplicated by version,
 * misses nothing.  Any error drops both connections and retries with
 * backoff; clients keep being served from the cache meanwhile.
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
#define PG_EPOCH_OFFSET_US	INT64_C(946684800000000)	/* 2000-01-01 - 1970-01-01 */

/*
 * Every function, operator and type named with its schema, and both
 * connections run with search_path = pg_catalog, pg_temp (conn_options()):
 * no name resolves in a schema a user could write to (a public.array_agg(text)
 * would beat pg_catalog's polymorphic one and run under the daemon's role).
 */
static const char *const snapshot_sql =
"SELECT p.title, t.version, t.status, t.ballots, t.votes,"
" pg_catalog.array_agg(o.label ORDER BY o.option_id)"
" FROM poll.poll p"
" JOIN poll.tally t ON t.poll_id OPERATOR(pg_catalog.=) p.poll_id"
" JOIN poll.option o ON o.poll_id OPERATOR(pg_catalog.=) p.poll_id"
" WHERE p.poll_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8"
" GROUP BY p.title, t.version, t.status, t.ballots, t.votes";

#define SAFE_SEARCH_PATH	"-c search_path=pg_catalog,pg_temp"

static const char *conn_options(struct fanout *f, char *buf, size_t cap);
static PGconn *connect_db(struct fanout *f, bool replication);
static struct lws *adopt(struct fanout *f, PGconn *conn);
static void db_fail(struct fanout *f, const char *what, PGconn *conn);
static void schedule_retry(struct fanout *f);
static void retry_cb(struct fanout *f);
static void status_cb(struct fanout *f);
static int	send_status(struct fanout *f, bool reply);
static void repl_readable(struct fanout *f);
static void repl_setup_results(struct fanout *f);
static int	send_start_replication(struct fanout *f);
static void start_streaming(struct fanout *f);
static void query_readable(struct fanout *f);
static void query_next(struct fanout *f);
static void handle_copy_data(struct fanout *f, const unsigned char *buf, size_t len);
static void handle_pgoutput(struct fanout *f, const struct pgo_msg *m);
static void handle_result(struct fanout *f, PGresult *res);
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
	return f->db.state == REPL_STREAMING && f->db.query != NULL;
}

bool
db_healthy(const struct fanout *f)
{
	return db_connected(f) && f->db.resynced && f->db.received_lsn >= f->db.server_end;
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

static PGconn *
connect_db(struct fanout *f, bool replication)
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
	keys[n] = "connect_timeout";
	vals[n++] = "5";
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
	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		db_fail(f, replication ? "replication connection" : "query connection", conn);
		PQfinish(conn);
		return NULL;
	}
	if (PQsetnonblocking(conn, 1) != 0)
	{
		db_fail(f, "set non-blocking", conn);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static struct lws *
adopt(struct fanout *f, PGconn *conn)
{
	lws_sock_file_fd_type fd;
	int			d = dup(PQsocket(conn));

	if (d < 0)
		return NULL;
	fd.filefd = d;
	return lws_adopt_descriptor_vhost(f->vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "pg-raw", NULL);
}

/* records why, drops both connections, schedules a reconnection */
static void
db_fail(struct fanout *f, const char *what, PGconn *conn)
{
	char		reason[200];
	const char *msg = conn ? PQerrorMessage(conn) : "";
	size_t		n;

	snprintf(reason, sizeof(reason), "%s", msg && *msg ? msg : "connection lost");
	n = strlen(reason);
	while (n > 0 && (reason[n - 1] == '\n' || reason[n - 1] == ' '))
		reason[--n] = '\0';
	{
		/* libpq's multi-line messages, on one log line */
		char	   *w = reason;

		for (char *c = reason; *c; c++)
		{
			char		ch = (*c == '\n' || *c == '\t') ? ' ' : *c;

			if (ch == ' ' && w > reason && w[-1] == ' ')
				continue;
			*w++ = ch;
		}
		*w = '\0';
	}
	snprintf(f->db.last_error, sizeof(f->db.last_error), "%s: %s", what, reason);
	db_stop(f);
	if (!f->stopping)
	{
		logmsg("postgres: %s; reconnecting in %d ms", f->db.last_error, f->db.backoff_ms);
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
	char		sql[256];

	if (!f->db.retry_timer.f)
	{
		timer_init(f, &f->db.retry_timer, retry_cb);
		timer_init(f, &f->db.status_timer, status_cb);
	}
	if (f->stopping || f->db.repl)
		return;
	f->db.repl = connect_db(f, true);
	if (!f->db.repl)
		return;
	f->db.repl_wsi = adopt(f, f->db.repl);
	if (!f->db.repl_wsi)
	{
		db_fail(f, "adopt socket", NULL);
		return;
	}
	snprintf(f->db.slot, sizeof(f->db.slot), "poll_fanout_%d_%lld", (int) getpid(),
			 (long long) (now_us() / 1000));
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput",
			 f->db.slot);
	if (!PQsendQuery(f->db.repl, sql))
	{
		db_fail(f, "create slot", f->db.repl);
		return;
	}
	PQflush(f->db.repl);
	f->db.state = REPL_SLOT;
	f->db.resynced = false;
	if (f->verbose)
		logmsg("postgres: connected, creating slot %s", f->db.slot);
}

static void
kill_wsi(struct fanout *f, struct lws **wsi)
{
	if (*wsi)
	{
		kill_soon(f, *wsi, PENDING_TIMEOUT_KILLED_BY_PARENT);
		*wsi = NULL;
	}
}

void
db_stop(struct fanout *f)
{
	if (f->stopping && f->db.repl && f->db.state == REPL_STREAMING)
	{
		/* a clean end of the copy, as pg_recvlogical does */
		PQsetnonblocking(f->db.repl, 0);
		send_status(f, false);
		PQputCopyEnd(f->db.repl, NULL);
		PQflush(f->db.repl);
	}
	if (f->db.repl)
		PQfinish(f->db.repl);
	if (f->db.query)
		PQfinish(f->db.query);
	f->db.repl = f->db.query = NULL;
	kill_wsi(f, &f->db.repl_wsi);
	kill_wsi(f, &f->db.query_wsi);
	f->db.state = REPL_DOWN;
	f->db.query_busy = false;
	f->db.resynced = false;
	pgo_relcache_free(&f->db.rels);
	timer_stop(&f->db.status_timer);
	/* requeue every poll at the next connection: see start_streaming */
}

static void
status_cb(struct fanout *f)
{
	if (f->db.state != REPL_STREAMING)
		return;
	if (send_status(f, false) < 0)
	{
		db_fail(f, "standby status update", f->db.repl);
		return;
	}
	timer_start(&f->db.status_timer, STATUS_INTERVAL_US);
}

/* standby status update: everything received is also flushed and applied */
static int
send_status(struct fanout *f, bool reply)
{
	unsigned char msg[34];
	uint64_t	lsn = f->db.received_lsn;

	msg[0] = 'r';
	put_u64(msg + 1, lsn);
	put_u64(msg + 9, lsn);
	put_u64(msg + 17, lsn);
	put_u64(msg + 25, (uint64_t) pg_now_us());
	msg[33] = reply ? 1 : 0;
	if (PQputCopyData(f->db.repl, (const char *) msg, sizeof(msg)) <= 0)
		return -1;
	if (PQflush(f->db.repl) > 0 && f->db.repl_wsi)
		lws_callback_on_writable(f->db.repl_wsi);
	f->db.last_status_us = now_us();
	return 0;
}

static void
start_streaming(struct fanout *f)
{
	f->db.state = REPL_STREAMING;
	f->db.backoff_ms = BACKOFF_MIN_MS;
	f->db.last_msg_us = now_us();
	logmsg("postgres: streaming from slot %s (publication %s)", f->db.slot, f->publication);
	timer_start(&f->db.status_timer, STATUS_INTERVAL_US);

	f->db.query = connect_db(f, false);
	if (!f->db.query)
		return;
	f->db.query_wsi = adopt(f, f->db.query);
	if (!f->db.query_wsi)
	{
		db_fail(f, "adopt socket", NULL);
		return;
	}
	/* resync: every cached poll gets a fresh snapshot, taken after the slot */
	f->db.queue_head = f->db.queue_tail = NULL;
	for (int b = 0; b < POLL_BUCKETS; b++)
		for (struct poll *p = f->buckets[b]; p; p = p->next_in_bucket)
		{
			p->queued = false;
			db_request_snapshot(f, p);
		}
	query_next(f);
}

void
db_request_snapshot(struct fanout *f, struct poll *p)
{
	if (p->queued)
		return;
	p->queued = true;
	p->next_queued = NULL;
	if (f->db.queue_tail)
		f->db.queue_tail->next_queued = p;
	else
		f->db.queue_head = p;
	f->db.queue_tail = p;
	if (db_connected(f))
		query_next(f);
}

static void
query_next(struct fanout *f)
{
	struct poll *p;
	char		id[32];
	const char *params[1] = {id};

	if (!db_connected(f) || f->db.query_busy)
		return;
	p = f->db.queue_head;
	if (!p)
	{
		if (!f->db.resynced && f->verbose)
			logmsg("postgres: resync done");
		f->db.resynced = true;
		return;
	}
	f->db.queue_head = p->next_queued;
	if (!f->db.queue_head)
		f->db.queue_tail = NULL;
	p->queued = false;
	snprintf(id, sizeof(id), "%lld", (long long) p->id);
	if (!PQsendQueryParams(f->db.query, snapshot_sql, 1, NULL, params, NULL, NULL, 0))
	{
		db_fail(f, "snapshot query", f->db.query);
		return;
	}
	if (PQflush(f->db.query) > 0)
		lws_callback_on_writable(f->db.query_wsi);
	f->db.query_busy = true;
	f->db.query_poll = p->id;
}

static void
handle_result(struct fanout *f, PGresult *res)
{
	struct poll *p = poll_find(f, f->db.query_poll);
	struct tally_row row;
	char	  **labels = NULL;
	int			n_labels = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		logmsg("postgres: snapshot of poll %lld failed: %s", (long long) f->db.query_poll,
			   PQresultErrorMessage(res));
		/*
		 * The connection going away is not the poll's fault: every cached
		 * poll is re-snapshotted after the reconnection.  Otherwise a poll
		 * being loaded is reported unknown; a loaded one keeps its state.
		 */
		if (!state || PQstatus(f->db.query) != CONNECTION_OK ||
			strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0)
			return;
		if (p && p->state == POLL_LOADING)
			poll_not_found(f, p);
		return;
	}
	f->m.snapshots++;
	if (!p)
		return;					/* nobody waits for it any more */
	if (PQntuples(res) == 0)
	{
		poll_not_found(f, p);
		return;
	}
	memset(&row, 0, sizeof(row));
	row.poll_id = p->id;
	if (parse_int64(PQgetvalue(res, 0, 1), (size_t) PQgetlength(res, 0, 1), &row.version) < 0 ||
		(row.status = parse_status(PQgetvalue(res, 0, 2), (size_t) PQgetlength(res, 0, 2))) < 0 ||
		parse_int64(PQgetvalue(res, 0, 3), (size_t) PQgetlength(res, 0, 3), &row.ballots) < 0 ||
		parse_votes(PQgetvalue(res, 0, 4), (size_t) PQgetlength(res, 0, 4), row.votes,
					TALLY_MAX_VOTES, &row.n_votes) < 0 ||
		parse_text_array(PQgetvalue(res, 0, 5), MAX_OPTIONS, &labels, &n_labels) < 0)
	{
		logmsg("postgres: snapshot of poll %lld is not understood", (long long) p->id);
		for (int i = 0; i < n_labels; i++)
			free(labels[i]);
		free(labels);
		poll_not_found(f, p);
		return;
	}
	poll_apply_snapshot(f, p, PQgetvalue(res, 0, 0), labels, n_labels, &row);
}

static void
query_readable(struct fanout *f)
{
	if (!PQconsumeInput(f->db.query))
	{
		db_fail(f, "query connection", f->db.query);
		return;
	}
	while (f->db.query_busy && !PQisBusy(f->db.query))
	{
		PGresult   *res = PQgetResult(f->db.query);

		if (!res)
		{
			f->db.query_busy = false;
			query_next(f);
			return;
		}
		handle_result(f, res);
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
			db_fail(f, "keepalive reply", f->db.repl);
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
	while (!PQisBusy(f->db.repl))
	{
		PGresult   *res = PQgetResult(f->db.repl);
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
			db_fail(f, "create replication slot", f->db.repl);
			return;
		}
		if (f->db.state == REPL_STARTING)
		{
			if (st != PGRES_COPY_BOTH)
			{
				db_fail(f, "start replication", f->db.repl);
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
	char	   *pub = PQescapeLiteral(f->db.repl, f->publication, strlen(f->publication));

	if (!pub)
	{
		db_fail(f, "publication name", f->db.repl);
		return -1;
	}
	snprintf(sql, sizeof(sql),
			 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s)",
			 f->db.slot, pub);
	PQfreemem(pub);
	if (!PQsendQuery(f->db.repl, sql))
	{
		db_fail(f, "start replication", f->db.repl);
		return -1;
	}
	PQflush(f->db.repl);
	f->db.state = REPL_STARTING;
	return 0;
}

static void
repl_readable(struct fanout *f)
{
	if (!PQconsumeInput(f->db.repl))
	{
		db_fail(f, "replication connection", f->db.repl);
		return;
	}
	if (f->db.state == REPL_SLOT || f->db.state == REPL_STARTING)
		repl_setup_results(f);
	/* everything libpq has buffered, without blocking */
	while (f->db.state == REPL_STREAMING && f->db.repl)
	{
		char	   *buf = NULL;
		int			n = PQgetCopyData(f->db.repl, &buf, 1);

		if (n == 0)
			return;
		if (n < 0)
		{
			if (buf)
				PQfreemem(buf);
			db_fail(f, n == -1 ? "replication stream ended" : "replication stream", f->db.repl);
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
	if (f->db.repl && f->db.repl_wsi && f->db.state == REPL_STREAMING)
		repl_readable(f);
}

int
db_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
				void *in, size_t len)
{
	struct fanout *f = lws_context_user(lws_get_context(wsi));
	bool		is_repl = wsi == f->db.repl_wsi;
	bool		is_query = wsi == f->db.query_wsi;

	(void) user;
	(void) in;
	(void) len;
	switch (reason)
	{
		case LWS_CALLBACK_RAW_RX_FILE:
			if (is_repl)
				repl_readable(f);
			else if (is_query)
				query_readable(f);
			else
				return -1;		/* a connection we already dropped */
			break;
		case LWS_CALLBACK_RAW_WRITEABLE_FILE:
			if (is_repl && PQflush(f->db.repl) > 0)
				lws_callback_on_writable(wsi);
			else if (is_query && PQflush(f->db.query) > 0)
				lws_callback_on_writable(wsi);
			break;
		case LWS_CALLBACK_RAW_CLOSE_FILE:
			if (is_repl)
			{
				f->db.repl_wsi = NULL;
				db_fail(f, "replication socket closed", f->db.repl);
			}
			else if (is_query)
			{
				f->db.query_wsi = NULL;
				db_fail(f, "query socket closed", f->db.query);
			}
			break;
		default:
			break;
	}
	return 0;
}

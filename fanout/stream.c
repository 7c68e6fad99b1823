/*
 * stream.c — the logical replication stream of poll.tally on the
 * replication connection: a TEMPORARY pgoutput slot (Postgres never keeps
 * WAL for us while we are down), START_REPLICATION, the decoder
 * (pgoutput.c) and the rows applied to the poll cache, keepalive replies
 * and standby status updates, the silence watchdog (30 s without a word:
 * reconnect), and a clean end of the copy at shutdown (our CopyDone, the
 * server's, then the close).  Once streaming it opens the query
 * connection, so that every snapshot is taken after the slot exists.
 * Calls polls.c, db.c, loop.c and the pure decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fanout.h"

#define STATUS_INTERVAL_US	(10 * 1000 * 1000)
#define SILENCE_US			(30 * 1000 * 1000)	/* nothing at all from the stream: reconnect */
#define STOP_TIMEOUT_US		(2 * 1000 * 1000)	/* for the server's CopyDone at shutdown */
#define PG_EPOCH_OFFSET_US	INT64_C(946684800000000)	/* 2000-01-01 - 1970-01-01 */

static uint64_t get_u64(const unsigned char *p);
static void put_u64(unsigned char *p, uint64_t v);
static int64_t pg_now_us(void);
static void repl_connected(struct fanout *f);
static void stream_down(struct fanout *f);
static void stop_timeout_cb(struct fanout *f);
static void stopped(struct fanout *f);
static void repl_stopping_readable(struct fanout *f);
static void status_cb(struct fanout *f);
static int	send_status(struct fanout *f, bool ping);
static void start_streaming(struct fanout *f);
static void handle_pgoutput(struct fanout *f, const struct pgo_msg *m);
static void handle_copy_data(struct fanout *f, const unsigned char *buf, size_t len);
static void repl_setup_results(struct fanout *f);
static int	send_start_replication(struct fanout *f);
static void repl_readable(struct fanout *f);

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

/* streaming, and the query connection is up: snapshots can be taken */
bool
stream_connected(const struct fanout *f)
{
	return f->stream.state == REPL_STREAMING && db_query_ready(f);
}

/* connected, caught up with what the server reported, and not silent */
bool
stream_healthy(const struct fanout *f)
{
	return stream_connected(f) && f->stream.received_lsn >= f->stream.server_end &&
		now_us() - f->stream.last_msg_us < SILENCE_US;
}

void
stream_init(struct fanout *f)
{
	timer_init(f, &f->stream.status_timer, status_cb);
	timer_init(f, &f->stream.stop_timer, stop_timeout_cb);
	f->db.repl.on_ready = repl_connected;
	f->db.repl.on_readable = repl_readable;
	f->db.repl.on_down = stream_down;
}

/* the replication connection is up: create the slot */
static void
repl_connected(struct fanout *f)
{
	char		sql[256];

	snprintf(f->stream.slot, sizeof(f->stream.slot), "poll_fanout_%d_%lld", (int) getpid(),
			 (long long) (now_us() / 1000));
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput",
			 f->stream.slot);
	if (!PQsendQuery(f->db.repl.conn, sql) || db_flush(&f->db.repl) < 0)
	{
		db_fail(f, "create slot", f->db.repl.conn);
		return;
	}
	f->stream.state = REPL_SLOT;
	if (f->verbose)
		logmsg("postgres: connected, creating slot %s", f->stream.slot);
}

/* both connections are gone (db.c): nothing streams until the next connection */
static void
stream_down(struct fanout *f)
{
	f->stream.state = REPL_DOWN;
	pgo_relcache_free(&f->stream.rels);
	timer_stop(&f->stream.status_timer);
	timer_stop(&f->stream.stop_timer);
}

/*
 * A clean end of the copy, as pg_recvlogical does: a last status, our
 * CopyDone, then (on the loop, at most STOP_TIMEOUT_US) the server's
 * CopyDone and CommandComplete before the connection closes, so that the
 * walsender never writes to a closed socket.  done() runs either way.
 */
void
stream_shutdown(struct fanout *f, void (*done) (struct fanout *f))
{
	f->stream.on_stopped = done;
	if (f->stream.state != REPL_STREAMING || !f->db.repl.conn ||
		send_status(f, false) < 0 || PQputCopyEnd(f->db.repl.conn, NULL) <= 0 ||
		db_flush(&f->db.repl) < 0)
	{
		db_stop(f);
		done(f);
		return;
	}
	db_close(&f->db.query);
	f->stream.state = REPL_STOPPING;
	timer_start(&f->stream.stop_timer, STOP_TIMEOUT_US);
}

static void
stop_timeout_cb(struct fanout *f)
{
	if (f->stream.state != REPL_STOPPING)
		return;
	logmsg("postgres: the server did not end the copy within %d ms", STOP_TIMEOUT_US / 1000);
	stopped(f);
}

static void
stopped(struct fanout *f)
{
	void		(*done) (struct fanout *f) = f->stream.on_stopped;

	db_stop(f);
	f->stream.on_stopped = NULL;
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

	if (f->stream.state != REPL_STREAMING)
		return;
	if (now - f->stream.last_msg_us >= SILENCE_US)
	{
		db_fail(f, "nothing from the replication stream for 30 s", NULL);
		return;
	}
	if (now - f->stream.last_status_us >= STATUS_INTERVAL_US && send_status(f, true) < 0)
	{
		db_fail(f, "standby status update", f->db.repl.conn);
		return;
	}
	timer_start(&f->stream.status_timer, 1000 * 1000);
}

/* standby status update: everything received is also flushed and applied */
static int
send_status(struct fanout *f, bool ping)
{
	unsigned char msg[34];
	uint64_t	lsn = f->stream.received_lsn;

	msg[0] = 'r';
	put_u64(msg + 1, lsn);
	put_u64(msg + 9, lsn);
	put_u64(msg + 17, lsn);
	put_u64(msg + 25, (uint64_t) pg_now_us());
	msg[33] = ping ? 1 : 0;		/* asks the server to answer now */
	if (PQputCopyData(f->db.repl.conn, (const char *) msg, sizeof(msg)) <= 0 ||
		db_flush(&f->db.repl) < 0)
		return -1;
	f->stream.last_status_us = now_us();
	return 0;
}

/* START_REPLICATION answered: stream, then open the query connection (snapshots.c) */
static void
start_streaming(struct fanout *f)
{
	f->stream.state = REPL_STREAMING;
	f->stream.last_msg_us = now_us();
	f->stream.last_status_us = now_us();
	logmsg("postgres: streaming from slot %s (publication %s)", f->stream.slot, f->publication);
	timer_start(&f->stream.status_timer, 1000 * 1000);
	db_open(f, &f->db.query);
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
			pgo_relcache_put(&f->stream.rels, m);
			break;
		case 'I':
		case 'U':
			rel = pgo_relcache_get(&f->stream.rels, m->relid);
			if (!rel || !rel->is_tally)
				break;
			if (tally_from_tuple(rel, m, &row) < 0)
			{
				logmsg("postgres: a poll.tally row was not understood");
				break;
			}
			f->m.stream_rows++;
			poll_seen(f, row.poll_id);	/* it exists: not unknown any more */
			if (f->on_tally_row)
				f->on_tally_row(f, row.poll_id, row.status);	/* webhooks.c: every poll */
			p = poll_find(f, row.poll_id);	/* polls nobody watches are not cached */
			if (p)
				poll_apply_row(f, p, &row);
			break;
		case 'C':
			f->stream.last_commit_ts = m->ts;
			if (m->end_lsn > f->stream.received_lsn)
				f->stream.received_lsn = m->end_lsn;
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

	f->stream.last_msg_us = now_us();
	if (len >= 18 && buf[0] == 'k')
	{
		/* primary keepalive: walEnd, sendTime, replyRequested */
		end = get_u64(buf + 1);
		if (end > f->stream.server_end)
			f->stream.server_end = end;
		/* what came before it on the connection is all processed */
		if (end > f->stream.received_lsn)
			f->stream.received_lsn = end;
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
	if (end > f->stream.server_end)
		f->stream.server_end = end;
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
			if (f->stream.state == REPL_SLOT)
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
		if (f->stream.state == REPL_SLOT && st != PGRES_TUPLES_OK)
		{
			db_fail(f, "create replication slot", conn);
			return;
		}
		if (f->stream.state == REPL_STARTING)
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
			 f->stream.slot, pub);
	PQfreemem(pub);
	if (!PQsendQuery(conn, sql) || db_flush(&f->db.repl) < 0)
	{
		db_fail(f, "start replication", conn);
		return -1;
	}
	f->stream.state = REPL_STARTING;
	return 0;
}

static void
repl_readable(struct fanout *f)
{
	PGconn	   *conn = f->db.repl.conn;

	if (f->stream.state == REPL_STOPPING)
	{
		repl_stopping_readable(f);
		return;
	}
	if (!PQconsumeInput(conn))
	{
		db_fail(f, "replication connection", conn);
		return;
	}
	if (f->stream.state == REPL_SLOT || f->stream.state == REPL_STARTING)
		repl_setup_results(f);
	/* everything libpq has buffered, without blocking */
	while (f->stream.state == REPL_STREAMING && f->db.repl.conn)
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
stream_poll(struct fanout *f)
{
	if (f->db.repl.conn && f->stream.state == REPL_STREAMING)
		repl_readable(f);
}

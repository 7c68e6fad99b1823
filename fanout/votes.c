/*
 * votes.c — votes on their way to Postgres: the bounded queue, group
 * commit on connections of its own, and the outcome of every vote.
 *
 * Each vote connection (VOTE_CONNS of them, opened without blocking like
 * db.c's, each failing and reconnecting alone) has at most one batch in
 * flight: one statement, poll.cast_vote_batch() over every vote taken from
 * the queue, which is one transaction.  A batch goes as soon as a
 * connection is idle, so the batch size follows the load: an idle daemon
 * sends a lone vote at once; while batches are in flight, the next one
 * collects.  A vote's outcome is known, and its done callback runs, only
 * once the statement's transaction has committed (ReadyForQuery after its
 * rows, no error): acknowledged means durable.  Nothing waits for Postgres:
 * with no connection up, or the queue full, a vote is refused
 * (unavailable) at once, never held.
 *
 * Order: the votes of one session, and of one voter, are never in two
 * batches in flight at once; within a batch they keep their order, which
 * cast_vote_batch applies element by element.  A vote whose session or
 * voter has votes in another connection's batch waits in the queue (and so
 * do the later votes of its session).
 *
 * A whole batch that fails (deadlock, serialization failure) is sent again
 * once; a lost connection, or a second failure, answers its votes
 * unavailable.  Ballot lookups (GET /polls/ID/vote) go one per statement
 * on the same connections.  Calls db.c and loop.c; the layer above (voting.c)
 * hears of outcomes through each vote's done callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define INFLIGHT_BUCKETS	4096
#define BACKOFF_MIN_MS		250
#define BACKOFF_MAX_MS		2000	/* votes are refused while it is down: retry soon */
#define CONNECT_TIMEOUT_US	(10 * 1000 * 1000)
#define BATCH_WATCHDOG_US	(30 * 1000 * 1000)	/* > the statement_timeout below */
#define RETRY_DELAY_US		(100 * 1000)	/* before a batch a deadlock aborted goes again */
#define INT8ARRAYOID		1016
#define TEXTARRAYOID		1009
#define INT8OID				20
#define TEXTOID				25

static const char *const vote_codes[VOTE_CODES] = {
	"bad_request", "unauthorized", "forbidden", "rate_limited", "bad_vote", "not_found",
	"closed", "not_open", "change_not_allowed", "unavailable", "too_many_subscriptions"
};
static const double lat_bounds[VOTE_LAT_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};
static const int size_bounds[VOTE_SIZE_BUCKETS] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000};

/* a voter with votes in a batch: which connection's, how many */
struct inflight {
	struct inflight *next;
	struct vote_conn *vc;
	int			n;
	char		voter[];
};

static void conn_open(struct fanout *f, struct vote_conn *vc);

/*
 * Failures that can repeat with every batch (a function missing, an
 * unexpected SQLSTATE) are logged at most once a second, with the count
 * of those left out.
 */
static bool
log_allowed(void)
{
	static int64_t last_us;
	static int	skipped;
	int64_t		now = now_us();

	if (last_us && now - last_us < 1000000)
	{
		skipped++;
		return false;
	}
	if (skipped)
		logmsg("votes: %d more failures not logged", skipped);
	skipped = 0;
	last_us = now;
	return true;
}
static void conn_ready(struct fanout *f);
static void conn_readable(struct fanout *f);
static void conn_down(struct fanout *f);
static void conn_fail(struct fanout *f, struct pgc *c, const char *why);
static void conn_lost(struct fanout *f, struct vote_conn *vc, const char *why);
static void schedule(struct fanout *f);
static void finish_batch(struct fanout *f, struct vote_conn *vc);
static void answer(struct fanout *f, struct vote *v, const struct vote_outcome *o);
static void arm_timer(struct fanout *f);
static void timer_cb(struct fanout *f);

static struct vote_conn *
conn_of(struct fanout *f, struct pgc *c)
{
	(void) f;
	return lws_container_of(c, struct vote_conn, pgc);
}

static uint64_t
hash_str(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

static struct inflight **
inflight_slot(struct fanout *f, const char *voter)
{
	struct inflight **pp = &f->votes.inflight[hash_str(voter) & (INFLIGHT_BUCKETS - 1)];

	while (*pp && strcmp((*pp)->voter, voter) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* the connection whose batch holds votes of voter, or NULL */
static struct vote_conn *
inflight_conn(struct fanout *f, const char *voter)
{
	struct inflight *e = *inflight_slot(f, voter);

	return e ? e->vc : NULL;
}

static bool
inflight_add(struct fanout *f, const char *voter, struct vote_conn *vc)
{
	struct inflight **pp = inflight_slot(f, voter);
	size_t		len = strlen(voter);

	if (!*pp)
	{
		struct inflight *e = malloc(sizeof(*e) + len + 1);

		if (!e)
			return false;
		memcpy(e->voter, voter, len + 1);
		e->vc = vc;
		e->n = 0;
		e->next = NULL;
		*pp = e;
	}
	(*pp)->n++;
	return true;
}

static void
inflight_remove(struct fanout *f, const char *voter)
{
	struct inflight **pp = inflight_slot(f, voter);
	struct inflight *e = *pp;

	if (e && --e->n == 0)
	{
		*pp = e->next;
		free(e);
	}
}

struct vote *
votes_new(int64_t poll, enum vote_kind kind, const char *voter, const char *seg)
{
	size_t		vl = strlen(voter) + 1, sl = seg ? strlen(seg) + 1 : 0;
	struct vote *v = calloc(1, sizeof(*v) + vl + sl);

	if (!v)
		return NULL;
	v->poll = poll;
	v->kind = kind;
	v->voter = (char *) (v + 1);
	memcpy(v->voter, voter, vl);
	if (seg)
	{
		v->seg = v->voter + vl;
		memcpy(v->seg, seg, sl);
	}
	v->received_us = now_us();
	return v;
}

void
votes_count_refusal(struct fanout *f, const char *code)
{
	for (int i = 0; i < VOTE_CODES; i++)
		if (strcmp(vote_codes[i], code) == 0)
		{
			f->votes.refused[i]++;
			return;
		}
}

/* the outcome to the layer above, the metrics, and the vote is freed */
static void
answer(struct fanout *f, struct vote *v, const struct vote_outcome *o)
{
	if (v->kind != VOTE_LOOKUP)
	{
		if (o->code)
			votes_count_refusal(f, o->code);
		else
		{
			double		lat = (double) (now_us() - v->received_us) / 1e6;
			int			i = 0;

			f->votes.acknowledged++;
			while (i < VOTE_LAT_BUCKETS && lat > lat_bounds[i])
				i++;
			f->votes.lat_buckets[i]++;
			f->votes.lat_sum += lat;
		}
	}
	if (v->s)
	{
		lws_dll2_remove(&v->owner_node);
		if (v->done)
			v->done(f, v, o);
	}
	free(v);
}

static void
refuse(struct fanout *f, struct vote *v, const char *code, const char *message)
{
	struct vote_outcome o;

	memset(&o, 0, sizeof(o));
	o.code = code;
	o.message = message;
	answer(f, v, &o);
}

/*
 * Takes v (it is answered, now or later, through v->done).  Refused at
 * once, unavailable, when no vote connection is up or the queue is full.
 * Returns 0 when queued.
 */
int
votes_submit(struct fanout *f, struct session *s, struct vote *v)
{
	struct votes *vs = &f->votes;

	v->s = s;
	if (s)
		lws_dll2_add_tail(&v->owner_node, &s->votes);
	if (v->kind != VOTE_LOOKUP)
		vs->received++;
	if (vs->n_conns_up == 0)
	{
		refuse(f, v, "unavailable", "postgres is away; the vote was not recorded");
		return -1;
	}
	if (vs->q_len >= f->vote_queue)
	{
		refuse(f, v, "unavailable", "too many votes waiting; the vote was not recorded");
		return -1;
	}
	if (vs->q_tail)
		vs->q_tail->next = v;
	else
		vs->q_head = v;
	vs->q_tail = v;
	vs->q_len++;
	schedule(f);
	return 0;
}

/*
 * The session goes: its queued votes go with it (never acknowledged, so
 * a client resends them); those in a batch stay there, answering no one.
 */
void
votes_forget_session(struct session *s)
{
	struct fanout *f = s->f;
	struct vote **pp;

	if (!f || !s->votes.count)
		return;
	pp = &f->votes.q_head;
	f->votes.q_tail = NULL;
	while (*pp)
	{
		struct vote *v = *pp;

		if (v->s == s)
		{
			*pp = v->next;
			f->votes.q_len--;
			lws_dll2_remove(&v->owner_node);
			free(v);
			continue;
		}
		f->votes.q_tail = v;
		pp = &v->next;
	}
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&s->votes))
	{
		struct vote *v = lws_container_of(d, struct vote, owner_node);

		lws_dll2_remove(d);
		v->s = NULL;
	} lws_end_foreach_dll_safe(d, d1);
	s->vote_conn = NULL;
}

/* a text[] or bigint[] literal element: "..." with \ and " escaped */
static void
array_elem(struct jbuf *b, const char *s, bool first)
{
	if (!first)
		jb_raw(b, ",", 1);
	if (!s)
	{
		jb_raw(b, "NULL", 4);
		return;
	}
	jb_raw(b, "\"", 1);
	for (const char *p = s; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			jb_raw(b, "\\", 1);
		jb_raw(b, p, 1);
	}
	jb_raw(b, "\"", 1);
}

/* sends vc's batch; false: the connection failed (it is closed) */
static bool
send_batch(struct fanout *f, struct vote_conn *vc)
{
	PGconn	   *conn = vc->pgc.conn;
	int			ok;

	vc->failed = false;
	vc->sqlstate[0] = '\0';
	vc->error[0] = '\0';
	if (vc->res)
		PQclear(vc->res);
	vc->res = NULL;
	if (vc->lookup)
	{
		char		id[24];
		const char *params[2] = {id, vc->batch->voter};
		const Oid	types[2] = {INT8OID, TEXTOID};

		snprintf(id, sizeof(id), "%lld", (long long) vc->batch->poll);
		ok = PQsendQueryParams(conn, "SELECT poll.ballot_of($1, $2)", 2, types, params,
							   NULL, NULL, 0);
	}
	else
	{
		/* the four arrays, each a text literal (voters and segments quoted) */
		size_t		cap = 64 + (size_t) vc->batch_n * 24;
		size_t		vcap = 64, scap = 64;
		char	   *ids, *voters, *ballots, *segs;
		struct jbuf bi, bv, bb, bs;
		bool		any_seg = false;
		const Oid	types[4] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		for (struct vote *v = vc->batch; v; v = v->next)
		{
			vcap += 2 * strlen(v->voter) + 3;
			scap += v->seg ? 2 * strlen(v->seg) + 3 : 5;
			any_seg |= v->seg != NULL;
		}
		ids = malloc(cap);
		ballots = malloc(cap + (size_t) vc->batch_n * BALLOT_TEXT_MAX);
		voters = malloc(vcap);
		segs = malloc(scap);
		bi = (struct jbuf) {ids, 0, cap - 1, false};
		bb = (struct jbuf) {ballots, 0, cap + (size_t) vc->batch_n * BALLOT_TEXT_MAX - 1, false};
		bv = (struct jbuf) {voters, 0, vcap - 1, false};
		bs = (struct jbuf) {segs, 0, scap - 1, false};
		if (!ids || !ballots || !voters || !segs)
			ok = 0;
		else
		{
			const char *params[4] = {ids, voters, ballots, any_seg ? segs : NULL};

			jb_raw(&bi, "{", 1);
			jb_raw(&bv, "{", 1);
			jb_raw(&bb, "{", 1);
			jb_raw(&bs, "{", 1);
			for (struct vote *v = vc->batch; v; v = v->next)
			{
				bool		first = v == vc->batch;

				jb_fmt(&bi, "%s%lld", first ? "" : ",", (long long) v->poll);
				array_elem(&bv, v->voter, first);
				array_elem(&bb, v->kind == VOTE_RETRACT ? NULL : v->ballot, first);
				array_elem(&bs, v->seg, first);
			}
			jb_raw(&bi, "}", 2);
			jb_raw(&bv, "}", 2);
			jb_raw(&bb, "}", 2);
			jb_raw(&bs, "}", 2);
			ok = !bi.overflow && !bv.overflow && !bb.overflow && !bs.overflow &&
				PQsendQueryParams(conn,
								  "SELECT ord, result, options, sqlstate, message"
								  " FROM poll.cast_vote_batch($1, $2, $3, $4)",
								  4, types, params, NULL, NULL, 0);
		}
		free(ids);
		free(voters);
		free(ballots);
		free(segs);
	}
	if (!ok || db_flush(&vc->pgc) < 0)
	{
		conn_lost(f, vc, PQerrorMessage(conn));
		return false;
	}
	vc->sent_us = now_us();
	vc->state = VC_BUSY;
	arm_timer(f);
	return true;
}

/*
 * Fills idle connections with batches from the queue: a lookup alone when
 * it is the oldest thing waiting, else every vote that may go now (its
 * session's and voter's earlier votes are in no other batch), up to
 * VOTE_BATCH_MAX.
 */
static void
schedule(struct fanout *f)
{
	struct votes *vs = &f->votes;

	for (int c = 0; c < VOTE_CONNS && vs->q_head; c++)
	{
		struct vote_conn *vc = &vs->conns[c];
		struct vote **pp;
		unsigned	pass;

		if (vc->state != VC_IDLE)
			continue;
		vc->batch = vc->batch_tail = NULL;
		vc->batch_n = 0;
		vc->retried = false;
		vc->lookup = false;
		if (vs->q_head->kind == VOTE_LOOKUP)
		{
			struct vote *v = vs->q_head;

			vs->q_head = v->next;
			if (!vs->q_head)
				vs->q_tail = NULL;
			vs->q_len--;
			v->next = NULL;
			v->in_flight = true;
			vc->batch = vc->batch_tail = v;
			vc->batch_n = 1;
			vc->lookup = true;
			if (!send_batch(f, vc))
				return;			/* conn_lost() answered it and rescheduled */
			continue;
		}
		pass = ++vs->pass;
		pp = &vs->q_head;
		vs->q_tail = NULL;
		while (*pp && vc->batch_n < VOTE_BATCH_MAX)
		{
			struct vote *v = *pp;
			struct session *s = v->s;
			struct vote_conn *other = inflight_conn(f, v->voter);

			if (v->kind == VOTE_LOOKUP ||
				(s && (s->vote_pass == pass || (s->vote_conn && s->vote_conn != vc))) ||
				(other && other != vc) || !inflight_add(f, v->voter, vc))
			{
				if (s)
					s->vote_pass = pass;	/* its later votes wait too */
				vs->q_tail = v;
				pp = &v->next;
				continue;
			}
			*pp = v->next;
			vs->q_len--;
			v->next = NULL;
			v->in_flight = true;
			if (s)
				s->vote_conn = vc;
			if (vc->batch_tail)
				vc->batch_tail->next = v;
			else
				vc->batch = v;
			vc->batch_tail = v;
			vc->batch_n++;
		}
		while (*pp)
		{
			vs->q_tail = *pp;
			pp = &(*pp)->next;
		}
		if (vc->batch_n == 0)
			continue;
		if (!send_batch(f, vc))
			return;
	}
}

/* the batch's votes leave the in-flight bookkeeping */
static void
release_batch(struct fanout *f, struct vote_conn *vc)
{
	for (struct vote *v = vc->batch; v; v = v->next)
	{
		if (vc->lookup)
			continue;
		inflight_remove(f, v->voter);
		if (v->s && v->s->vote_conn == vc)
			v->s->vote_conn = NULL;
	}
}

/* every vote of vc's batch gets the same answer */
static void
refuse_batch(struct fanout *f, struct vote_conn *vc, const char *code, const char *message)
{
	struct vote *v = vc->batch;

	release_batch(f, vc);
	vc->batch = vc->batch_tail = NULL;
	vc->batch_n = 0;
	while (v)
	{
		struct vote *next = v->next;

		refuse(f, v, code, message);
		v = next;
	}
}

static void
parse_int_array(const char *s, struct vote_outcome *o)
{
	o->n_options = 0;
	if (!s || *s != '{')
		return;
	for (s++; *s && *s != '}' && o->n_options < BALLOT_MAX;)
	{
		char	   *end;
		long		n = strtol(s, &end, 10);

		if (end == s)
			break;
		o->options[o->n_options++] = (int) n;
		s = *end == ',' ? end + 1 : end;
	}
}

/* a failed element's SQLSTATE as the SPEC's code */
static const char *
code_of(const char *sqlstate, const char *message)
{
	if (!sqlstate)
		return "unavailable";
	if (strcmp(sqlstate, "P0002") == 0)
		return "not_found";
	if (strcmp(sqlstate, "55000") == 0)
		return message && strstr(message, "not open") ? "not_open" : "closed";
	if (strcmp(sqlstate, "23505") == 0)
		return "change_not_allowed";
	if (strcmp(sqlstate, "22023") == 0 || strcmp(sqlstate, "42809") == 0 ||
		strcmp(sqlstate, "22004") == 0 || strcmp(sqlstate, "54000") == 0 ||
		strcmp(sqlstate, "22P02") == 0)
		return "bad_vote";
	return "unavailable";
}

/*
 * The statement is over and its transaction committed (or not): each vote
 * gets its row's outcome; a whole-batch failure is retried once.
 */
static void
finish_batch(struct fanout *f, struct vote_conn *vc)
{
	PGresult   *res = vc->res;
	struct vote *v = vc->batch;
	bool		lookup = vc->lookup;
	int			i = 0;
	int64_t		took = now_us() - vc->sent_us;

	vc->res = NULL;
	vc->state = VC_IDLE;
	if (vc->failed || !res || (!vc->lookup && PQntuples(res) != vc->batch_n) ||
		(vc->lookup && PQntuples(res) != 1))
	{
		bool		retry = !vc->lookup && !vc->retried &&
			(strcmp(vc->sqlstate, "40P01") == 0 || strcmp(vc->sqlstate, "40001") == 0);

		PQclear(res);
		if (vc->lookup && (strcmp(vc->sqlstate, "P0002") == 0 ||
						   strcmp(vc->sqlstate, "22023") == 0))
		{
			refuse_batch(f, vc, code_of(vc->sqlstate, NULL), vc->sqlstate[0] == 'P' ?
						 "no such poll" : "bad voter");
			schedule(f);
			return;
		}
		if (log_allowed())
			logmsg("votes: a batch of %d failed (%s: %s)%s", vc->batch_n,
				   vc->sqlstate[0] ? vc->sqlstate : "no result", vc->error,
				   retry ? "; sending it again" : "; its votes are answered unavailable");
		if (retry)
		{
			/*
			 * A moment later: the transaction the deadlock let through
			 * must get the lock it waited for before the batch asks again,
			 * or the two meet once more.
			 */
			vc->retried = true;
			vc->state = VC_RETRY;
			vc->retry_at_us = now_us() + RETRY_DELAY_US;
			arm_timer(f);
			return;
		}
		refuse_batch(f, vc, "unavailable", "the vote could not be recorded; try again");
		schedule(f);
		return;
	}
	if (!vc->lookup)
	{
		int			b = 0;

		while (b < VOTE_SIZE_BUCKETS && vc->batch_n > size_bounds[b])
			b++;
		f->votes.size_buckets[b]++;
		f->votes.size_sum += (uint64_t) vc->batch_n;
		f->votes.batches++;
		if (f->verbose)
			logmsg("votes: batch of %d committed in %.1f ms", vc->batch_n, took / 1000.0);
	}
	release_batch(f, vc);
	vc->batch = vc->batch_tail = NULL;
	vc->batch_n = 0;
	/* the connection takes the next batch before the answers go out */
	schedule(f);
	while (v)
	{
		struct vote *next = v->next;
		struct vote_outcome o;

		memset(&o, 0, sizeof(o));
		if (lookup)
			parse_int_array(PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0), &o);
		else if (PQgetisnull(res, i, 1))
		{
			const char *st = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);

			o.message = PQgetisnull(res, i, 4) ? "refused" : PQgetvalue(res, i, 4);
			o.code = code_of(st, o.message);
			if (strcmp(o.code, "unavailable") == 0 && log_allowed())
				logmsg("votes: a vote failed with %s: %s", st ? st : "no SQLSTATE", o.message);
		}
		else
		{
			o.result = PQgetvalue(res, i, 1);
			parse_int_array(PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2), &o);
		}
		answer(f, v, &o);
		i++;
		v = next;
	}
	PQclear(res);
}

static void
conn_readable(struct fanout *f)
{
	for (int c = 0; c < VOTE_CONNS; c++)
	{
		struct vote_conn *vc = &f->votes.conns[c];
		PGconn	   *conn = vc->pgc.conn;

		if (!conn || vc->pgc.connecting || (vc->state != VC_BUSY && vc->state != VC_SETUP &&
											vc->state != VC_IDLE && vc->state != VC_RETRY))
			continue;
		if (!PQconsumeInput(conn))
		{
			conn_lost(f, vc, PQerrorMessage(conn));
			continue;
		}
		while (vc->pgc.conn && !PQisBusy(conn))
		{
			PGresult   *r = PQgetResult(conn);

			if (!r)
			{
				if (vc->state == VC_SETUP)
				{
					vc->state = vc->failed ? VC_DOWN : VC_IDLE;
					if (vc->failed)
					{
						conn_lost(f, vc, "the vote connection's set-up failed");
						break;
					}
					vc->backoff_ms = BACKOFF_MIN_MS;
					f->votes.n_conns_up++;
					schedule(f);
				}
				else if (vc->state == VC_BUSY)
					finish_batch(f, vc);
				break;
			}
			if (PQresultStatus(r) == PGRES_TUPLES_OK && !vc->res && vc->state == VC_BUSY)
			{
				vc->res = r;
				continue;
			}
			if (PQresultStatus(r) == PGRES_FATAL_ERROR)
			{
				const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

				vc->failed = true;
				snprintf(vc->sqlstate, sizeof(vc->sqlstate), "%s", st ? st : "");
				snprintf(vc->error, sizeof(vc->error), "%s",
						 PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) ?
						 PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : "");
				if (vc->state == VC_SETUP)
					logmsg("votes: the vote connection's set-up: %s", vc->error);
			}
			PQclear(r);
		}
		/* the server went away between batches (a shutdown, a terminated backend) */
		if (vc->pgc.conn && PQstatus(vc->pgc.conn) == CONNECTION_BAD)
			conn_lost(f, vc, PQerrorMessage(vc->pgc.conn));
	}
}

/* connected: the session's settings (a timeout, durable commits), then idle */
static void
conn_ready(struct fanout *f)
{
	for (int c = 0; c < VOTE_CONNS; c++)
	{
		struct vote_conn *vc = &f->votes.conns[c];

		if (vc->state != VC_CONNECTING || !vc->pgc.conn || vc->pgc.connecting)
			continue;
		vc->state = VC_SETUP;
		vc->failed = false;
		if (!PQsendQuery(vc->pgc.conn,
						 "SELECT pg_catalog.set_config('statement_timeout', '10s', false),"
						 " CASE WHEN pg_catalog.current_setting('synchronous_commit') = 'off'"
						 " THEN pg_catalog.set_config('synchronous_commit', 'on', false) END") ||
			db_flush(&vc->pgc) < 0)
			conn_lost(f, vc, PQerrorMessage(vc->pgc.conn));
	}
}

static void
conn_down(struct fanout *f)
{
	(void) f;
}

static void
conn_fail(struct fanout *f, struct pgc *c, const char *why)
{
	conn_lost(f, conn_of(f, c), why);
}

/* vc is gone: its batch is answered unavailable; it reconnects with backoff */
static void
conn_lost(struct fanout *f, struct vote_conn *vc, const char *why)
{
	struct votes *vs = &f->votes;
	char		reason[300];

	bool		was_up = vc->state == VC_IDLE || vc->state == VC_BUSY || vc->state == VC_RETRY;

	snprintf(reason, sizeof(reason), "%s", why && *why ? why : "connection lost");
	reason[strcspn(reason, "\n")] = '\0';
	if (was_up)
		vs->n_conns_up--;
	db_close(&vc->pgc);
	if (vc->res)
		PQclear(vc->res);
	vc->res = NULL;
	/* one line when it goes, not one per attempt while Postgres is away */
	if (!f->stopping && (was_up || vc->backoff_ms == BACKOFF_MIN_MS))
		logmsg("votes: vote connection: %s; reconnecting in %d ms", reason, vc->backoff_ms);
	vc->state = VC_DOWN;
	vc->retry_at_us = now_us() + (int64_t) vc->backoff_ms * 1000;
	vc->backoff_ms = vc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : vc->backoff_ms * 2;
	refuse_batch(f, vc, "unavailable", "postgres went away; the vote may not be recorded");
	if (vs->n_conns_up == 0)
	{
		/* nothing can take the queue: refuse it now rather than hold it */
		while (vs->q_head)
		{
			struct vote *v = vs->q_head;

			vs->q_head = v->next;
			vs->q_len--;
			refuse(f, v, "unavailable", "postgres is away; the vote was not recorded");
		}
		vs->q_tail = NULL;
	}
	else
		schedule(f);
	arm_timer(f);
}

static void
conn_open(struct fanout *f, struct vote_conn *vc)
{
	if (f->stopping)
		return;
	vc->state = VC_CONNECTING;
	vc->sent_us = now_us();
	if (!db_open(f, &vc->pgc))
		return;					/* conn_fail() ran */
	arm_timer(f);
}

static void
arm_timer(struct fanout *f)
{
	int64_t		now = now_us(), due = 0;

	for (int c = 0; c < VOTE_CONNS; c++)
	{
		struct vote_conn *vc = &f->votes.conns[c];
		int64_t		d = 0;

		if (vc->state == VC_DOWN || vc->state == VC_RETRY)
			d = vc->retry_at_us;
		else if (vc->state == VC_BUSY)
			d = vc->sent_us + BATCH_WATCHDOG_US;
		else if (vc->state == VC_CONNECTING || vc->state == VC_SETUP)
			d = vc->sent_us + CONNECT_TIMEOUT_US;
		if (d && (!due || d < due))
			due = d;
	}
	if (due)
		timer_start(&f->votes.timer, due > now ? due - now : 0);
}

static void
timer_cb(struct fanout *f)
{
	int64_t		now = now_us();

	for (int c = 0; c < VOTE_CONNS; c++)
	{
		struct vote_conn *vc = &f->votes.conns[c];

		if (vc->state == VC_DOWN && vc->retry_at_us <= now)
			conn_open(f, vc);
		else if (vc->state == VC_RETRY && vc->retry_at_us <= now)
			(void) send_batch(f, vc);	/* else conn_lost() answered the batch */
		else if (vc->state == VC_BUSY && vc->sent_us + BATCH_WATCHDOG_US <= now)
			conn_lost(f, vc, "no answer to a batch for 30 s");
		else if ((vc->state == VC_CONNECTING || vc->state == VC_SETUP) &&
				 vc->sent_us + CONNECT_TIMEOUT_US <= now)
			conn_lost(f, vc, "connection timed out");
	}
	arm_timer(f);
}

void
votes_init(struct fanout *f)
{
	struct votes *vs = &f->votes;

	vs->inflight = calloc(INFLIGHT_BUCKETS, sizeof(*vs->inflight));
	if (!vs->inflight)
	{
		logmsg("out of memory");
		exit(1);
	}
	timer_init(f, &vs->timer, timer_cb);
	for (int c = 0; c < VOTE_CONNS; c++)
	{
		struct vote_conn *vc = &vs->conns[c];

		db_pgc_init(f, &vc->pgc, "vote connection");
		vc->pgc.on_ready = conn_ready;
		vc->pgc.on_readable = conn_readable;
		vc->pgc.on_down = conn_down;
		vc->pgc.on_fail = conn_fail;
		vc->backoff_ms = BACKOFF_MIN_MS;
		vc->state = VC_DOWN;
	}
}

void
votes_start(struct fanout *f)
{
	for (int c = 0; c < VOTE_CONNS; c++)
		conn_open(f, &f->votes.conns[c]);
}

/* at the stop: whatever is queued or in flight is answered (no one hears) */
void
votes_stop(struct fanout *f)
{
	struct votes *vs = &f->votes;

	for (int c = 0; c < VOTE_CONNS; c++)
	{
		struct vote_conn *vc = &vs->conns[c];

		db_close(&vc->pgc);
		if (vc->res)
			PQclear(vc->res);
		vc->res = NULL;
		refuse_batch(f, vc, "unavailable", "the daemon is stopping");
		vc->state = VC_DOWN;
	}
	while (vs->q_head)
	{
		struct vote *v = vs->q_head;

		vs->q_head = v->next;
		refuse(f, v, "unavailable", "the daemon is stopping");
	}
	vs->q_tail = NULL;
	vs->q_len = 0;
	vs->n_conns_up = 0;
	timer_stop(&vs->timer);
	for (int i = 0; vs->inflight && i < INFLIGHT_BUCKETS; i++)
		while (vs->inflight[i])
		{
			struct inflight *e = vs->inflight[i];

			vs->inflight[i] = e->next;
			free(e);
		}
	free(vs->inflight);
	vs->inflight = NULL;
}

/* the votes' part of /metrics */
size_t
votes_metrics(struct fanout *f, char *out, size_t cap)
{
	struct votes *vs = &f->votes;
	struct jbuf b = {out, 0, cap, false};
	uint64_t	cum = 0;

	jb_fmt(&b, "# HELP poll_fanout_votes_received_total Votes and retractions received.\n"
		   "# TYPE poll_fanout_votes_received_total counter\n"
		   "poll_fanout_votes_received_total %llu\n"
		   "# HELP poll_fanout_votes_acknowledged_total Votes answered voted, after their commit.\n"
		   "# TYPE poll_fanout_votes_acknowledged_total counter\n"
		   "poll_fanout_votes_acknowledged_total %llu\n"
		   "# HELP poll_fanout_votes_refused_total Votes answered with an error, by code.\n"
		   "# TYPE poll_fanout_votes_refused_total counter\n",
		   (unsigned long long) vs->received, (unsigned long long) vs->acknowledged);
	for (int i = 0; i < VOTE_CODES; i++)
		if (strcmp(vote_codes[i], "too_many_subscriptions") != 0)
			jb_fmt(&b, "poll_fanout_votes_refused_total{code=\"%s\"} %llu\n", vote_codes[i],
				   (unsigned long long) vs->refused[i]);
	jb_fmt(&b, "# HELP poll_fanout_votes_queued Votes waiting for a batch.\n"
		   "# TYPE poll_fanout_votes_queued gauge\npoll_fanout_votes_queued %d\n"
		   "# HELP poll_fanout_vote_connections Vote connections up.\n"
		   "# TYPE poll_fanout_vote_connections gauge\npoll_fanout_vote_connections %d\n",
		   vs->q_len, vs->n_conns_up);
	jb_str(&b, "# HELP poll_fanout_vote_batch_size Votes per committed batch.\n"
		   "# TYPE poll_fanout_vote_batch_size histogram\n");
	for (int i = 0; i < VOTE_SIZE_BUCKETS; i++)
	{
		cum += vs->size_buckets[i];
		jb_fmt(&b, "poll_fanout_vote_batch_size_bucket{le=\"%d\"} %llu\n", size_bounds[i],
			   (unsigned long long) cum);
	}
	cum += vs->size_buckets[VOTE_SIZE_BUCKETS];
	jb_fmt(&b, "poll_fanout_vote_batch_size_bucket{le=\"+Inf\"} %llu\n"
		   "poll_fanout_vote_batch_size_sum %llu\npoll_fanout_vote_batch_size_count %llu\n",
		   (unsigned long long) cum, (unsigned long long) vs->size_sum,
		   (unsigned long long) vs->batches);
	jb_str(&b, "# HELP poll_fanout_vote_ack_seconds From a vote's arrival to its voted answer.\n"
		   "# TYPE poll_fanout_vote_ack_seconds histogram\n");
	cum = 0;
	for (int i = 0; i < VOTE_LAT_BUCKETS; i++)
	{
		cum += vs->lat_buckets[i];
		jb_fmt(&b, "poll_fanout_vote_ack_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i],
			   (unsigned long long) cum);
	}
	cum += vs->lat_buckets[VOTE_LAT_BUCKETS];
	jb_fmt(&b, "poll_fanout_vote_ack_seconds_bucket{le=\"+Inf\"} %llu\n"
		   "poll_fanout_vote_ack_seconds_sum %.6f\npoll_fanout_vote_ack_seconds_count %llu\n",
		   (unsigned long long) cum, vs->lat_sum, (unsigned long long) cum);
	return b.overflow ? 0 : b.len;
}

/*
 * webhooks.c — --webhooks: poll events POSTed to the receivers registered
 * with poll.add_webhook, signed, at least once, surviving restarts.
 *
 * The database is the truth.  poll._webhook_due(poll_ids) says what is to
 * deliver: the deliveries begun and not acknowledged (resent as they were:
 * same body, same Poll-Delivery) and the events not begun, computed from
 * each poll's tally row against what was delivered.  It runs for the polls
 * whose tally rows the stream brings (every poll: stream.c tells us through
 * f->on_tally_row, whether anyone subscribes or not), and for every poll
 * when this daemon starts delivering and whenever the stream (re)starts, so
 * that nothing committed while we or Postgres were away is skipped.
 *
 * One delivery per webhook, poll and event (struct job): waiting (a tally
 * at most every TALLY_EVERY_US), begun (poll._webhook_begin records it
 * pending with its body, before the first attempt), in flight (libcurl's
 * multi interface on our libev loop: its sockets and its timer are
 * watchers; nothing here blocks), then acknowledged (2xx within 10 s:
 * poll._webhook_result 'delivered') or retried with backoff (1 s doubling
 * to 10 min) for 24 h, then 'failed'.  A newer state replaces a waiting
 * tally or closed (the latest, never a queue); one in flight finishes first.
 * A slow receiver holds only its own transfers.
 *
 * Several daemons: the one holding a session advisory lock on its own
 * connection delivers; the others try every second, and take over within
 * a second or two of its connection closing (a stop, a crash, kill -9).
 * Every query runs on that connection, non-blocking, one at a time.
 *
 * Layer 5 (beside sessions.c): calls messages.c (rendering), db.c, loop.c
 * and the pure parsers; stream.c calls up through f->on_tally_row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fanout.h"
#include "webhooks.h"

#define LOCK_KEY			"7020597474815823213"	/* pg_try_advisory_lock: "poll-webhooks" */
#define TICK_US				(1000 * 1000)
#define TALLY_EVERY_US		(INT64_C(5) * 1000 * 1000)
#define TIMEOUT_MS			10000
#define BACKOFF_MIN_US		(INT64_C(1000) * 1000)
#define BACKOFF_MAX_US		(INT64_C(600) * 1000 * 1000)
#define GIVE_UP_US			(INT64_C(24) * 3600 * 1000 * 1000)
#define JOB_BUCKETS			4096
#define MAX_DIRTY			4096	/* polls waiting for a due query; beyond: all */
#define MAX_BODY_BYTES		(256 * 1024)
#define RECHECK_US			(50 * 1000)
#define HOLD_AHEAD_US		(150 * 1000)	/* a held poll is asked for this long before its tally goes */
#define HOLD_TICK_US		(50 * 1000)
#define POLL_BUCKETS_WH		4096

enum wh_state { WH_DOWN, WH_CONNECTING, WH_FOLLOWER, WH_LEADER };
enum job_state { JOB_IDLE, JOB_WAIT, JOB_BEGIN, JOB_FLIGHT };
enum cmd_kind { CMD_LOCK, CMD_DUE, CMD_BEGIN, CMD_RESULT };

static const char *const event_names[] = {"opened", "closed", "tally"};

struct job {
	struct job	   *next_in_bucket;
	struct webhooks *w;
	int64_t			webhook_id, poll_id;
	int				event;			/* index in event_names */
	enum job_state	state;
	char		   *url, *secret;
	/* the delivery: its version, body and tally's vote time */
	int64_t			version;
	char		   *body;
	size_t			body_len;
	char		   *vote_at;		/* NULL or timestamptz text */
	bool			persisted;		/* poll._webhook_begin recorded this version */
	int				attempts;
	int64_t			first_us;		/* first attempt (the 24 h) */
	int64_t			created_us;		/* the event seen (latency) */
	int64_t			last_start_us;	/* tally: the last delivery's start (every 5 s) */
	int64_t			due_us;			/* when the timer fires */
	/* a newer state that came while this one was begun or in flight */
	bool			have_next;
	int64_t			next_version;
	char		   *next_body;
	size_t			next_body_len;
	char		   *next_vote_at;
	int64_t			next_wait_us;
	ev_timer		timer;
	CURL		   *easy;
	struct curl_slist *headers;
};

struct cmd {
	struct cmd	   *next;
	enum cmd_kind	kind;
	struct job	   *job;
	int64_t			version;
	long			status;
	const char	   *outcome;
	int64_t		   *ids;			/* CMD_DUE: NULL = every poll */
	int				n_ids;
	int				n_fresh;		/* CMD_DUE: ids[0..n_fresh) get a second look */
};

/*
 * What the stream said of a poll: its status (a change may be an opened or
 * a closed: asked at once), and until when a mere change of counts waits
 * (its tallies are all waiting for their 5 s window: the poll is asked for
 * again just before the first of them goes, with its latest state, instead
 * of once per fold).
 */
struct wpoll {
	struct wpoll   *next;
	int64_t			id;
	int				status;			/* -1: not known yet */
	int64_t			hold_until_us;
	uint64_t		hold_seq;		/* the due query that set it */
	bool			deferred;		/* on the deferred list */
};

struct wh_sock {
	ev_io			io;
	struct webhooks *w;
	curl_socket_t	fd;
};

struct webhooks {
	struct fanout  *f;
	enum wh_state	state;
	struct pgc		conn;
	int64_t			retry_at_us;
	int				backoff_ms;
	int64_t			connect_started_us;
	struct timer	tick;
	bool			stream_was_up;
	struct cmd	   *q_head, *q_tail;
	bool			busy;			/* a command is on the connection */
	struct cmd	   *running;
	bool			lock_got;		/* the result of CMD_LOCK */
	int64_t		   *dirty;
	int				n_dirty;
	bool			dirty_all;
	int64_t		   *recheck;		/* polls asked once, to ask again (see command_result) */
	int				n_recheck;
	int64_t		   *again;			/* ... and now due for that second look */
	int				n_again;
	struct timer	recheck_timer;
	struct wpoll   *wpolls[POLL_BUCKETS_WH];
	struct wpoll  **deferred_polls;	/* polls held with a change to ask for */
	int				n_deferred, cap_deferred;
	struct timer	hold_timer;
	uint64_t		due_seq;
	int64_t			pruned_us;
	bool			due_queued;
	CURLM		   *multi;
	ev_timer		curl_timer;
	struct job	   *jobs[JOB_BUCKETS];
	int				n_pending;		/* jobs not idle */
	/* metrics */
	uint64_t		deliveries, attempts_failed, failed;
	uint64_t		lat_count, lat_buckets[13];
	double			lat_sum;
};

static const double lat_bounds[12] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static void tick_cb(struct fanout *f);
static void kick(struct webhooks *w);
static void conn_fail(struct fanout *f, const char *what);
static void job_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void job_send(struct job *j);

/* ---- the queue of commands on our connection ---- */

static void
enqueue(struct webhooks *w, struct cmd *c)
{
	c->next = NULL;
	if (w->q_tail)
		w->q_tail->next = c;
	else
		w->q_head = c;
	w->q_tail = c;
	kick(w);
}

static struct cmd *
cmd_new(enum cmd_kind kind, struct job *j)
{
	struct cmd *c = calloc(1, sizeof(*c));

	if (c)
	{
		c->kind = kind;
		c->job = j;
	}
	return c;
}

static void
cmd_free(struct cmd *c)
{
	if (c)
		free(c->ids);
	free(c);
}

/* the polls the stream changed: one due query for all of them, when the connection is free */
static void
queue_due(struct webhooks *w)
{
	struct cmd *c;

	if (w->state != WH_LEADER || w->due_queued ||
		(!w->dirty_all && w->n_dirty == 0 && w->n_again == 0))
		return;
	c = cmd_new(CMD_DUE, NULL);
	if (!c)
		return;
	if (!w->dirty_all)
	{
		c->ids = malloc(sizeof(int64_t) * (size_t) (w->n_dirty + w->n_again + 1));
		if (!c->ids)
		{
			cmd_free(c);
			return;
		}
		if (w->n_dirty)
			memcpy(c->ids, w->dirty, sizeof(int64_t) * (size_t) w->n_dirty);
		if (w->n_again)
			memcpy(c->ids + w->n_dirty, w->again, sizeof(int64_t) * (size_t) w->n_again);
		c->n_fresh = w->n_dirty;
		c->n_ids = w->n_dirty + w->n_again;
	}
	w->n_dirty = w->n_again = 0;
	w->dirty_all = false;
	w->due_queued = true;
	enqueue(w, c);
}

/* the second look: the polls of the due queries of RECHECK_US ago, once more */
static void
recheck_cb(struct fanout *f)
{
	struct webhooks *w = f->wh;

	if (w->state != WH_LEADER || w->n_recheck == 0)
		return;
	if (w->n_again > 0)
	{
		timer_start(&w->recheck_timer, RECHECK_US);	/* the last ones not asked yet */
		return;
	}
	if (!w->again && !(w->again = malloc(sizeof(int64_t) * MAX_DIRTY)))
		w->dirty_all = true;
	else
	{
		memcpy(w->again, w->recheck, sizeof(int64_t) * (size_t) w->n_recheck);
		w->n_again = w->n_recheck;
	}
	w->n_recheck = 0;
	kick(w);
}

static const char *const due_sql =
"SELECT webhook_id, url, secret, poll_id, event, version, body, attempts, age, wait, vote_at,"
" title, status, ballots, votes, labels FROM poll._webhook_due($1::pg_catalog.int8[])";
static const char *const begin_sql =
"SELECT poll._webhook_begin($1::pg_catalog.int8, $2::pg_catalog.int8, $3::pg_catalog.text,"
" $4::pg_catalog.int8, $5::pg_catalog.text, $6::pg_catalog.timestamptz)";
static const char *const result_sql =
"SELECT poll._webhook_result($1::pg_catalog.int8, $2::pg_catalog.int8, $3::pg_catalog.text,"
" $4::pg_catalog.int8, $5::pg_catalog.int4, $6::pg_catalog.text)";
static const char *const lock_sql = "SELECT pg_catalog.pg_try_advisory_lock(" LOCK_KEY ")";

/* sends the next command when the connection is idle */
static void
kick(struct webhooks *w)
{
	struct cmd *c;
	char		a[24], b[24], d[24], e[24];
	const char *params[6];
	char	   *ids = NULL;
	const char *sql;
	int			n = 0;

	if (w->busy || w->state < WH_FOLLOWER)
		return;
	if (!w->q_head)
		queue_due(w);
	if (!(c = w->q_head))
		return;
	w->q_head = c->next;
	if (!w->q_head)
		w->q_tail = NULL;
	switch (c->kind)
	{
		case CMD_LOCK:
			sql = lock_sql;
			break;
		case CMD_DUE:
			sql = due_sql;
			n = 1;
			params[0] = NULL;
			w->due_queued = false;
			if (c->ids)
			{
				size_t		cap = (size_t) c->n_ids * 21 + 3, len = 0;

				ids = malloc(cap);
				if (!ids)
					break;
				ids[len++] = '{';
				for (int i = 0; i < c->n_ids; i++)
					len += (size_t) snprintf(ids + len, cap - len, "%s%lld", i ? "," : "",
											 (long long) c->ids[i]);
				ids[len++] = '}';
				ids[len] = '\0';
				params[0] = ids;
			}
			break;
		case CMD_BEGIN:
			sql = begin_sql;
			n = 6;
			snprintf(a, sizeof(a), "%lld", (long long) c->job->webhook_id);
			snprintf(b, sizeof(b), "%lld", (long long) c->job->poll_id);
			snprintf(d, sizeof(d), "%lld", (long long) c->job->version);
			params[0] = a;
			params[1] = b;
			params[2] = event_names[c->job->event];
			params[3] = d;
			params[4] = c->job->body;
			params[5] = c->job->vote_at;
			c->version = c->job->version;
			break;
		case CMD_RESULT:
		default:
			sql = result_sql;
			n = 6;
			snprintf(a, sizeof(a), "%lld", (long long) c->job->webhook_id);
			snprintf(b, sizeof(b), "%lld", (long long) c->job->poll_id);
			snprintf(d, sizeof(d), "%lld", (long long) c->version);
			snprintf(e, sizeof(e), "%ld", c->status);
			params[0] = a;
			params[1] = b;
			params[2] = event_names[c->job->event];
			params[3] = d;
			params[4] = e;
			params[5] = c->outcome;
			break;
	}
	if (c->kind == CMD_DUE && c->ids && !ids)
	{
		cmd_free(c);
		w->dirty_all = true;	/* out of memory: ask for all, later */
		return;
	}
	if (!PQsendQueryParams(w->conn.conn, sql, n, NULL, params, NULL, NULL, 0) ||
		db_flush(&w->conn) < 0)
	{
		free(ids);
		cmd_free(c);
		conn_fail(w->f, "webhooks query");
		return;
	}
	free(ids);
	w->running = c;
	w->busy = true;
}

/* ---- jobs ---- */

static unsigned
job_bucket(int64_t webhook_id, int64_t poll_id, int event)
{
	uint64_t	h = (uint64_t) webhook_id * 11400714819323198485ull ^
		(uint64_t) poll_id * 14029467366897019727ull ^ (uint64_t) event;

	return (unsigned) (h >> 40) % JOB_BUCKETS;
}

static struct job *
job_find(struct webhooks *w, int64_t webhook_id, int64_t poll_id, int event)
{
	for (struct job *j = w->jobs[job_bucket(webhook_id, poll_id, event)]; j; j = j->next_in_bucket)
		if (j->webhook_id == webhook_id && j->poll_id == poll_id && j->event == event)
			return j;
	return NULL;
}

static struct job *
job_new(struct webhooks *w, int64_t webhook_id, int64_t poll_id, int event,
		const char *url, const char *secret)
{
	struct job *j = calloc(1, sizeof(*j));
	unsigned	b = job_bucket(webhook_id, poll_id, event);

	if (!j)
		return NULL;
	j->w = w;
	j->webhook_id = webhook_id;
	j->poll_id = poll_id;
	j->event = event;
	j->url = strdup(url);
	j->secret = strdup(secret);
	if (!j->url || !j->secret)
	{
		free(j->url);
		free(j->secret);
		free(j);
		return NULL;
	}
	ev_init(&j->timer, job_timer_cb);
	j->next_in_bucket = w->jobs[b];
	w->jobs[b] = j;
	return j;
}

static void job_free(struct job *j);

static void
job_unlink_free(struct webhooks *w, struct job *j)
{
	for (struct job **pp = &w->jobs[job_bucket(j->webhook_id, j->poll_id, j->event)]; *pp;
		 pp = &(*pp)->next_in_bucket)
		if (*pp == j)
		{
			*pp = j->next_in_bucket;
			break;
		}
	job_free(j);
}

static void
job_abort_transfer(struct job *j)
{
	if (j->easy)
	{
		curl_multi_remove_handle(j->w->multi, j->easy);
		curl_easy_cleanup(j->easy);
		j->easy = NULL;
	}
	curl_slist_free_all(j->headers);
	j->headers = NULL;
}

static void
job_free(struct job *j)
{
	ev_timer_stop(j->w->f->loop, &j->timer);
	job_abort_transfer(j);
	free(j->url);
	free(j->secret);
	free(j->body);
	free(j->vote_at);
	free(j->next_body);
	free(j->next_vote_at);
	free(j);
}

static void
job_set_state(struct job *j, enum job_state s)
{
	if ((j->state == JOB_IDLE) != (s == JOB_IDLE))
		j->w->n_pending += s == JOB_IDLE ? -1 : 1;
	j->state = s;
}

static void
job_at(struct job *j, int64_t delay_us)
{
	struct ev_loop *loop = j->w->f->loop;

	ev_timer_stop(loop, &j->timer);
	j->due_us = now_us() + (delay_us > 0 ? delay_us : 0);
	ev_now_update(loop);
	ev_timer_set(&j->timer, delay_us > 0 ? (ev_tstamp) delay_us / 1e6 : 0., 0.);
	ev_timer_start(loop, &j->timer);
}

/* the newer state that came while this one was begun or in flight becomes the delivery */
static void
job_take_next(struct job *j)
{
	j->have_next = false;
	free(j->body);
	j->version = j->next_version;
	j->body = j->next_body;
	j->body_len = j->next_body_len;
	free(j->vote_at);
	j->vote_at = j->next_vote_at;
	j->next_body = j->next_vote_at = NULL;
	j->persisted = false;
}

/* the delivery is over (acknowledged, given up, or its webhook gone): a newer state waits its turn */
static void
job_finish(struct job *j)
{
	ev_timer_stop(j->w->f->loop, &j->timer);
	free(j->body);
	j->body = NULL;
	job_set_state(j, JOB_IDLE);
	if (j->have_next)
	{
		int64_t		now = now_us();
		int64_t		due = j->next_wait_us;

		job_take_next(j);
		j->attempts = 0;
		j->first_us = 0;
		j->created_us = now;
		if (j->event == 2 && j->last_start_us + TALLY_EVERY_US - now > due)
			due = j->last_start_us + TALLY_EVERY_US - now;
		job_set_state(j, JOB_WAIT);
		job_at(j, due);
	}
}

static void
job_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct job *j = lws_container_of(t, struct job, timer);
	struct webhooks *w = j->w;
	struct cmd *c;

	(void) loop;
	(void) revents;
	if (j->state != JOB_WAIT || w->state != WH_LEADER)
		return;
	if (j->persisted)
	{
		job_send(j);
		return;
	}
	c = cmd_new(CMD_BEGIN, j);
	if (!c)
	{
		job_at(j, BACKOFF_MIN_US);
		return;
	}
	job_set_state(j, JOB_BEGIN);
	enqueue(w, c);
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

/* the attempt: POST with the SPEC's headers, signed now */
static void
job_send(struct job *j)
{
	struct webhooks *w = j->w;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char		hex[2 * EVP_MAX_MD_SIZE + 1];
	char		h[3][160];
	long long	t = (long long) time(NULL);
	char		prefix[32];
	size_t		plen = (size_t) snprintf(prefix, sizeof(prefix), "%lld.", t);
	unsigned char *msg = malloc(plen + j->body_len);
	struct curl_slist *l = NULL;

	if (!msg)
	{
		job_at(j, BACKOFF_MIN_US);
		return;
	}
	memcpy(msg, prefix, plen);
	memcpy(msg + plen, j->body, j->body_len);
	if (!HMAC(EVP_sha256(), j->secret, (int) strlen(j->secret), msg, plen + j->body_len, mac, &mac_len))
		mac_len = 0;
	free(msg);
	for (unsigned i = 0; i < mac_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	hex[2 * mac_len] = '\0';
	snprintf(h[0], sizeof(h[0]), "Poll-Webhook-Id: %lld", (long long) j->webhook_id);
	snprintf(h[1], sizeof(h[1]), "Poll-Delivery: %lld-%lld-%lld", (long long) j->webhook_id,
			 (long long) j->poll_id, (long long) j->version);
	snprintf(h[2], sizeof(h[2]), "Poll-Signature: t=%lld,v1=%s", t, hex);
	job_abort_transfer(j);
	l = curl_slist_append(l, "Content-Type: application/json");
	if (l)
		l = curl_slist_append(l, "Expect:");
	for (int i = 0; i < 3 && l; i++)
		l = curl_slist_append(l, h[i]);
	j->headers = l;
	j->easy = curl_easy_init();
	if (!l || !j->easy ||
		curl_easy_setopt(j->easy, CURLOPT_URL, j->url) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) j->body_len) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long) TIMEOUT_MS) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "poll-fanout") != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
		curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j) != CURLE_OK ||
		curl_multi_add_handle(w->multi, j->easy) != CURLM_OK)
	{
		logmsg("webhooks: cannot start a delivery to webhook %lld", (long long) j->webhook_id);
		job_abort_transfer(j);
		job_at(j, BACKOFF_MIN_US);
		return;
	}
	if (j->first_us == 0)
		j->first_us = now_us();
	if (j->event == 2)
		j->last_start_us = now_us();
	job_set_state(j, JOB_FLIGHT);
}

static void
observe_latency(struct webhooks *w, double s)
{
	int			i = 0;

	while (i < 12 && s > lat_bounds[i])
		i++;
	w->lat_buckets[i]++;
	w->lat_count++;
	w->lat_sum += s;
}

/* a transfer ended: acknowledged, or retried with backoff, or given up after 24 h */
static void
job_done(struct job *j, CURLcode rc, long status)
{
	struct webhooks *w = j->w;
	struct cmd *c = cmd_new(CMD_RESULT, j);
	int64_t		now = now_us();

	job_abort_transfer(j);
	if (rc != CURLE_OK)
		status = 0;
	j->attempts++;
	if (c)
	{
		c->version = j->version;
		c->status = status;
	}
	if (status >= 200 && status < 300)
	{
		w->deliveries++;
		observe_latency(w, (double) (now - j->created_us) / 1e6);
		if (c)
			c->outcome = "delivered";
		job_finish(j);
	}
	else
	{
		w->attempts_failed++;
		if (w->f->verbose || j->attempts == 1)
		{
			char		why[128];

			if (rc != CURLE_OK)
				snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
			else
				snprintf(why, sizeof(why), "HTTP %ld", status);
			logmsg("webhooks: delivery %lld-%lld-%lld (%s) to webhook %lld: %s, attempt %d",
				   (long long) j->webhook_id, (long long) j->poll_id, (long long) j->version,
				   event_names[j->event], (long long) j->webhook_id, why, j->attempts);
		}
		if (now - j->first_us >= GIVE_UP_US)
		{
			w->failed++;
			logmsg("webhooks: delivery %lld-%lld-%lld failed for 24 h: given up",
				   (long long) j->webhook_id, (long long) j->poll_id, (long long) j->version);
			if (c)
				c->outcome = "failed";
			job_finish(j);
		}
		else
		{
			int64_t		delay = BACKOFF_MIN_US;

			for (int i = 1; i < j->attempts && delay < BACKOFF_MAX_US; i++)
				delay *= 2;
			if (delay > BACKOFF_MAX_US)
				delay = BACKOFF_MAX_US;
			if (c)
				c->outcome = "retry";
			if (j->have_next && j->event != 0)
			{
				/* the latest state replaces the stale one, and keeps its backoff */
				job_take_next(j);
			}
			job_set_state(j, JOB_WAIT);
			job_at(j, delay);
		}
	}
	if (c)
		enqueue(w, c);
}

static void
check_done(struct webhooks *w)
{
	CURLMsg    *m;
	int			left;

	while ((m = curl_multi_info_read(w->multi, &left)))
	{
		struct job *j = NULL;
		long		status = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &j);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (j)
			job_done(j, m->data.result, status);
	}
}

/* ---- libcurl on our loop ---- */

static void
sock_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct wh_sock *s = lws_container_of(io, struct wh_sock, io);
	struct webhooks *w = s->w;
	int			running;
	int			action = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) |
		((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	(void) loop;
	curl_multi_socket_action(w->multi, s->fd, action, &running);
	check_done(w);
}

static int
sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct webhooks *w = userp;
	struct wh_sock *s = socketp;
	int			events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);

	(void) e;
	if (what == CURL_POLL_REMOVE)
	{
		if (s)
		{
			ev_io_stop(w->f->loop, &s->io);
			free(s);
			curl_multi_assign(w->multi, fd, NULL);
		}
		return 0;
	}
	if (!s)
	{
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->w = w;
		s->fd = fd;
		ev_io_init(&s->io, sock_io, fd, events);
		curl_multi_assign(w->multi, fd, s);
	}
	else
	{
		ev_io_stop(w->f->loop, &s->io);
		ev_io_set(&s->io, fd, events);
	}
	ev_io_start(w->f->loop, &s->io);
	return 0;
}

static void
curl_timer_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct webhooks *w = lws_container_of(t, struct webhooks, curl_timer);
	int			running;

	(void) loop;
	(void) revents;
	curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(w);
}

static int
curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct webhooks *w = userp;

	(void) multi;
	ev_timer_stop(w->f->loop, &w->curl_timer);
	if (timeout_ms >= 0)
	{
		ev_timer_set(&w->curl_timer, (ev_tstamp) timeout_ms / 1000., 0.);
		ev_timer_start(w->f->loop, &w->curl_timer);
	}
	return 0;
}

/* ---- what the due query says ---- */

static int
event_index(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, event_names[i]) == 0)
			return i;
	return -1;
}

/* the body of an event not begun: the message of the poll's state, plus event and webhook */
static char *
render_body(struct fanout *f, PGresult *res, int r, int64_t webhook_id, int64_t poll_id,
			int64_t version, int event, size_t *len)
{
	struct poll p;
	struct tally_row row;
	char	   *out = (char *) f->scratch;
	size_t		n;
	char	   *body = NULL;
	int			st;

	memset(&p, 0, sizeof(p));
	memset(&row, 0, sizeof(row));
	p.id = poll_id;
	p.version = version;
	p.title = PQgetvalue(res, r, 11);
	st = parse_status(PQgetvalue(res, r, 12), (size_t) PQgetlength(res, r, 12));
	if (st < 0 ||
		parse_int64(PQgetvalue(res, r, 13), (size_t) PQgetlength(res, r, 13), &p.ballots) < 0 ||
		parse_votes(PQgetvalue(res, r, 14), (size_t) PQgetlength(res, r, 14), p.votes,
					MAX_OPTIONS, &p.n_votes) < 0 ||
		parse_text_array(PQgetvalue(res, r, 15), MAX_OPTIONS, &p.labels, &p.n_options) < 0)
		return NULL;
	p.status = (enum poll_status) st;
	n = render_message(&p, event == 2 ? MSG_TALLY : MSG_SNAPSHOT, out, SCRATCH_SIZE - 128);
	if (n > 1 && out[n - 1] == '}')
	{
		n--;
		n += (size_t) snprintf(out + n, 128, ",\"event\":\"%s\",\"webhook\":%lld}",
							   event_names[event], (long long) webhook_id);
		body = malloc(n + 1);
		if (body)
		{
			memcpy(body, out, n);
			body[n] = '\0';
			*len = n;
		}
	}
	for (int i = 0; i < p.n_options; i++)
		free(p.labels[i]);
	free(p.labels);
	return body;
}

static unsigned
wpoll_bucket(int64_t id)
{
	return (unsigned) (((uint64_t) id * 11400714819323198485ull) >> 40) % POLL_BUCKETS_WH;
}

static struct wpoll *
wpoll_find(struct webhooks *w, int64_t id)
{
	for (struct wpoll *p = w->wpolls[wpoll_bucket(id)]; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* only held polls have one (hold_poll); the others are asked about at every change */
static struct wpoll *
wpoll_get(struct webhooks *w, int64_t id)
{
	unsigned	b = wpoll_bucket(id);
	struct wpoll *p = wpoll_find(w, id);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->id = id;
	p->status = STATUS_OPEN;	/* a tally waits: the poll was open when it was asked about */
	p->next = w->wpolls[b];
	w->wpolls[b] = p;
	return p;
}

/* a tally waits for its window: counts-only changes of its poll wait until just before it goes */
static void
hold_poll(struct webhooks *w, struct job *j)
{
	struct wpoll *p = wpoll_get(w, j->poll_id);
	int64_t		until = j->due_us - HOLD_AHEAD_US;

	if (!p || until <= now_us())
		return;
	if (p->hold_seq != w->due_seq || until < p->hold_until_us)
		p->hold_until_us = until;
	p->hold_seq = w->due_seq;
}

static void
due_row(struct webhooks *w, PGresult *res, int r)
{
	int64_t		webhook_id, poll_id, version, attempts;
	int			event = event_index(PQgetvalue(res, r, 4));
	bool		begun = !PQgetisnull(res, r, 6);
	const char *vote_at = PQgetisnull(res, r, 10) ? NULL : PQgetvalue(res, r, 10);
	double		age = atof(PQgetvalue(res, r, 8)), wait = atof(PQgetvalue(res, r, 9));
	struct job *j;
	char	   *body;
	size_t		len = 0;
	int64_t		now = now_us();

	if (event < 0 ||
		parse_int64(PQgetvalue(res, r, 0), (size_t) PQgetlength(res, r, 0), &webhook_id) < 0 ||
		parse_int64(PQgetvalue(res, r, 3), (size_t) PQgetlength(res, r, 3), &poll_id) < 0 ||
		parse_int64(PQgetvalue(res, r, 5), (size_t) PQgetlength(res, r, 5), &version) < 0 ||
		parse_int64(PQgetvalue(res, r, 7), (size_t) PQgetlength(res, r, 7), &attempts) < 0)
		return;
	j = job_find(w, webhook_id, poll_id, event);
	if (j && (j->version >= version || (event == 0 && j->state != JOB_IDLE)))
		return;					/* known, or newer here; an opened is never replaced */
	if (j && j->state == JOB_IDLE && event == 0)
		return;					/* delivered once */
	if (begun)
	{
		len = (size_t) PQgetlength(res, r, 6);
		body = len <= MAX_BODY_BYTES ? malloc(len + 1) : NULL;
		if (body)
			memcpy(body, PQgetvalue(res, r, 6), len + 1);
	}
	else
		body = render_body(w->f, res, r, webhook_id, poll_id, version, event, &len);
	if (!body)
	{
		logmsg("webhooks: delivery %lld-%lld-%lld not understood, skipped",
			   (long long) webhook_id, (long long) poll_id, (long long) version);
		return;
	}
	if (event == 1)
	{
		/* closed tells the final counts: a tally still waiting for its window goes */
		struct job *t = job_find(w, webhook_id, poll_id, 2);

		if (t && t->state == JOB_WAIT && !t->persisted)
		{
			t->have_next = false;
			job_finish(t);
		}
	}
	if (!j && !(j = job_new(w, webhook_id, poll_id, event, PQgetvalue(res, r, 1),
							PQgetvalue(res, r, 2))))
	{
		free(body);
		return;
	}
	if (j->state == JOB_BEGIN || j->state == JOB_FLIGHT)
	{
		/* after this one: the latest only */
		free(j->next_body);
		free(j->next_vote_at);
		j->have_next = true;
		j->next_version = version;
		j->next_body = body;
		j->next_body_len = len;
		j->next_vote_at = vote_at ? strdup(vote_at) : NULL;
		j->next_wait_us = (int64_t) (wait * 1e6);
		return;
	}
	/* idle, or waiting (not in flight): this state replaces the one it had */
	if (j->state == JOB_WAIT && event == 2)
		hold_poll(w, j);
	free(j->body);
	j->body = body;
	j->body_len = len;
	free(j->vote_at);
	j->vote_at = vote_at ? strdup(vote_at) : NULL;
	j->version = version;
	j->persisted = begun;
	if (j->state == JOB_IDLE)
	{
		int64_t		due = (int64_t) (wait * 1e6);

		j->attempts = (int) attempts;
		j->first_us = begun ? now - (int64_t) (age * 1e6) : 0;
		j->created_us = now;
		if (event == 2 && j->last_start_us && j->last_start_us + TALLY_EVERY_US - now > due)
			due = j->last_start_us + TALLY_EVERY_US - now;
		job_set_state(j, JOB_WAIT);
		job_at(j, due);
		if (event == 2)
			hold_poll(w, j);
	}
}

/* ---- our connection ---- */

static void
drop_all(struct webhooks *w)
{
	struct cmd *c;

	for (int b = 0; b < JOB_BUCKETS; b++)
	{
		struct job *j = w->jobs[b];

		while (j)
		{
			struct job *next = j->next_in_bucket;

			job_free(j);
			j = next;
		}
		w->jobs[b] = NULL;
	}
	w->n_pending = 0;
	for (int b = 0; b < POLL_BUCKETS_WH; b++)
	{
		struct wpoll *p = w->wpolls[b];

		while (p)
		{
			struct wpoll *next = p->next;

			free(p);
			p = next;
		}
		w->wpolls[b] = NULL;
	}
	w->n_deferred = 0;
	while ((c = w->q_head))
	{
		w->q_head = c->next;
		cmd_free(c);
	}
	w->q_tail = NULL;
	cmd_free(w->running);
	w->running = NULL;
	w->busy = false;
	w->due_queued = false;
	w->n_dirty = 0;
	w->dirty_all = false;
	w->n_recheck = w->n_again = 0;
}

/*
 * The connection failed: every delivery stops here (another daemon may
 * take the lock now), and starts again from the database once we are back.
 */
static void
wh_down(struct fanout *f, const char *what, const char *why)
{
	struct webhooks *w = f->wh;
	char		reason[256];

	snprintf(reason, sizeof(reason), "%s", why && *why ? why : "connection lost");
	for (char *c = reason; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = c[1] ? ' ' : '\0';
	if (w->state == WH_LEADER || f->verbose)
		logmsg("webhooks: %s: %s; reconnecting in %d ms", what, reason, w->backoff_ms);
	db_close(&w->conn);
	drop_all(w);
	w->state = WH_DOWN;
	w->retry_at_us = now_us() + (int64_t) w->backoff_ms * 1000;
	w->backoff_ms = w->backoff_ms * 2 > 10000 ? 10000 : w->backoff_ms * 2;
}

/* a failure found here: the connection is still open, its message says why */
static void
conn_fail(struct fanout *f, const char *what)
{
	PGconn	   *conn = f->wh->conn.conn;

	wh_down(f, what, conn ? PQerrorMessage(conn) : NULL);
}

/* db.c's on_fail: it closed the connection already */
static void
conn_failed(struct fanout *f, struct pgc *c, const char *why)
{
	wh_down(f, c->what, why);
}

static void
conn_ready(struct fanout *f)
{
	struct webhooks *w = f->wh;
	struct cmd *c = cmd_new(CMD_LOCK, NULL);

	w->state = WH_FOLLOWER;
	w->backoff_ms = 250;
	if (c)
		enqueue(w, c);
}

static void
command_result(struct webhooks *w, struct cmd *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK)
	{
		logmsg("webhooks: %s failed: %s", c->kind == CMD_DUE ? "poll._webhook_due" :
			   c->kind == CMD_BEGIN ? "poll._webhook_begin" :
			   c->kind == CMD_RESULT ? "poll._webhook_result" : "the lock", PQresultErrorMessage(res));
		if (c->kind == CMD_BEGIN && c->job->state == JOB_BEGIN)
		{
			job_set_state(c->job, JOB_WAIT);
			job_at(c->job, BACKOFF_MIN_US);
		}
		else if (c->kind == CMD_DUE)
			w->dirty_all = true;	/* asked again at the next tick */
		return;
	}
	switch (c->kind)
	{
		case CMD_LOCK:
			if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
			{
				logmsg("webhooks: this daemon delivers (it holds the lock)");
				w->state = WH_LEADER;
				w->dirty_all = true;	/* everything not delivered, from the database */
				w->stream_was_up = w->f->stream.state == REPL_STREAMING;
			}
			break;
		case CMD_DUE:
			w->due_seq++;
			for (int r = 0; r < PQntuples(res); r++)
				due_row(w, res, r);

			/*
			 * The walsender may send a commit before the committing
			 * backend's snapshot shows it to other sessions (the commit
			 * record is flushed before the proc array lets go): these
			 * polls get a second look a moment later.
			 */
			if (c->n_fresh > 0)
			{
				if (!w->recheck)
					w->recheck = malloc(sizeof(int64_t) * MAX_DIRTY);
				for (int i = 0; w->recheck && i < c->n_fresh; i++)
				{
					if (w->n_recheck == MAX_DIRTY)
					{
						w->dirty_all = true;
						break;
					}
					w->recheck[w->n_recheck++] = c->ids[i];
				}
				if (!ev_is_active(&w->recheck_timer.w))
					timer_start(&w->recheck_timer, RECHECK_US);
			}
			break;
		case CMD_BEGIN:
			if (c->job->state != JOB_BEGIN)
				break;
			if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0 &&
				c->job->version == c->version)
			{
				c->job->persisted = true;
				job_send(c->job);
			}
			else
			{
				c->job->have_next = false;	/* the webhook is gone */
				job_finish(c->job);
			}
			break;
		case CMD_RESULT:
			if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && strcmp(c->outcome, "retry") != 0 &&
				c->job->state == JOB_IDLE && !c->job->have_next)
			{
				/*
				 * Recorded: the database knows it from now on (no due query
				 * sent before this one is still to come), so the job goes.
				 */
				job_unlink_free(w, c->job);
				break;
			}
			if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
			{
				/* the webhook is gone (or removed and added again): stop retrying */
				if (c->job->state == JOB_WAIT && c->job->version == c->version)
				{
					c->job->have_next = false;
					job_finish(c->job);
				}
			}
			break;
	}
}

static void
conn_readable(struct fanout *f)
{
	struct webhooks *w = f->wh;
	PGconn	   *conn = w->conn.conn;
	PGnotify   *n;

	if (!PQconsumeInput(conn))
	{
		conn_fail(f, "webhooks connection");
		return;
	}
	while ((n = PQnotifies(conn)))
		PQfreemem(n);
	while (w->busy && !PQisBusy(conn))
	{
		PGresult   *res = PQgetResult(conn);

		if (!res)
		{
			cmd_free(w->running);
			w->running = NULL;
			w->busy = false;
			kick(w);
			return;
		}
		if (w->running)
			command_result(w, w->running, res);
		PQclear(res);
		if (!w->conn.conn)
			return;				/* failed meanwhile */
	}
}

/* every 10 s: the polls no longer held are forgotten */
static void
wpoll_prune(struct webhooks *w, int64_t now)
{
	w->pruned_us = now;
	for (int b = 0; b < POLL_BUCKETS_WH; b++)
		for (struct wpoll **pp = &w->wpolls[b]; *pp;)
		{
			struct wpoll *p = *pp;

			if (!p->deferred && p->hold_until_us < now)
			{
				*pp = p->next;
				free(p);
			}
			else
				pp = &p->next;
		}
}

/* once a second: connect, try the lock, notice the stream coming back */
static void
tick_cb(struct fanout *f)
{
	struct webhooks *w = f->wh;
	int64_t		now = now_us();

	timer_start(&w->tick, TICK_US);
	if (f->stopping)
		return;
	switch (w->state)
	{
		case WH_DOWN:
			if (now < w->retry_at_us)
				return;
			w->state = WH_CONNECTING;
			w->connect_started_us = now;
			if (!db_open(f, &w->conn) && w->state == WH_CONNECTING)
				conn_fail(f, "webhooks connection");
			return;
		case WH_CONNECTING:
			if (now - w->connect_started_us > 10 * TICK_US)
				conn_fail(f, "webhooks connection timed out");
			return;
		case WH_FOLLOWER:
			if (!w->busy && !w->q_head)
			{
				struct cmd *c = cmd_new(CMD_LOCK, NULL);

				if (c)
					enqueue(w, c);
			}
			return;
		case WH_LEADER:
			if (now - w->pruned_us > 10 * TICK_US)
				wpoll_prune(w, now);
			if (f->stream.state == REPL_STREAMING && !w->stream_was_up)
				w->dirty_all = true;	/* the stream is back: what happened meanwhile */
			w->stream_was_up = f->stream.state == REPL_STREAMING;
			kick(w);
			return;
	}
}

static void
dirty_add(struct webhooks *w, int64_t poll_id)
{
	if (!w->dirty_all)
	{
		for (int i = w->n_dirty - 1; i >= 0 && i >= w->n_dirty - 8; i--)
			if (w->dirty[i] == poll_id)
				return;
		if (!w->dirty && !(w->dirty = malloc(sizeof(int64_t) * MAX_DIRTY)))
			w->dirty_all = true;
		else if (w->n_dirty == MAX_DIRTY)
		{
			w->dirty_all = true;
			w->n_dirty = 0;
		}
		else
			w->dirty[w->n_dirty++] = poll_id;
	}
}

/* the held polls whose hold is over are asked for now */
static void
hold_cb(struct fanout *f)
{
	struct webhooks *w = f->wh;
	int64_t		now = now_us();

	for (int i = 0; i < w->n_deferred;)
	{
		struct wpoll *p = w->deferred_polls[i];

		if (now >= p->hold_until_us)
		{
			p->deferred = false;
			dirty_add(w, p->id);
			w->deferred_polls[i] = w->deferred_polls[--w->n_deferred];
		}
		else
			i++;
	}
	if (w->n_deferred > 0)
		timer_start(&w->hold_timer, HOLD_TICK_US);
	kick(w);
}

/*
 * stream.c: a tally row of this poll was committed.  A change of status is
 * asked about at once; a change of counts too, unless the poll is open and
 * its tallies all wait for their window (then just before the first goes).
 * A closed poll's rows are its last votes being folded: closed waits for
 * them, so they are asked about at once.
 */
static void
on_tally_row(struct fanout *f, int64_t poll_id, int status)
{
	struct webhooks *w = f->wh;
	struct wpoll *p;

	if (w->state != WH_LEADER)
		return;
	p = wpoll_find(w, poll_id);
	if (p && p->status == status && status == STATUS_OPEN && now_us() < p->hold_until_us)
	{
		if (p->deferred)
			return;
		if (w->n_deferred == w->cap_deferred)
		{
			int			cap = w->cap_deferred ? w->cap_deferred * 2 : 256;
			struct wpoll **a = realloc(w->deferred_polls, sizeof(*a) * (size_t) cap);

			if (!a)
				goto now;
			w->deferred_polls = a;
			w->cap_deferred = cap;
		}
		p->deferred = true;
		w->deferred_polls[w->n_deferred++] = p;
		if (!ev_is_active(&w->hold_timer.w))
			timer_start(&w->hold_timer, HOLD_TICK_US);
		return;
	}
now:
	if (p)
		p->status = status;
	dirty_add(w, poll_id);
	kick(w);
}

/* ---- start, stop, metrics ---- */

void
webhooks_start(struct fanout *f)
{
	static struct webhooks wh;
	struct webhooks *w = &wh;

	if (!f->webhooks)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(w->multi = curl_multi_init()))
	{
		logmsg("webhooks: libcurl cannot start; no webhooks will be delivered");
		return;
	}
	w->f = f;
	f->wh = w;
	w->backoff_ms = 250;
	db_pgc_init(f, &w->conn, "webhooks connection");
	w->conn.on_ready = conn_ready;
	w->conn.on_readable = conn_readable;
	w->conn.on_fail = conn_failed;
	curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
	curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
	ev_init(&w->curl_timer, curl_timer_fired);
	timer_init(f, &w->tick, tick_cb);
	timer_init(f, &w->recheck_timer, recheck_cb);
	timer_init(f, &w->hold_timer, hold_cb);
	timer_start(&w->tick, 0);
	f->on_tally_row = on_tally_row;
}

void
webhooks_stop(struct fanout *f)
{
	struct webhooks *w = f->wh;

	if (!w)
		return;
	f->on_tally_row = NULL;
	timer_stop(&w->tick);
	timer_stop(&w->recheck_timer);
	timer_stop(&w->hold_timer);
	drop_all(w);
	db_close(&w->conn);
	ev_timer_stop(f->loop, &w->curl_timer);
	curl_multi_cleanup(w->multi);
	curl_global_cleanup();
	free(w->dirty);
	free(w->recheck);
	free(w->again);
	free(w->deferred_polls);
	w->deferred_polls = NULL;
	w->dirty = w->recheck = w->again = NULL;
	f->wh = NULL;
}

void
webhooks_metrics(struct fanout *f, struct jbuf *b)
{
	struct webhooks *w = f->wh;
	uint64_t	cum = 0;

	if (!w)
		return;
	jb_fmt(b, "# HELP poll_fanout_webhook_leader 1 while this daemon delivers webhooks (holds the lock).\n"
		   "# TYPE poll_fanout_webhook_leader gauge\npoll_fanout_webhook_leader %d\n",
		   w->state == WH_LEADER ? 1 : 0);
	jb_fmt(b, "# HELP poll_fanout_webhook_deliveries_total Webhook deliveries acknowledged (2xx).\n"
		   "# TYPE poll_fanout_webhook_deliveries_total counter\npoll_fanout_webhook_deliveries_total %llu\n",
		   (unsigned long long) w->deliveries);
	jb_fmt(b, "# HELP poll_fanout_webhook_failed_attempts_total Webhook attempts without a 2xx within 10 s.\n"
		   "# TYPE poll_fanout_webhook_failed_attempts_total counter\n"
		   "poll_fanout_webhook_failed_attempts_total %llu\n", (unsigned long long) w->attempts_failed);
	jb_fmt(b, "# HELP poll_fanout_webhook_failures_total Webhook deliveries given up after 24 h of retries.\n"
		   "# TYPE poll_fanout_webhook_failures_total counter\npoll_fanout_webhook_failures_total %llu\n",
		   (unsigned long long) w->failed);
	jb_fmt(b, "# HELP poll_fanout_webhook_pending Webhook deliveries waiting, begun or in flight.\n"
		   "# TYPE poll_fanout_webhook_pending gauge\npoll_fanout_webhook_pending %d\n", w->n_pending);
	jb_str(b, "# HELP poll_fanout_webhook_delivery_seconds From the event seen to its acknowledgement.\n"
		   "# TYPE poll_fanout_webhook_delivery_seconds histogram\n");
	for (int i = 0; i < 12; i++)
	{
		cum += w->lat_buckets[i];
		jb_fmt(b, "poll_fanout_webhook_delivery_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i],
			   (unsigned long long) cum);
	}
	jb_fmt(b, "poll_fanout_webhook_delivery_seconds_bucket{le=\"+Inf\"} %llu\n"
		   "poll_fanout_webhook_delivery_seconds_sum %.6f\npoll_fanout_webhook_delivery_seconds_count %llu\n",
		   (unsigned long long) w->lat_count, w->lat_sum, (unsigned long long) w->lat_count);
}

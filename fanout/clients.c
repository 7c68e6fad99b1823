/*
 * clients.c — the client protocol: WebSocket sessions on /ws (subscribe,
 * unsubscribe, ping, auth), input limits (frame size, rate, subscription
 * count), and the writer shared with SSE sessions that sends each dirty
 * subscription its latest state, at most once per throttle window.
 *
 * What always holds: a session with want_write set is on f's ready list or
 * has a writeable callback asked for, and is not in the throttle heap; one
 * in the heap has something to send once its due time comes.  Every write
 * of a session, from a writeable callback or from clients_flush(), goes
 * through session_write_updates(): one message per call, a queued pong or
 * error before any update, an update only past its throttle window.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

#define CLOSE_LINGER_US	(300 * 1000)
#define JSON_HEADROOM	64		/* room before the JSON for the SSE "id:/data:" prefix */
#define STREAM_POLL_US	2000	/* see session_write_updates() */

static void handle_message(struct session *s, const char *buf, size_t len);
static void handle_subscribe(struct session *s, const struct client_msg *m);
static void handle_auth(struct session *s, const struct client_msg *m);
static void queue_text(struct session *s, const char *text, size_t len, bool close_after);
static void queue_error(struct session *s, const char *code, const char *msg, int64_t poll);
static bool take_token(struct session *s);
static int	write_frame(struct session *s, char *json, size_t len, int64_t version);
static void request_write(struct session *s);
static void schedule_at(struct session *s, int64_t due, int64_t now);
static int	write_queued(struct session *s, char *out, int64_t now);
static int	write_next_update(struct session *s, char *out, size_t cap, int64_t now);
static void reschedule(struct session *s, int64_t now);

/* a client closed by the 30 s write timeout is worth a log line */
void
session_note_close(struct session *s)
{
	if (s->f && (s->kind == SESS_WS || s->kind == SESS_SSE) && s->write_armed &&
		now_us() - s->write_armed_us >= (WRITE_TIMEOUT_SECS - 1) * (int64_t) 1000000)
	{
		s->f->m.slow_disconnects++;
		logmsg("client: disconnected %s client that took no writes for %d s",
			   s->kind == SESS_SSE ? "an SSE" : "a WebSocket", WRITE_TIMEOUT_SECS);
	}
}

bool
clients_full(struct fanout *f)
{
	return f->max_clients > 0 && f->n_clients_ws + f->n_clients_sse >= f->max_clients;
}

void
session_init(struct fanout *f, struct session *s, struct lws *wsi, enum session_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->f = f;
	s->wsi = wsi;
	s->kind = kind;
	s->tokens = RATE_BURST;
	s->tokens_at_us = now_us();
	s->last_write_us = s->tokens_at_us;
	if (kind == SESS_WS || kind == SESS_SSE)
	{
		s->counted = true;
		if (kind == SESS_WS)
			f->n_clients_ws++;
		else
			f->n_clients_sse++;
		/* on the list the write-timeout sweep walks */
		lws_dll2_add_tail(&s->stream_node, &f->streams);
	}
}

void
session_detach(struct session *s)
{
	struct fanout *f = s->f;

	if (!f)
		return;					/* never initialised */
	heap_remove(f, s);
	lws_dll2_remove(&s->ready_node);
	lws_dll2_remove(&s->stream_node);
	snap_forget_session(f, s);
	while (s->n_subs > 0)
		sub_remove(f, s->subs[0]);
	free(s->subs);
	while (s->outq_head)
	{
		struct outmsg *m = s->outq_head;

		s->outq_head = m->next;
		free(m);
	}
	free(s->rx);
	if (s->counted)
	{
		if (s->kind == SESS_WS)
			f->n_clients_ws--;
		else
			f->n_clients_sse--;
	}
	grant_free(&s->grant);
	free(s->dyn_body);
	memset(s, 0, sizeof(*s));
}

/* 1: a valid token was given, 0: none, -1: a token was given and refused */
int
session_auth_from_request(struct fanout *f, struct session *s, struct lws *wsi)
{
	char		buf[TOKEN_MAX + 16];
	const char *tok = NULL;
	const char *why = "";

	if (!f->jwt)
		return 0;
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
		strncasecmp(buf, "Bearer ", 7) == 0)
		tok = buf + 7;
	else
		tok = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));
	if (!tok)
		return 0;
	grant_free(&s->grant);
	if (jwt_verify(f->jwt_secret, f->jwt_secret_len, tok, (int64_t) time(NULL), &s->grant, &why) < 0)
	{
		f->m.rejected_inputs++;
		if (f->verbose)
			logmsg("client: token refused: %s", why);
		return -1;
	}
	return 1;
}

bool
session_may_see(struct fanout *f, struct session *s, int64_t poll_id)
{
	return !f->jwt || grant_allows(&s->grant, poll_id, (int64_t) time(NULL));
}

/*
 * Write scheduling.  A session with something to send either is on the
 * ready list (want_write; clients_flush() writes it before the event loop
 * next waits, or asks lws for a writeable callback) or waits in f->heap
 * until the throttle window of its earliest dirty subscription ends.  One
 * timer (tick_timer) serves the whole heap; the 30 s write timeout of
 * WebSocket and SSE sessions is one sweep a second over f->streams.
 * Per-session lws timers (lws_sul_schedule, lws_set_timeout) would each
 * be a sorted insert into one list of every client: O(clients) per write.
 */
static void tick_cb(struct fanout *f);

static inline void
heap_put(struct fanout *f, int i, struct heap_ent e)
{
	f->heap[i] = e;
	e.s->heap_idx = i + 1;
}

static void
heap_sift(struct fanout *f, int i)
{
	struct heap_ent e = f->heap[i];

	while (i > 0 && f->heap[(i - 1) / 2].due_us > e.due_us)
	{
		heap_put(f, i, f->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;)
	{
		int			c = 2 * i + 1;

		if (c >= f->heap_len)
			break;
		if (c + 1 < f->heap_len && f->heap[c + 1].due_us < f->heap[c].due_us)
			c++;
		if (f->heap[c].due_us >= e.due_us)
			break;
		heap_put(f, i, f->heap[c]);
		i = c;
	}
	heap_put(f, i, e);
}

void
heap_remove(struct fanout *f, struct session *s)
{
	int			i = s->heap_idx - 1;

	if (i < 0)
		return;
	s->heap_idx = 0;
	f->heap_len--;
	if (i < f->heap_len)
	{
		f->heap[i] = f->heap[f->heap_len];
		f->heap[i].s->heap_idx = i + 1;
		heap_sift(f, i);
	}
}

static bool
heap_set(struct fanout *f, struct session *s, int64_t due)
{
	if (s->heap_idx)
	{
		f->heap[s->heap_idx - 1].due_us = due;
		heap_sift(f, s->heap_idx - 1);
		return true;
	}
	if (f->heap_len == f->heap_cap)
	{
		int			cap = f->heap_cap ? f->heap_cap * 2 : 1024;
		struct heap_ent *h = realloc(f->heap, sizeof(*h) * (size_t) cap);

		if (!h)
			return false;
		f->heap = h;
		f->heap_cap = cap;
	}
	f->heap[f->heap_len].due_us = due;
	f->heap[f->heap_len].s = s;
	s->heap_idx = ++f->heap_len;
	heap_sift(f, f->heap_len - 1);
	return true;
}

/* the timer fires when the earliest session in the heap is due */
static void
arm_tick(struct fanout *f, int64_t now)
{
	int64_t		due;

	if (f->heap_len == 0)
		return;
	due = f->heap[0].due_us;
	if (f->tick_at_us && f->tick_at_us <= due)
		return;
	f->tick_at_us = due;
	timer_start(&f->tick_timer, due - now);
}

static void
tick_cb(struct fanout *f)
{
	int64_t		now = now_us();

	f->tick_at_us = 0;
	while (f->heap_len > 0 && f->heap[0].due_us <= now)
	{
		struct session *s = f->heap[0].s;

		heap_remove(f, s);
		request_write(s);
	}
	arm_tick(f, now);
}

/* WebSocket and SSE streams: the sweep watches their write timeout */
static bool
swept(const struct session *s)
{
	return !lws_dll2_is_detached(&s->stream_node) && (s->kind == SESS_WS || s->headers_sent);
}

static void
arm_write_timeout(struct session *s, int64_t now)
{
	if (s->write_armed)
		return;
	s->write_armed = true;
	s->write_armed_us = now;
	if (!swept(s))
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WRITE_TIMEOUT_SECS);
}

static void
sweep_cb(struct fanout *f)
{
	int64_t		now = now_us();
	int64_t		now_s = (int64_t) time(NULL);

	lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&f->streams))
	{
		struct session *s = lws_container_of(d, struct session, stream_node);

		if (f->jwt && s->n_subs > 0 && s->grant.exp <= now_s)
			session_enforce_grant(s, now_s);
		if (f->keepalive_s && swept(s) && !s->gone && !s->keepalive_due &&
			now - s->last_write_us >= f->keepalive_s * (int64_t) 1000000)
		{
			s->keepalive_due = true;
			request_write(s);
		}

		if (s->write_armed && swept(s) && s->wsi &&
			now - s->write_armed_us >= WRITE_TIMEOUT_SECS * (int64_t) 1000000)
		{
			s->gone = true;
			kill_soon(f, s->wsi, PENDING_TIMEOUT_USER_OK);
		}
	} lws_end_foreach_dll(d);

	/*
	 * lws's own timeouts (handshake, HTTP idle, close handshake) live on
	 * its one lws_sul timer, which its libev plugin cannot move earlier
	 * once armed (fanout.h): on an idle daemon a client that never
	 * finishes its handshake was closed ~9 s late.  A wake-up of lws's
	 * loop makes it service whatever is due, so nudging it here bounds
	 * that lateness to this sweep's second.
	 */
	lws_cancel_service(f->lws);
	timer_start(&f->sweep_timer, 1000 * 1000);
}

void
clients_start(struct fanout *f)
{
	timer_init(f, &f->tick_timer, tick_cb);
	timer_init(f, &f->sweep_timer, sweep_cb);
	timer_start(&f->sweep_timer, 1000 * 1000);
}

/* after lws_context_destroy(): every session is gone */
void
clients_stop(struct fanout *f)
{
	timer_stop(&f->tick_timer);
	timer_stop(&f->sweep_timer);
	free(f->heap);
	f->heap = NULL;
	f->heap_len = f->heap_cap = 0;
}

/* written before the event loop next waits: see clients_flush() */
static void
request_write(struct session *s)
{
	if (!s->wsi || s->gone)
		return;
	heap_remove(s->f, s);
	arm_write_timeout(s, now_us());
	if (!s->want_write)
	{
		s->want_write = true;
		if (lws_dll2_is_detached(&s->ready_node))
			lws_dll2_add_tail(&s->ready_node, &s->f->ready);
	}
}

/*
 * Whether the session's next message can go out now, outside a writeable
 * callback: a WebSocket, or an SSE stream past its headers, on a
 * connection of its own (lws orders the writes of HTTP/2 streams itself),
 * that nothing is closing, with nothing still buffered in lws.  What the
 * socket does not take of a message lws keeps in the wsi's buflist_out
 * and asks for a writeable callback; while that is not empty the session
 * waits for the callback, and lws sends the buflist before it calls us
 * (lws_write() would append to it anyway): messages never pass each other.
 */
static bool
can_write_now(struct session *s)
{
	struct lws *wsi = s->wsi;

	if (s->closing)
		return false;			/* the linger and the close: in a callback */
	if (s->kind == SESS_WS)
	{
		if (lws_get_close_length(wsi) > 0)
			return false;		/* lws has a close frame prepared or sent */
	}
	else if (s->kind != SESS_SSE || !s->headers_sent)
		return false;
	if (lws_get_network_wsi(wsi) != wsi || lws_partial_buffered(wsi))
		return false;
	/*
	 * Over plain TCP, send() itself tells whether the socket takes the
	 * message (lws keeps what it does not): asking poll() first cost as
	 * much again per message.  Over TLS ask first.
	 */
	return !lws_is_ssl(wsi) || !lws_send_pipe_choked(wsi);
}

/*
 * Once per turn of the event loop, before it waits: every session on the
 * ready list gets one write, directly where the socket takes it, else a
 * writeable callback.  A direct write spares lws two epoll_ctl calls
 * (POLLOUT on, then off) and a pass through its service per message.
 * The sessions that come back on the list during the pass (another due
 * subscription, a change read meanwhile) are served by the next pass;
 * returns whether there is one to do.
 */
bool
clients_flush(struct fanout *f)
{
	struct lws_dll2 *last = lws_dll2_get_tail(&f->ready);
	struct lws_dll2 *d;

	while ((d = lws_dll2_get_head(&f->ready)) != NULL)
	{
		struct session *s = lws_container_of(d, struct session, ready_node);

		lws_dll2_remove(d);
		if (s->gone)
			s->want_write = false;	/* being closed: nothing more for it */
		else if (!can_write_now(s))
			lws_callback_on_writable(s->wsi);	/* want_write stays set */
		else if (session_write_updates(s) < 0)
			kill_soon(f, s->wsi, PENDING_TIMEOUT_USER_OK);
		if (d == last)
			break;
	}
	return f->ready.count > 0;
}

/*
 * A writeable callback at due.  Windows end on a grid of a tenth of the
 * throttle (at most 5 ms), so that one timer wake-up and one pass of the
 * event loop serve many sessions; a window never ends early.
 */
static void
schedule_at(struct session *s, int64_t due, int64_t now)
{
	struct fanout *f = s->f;
	int64_t		q = (int64_t) f->throttle_ms * 100;

	if (!s->wsi || s->want_write || s->gone)
		return;					/* the coming write reschedules */
	if (q > 5000)
		q = 5000;
	if (q >= 1000)
		due = (due + q - 1) / q * q;
	if (due <= now)
	{
		request_write(s);
		return;
	}
	if (s->heap_idx && f->heap[s->heap_idx - 1].due_us <= due)
		return;
	if (!heap_set(f, s, due))
	{
		request_write(s);		/* no memory for the heap: write now */
		return;
	}
	arm_write_timeout(s, now);
	arm_tick(f, now);
}

/* sub just became dirty: its session writes now or when sub's window ends */
void
session_mark_dirty(struct session *s, struct subscription *sub)
{
	int64_t		throttle = (int64_t) s->f->throttle_ms * 1000;
	int64_t		now;

	if (s->want_write)
		return;
	if (!sub || sub->last_sent_us == 0 || sub->poll->state == POLL_NOT_FOUND)
	{
		request_write(s);
		return;
	}
	now = now_us();
	schedule_at(s, sub->last_sent_us + throttle, now);
}

static void
queue_text(struct session *s, const char *text, size_t len, bool close_after)
{
	struct outmsg *m;

	if (s->outq_len == OUTQ_MAX)
	{
		/* a client that sends faster than it reads: the rate limit's job */
		s->closing = true;
		s->close_at_us = now_us();
		request_write(s);
		return;
	}
	m = malloc(sizeof(*m) + len);
	if (!m)
		return;
	memcpy(m->text, text, len);
	m->len = len;
	m->close_after = close_after;
	m->next = NULL;
	if (s->outq_tail)
		s->outq_tail->next = m;
	else
		s->outq_head = m;
	s->outq_tail = m;
	s->outq_len++;
	request_write(s);
}

static void
queue_error(struct session *s, const char *code, const char *msg, int64_t poll)
{
	char		buf[512];
	size_t		n = render_error(buf, sizeof(buf), code, msg, poll);

	if (n)
		queue_text(s, buf, n, false);
}

static bool
take_token(struct session *s)
{
	int64_t		now = now_us();

	s->tokens += (double) (now - s->tokens_at_us) * RATE_PER_SEC / 1e6;
	if (s->tokens > RATE_BURST)
		s->tokens = RATE_BURST;
	s->tokens_at_us = now;
	if (s->tokens < 1)
		return false;
	s->tokens -= 1;
	return true;
}

static void
handle_subscribe(struct session *s, const struct client_msg *m)
{
	struct fanout *f = s->f;
	struct poll *p;

	if (!session_may_see(f, s, m->poll))
	{
		f->m.rejected_inputs++;
		queue_error(s, "unauthorized", "no valid token grants this poll", m->poll);
		return;
	}
	for (int i = 0; i < s->n_subs; i++)
	{
		struct subscription *existing = s->subs[i];

		if (existing->poll->id != m->poll)
			continue;
		/* a resubscription: never send a version twice, only move forward */
		if (m->has_version && m->version > existing->sent_version)
			existing->sent_version = m->version;
		if (existing->poll->state != POLL_LOADING && !existing->dirty)
		{
			sub_set_dirty(existing, true);
			session_mark_dirty(s, existing);
		}
		return;
	}
	if (s->n_subs >= MAX_SUBSCRIPTIONS)
	{
		f->m.rejected_inputs++;
		queue_error(s, "too_many_subscriptions", "at most 64 subscriptions per connection", m->poll);
		return;
	}
	p = poll_get(f, m->poll);
	if (!p || !sub_add(f, s, p, m->has_version ? m->version : 0))
		queue_error(s, "bad_request", "out of memory", m->poll);
}

/*
 * A subscription lives only as long as the token that granted it: each one
 * the session's grant no longer covers (expired, or a new token without the
 * poll) ends with an unauthorized error; an SSE stream, which is its one
 * subscription, is closed after the error.  Checked by the 1 s sweep and
 * after every auth message.
 */
void
session_enforce_grant(struct session *s, int64_t now_s)
{
	struct fanout *f = s->f;

	if (!f || !f->jwt)
		return;
	for (int i = s->n_subs - 1; i >= 0; i--)
	{
		struct subscription *sub = s->subs[i];
		int64_t		id = sub->poll->id;
		char		buf[512];
		size_t		n;

		if (grant_allows(&s->grant, id, now_s))
			continue;
		sub_remove(f, sub);		/* moves the last one to i: walked backwards */
		n = render_error(buf, sizeof(buf), "unauthorized",
						 "the token that granted this poll has expired", id);
		if (n)
			queue_text(s, buf, n, s->kind == SESS_SSE);
	}
}

static void
handle_auth(struct session *s, const struct client_msg *m)
{
	struct fanout *f = s->f;
	struct grant g;
	const char *why = "";

	if (!f->jwt)
		return;					/* tokens are not asked for: nothing to check */
	if (jwt_verify(f->jwt_secret, f->jwt_secret_len, m->token, (int64_t) time(NULL), &g, &why) < 0)
	{
		f->m.rejected_inputs++;
		queue_error(s, "unauthorized", why, -1);
		return;
	}
	grant_free(&s->grant);
	s->grant = g;
	session_enforce_grant(s, (int64_t) time(NULL));
}

static void
handle_message(struct session *s, const char *buf, size_t len)
{
	struct fanout *f = s->f;
	struct client_msg m;
	const char *why = NULL;
	char		out[PING_ID_MAX + 64];
	int			n;

	if (!take_token(s))
	{
		f->m.rejected_inputs++;
		logmsg("client: rate limited, closing");
		n = (int) render_error(out, sizeof(out), "rate_limited", "more than 20 messages per second", -1);
		queue_text(s, out, (size_t) n, true);
		s->closing = true;
		return;
	}
	if (client_msg_parse(buf, len, &m, &why) < 0)
	{
		f->m.rejected_inputs++;
		queue_error(s, "bad_request", why, m.has_poll ? m.poll : -1);
		return;
	}
	switch (m.type)
	{
		case CMSG_PING:
			if (m.ping_id[0])
				n = snprintf(out, sizeof(out), "{\"type\":\"pong\",\"id\":%s}", m.ping_id);
			else
				n = snprintf(out, sizeof(out), "{\"type\":\"pong\"}");
			queue_text(s, out, (size_t) n, false);
			break;
		case CMSG_AUTH:
			handle_auth(s, &m);
			break;
		case CMSG_SUBSCRIBE:
			handle_subscribe(s, &m);
			break;
		case CMSG_UNSUBSCRIBE:
			for (int i = 0; i < s->n_subs; i++)
				if (s->subs[i]->poll->id == m.poll)
				{
					sub_remove(f, s->subs[i]);
					break;
				}
			break;
	}
}

/* frames one message for the session's transport and writes it */
static int
write_frame(struct session *s, char *json, size_t len, int64_t version)
{
	struct fanout *f = s->f;
	int			n;

	if (s->kind == SESS_SSE)
	{
		char		pre[JSON_HEADROOM];
		int			pl = version > 0 ?
			snprintf(pre, sizeof(pre), "id: %lld\ndata: ", (long long) version) :
			snprintf(pre, sizeof(pre), "data: ");

		json -= pl;
		memcpy(json, pre, (size_t) pl);
		len += (size_t) pl;
		json[len++] = '\n';
		json[len++] = '\n';
		n = lws_write(s->wsi, (unsigned char *) json, len, LWS_WRITE_HTTP);
	}
	else
		n = lws_write(s->wsi, (unsigned char *) json, len, LWS_WRITE_TEXT);
	if (n < (int) len)
	{
		if (f->verbose)
			logmsg("client: write failed (%s), closing", strerror(errno));
		return -1;
	}
	f->m.messages_sent++;
	f->m.bytes_sent += len;
	s->last_write_us = now_us();
	return 0;
}

/*
 * Idle for --keepalive seconds: an SSE comment line or a WebSocket ping,
 * so that proxies with idle timeouts keep the connection.
 */
static int
write_keepalive(struct session *s, char *out)
{
	static const char comment[] = ": keepalive\n\n";
	size_t		len = s->kind == SESS_SSE ? sizeof(comment) - 1 : 0;

	s->keepalive_due = false;
	memcpy(out, comment, len);
	if (lws_write(s->wsi, (unsigned char *) out, len,
				  s->kind == SESS_SSE ? LWS_WRITE_HTTP : LWS_WRITE_PING) < (int) len)
		return -1;
	s->f->m.bytes_sent += len;
	s->last_write_us = now_us();
	return 0;
}

/* a queued pong or error; after a rate_limited one, the close lingers */
static int
write_queued(struct session *s, char *out, int64_t now)
{
	struct outmsg *m = s->outq_head;
	bool		close_after = m->close_after;
	int			rc;

	memcpy(out, m->text, m->len);
	rc = write_frame(s, out, m->len, 0);
	s->outq_head = m->next;
	if (!s->outq_head)
		s->outq_tail = NULL;
	s->outq_len--;
	free(m);
	if (rc < 0)
		return -1;
	if (close_after)
	{
		/*
		 * Let the client read the error before the close: closing with its
		 * unread frames still in our socket would send a reset instead.
		 */
		s->closing = true;
		s->close_at_us = now + CLOSE_LINGER_US;
	}
	return 0;
}

/*
 * The first dirty subscription whose throttle window has passed gets the
 * message that brings it to the poll's current state, copied from the
 * poll's shared rendering: per client, one memcpy and one lws_write.
 */
static int
write_next_update(struct session *s, char *out, size_t cap, int64_t now)
{
	struct fanout *f = s->f;
	int64_t		throttle = (int64_t) f->throttle_ms * 1000;

	for (int i = 0; i < s->n_subs; i++)
	{
		struct subscription *sub = s->subs[i];
		int64_t		version = 0;
		const char *msg;
		size_t		len;

		if (!sub->dirty)
			continue;
		if (sub->poll->state == POLL_NOT_FOUND)
		{
			int64_t		id = sub->poll->id;

			sub_remove(f, sub);	/* moves the last subscription to i */
			len = render_error(out, cap, "not_found", "no such poll", id);
			return write_frame(s, out, len, 0);
		}
		if (sub->last_sent_us && sub->last_sent_us + throttle > now)
			continue;
		msg = message_for(f, sub, &len, &version);
		sub_set_dirty(sub, false);
		if (!msg)
			continue;			/* nothing newer than what the client has */
		if (len > cap)
			return -1;
		memcpy(out, msg, len);
		if (write_frame(s, out, len, version) < 0)
			return -1;
		sub->sent_version = version;
		sub->need_snapshot = false;
		sub->last_sent_us = now;
		return 0;
	}
	return 0;
}

/* after a writeable callback: what next, and the 30 s clock */
static void
reschedule(struct session *s, int64_t now)
{
	int64_t		throttle = (int64_t) s->f->throttle_ms * 1000;
	int64_t		next_due = 0;
	bool		ready = s->outq_head != NULL;

	if (s->closing)
	{
		ready = ready || s->close_at_us <= now;
		next_due = s->close_at_us;
	}
	else
		for (int i = 0; i < s->n_subs && !ready; i++)
		{
			struct subscription *sub = s->subs[i];
			int64_t		due = sub->last_sent_us + throttle;

			if (!sub->dirty)
				continue;
			if (!sub->last_sent_us || due <= now || sub->poll->state == POLL_NOT_FOUND)
				ready = true;
			else if (!next_due || due < next_due)
				next_due = due;
		}
	/* the socket took a write: the 30 s clock restarts, or stops if idle */
	if (ready || next_due)
	{
		s->write_armed = false;
		arm_write_timeout(s, now);
		if (ready)
			request_write(s);
		else
			schedule_at(s, next_due, now);
	}
	else if (s->write_armed)
	{
		s->write_armed = false;
		if (!swept(s))
			lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
	}
}

/*
 * One write per call (a writeable callback, or clients_flush() when the
 * socket takes it now): a queued pong or error first, then the next
 * subscription update.  Returns -1 when the connection must close.
 */
int
session_write_updates(struct session *s)
{
	struct fanout *f = s->f;
	char	   *out = (char *) f->scratch + LWS_PRE + JSON_HEADROOM;
	size_t		cap = SCRATCH_SIZE - 2 * JSON_HEADROOM;
	int64_t		now = now_us();
	int			rc;

	/*
	 * A pass over thousands of writeable sockets takes a while: read the
	 * replication stream every few ms during it, so that the sockets later
	 * in the pass already get the changes committed meanwhile.
	 */
	if (now - f->stream_polled_us >= STREAM_POLL_US)
	{
		f->stream_polled_us = now;
		db_poll_stream(f);
	}
	s->want_write = false;
	heap_remove(f, s);
	lws_dll2_remove(&s->ready_node);
	if (s->gone)
		return 0;				/* being closed: lws or kill_soon() does it */
	if (s->outq_head)
		rc = write_queued(s, out, now);
	else if (s->keepalive_due && !s->closing)
		rc = write_keepalive(s, out);
	else if (s->closing)
	{
		if (now < s->close_at_us)
		{
			reschedule(s, now);
			return 0;
		}
		if (s->kind == SESS_WS)
			lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
							 (unsigned char *) "rate limited", 12);
		s->gone = true;
		return -1;
	}
	else
		rc = write_next_update(s, out, cap, now);
	if (rc < 0)
	{
		s->gone = true;
		return -1;
	}
	reschedule(s, now);
	return 0;
}

int
ws_callback(struct fanout *f, struct lws *wsi, enum lws_callback_reasons reason,
			struct session *s, void *in, size_t len)
{
	switch (reason)
	{
		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			{
				char		uri[64];
				struct session tmp;
				int			rc;

				if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
					strcmp(uri, "/ws") != 0)
					return 1;
				if (clients_full(f))
				{
					f->m.rejected_clients++;
					logmsg("client: refused, --max-clients %d reached", f->max_clients);
					lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
										   "too many clients");
					return 1;
				}
				memset(&tmp, 0, sizeof(tmp));
				rc = session_auth_from_request(f, &tmp, wsi);
				grant_free(&tmp.grant);
				if (rc < 0)
				{
					lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, "token refused");
					return 1;
				}
				return 0;
			}
		case LWS_CALLBACK_ESTABLISHED:
			guard_websocket(wsi);	/* its frames are checked from here on */
			session_init(f, s, wsi, SESS_WS);
			(void) session_auth_from_request(f, s, wsi);
			if (f->verbose)
				logmsg("client: websocket connected (%d clients)",
					   f->n_clients_ws + f->n_clients_sse);
			break;
		case LWS_CALLBACK_RECEIVE:
			if (s->closing)
				break;
			if (s->rx_len + len + lws_remaining_packet_payload(wsi) > MAX_FRAME)
			{
				f->m.rejected_inputs++;
				lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
								 (unsigned char *) "frame too large", 15);
				s->gone = true;
				return -1;
			}
			{
				bool		final = lws_is_final_fragment(wsi) &&
					lws_remaining_packet_payload(wsi) == 0;

				if (final && s->rx_len == 0)
				{
					handle_message(s, in, len);	/* the usual case: one piece */
					break;
				}
				/* in pieces: reassemble in a buffer that lives only that long */
				if (!s->rx && !(s->rx = malloc(MAX_FRAME + 1)))
				{
					s->gone = true;
					return -1;
				}
				memcpy(s->rx + s->rx_len, in, len);
				s->rx_len += len;
				if (final)
				{
					handle_message(s, s->rx, s->rx_len);
					s->rx_len = 0;
					free(s->rx);
					s->rx = NULL;
				}
			}
			break;
		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (s->gone && lws_get_close_length(wsi) > 0)
				return -1;		/* a close reason is set (wsguard.c): lws sends it */
			return session_write_updates(s);
		case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
			/* lws answers with a close frame: no message may follow it */
			s->gone = true;
			break;
		default:
			break;
	}
	return 0;
}

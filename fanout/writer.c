/*
 * writer.c — the writer shared by WebSocket and SSE sessions: the ready
 * list, the throttle heap, framing, and the one write per call that sends
 * a session a queued pong or error, a keepalive, or its next subscription
 * update (at most once per throttle window, always the poll's latest
 * state, copied from messages.c's shared rendering).
 *
 * What always holds: a session with want_write set is on f's ready list or
 * has a writeable callback asked for, and is not in the throttle heap; one
 * in the heap has something to send once its due time comes.  Every write
 * of a session, from a writeable callback or from writer_flush(), goes
 * through session_write_updates(): one message per call.
 *
 * Calls messages.c, stream.c (a read of the stream during a long pass),
 * polls.c and loop.c.  polls.c reaches writer_mark_dirty() only through
 * f->sub_dirty, set by writer_start().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define CLOSE_LINGER_US	(300 * 1000)
#define JSON_HEADROOM	64		/* room before the JSON for the SSE "id:/data:" prefix */
#define STREAM_POLL_US	2000	/* see session_write_updates() */

static void heap_sift(struct fanout *f, int i);
static bool heap_set(struct fanout *f, struct session *s, int64_t due);
static void arm_tick(struct fanout *f, int64_t now);
static void tick_cb(struct fanout *f);
static void arm_write_timeout(struct session *s, int64_t now);
static bool can_write_now(struct session *s);
static void schedule_at(struct session *s, int64_t due, int64_t now);
static int	write_frame(struct session *s, char *json, size_t len, int64_t version);
static int	write_keepalive(struct session *s, char *out);
static int	write_queued(struct session *s, char *out, int64_t now);
static int	write_next_update(struct session *s, char *out, size_t cap, int64_t now);
static void reschedule(struct session *s, int64_t now);

/*
 * Closes wsi from lws's own timer list.  lws looks at that list after it
 * served a socket and when its timer fires, not after one of our timers:
 * wake it through its event pipe, or the close could wait for the next
 * socket event.
 */
void
kill_soon(struct fanout *f, struct lws *wsi, enum pending_timeout reason)
{
	lws_set_timeout(wsi, reason, LWS_TO_KILL_ASYNC);
	lws_cancel_service(f->lws);
}

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
		writer_request(s);
	}
	arm_tick(f, now);
}

static void
arm_write_timeout(struct session *s, int64_t now)
{
	if (s->write_armed)
		return;
	s->write_armed = true;
	s->write_armed_us = now;
	if (!session_swept(s))
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WRITE_TIMEOUT_SECS);
}

void
writer_start(struct fanout *f)
{
	timer_init(f, &f->tick_timer, tick_cb);
	f->sub_dirty = writer_mark_dirty;	/* polls.c tells us of dirty subscriptions */
}

/* after lws_context_destroy(): every session is gone */
void
writer_stop(struct fanout *f)
{
	timer_stop(&f->tick_timer);
	free(f->heap);
	f->heap = NULL;
	f->heap_len = f->heap_cap = 0;
}

/* written before the event loop next waits: see writer_flush() */
void
writer_request(struct session *s)
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
writer_flush(struct fanout *f)
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
		writer_request(s);
		return;
	}
	if (s->heap_idx && f->heap[s->heap_idx - 1].due_us <= due)
		return;
	if (!heap_set(f, s, due))
	{
		writer_request(s);		/* no memory for the heap: write now */
		return;
	}
	arm_write_timeout(s, now);
	arm_tick(f, now);
}

/* sub just became dirty: its session writes now or when sub's window ends */
void
writer_mark_dirty(struct session *s, struct subscription *sub)
{
	int64_t		throttle = (int64_t) s->f->throttle_ms * 1000;
	int64_t		now;

	if (s->want_write)
		return;
	if (!sub || sub->last_sent_us == 0 || sub->poll->state == POLL_NOT_FOUND)
	{
		writer_request(s);
		return;
	}
	now = now_us();
	schedule_at(s, sub->last_sent_us + throttle, now);
}

void
writer_queue(struct session *s, const char *text, size_t len, bool close_after)
{
	struct outmsg *m;

	if (s->outq_len == OUTQ_MAX)
	{
		/* a client that sends faster than it reads: the rate limit's job */
		s->closing = true;
		s->close_at_us = now_us();
		writer_request(s);
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
	writer_request(s);
}

void
writer_error(struct session *s, const char *code, const char *msg, int64_t poll)
{
	char		buf[512];
	size_t		n = render_error(buf, sizeof(buf), code, msg, poll);

	if (n)
		writer_queue(s, buf, n, false);
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
			writer_request(s);
		else
			schedule_at(s, next_due, now);
	}
	else if (s->write_armed)
	{
		s->write_armed = false;
		if (!session_swept(s))
			lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
	}
}

/*
 * One write per call (a writeable callback, or writer_flush() when the
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
		stream_poll(f);
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

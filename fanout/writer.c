/*
 * writer.c — the writer shared by WebSocket and SSE sessions: the ready
 * list, the throttle wheel, framing, and the writes that send a session
 * its queued pongs and errors, a keepalive, and its subscriptions' updates
 * (at most one per poll per throttle window, always the poll's latest
 * state, from messages.c's shared rendering).
 *
 * Scheduling.  A session with something to send now is on f's ready list
 * (want_write), which writer_flush() empties before the loop waits; one
 * whose next message waits for a time (the end of a throttle window, a
 * close's linger) is on the wheel, in the slot of that time; the wheel's
 * timer serves each slot's sessions when the slot ends, never earlier.  A
 * session is on at most one of the two, and on neither while a writeable
 * callback is asked for (want_write stays set).  After a message, its
 * subscription stays dirty and its session goes on the wheel at the end of
 * the window: then the writer looks again, sends the poll's latest state
 * if it changed meanwhile, else marks the subscription clean (only then
 * does a change have to wake the session, polls.c).  Under a steady
 * stream of changes a message therefore costs one wheel slot entry and one
 * write, and a change nothing per subscriber.
 *
 * Writes.  Every write of a session goes through session_write_updates(),
 * from writer_flush(), the wheel, or a writeable callback (ws.c, http.c):
 * it gathers what is due — the queued messages, then every subscription
 * whose window has ended — and writes it at once.  A session on plain TCP
 * with a connection of its own (s->direct) is written with one sendmsg()
 * on its socket, straight from the shared buffers (a WebSocket message is
 * its frame header and JSON, contiguous in the poll's rendering; queued
 * messages and SSE lines get their framing from small pieces); over TLS or
 * as an HTTP/2 stream the same bytes go through one lws_write().
 *
 * Who writes a socket, in which order.  Only this file writes messages;
 * lws writes HTTP headers (http.c, before any message) and control frames
 * of its own (pongs, the close frame).  Bytes never pass each other: what
 * a direct sendmsg() leaves unsent is handed to lws (lws_write raw), which
 * keeps it in its output buflist and sends it before anything else; a
 * direct write happens only while that buflist is empty and no close frame
 * is prepared (can_write_now()), otherwise the session waits for a
 * writeable callback, which lws calls only once its buflist is drained.
 *
 * Who reads, who frees.  A gathered write refers to the polls' rendered
 * messages (freed or replaced only by polls.c and messages.c, on a change
 * or the poll's end, never during a gather), to the queued messages it
 * took (freed right after the write), and to this call's stack.  The
 * wheel's slots and the ready list point to sessions; writer_forget(),
 * from session_detach(), takes a session off both before lws frees it.
 *
 * Calls messages.c, stream.c (a read of the stream during a long pass),
 * polls.c and loop.c.  polls.c reaches writer_mark_dirty() only through
 * f->sub_dirty, set by writer_start().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fanout.h"

#define CLOSE_LINGER_US	(300 * 1000)
#define STREAM_POLL_US	2000	/* see session_write_updates() */
#define MAX_PIECES		256		/* iovecs of one write */
#define OUTQ_PER_WRITE	32		/* queued messages taken by one write */
#define WRITE_MAX		(SCRATCH_SIZE - LWS_PRE)	/* bytes of one write */
#define SSE_ID_MAX		40

/* what one write sends, gathered */
struct pieces {
	struct iovec	v[MAX_PIECES];
	int				n;
	size_t			len;
	int				msgs;			/* messages (not keepalives) */
	bool			json_only;		/* a WebSocket as an HTTP/2 stream: one message, lws frames it */
	unsigned char	hdr[OUTQ_PER_WRITE][10];	/* frame headers of queued messages */
	int				n_hdr;
	char			sse_id[MAX_SUBSCRIPTIONS][SSE_ID_MAX];
	int				n_sse_id;
	char			not_found[MAX_SUBSCRIPTIONS][160];
	int				n_not_found;
};

static int64_t slot_of(const struct wheel *w, int64_t due);
static struct wheel_slot *slot_at(struct wheel *w, int64_t k);
static void used_set(struct wheel *w, int64_t k, bool on);
static bool wheel_insert(struct fanout *f, struct session *s, int64_t k, int64_t now);
static void wheel_remove(struct fanout *f, struct session *s);
static int64_t next_used(struct wheel *w);
static void arm_tick(struct fanout *f, int64_t now);
static void serve_slot(struct fanout *f, int64_t k);
static void tick_cb(struct fanout *f);
static void arm_write_timeout(struct session *s, int64_t now);
static bool can_write_now(struct session *s);
static void serve(struct fanout *f, struct session *s);
static void schedule_at(struct session *s, int64_t due, int64_t now);
static bool outq_push(struct session *s, const char *text, size_t len, bool close_after);
static bool piece(struct pieces *pc, const void *base, size_t len);
static bool add_message(struct session *s, struct pieces *pc, const char *json, size_t len,
						const char *frame, size_t frame_len, int64_t version);
static int	emit(struct session *s, struct pieces *pc);
static void reschedule(struct session *s, int64_t now, int64_t next_due);
static int	write_now(struct session *s);

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

/* ---- the wheel ---- */

static int64_t
slot_of(const struct wheel *w, int64_t due)
{
	return (due + w->gran_us - 1) / w->gran_us;
}

static struct wheel_slot *
slot_at(struct wheel *w, int64_t k)
{
	return &w->slots[k & (w->n_slots - 1)];
}

static void
used_set(struct wheel *w, int64_t k, bool on)
{
	int			i = (int) (k & (w->n_slots - 1));

	if (on)
		w->used[i >> 6] |= (uint64_t) 1 << (i & 63);
	else
		w->used[i >> 6] &= ~((uint64_t) 1 << (i & 63));
}

/* s goes in slot k (moved into the wheel's horizon); false: no memory */
static bool
wheel_insert(struct fanout *f, struct session *s, int64_t k, int64_t now)
{
	struct wheel *w = &f->wheel;
	struct wheel_slot *sl;

	if (w->n == 0 && w->pass_slot == 0 && w->next <= now / w->gran_us)
		w->next = now / w->gran_us + 1;	/* idle since: nothing is due before now */
	if (k < w->next)
		k = w->next;
	if (k >= w->next + w->n_slots)
		k = w->next + w->n_slots - 1;	/* served early: the writer finds it not due and waits on */
	sl = slot_at(w, k);
	if (sl->n == sl->cap)
	{
		int			cap = sl->cap ? sl->cap * 2 : 16;
		struct session **v = realloc(sl->v, sizeof(*v) * (size_t) cap);

		if (!v)
			return false;
		sl->v = v;
		sl->cap = cap;
	}
	s->wheel_slot = k;
	s->wheel_pos = sl->n;
	sl->v[sl->n++] = s;
	used_set(w, k, true);
	w->n++;
	return true;
}

static void
wheel_remove(struct fanout *f, struct session *s)
{
	struct wheel *w = &f->wheel;

	if (!s->wheel_slot)
		return;
	if (s->wheel_slot == w->pass_slot)
		w->pass.v[s->wheel_pos] = NULL;	/* the pass skips it */
	else
	{
		struct wheel_slot *sl = slot_at(w, s->wheel_slot);
		struct session *last = sl->v[--sl->n];

		if (last != s)
		{
			sl->v[s->wheel_pos] = last;
			last->wheel_pos = s->wheel_pos;
		}
		if (sl->n == 0)
			used_set(w, s->wheel_slot, false);
	}
	s->wheel_slot = 0;
	w->n--;
}

/* the first non-empty slot from w->next on, 0: none */
static int64_t
next_used(struct wheel *w)
{
	int64_t		k = w->next;

	if (w->n == 0)
		return 0;
	while (k < w->next + w->n_slots)
	{
		int			i = (int) (k & (w->n_slots - 1));
		uint64_t	word = w->used[i >> 6] >> (i & 63);

		if (word)
			return k + __builtin_ctzll(word);
		k += 64 - (i & 63);
	}
	return 0;
}

/* the timer fires when the first non-empty slot ends */
static void
arm_tick(struct fanout *f, int64_t now)
{
	int64_t		k = next_used(&f->wheel),
				at;

	if (!k)
		return;
	at = k * f->wheel.gran_us;
	if (f->tick_at_us && f->tick_at_us <= at)
		return;
	f->tick_at_us = at;
	timer_start(&f->tick_timer, at - now);
}

/*
 * Writes every session of slot k, in the order they came.  The slot's
 * array is swapped out for the pass (a session put back on the wheel
 * meanwhile goes into a later slot), and the sessions ahead are
 * prefetched: 10 000 sessions do not fit in the CPU's caches.
 */
static void
serve_slot(struct fanout *f, int64_t k)
{
	struct wheel *w = &f->wheel;
	struct wheel_slot *sl = slot_at(w, k);
	struct wheel_slot spare = w->pass;

	w->pass = *sl;
	spare.n = 0;
	*sl = spare;
	used_set(w, k, false);
	w->pass_slot = k;
	for (int i = 0; i < w->pass.n; i++)
	{
		struct session *s,
				   *ahead;

		/* in stages: the session, then its subscriptions' array, then the first one */
		if (i + 6 < w->pass.n && (ahead = w->pass.v[i + 6]) != NULL)
		{
			__builtin_prefetch(ahead);
			__builtin_prefetch((char *) ahead + 64);
		}
		if (i + 3 < w->pass.n && (ahead = w->pass.v[i + 3]) != NULL && ahead->n_subs)
			__builtin_prefetch(ahead->subs);
		if (i + 1 < w->pass.n && (ahead = w->pass.v[i + 1]) != NULL && ahead->n_subs)
			__builtin_prefetch(ahead->subs[0]);
		if ((s = w->pass.v[i]) == NULL)
			continue;
		s->wheel_slot = 0;
		w->n--;
		serve(f, s);
	}
	w->pass.n = 0;
	w->pass_slot = 0;
}

static void
tick_cb(struct fanout *f)
{
	struct wheel *w = &f->wheel;
	int64_t		end = now_us() / w->gran_us,	/* the last slot that has ended */
				k;

	f->tick_at_us = 0;
	while ((k = next_used(w)) != 0 && k <= end)
	{
		w->next = k + 1;
		serve_slot(f, k);
	}
	if (w->next <= end)
		w->next = end + 1;
	arm_tick(f, now_us());
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

/*
 * The wheel's slots are a fiftieth of the throttle window (between 0.1 and
 * 1 ms): one timer wake-up and one pass serve every session whose window
 * ends in it, and a window ends at most that late, never early.  It covers
 * the longest wait: a window, or a close's linger.
 */
void
writer_start(struct fanout *f)
{
	struct wheel *w = &f->wheel;
	int64_t		gran = (int64_t) f->throttle_ms * 20,
				longest;

	if (gran < 100)
		gran = 100;
	if (gran > 1000)
		gran = 1000;
	longest = (int64_t) f->throttle_ms * 1000;
	if (longest < CLOSE_LINGER_US)
		longest = CLOSE_LINGER_US;
	w->gran_us = gran;
	w->n_slots = 64;
	while (w->n_slots < longest / gran + 2)
		w->n_slots *= 2;
	w->slots = calloc((size_t) w->n_slots, sizeof(*w->slots));
	w->used = calloc((size_t) w->n_slots / 64, sizeof(*w->used));
	if (!w->slots || !w->used)
	{
		logmsg("out of memory");
		exit(1);
	}
	w->next = now_us() / gran + 1;
	timer_init(f, &f->tick_timer, tick_cb);
	f->sub_dirty = writer_mark_dirty;	/* polls.c tells us of dirty subscriptions */
}

/* after lws_context_destroy(): every session is gone */
void
writer_stop(struct fanout *f)
{
	struct wheel *w = &f->wheel;

	timer_stop(&f->tick_timer);
	for (int i = 0; w->slots && i < w->n_slots; i++)
		free(w->slots[i].v);
	free(w->slots);
	free(w->used);
	free(w->pass.v);
	memset(w, 0, sizeof(*w));
}

/* written before the event loop next waits: see writer_flush() */
void
writer_request(struct session *s)
{
	if (!s->wsi || s->gone)
		return;
	wheel_remove(s->f, s);
	arm_write_timeout(s, now_us());
	if (!s->want_write)
	{
		s->want_write = true;
		if (lws_dll2_is_detached(&s->ready_node))
			lws_dll2_add_tail(&s->ready_node, &s->f->ready);
	}
}

/* the session goes (session_detach()): off the ready list and the wheel */
void
writer_forget(struct session *s)
{
	wheel_remove(s->f, s);
	lws_dll2_remove(&s->ready_node);
}

/*
 * Whether the session can be written now, outside a writeable callback: a
 * WebSocket, or an SSE stream past its headers, on a connection of its own
 * (lws orders the writes of HTTP/2 streams itself), that nothing is
 * closing, with nothing buffered in lws and no close frame prepared.
 */
static bool
can_write_now(struct session *s)
{
	struct lws *wsi = s->wsi;

	if (s->closing)
		return false;			/* the linger and the close: in a callback */
	if (s->kind == SESS_SSE)
	{
		if (!s->headers_sent)
			return false;
	}
	else if (s->kind != SESS_WS)
		return false;
	if (s->direct && !s->lws_check)
		return true;			/* lws has nothing of its own to send: see the header */
	if (s->kind == SESS_WS && lws_get_close_length(wsi) > 0)
		return false;			/* lws has a close frame prepared or sent */
	if (s->direct)
		return !lws_partial_buffered(wsi);
	if (lws_get_network_wsi(wsi) != wsi || lws_partial_buffered(wsi))
		return false;
	/* over TLS: ask first (plain TCP: send() itself tells) */
	return !lws_is_ssl(wsi) || !lws_send_pipe_choked(wsi);
}

/*
 * One session's write now, or a writeable callback when the socket cannot
 * take it now.  A direct write made while lws_check was set asks for a
 * writeable callback too: lws calls it once it has sent all of its own,
 * which ends the check (session_write_updates()).
 */
static void
serve(struct fanout *f, struct session *s)
{
	if (s->gone)
		s->want_write = false;	/* being closed: nothing more for it */
	else if (!can_write_now(s))
	{
		s->want_write = true;	/* the callback writes */
		lws_callback_on_writable(s->wsi);
	}
	else if (write_now(s) < 0)
		kill_soon(f, s->wsi, PENDING_TIMEOUT_USER_OK);
	else if (s->direct && s->lws_check && !s->gone)
		lws_callback_on_writable(s->wsi);
}

/*
 * Once per turn of the event loop, before it waits: every session on the
 * ready list gets a write, directly where the socket takes it, else a
 * writeable callback.  A direct write spares lws two epoll_ctl calls
 * (POLLOUT on, then off) and a pass through its service per message.
 * The sessions that come back on the list during the pass (a change read
 * meanwhile) are served by the next pass; returns whether there is one to
 * do.
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
		serve(f, s);
		if (d == last)
			break;
	}
	return f->ready.count > 0;
}

/* a write at due: on the wheel, or now when due has come */
static void
schedule_at(struct session *s, int64_t due, int64_t now)
{
	struct fanout *f = s->f;
	int64_t		k;

	if (!s->wsi || s->want_write || s->gone)
		return;					/* the coming write reschedules */
	if (due <= now)
	{
		writer_request(s);
		return;
	}
	k = slot_of(&f->wheel, due);
	if (s->wheel_slot && s->wheel_slot <= k)
		return;					/* due sooner anyway */
	wheel_remove(f, s);
	if (!wheel_insert(f, s, k, now))
	{
		writer_request(s);		/* no memory for the slot: write now */
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

	if (s->want_write)
		return;
	if (!sub || sub->last_sent_us == 0 || sub->poll->state == POLL_NOT_FOUND)
	{
		writer_request(s);
		return;
	}
	schedule_at(s, sub->last_sent_us + throttle, now_us());
}

/* queues a pong or an error; false when the queue is full (the session closes) */
static bool
outq_push(struct session *s, const char *text, size_t len, bool close_after)
{
	struct outmsg *m;

	if (s->outq_len == OUTQ_MAX)
	{
		/* a client that sends faster than it reads: the rate limit's job */
		s->closing = true;
		s->close_at_us = now_us();
		return false;
	}
	m = malloc(sizeof(*m) + len);
	if (!m)
		return false;
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
	return true;
}

void
writer_queue(struct session *s, const char *text, size_t len, bool close_after)
{
	(void) outq_push(s, text, len, close_after);
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

static bool
piece(struct pieces *pc, const void *base, size_t len)
{
	if (pc->n == MAX_PIECES || pc->len + len > WRITE_MAX)
		return false;
	pc->v[pc->n].iov_base = (void *) base;
	pc->v[pc->n].iov_len = len;
	pc->n++;
	pc->len += len;
	return true;
}

/*
 * Adds one message, framed for the session's transport: a WebSocket frame
 * (frame: the shared one; else a header of our own before json), or an
 * SSE event ("id:" when it has a version, "data:", a blank line).  False
 * when the write is full: the message waits for the next one.
 */
static bool
add_message(struct session *s, struct pieces *pc, const char *json, size_t len,
			const char *frame, size_t frame_len, int64_t version)
{
	int			n0 = pc->n;
	size_t		len0 = pc->len;
	bool		ok;

	if (pc->json_only && pc->msgs > 0)
		return false;
	if (s->kind == SESS_SSE)
	{
		static const char data[] = "data: ",
					blank[] = "\n\n";

		if (version > 0)
		{
			char	   *id = pc->sse_id[pc->n_sse_id];
			int			il = snprintf(id, SSE_ID_MAX, "id: %lld\ndata: ", (long long) version);

			ok = pc->n_sse_id < MAX_SUBSCRIPTIONS && piece(pc, id, (size_t) il);
			pc->n_sse_id += ok;
		}
		else
			ok = piece(pc, data, sizeof(data) - 1);
		ok = ok && piece(pc, json, len) && piece(pc, blank, sizeof(blank) - 1);
	}
	else if (pc->json_only)
		ok = piece(pc, json, len);
	else if (frame)
		ok = piece(pc, frame, frame_len);
	else
	{
		unsigned char *h = pc->hdr[pc->n_hdr];

		ok = pc->n_hdr < OUTQ_PER_WRITE && piece(pc, h, ws_frame_header(h, len)) &&
			piece(pc, json, len);
		pc->n_hdr += ok;
	}
	if (!ok)
	{
		pc->n = n0;				/* all of it or nothing */
		pc->len = len0;
		return false;
	}
	pc->msgs++;
	return true;
}

/*
 * Writes what was gathered.  Direct: one sendmsg(); what the socket does
 * not take goes to lws's buflist, which lws sends before anything else
 * (lws_write raw: lws adds no framing).  Otherwise one lws_write() of the
 * bytes copied together: raw for a WebSocket over TLS and for SSE, a text
 * frame of lws's for a WebSocket that is an HTTP/2 stream.
 */
static int
emit(struct session *s, struct pieces *pc)
{
	struct fanout *f = s->f;
	size_t		sent = 0;

	if (s->direct)
	{
		struct msghdr mh = {.msg_iov = pc->v, .msg_iovlen = (size_t) pc->n};
		ssize_t		w = pc->n == 1 ?
			send(s->fd, pc->v[0].iov_base, pc->v[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT) :
			sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			if (f->verbose)
				logmsg("client: write failed (%s), closing", strerror(errno));
			return -1;
		}
		sent = w > 0 ? (size_t) w : 0;
		if (sent < pc->len)
		{
			size_t		skip = sent;

			s->lws_check = true;	/* lws has our rest: direct writes wait for its callback */
			for (int i = 0; i < pc->n; i++)
			{
				const unsigned char *b = pc->v[i].iov_base;
				size_t		l = pc->v[i].iov_len;

				if (skip >= l)
				{
					skip -= l;
					continue;
				}
				/*
				 * lws_write() wants LWS_PRE bytes it may use before the
				 * buffer, even for a raw write: copy the rest there.
				 */
				if (l - skip > WRITE_MAX)
					return -1;
				memcpy(f->scratch + LWS_PRE, b + skip, l - skip);
				if (lws_write(s->wsi, f->scratch + LWS_PRE, l - skip, LWS_WRITE_HTTP) < 0)
					return -1;
				skip = 0;
			}
		}
	}
	else
	{
		unsigned char *buf = f->scratch + LWS_PRE;
		size_t		at = 0;

		for (int i = 0; i < pc->n; i++)
		{
			memcpy(buf + at, pc->v[i].iov_base, pc->v[i].iov_len);
			at += pc->v[i].iov_len;
		}
		if (lws_write(s->wsi, buf, at, pc->json_only ? LWS_WRITE_TEXT : LWS_WRITE_HTTP) < (int) at)
		{
			if (f->verbose)
				logmsg("client: write failed (%s), closing", strerror(errno));
			return -1;
		}
	}
	f->m.messages_sent += (uint64_t) pc->msgs;
	f->m.bytes_sent += pc->len;
	return 0;
}

/* after a write: what next, and the 30 s clock */
static void
reschedule(struct session *s, int64_t now, int64_t next_due)
{
	bool		ready = s->outq_head != NULL;

	if (s->closing)
	{
		ready = ready || s->close_at_us <= now;
		next_due = s->close_at_us;
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
 * A writeable callback (ws.c, http.c): lws calls it only once it has sent
 * every byte of its own (its buflist, a pong) and has no close frame to
 * send, so the writes that follow need not ask it until the next input.
 */
int
session_write_updates(struct session *s)
{
	s->lws_check = false;
	return write_now(s);
}

/*
 * One write (from a writeable callback, writer_flush(), or the wheel, when
 * the socket takes it now): the queued pongs and errors first, then the
 * update of every subscription whose throttle window has ended and whose
 * poll has something newer, else a keepalive; or, once closing, the close
 * after the linger.  Returns -1 when the connection must close.
 */
static int
write_now(struct session *s)
{
	struct fanout *f = s->f;
	int64_t		now = now_us();
	int64_t		throttle = (int64_t) f->throttle_ms * 1000;
	int64_t		next_due = 0;
	struct outmsg *taken = NULL;
	struct pieces pc;
	int			rc = 0;

	/*
	 * A pass over thousands of sockets takes a while: read the
	 * replication stream every few ms during it, so that the sockets later
	 * in the pass already get the changes committed meanwhile.
	 */
	if (now - f->stream_polled_us >= STREAM_POLL_US)
	{
		f->stream_polled_us = now;
		stream_poll(f);
	}
	s->want_write = false;
	wheel_remove(f, s);
	lws_dll2_remove(&s->ready_node);
	if (s->gone)
		return 0;				/* being closed: lws or kill_soon() does it */
	if (s->closing && !s->outq_head)
	{
		if (now < s->close_at_us)
		{
			reschedule(s, now, 0);
			return 0;
		}
		if (s->kind == SESS_WS)
			lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
							 (unsigned char *) "rate limited", 12);
		s->gone = true;
		return -1;
	}

	pc.n = 0;
	pc.len = 0;
	pc.msgs = 0;
	pc.n_hdr = 0;
	pc.n_sse_id = 0;
	pc.n_not_found = 0;
	pc.json_only = !s->direct && s->kind == SESS_WS && lws_get_network_wsi(s->wsi) != s->wsi;

	/* the queued messages, in order; after a rate_limited one, the close lingers */
	while (s->outq_head)
	{
		struct outmsg *m = s->outq_head;

		if (!add_message(s, &pc, m->text, m->len, NULL, 0, 0))
			break;
		s->outq_head = m->next;
		if (!s->outq_head)
			s->outq_tail = NULL;
		s->outq_len--;
		m->next = taken;
		taken = m;
		if (m->close_after)
		{
			/*
			 * Let the client read the error before the close: closing with
			 * its unread frames still in our socket would send a reset.
			 */
			s->closing = true;
			s->close_at_us = now + CLOSE_LINGER_US;
			break;
		}
	}

	/* every subscription whose window has ended: the poll's latest state */
	for (int i = 0; i < s->n_subs && !s->closing; i++)
	{
		struct subscription *sub = s->subs[i];
		struct poll *p = sub->poll;
		struct msg_ref m;

		if (!sub->dirty)
			continue;
		if (p->state == POLL_NOT_FOUND)
		{
			char	   *e = pc.not_found[pc.n_not_found];
			size_t		len = render_error(e, sizeof(pc.not_found[0]), "not_found", "no such poll", p->id);

			if (!add_message(s, &pc, e, len, NULL, 0, 0))
			{
				next_due = now;	/* this write is full: the rest in the next */
				break;
			}
			pc.n_not_found++;
			sub_remove(f, sub);	/* moves the last subscription to i */
			i--;
			continue;
		}
		if (sub->last_sent_us && sub->last_sent_us + throttle > now)
		{
			if (!next_due || sub->last_sent_us + throttle < next_due)
				next_due = sub->last_sent_us + throttle;
			continue;
		}
		if (!message_for(f, sub, &m))
		{
			sub_set_dirty(sub, false);	/* nothing newer: a change wakes the session */
			continue;
		}
		if (!add_message(s, &pc, m.json, m.json_len, m.frame, m.frame_len, m.version))
		{
			next_due = now;		/* this write is full: the rest in the next */
			break;
		}
		if (!sub->need_snapshot && p->n_changes - sub->changes_seen > 1)
			f->m.coalesced += p->n_changes - sub->changes_seen - 1;
		sub->changes_seen = p->n_changes;
		sub->sent_version = m.version;
		sub->need_snapshot = false;
		sub->last_sent_us = now;
		if (throttle == 0)
			sub_set_dirty(sub, false);
		else if (!next_due || now + throttle < next_due)
			next_due = now + throttle;	/* its window's end looks again */
	}

	/* idle for --keepalive: an SSE comment or a WebSocket ping */
	if (s->keepalive_due && !s->closing && pc.msgs == 0)
	{
		static const char comment[] = ": keepalive\n\n";
		static const unsigned char ping[] = {0x89, 0x00};

		s->keepalive_due = false;
		s->last_write_us = now;
		if (s->kind == SESS_SSE)
			(void) piece(&pc, comment, sizeof(comment) - 1);
		else if (!pc.json_only)
			(void) piece(&pc, ping, sizeof(ping));
		else if (lws_write(s->wsi, f->scratch + LWS_PRE, 0, LWS_WRITE_PING) < 0)
			rc = -1;
	}
	if (pc.n > 0 && rc == 0)
	{
		s->keepalive_due = false;	/* anything written keeps the connection alive */
		s->last_write_us = now;
		rc = emit(s, &pc);
	}
	while (taken)
	{
		struct outmsg *m = taken;

		taken = m->next;
		free(m);
	}
	if (rc < 0)
	{
		s->gone = true;
		return -1;
	}
	reschedule(s, now, next_due);
	return 0;
}

/*
 * clients.c — the client protocol: WebSocket sessions on /ws (subscribe,
 * unsubscribe, ping, auth), input limits (frame size, rate, subscription
 * count), and the writer shared with SSE sessions that sends each dirty
 * subscription its latest state, at most once per throttle window.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

#define CLOSE_LINGER_US	(300 * 1000)
#define JSON_HEADROOM	64		/* room before the JSON for the SSE "id:/data:" prefix */

static void handle_message(struct session *s, const char *buf, size_t len);
static void handle_subscribe(struct session *s, const struct client_msg *m);
static void handle_auth(struct session *s, const struct client_msg *m);
static void queue_text(struct session *s, const char *text, size_t len, bool close_after);
static void queue_error(struct session *s, const char *code, const char *msg, int64_t poll);
static bool take_token(struct session *s);
static int	write_frame(struct session *s, char *json, size_t len, int64_t version);
static void throttle_cb(lws_sorted_usec_list_t *sul);
static void request_write(struct session *s);
static int	write_queued(struct session *s, char *out, int64_t now, int64_t *next_due,
						 bool *more);
static int	write_next_update(struct session *s, char *out, size_t cap, int64_t now,
							  int64_t *next_due, bool *more);

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
	if (kind == SESS_WS || kind == SESS_SSE)
	{
		s->counted = true;
		if (kind == SESS_WS)
			f->n_clients_ws++;
		else
			f->n_clients_sse++;
	}
}

void
session_cleanup(struct session *s)
{
	struct fanout *f = s->f;

	if (!f)
		return;					/* never initialised */
	lws_sul_cancel(&s->sul);
	while (s->n_subs > 0)
		sub_remove(f, s->subs[0]);
	while (s->outq_len > 0)
	{
		free(s->outq[s->outq_head].text);
		s->outq_head = (s->outq_head + 1) % OUTQ_MAX;
		s->outq_len--;
	}
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

static void
request_write(struct session *s)
{
	if (!s->wsi)
		return;
	if (!s->write_armed)
	{
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WRITE_TIMEOUT_SECS);
		s->write_armed = true;
		s->write_armed_us = now_us();
	}
	lws_callback_on_writable(s->wsi);
}

void
session_mark_dirty(struct session *s)
{
	request_write(s);
}

static void
throttle_cb(lws_sorted_usec_list_t *sul)
{
	struct session *s = lws_container_of(sul, struct session, sul);

	request_write(s);
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
	m = &s->outq[(s->outq_head + s->outq_len) % OUTQ_MAX];
	m->text = malloc(len);
	if (!m->text)
		return;
	memcpy(m->text, text, len);
	m->len = len;
	m->close_after = close_after;
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
		existing->dirty = existing->poll->state != POLL_LOADING;
		if (existing->dirty)
			request_write(s);
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
	return 0;
}

/* a queued pong or error; after a rate_limited one, the close lingers */
static int
write_queued(struct session *s, char *out, int64_t now, int64_t *next_due, bool *more)
{
	struct outmsg *m = &s->outq[s->outq_head];
	bool		close_after = m->close_after;
	int			rc;

	memcpy(out, m->text, m->len);
	rc = write_frame(s, out, m->len, 0);
	free(m->text);
	s->outq_head = (s->outq_head + 1) % OUTQ_MAX;
	s->outq_len--;
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
		*next_due = s->close_at_us;
	}
	*more = s->outq_len > 0;
	return 0;
}

/*
 * The first dirty subscription whose throttle window has passed gets the
 * message that brings it to the poll's current state.  *more: another one
 * is ready now; *next_due: when the earliest throttled one will be.
 */
static int
write_next_update(struct session *s, char *out, size_t cap, int64_t now, int64_t *next_due,
				  bool *more)
{
	struct fanout *f = s->f;
	int64_t		throttle = (int64_t) f->throttle_ms * 1000;
	bool		wrote = false;

	for (int i = 0; i < s->n_subs; i++)
	{
		struct subscription *sub = s->subs[i];
		int64_t		version = 0;
		size_t		len;

		if (!sub->dirty)
			continue;
		if (wrote)
		{
			*more = true;
			break;
		}
		if (sub->poll->state == POLL_NOT_FOUND)
		{
			int64_t		id = sub->poll->id;

			sub_remove(f, sub);	/* moves the last subscription to i */
			len = render_error(out, cap, "not_found", "no such poll", id);
			if (write_frame(s, out, len, 0) < 0)
				return -1;
			wrote = true;
			i--;
			continue;
		}
		if (sub->last_sent_us + throttle > now)
		{
			if (!*next_due || sub->last_sent_us + throttle < *next_due)
				*next_due = sub->last_sent_us + throttle;
			continue;
		}
		len = render_message(f, sub, out, cap, &version);
		sub->dirty = false;
		if (len == 0)
			continue;			/* nothing newer than what the client has */
		if (write_frame(s, out, len, version) < 0)
			return -1;
		sub->sent_version = version;
		sub->need_snapshot = false;
		sub->last_sent_us = now;
		wrote = true;
	}
	return 0;
}

/*
 * One write per writeable callback: a queued pong or error first, then
 * the next subscription update.  Returns -1 when the connection must close.
 */
int
session_write_updates(struct session *s)
{
	struct fanout *f = s->f;
	char	   *out = (char *) f->scratch + LWS_PRE + JSON_HEADROOM;
	size_t		cap = SCRATCH_SIZE - 2 * JSON_HEADROOM;
	int64_t		now = now_us();
	int64_t		next_due = 0;
	bool		more = false;
	int			rc;

	if (s->outq_len > 0)
		rc = write_queued(s, out, now, &next_due, &more);
	else if (s->closing)
	{
		if (now < s->close_at_us)
		{
			lws_sul_schedule(f->lws, 0, &s->sul, throttle_cb, s->close_at_us - now);
			return 0;
		}
		lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
						 (unsigned char *) "rate limited", 12);
		return -1;
	}
	else
		rc = write_next_update(s, out, cap, now, &next_due, &more);
	if (rc < 0)
		return -1;
	if (more)
		lws_callback_on_writable(s->wsi);
	else if (next_due)
		lws_sul_schedule(f->lws, 0, &s->sul, throttle_cb, next_due - now);
	/* the socket took a write: the 30 s clock restarts, or stops if idle */
	if (more || next_due)
	{
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WRITE_TIMEOUT_SECS);
		s->write_armed = true;
		s->write_armed_us = now;
	}
	else
	{
		lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
		s->write_armed = false;
	}
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
				return -1;
			}
			memcpy(s->rx + s->rx_len, in, len);
			s->rx_len += len;
			if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
			{
				handle_message(s, s->rx, s->rx_len);
				s->rx_len = 0;
			}
			break;
		case LWS_CALLBACK_SERVER_WRITEABLE:
			return session_write_updates(s);
		case LWS_CALLBACK_CLOSED:
			session_note_close(s);
			session_cleanup(s);
			break;
		default:
			break;
	}
	return 0;
}

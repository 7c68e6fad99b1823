/*
 * ws.c — the WebSocket protocol on /ws: the handshake (path, --max-clients,
 * token), client messages (subscribe, unsubscribe, ping, auth) with their
 * limits (frame size, 20 messages/s with a burst of 80, 64 subscriptions),
 * and lws's WebSocket callbacks.  Frames RFC 6455 forbids never get here
 * (wsguard.c).  Calls sessions.c, writer.c, polls.c, protocol.c,
 * messages.c, voting.c (vote and retract) and loop.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

static bool take_token(struct session *s);
static void handle_subscribe(struct session *s, const struct client_msg *m);
static void handle_auth(struct session *s, const struct client_msg *m);
static void handle_message(struct session *s, const char *buf, size_t len);

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

	if (!session_may_see(f, s, m->poll))
	{
		f->m.rejected_inputs++;
		writer_error(s, "unauthorized", "no valid token grants this poll", m->poll);
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
			writer_mark_dirty(s, existing);
		}
		return;
	}
	if (s->n_subs >= MAX_SUBSCRIPTIONS)
	{
		f->m.rejected_inputs++;
		writer_error(s, "too_many_subscriptions", "at most 64 subscriptions per connection", m->poll);
		return;
	}
	if (!session_subscribe(s, m->poll, m->has_version ? m->version : 0))
		writer_error(s, "bad_request", "out of memory", m->poll);
}

static void
handle_auth(struct session *s, const struct client_msg *m)
{
	struct fanout *f = s->f;
	struct grant g;
	const char *why = "";

	if (!f->jwt && !f->keys.voter_len)
		return;					/* tokens are not asked for: nothing to check */
	if (token_verify(&f->keys, m->token, (int64_t) time(NULL), &g, &why) < 0)
	{
		f->m.rejected_inputs++;
		writer_error(s, "unauthorized", why, -1);
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
		writer_queue(s, out, (size_t) n, true);
		s->closing = true;
		return;
	}
	if (client_msg_parse(buf, len, &m, &why) < 0)
	{
		/* a vote's error echoes its ref: voting.c answers every vote */
		if (m.type == CMSG_VOTE || m.type == CMSG_RETRACT)
		{
			voting_ws_refuse(s, &m, "bad_request", why);
			return;
		}
		f->m.rejected_inputs++;
		writer_error(s, "bad_request", why, m.has_poll ? m.poll : -1);
		return;
	}
	switch (m.type)
	{
		case CMSG_PING:
			n = (int) render_pong(out, sizeof(out), m.ping_id);
			if (n > 0)
				writer_queue(s, out, (size_t) n, false);
			break;
		case CMSG_AUTH:
			handle_auth(s, &m);
			break;
		case CMSG_SUBSCRIBE:
			handle_subscribe(s, &m);
			break;
		case CMSG_VOTE:
		case CMSG_RETRACT:
			voting_ws_message(s, &m);
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

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, for a request with an Upgrade header:
 * only "websocket" goes on; anything else closes the connection (-1).
 *
 * lws 4.1 answers an Upgrade it does not know with a 403 and completes the
 * transaction itself, then goes on regardless (lws_handshake_server()):
 * it asks this, then compares the Upgrade value again and serves the
 * request as plain HTTP.  On a keep-alive connection (the request is not
 * the connection's first: the previous one left it keep-alive) completing
 * the transaction has freed the header table that value points into, and
 * the per-session data (HTTP_DROP_PROTOCOL; here user is NULL): a
 * heap-use-after-free in lws's strcasecmp, then lws_http_action() on a
 * request without headers.  Our -1 is lws's only way out between the two:
 * it closes the connection after its 403.  `in` (that value) may be freed:
 * never read; the header table is asked instead, which lws has detached
 * (or reset, with a pipelined request waiting) when it completed the
 * transaction.  "h2c" is refused too: no client of ours upgrades to HTTP/2
 * in cleartext (over TLS, ALPN negotiates HTTP/2 without an Upgrade).
 */
int
ws_confirm_upgrade(struct lws *wsi)
{
	char		value[16];

	if (lws_hdr_copy(wsi, value, sizeof(value), WSI_TOKEN_UPGRADE) <= 0 ||
		strcasecmp(value, "websocket") != 0)
		return -1;
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
			voting_note_peer(s);	/* the upgrade's X-Forwarded-For */
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

/*
 * sessions.c — a session's lifetime, in one place: session_init() when lws
 * hands us a connection, session_detach() from every lws callback that
 * frees the per-session data (main.c routes CLOSED, CLOSED_HTTP,
 * HTTP_DROP_PROTOCOL and WSI_DESTROY here), which takes the session off
 * its subscriptions, the ready list, the throttle wheel, the sweep list and
 * the snapshots' ring first, and is idempotent.  Also what a session may
 * see (its token's grant, and the end of its subscriptions when the token
 * expires), and the 1 s sweep over WebSocket and SSE sessions: the 30 s
 * write timeout, token expiry, keepalives.
 *
 * Calls writer.c, snapshots.c, votes.c, polls.c, auth.c and loop.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

static void sweep_cb(struct fanout *f);

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
	s->fd = -1;
	if (kind == SESS_WS || kind == SESS_SSE)
	{
		/*
		 * Plain TCP on a connection of its own: the writer sends to the
		 * socket itself (writer.c).  Over TLS, or as an HTTP/2 stream,
		 * every byte goes through lws.
		 */
		if (!lws_is_ssl(wsi) && lws_get_network_wsi(wsi) == wsi)
		{
			s->fd = lws_get_socket_fd(wsi);
			s->direct = s->fd >= 0;
		}
		s->lws_check = true;	/* lws may still be sending the handshake or headers */
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
	ev_io_stop(f->loop, &s->drain);	/* a no-op unless started (http.c) */
	ev_io_stop(f->loop, &s->unchoke);	/* likewise */
	writer_forget(s);
	lws_dll2_remove(&s->stream_node);
	snap_forget_session(f, s);
	votes_forget_session(s);	/* its queued votes go, those in a batch answer no one */
	q_forget_session(s);
	csv_forget_session(s);
	free(s->reqbody);
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

/*
 * The request's token (Authorization: Bearer, or ?token=), checked with
 * the --jwt-secret-file secret or the voter secret: 1 when valid (s->grant
 * holds it), 0 when none was given, -1 when one was given and refused.
 */
int
session_token_from_request(struct fanout *f, struct session *s, struct lws *wsi)
{
	char		buf[TOKEN_MAX + 16];
	const char *tok = NULL;
	const char *why = "";

	if (!f->jwt && !f->keys.voter_len)
		return 0;
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
		strncasecmp(buf, "Bearer ", 7) == 0)
		tok = buf + 7;
	else
		tok = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));
	if (!tok)
		return 0;
	grant_free(&s->grant);
	if (token_verify(&f->keys, tok, (int64_t) time(NULL), &s->grant, &why) < 0)
	{
		f->m.rejected_inputs++;
		if (f->verbose)
			logmsg("client: token refused: %s", why);
		return -1;
	}
	return 1;
}

/*
 * As session_token_from_request(), for reads: without --jwt-secret-file
 * reads are open, and a refused (voter) token refuses none.
 */
int
session_auth_from_request(struct fanout *f, struct session *s, struct lws *wsi)
{
	int			rc = session_token_from_request(f, s, wsi);

	return rc < 0 && !f->jwt ? 0 : rc;
}

bool
session_may_see(struct fanout *f, struct session *s, int64_t poll_id)
{
	return !f->jwt || grant_allows(&s->grant, poll_id, (int64_t) time(NULL));
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
			writer_queue(s, buf, n, s->kind == SESS_SSE);
	}
}

/*
 * A new subscription of s to poll id (from the version the client has); a
 * poll still loading puts s on the snapshots' ring, to be asked for in turn.
 */
struct subscription *
session_subscribe(struct session *s, int64_t id, int64_t version)
{
	struct poll *p = poll_get(s->f, id);
	struct subscription *sub = p ? sub_add(s->f, s, p, version) : NULL;

	if (sub && p->state == POLL_LOADING)
		snap_want(s->f, s);
	return sub;
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
		if (f->keepalive_s && session_swept(s) && !s->gone && !s->keepalive_due &&
			now - s->last_write_us >= f->keepalive_s * (int64_t) 1000000)
		{
			s->keepalive_due = true;
			writer_request(s);
		}

		if (s->write_armed && session_swept(s) && s->wsi &&
			now - s->write_armed_us >= WRITE_TIMEOUT_SECS * (int64_t) 1000000)
		{
			s->gone = true;
			kill_soon(f, s->wsi, PENDING_TIMEOUT_USER_OK);
		}
	} lws_end_foreach_dll(d);

	/*
	 * lws's own timeouts (handshake, HTTP idle, close handshake) live on
	 * its one lws_sul timer, which its libev plugin cannot move earlier
	 * once armed (loop.c): on an idle daemon a client that never
	 * finishes its handshake was closed ~9 s late.  A wake-up of lws's
	 * loop makes it service whatever is due, so nudging it here bounds
	 * that lateness to this sweep's second.
	 */
	lws_cancel_service(f->lws);
	timer_start(&f->sweep_timer, 1000 * 1000);
}

void
sessions_start(struct fanout *f)
{
	timer_init(f, &f->sweep_timer, sweep_cb);
	timer_start(&f->sweep_timer, 1000 * 1000);
}

void
sessions_stop(struct fanout *f)
{
	timer_stop(&f->sweep_timer);
}

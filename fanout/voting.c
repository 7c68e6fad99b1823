/*
 * voting.c — votes from clients: the WebSocket vote and retract messages,
 * POST, DELETE and GET on /polls/ID/vote, and POST /voters (anonymous
 * voter tokens).  Who votes comes from the session's token, never from the
 * message: the voter is its sub, its vote claim says where, its seg is the
 * segment.  Then the limits (--vote-rate per voter, ten times that per
 * client address), then the vote goes to votes.c, and its answer (voted
 * or error, echoing ref) goes back when votes.c has its outcome: after
 * the commit.
 *
 * HTTP answers are left in the session (s->vote_answered, http_status, the
 * body) for http.c to write: 1 from the voting_http_* calls means "an
 * answer is ready", and an answer that comes later asks lws for a
 * writeable callback, where http.c finds it.  Calls sessions.c (the
 * request's token), writer.c, votes.c, protocol.c, auth.c, ratelimit.c
 * and loop.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "fanout.h"

#define ADDRESS_FACTOR		10		/* a client address may vote ten times a voter's rate */
#define VOTERS_RATE			1.0		/* POST /voters per address per second */
#define VOTERS_BURST		20.0
#define VOTER_TOKEN_DAYS	365
#define RATE_KEYS_MAX		200000	/* keys each rate table holds at most */
#define RATE_SWEEP_US		(5 * 1000 * 1000)

static void ws_done(struct fanout *f, struct vote *v, const struct vote_outcome *o);

/* a vote refused before it reaches votes.c counts as received and refused */
static void
refused_early(struct fanout *f, const char *code)
{
	f->m.rejected_inputs++;
	f->votes.received++;
	votes_count_refusal(f, code);
}
static void http_done(struct fanout *f, struct vote *v, const struct vote_outcome *o);

static void
sweep_cb(struct fanout *f)
{
	int64_t		now = now_us();

	rl_sweep(&f->voter_rate, now);
	rl_sweep(&f->address_rate, now);
	rl_sweep(&f->voters_rate, now);
	timer_start(&f->rate_sweep, RATE_SWEEP_US);
}

void
voting_start(struct fanout *f)
{
	double		r = f->vote_rate;

	rl_init(&f->voter_rate, r, 2 * r, RATE_KEYS_MAX);
	rl_init(&f->address_rate, ADDRESS_FACTOR * r, 2 * ADDRESS_FACTOR * r, RATE_KEYS_MAX);
	rl_init(&f->voters_rate, VOTERS_RATE, VOTERS_BURST, RATE_KEYS_MAX);
	timer_init(f, &f->rate_sweep, sweep_cb);
	timer_start(&f->rate_sweep, RATE_SWEEP_US);
}

void
voting_stop(struct fanout *f)
{
	timer_stop(&f->rate_sweep);
	rl_free(&f->voter_rate);
	rl_free(&f->address_rate);
	rl_free(&f->voters_rate);
}

/*
 * The client's address as the rate limit keys it: IPv4 whole, IPv6 by its
 * /64 (one host holds a whole /64).  Behind a --trusted-proxy, the address
 * X-Forwarded-For gives (proxies.c); read while the request's headers are
 * there: on each HTTP request, at a WebSocket's upgrade (voting_note_peer).
 */
static const char *
peer_of(struct session *s)
{
	if (!s->peer[0] && s->wsi)
	{
		char	   *p;
		int			colons = 0;
		char		peer[64];
		char		xff[1024];
		size_t		n = 0;

		lws_get_peer_simple(s->wsi, peer, sizeof(peer));
		/* each X-Forwarded-For header line is a fragment; the last ones count */
		xff[0] = '\0';
		for (int i = 0; s->f->n_trusted_proxies > 0 && i < 64; i++)
		{
			int			len = lws_hdr_fragment_length(s->wsi, WSI_TOKEN_X_FORWARDED_FOR, i);

			if (len <= 0)
				break;
			if (n + (size_t) len + 2 > sizeof(xff))
				n = 0;			/* too long: the rightmost line only */
			if ((size_t) len + 2 > sizeof(xff))
				break;
			if (n)
				xff[n++] = ',';
			if (lws_hdr_copy_fragment(s->wsi, xff + n, (int) (sizeof(xff) - n), WSI_TOKEN_X_FORWARDED_FOR, i) < 0)
				break;
			n += (size_t) len;
		}
		proxy_client_address(s->f->trusted_proxies, s->f->n_trusted_proxies, peer,
							 n ? xff : NULL, s->peer, sizeof(s->peer));
		for (p = s->peer; *p; p++)
			if (*p == ':' && ++colons == 4)
			{
				*p = '\0';
				break;
			}
		if (!s->peer[0])
			strcpy(s->peer, "?");
	}
	return s->peer;
}

void
voting_note_peer(struct session *s)
{
	(void) peer_of(s);
}

/*
 * May this session's token vote in poll, and is it within its rates?
 * NULL: yes; else the error code, with *why and *retry_us set.
 */
static const char *
vote_allowed(struct session *s, int64_t poll, bool counts, const char **why, int64_t *retry_us)
{
	struct fanout *f = s->f;
	int64_t		now_s = (int64_t) time(NULL);
	int64_t		now = now_us();
	const struct grant *g = &s->grant;

	*retry_us = 0;
	if (!g->present || !g->sub)
	{
		*why = "no token grants votes here";
		return "forbidden";
	}
	if (g->exp <= now_s)
	{
		*why = "the token has expired";
		return "unauthorized";
	}
	if (!grant_allows_vote(g, poll, now_s))
	{
		*why = "the token does not grant votes in this poll";
		return "forbidden";
	}
	if (!counts)
		return NULL;
	if ((*retry_us = rl_take(&f->voter_rate, g->sub, now)) > 0)
	{
		*why = "this voter votes too often";
		return "rate_limited";
	}
	if ((*retry_us = rl_take(&f->address_rate, peer_of(s), now)) > 0)
	{
		*why = "too many votes from this address";
		return "rate_limited";
	}
	return NULL;
}

/* {"type":"voted",...}; 0 when it does not fit */
static size_t
render_voted(char *out, size_t cap, const struct vote *v, const struct vote_outcome *o)
{
	struct jbuf b = {out, 0, cap, false};

	jb_fmt(&b, "{\"type\":\"voted\",\"poll\":%lld", (long long) v->poll);
	if (v->has_ref)
	{
		jb_str(&b, ",\"ref\":");
		jb_json_string(&b, v->ref);
	}
	jb_str(&b, ",\"result\":");
	jb_json_string(&b, o->result ? o->result : "");
	jb_str(&b, ",\"options\":[");
	for (int i = 0; i < o->n_options; i++)
		jb_fmt(&b, "%s%d", i ? "," : "", o->options[i]);
	jb_str(&b, "]}");
	return b.overflow ? 0 : b.len;
}

/* a refusal before the vote reaches votes.c: counted like one after */
void
voting_ws_refuse(struct session *s, const struct client_msg *m, const char *code, const char *why)
{
	char		buf[1024];
	size_t		n;

	refused_early(s->f, code);
	n = render_error_ref(buf, sizeof(buf), code, why, m->has_poll ? m->poll : -1,
						 m->has_ref ? m->ref : NULL);
	if (n)
		writer_queue(s, buf, n, false);
}

/* a vote or retract message (parsed, within the connection's message rate) */
void
voting_ws_message(struct session *s, const struct client_msg *m)
{
	struct fanout *f = s->f;
	const char *why = NULL;
	const char *code;
	int64_t		retry;
	struct vote *v;

	if (m->bad_vote)
	{
		voting_ws_refuse(s, m, "bad_vote", m->bad_vote);
		return;
	}
	code = vote_allowed(s, m->poll, true, &why, &retry);
	if (code)
	{
		voting_ws_refuse(s, m, code, why);
		return;
	}
	v = votes_new(m->poll, m->type == CMSG_VOTE ? VOTE_CAST : VOTE_RETRACT, s->grant.sub,
				  s->grant.seg);
	if (!v)
	{
		voting_ws_refuse(s, m, "unavailable", "out of memory");
		return;
	}
	if (m->type == CMSG_VOTE)
		ballot_text(&m->ballot, v->ballot, sizeof(v->ballot));
	v->has_ref = m->has_ref;
	strcpy(v->ref, m->ref);
	v->done = ws_done;
	(void) votes_submit(f, s, v);
}

static void
ws_done(struct fanout *f, struct vote *v, const struct vote_outcome *o)
{
	char		buf[1024];
	size_t		n;

	(void) f;
	if (o->code)
		n = render_error_ref(buf, sizeof(buf), o->code, o->message, v->poll,
							 v->has_ref ? v->ref : NULL);
	else
		n = render_voted(buf, sizeof(buf), v, o);
	if (n && !v->s->gone)
		writer_queue(v->s, buf, n, false);
}

/* ---- HTTP ---- */

static int
http_status_of(const char *code)
{
	static const struct
	{
		const char *code;
		int			status;
	}			map[] = {
		{"bad_request", 400}, {"bad_vote", 400}, {"unauthorized", 401}, {"forbidden", 403},
		{"not_found", 404}, {"closed", 409}, {"not_open", 409}, {"change_not_allowed", 409},
		{"rate_limited", 429}, {"unavailable", 503}
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].code, code) == 0)
			return map[i].status;
	return 500;
}

/* the answer for http.c to write: an error (body in errbody) */
static int
http_error(struct session *s, const char *code, const char *why, int64_t poll, const char *ref,
		   int64_t retry_us)
{
	size_t		n = render_error_ref(s->errbody, sizeof(s->errbody), code, why, poll, ref);

	if (n == 0)
		n = render_error(s->errbody, sizeof(s->errbody), code, "refused", poll);
	s->http_status = http_status_of(code);
	s->retry_after = retry_us > 0 ? (int) ((retry_us + 999999) / 1000000) : 0;
	free(s->dyn_body);
	s->dyn_body = NULL;
	s->body = s->errbody;
	s->body_len = n;
	s->vote_answered = true;
	return 1;
}

static int
http_json(struct session *s, int status, const char *json, size_t n)
{
	char	   *body = malloc(n + 1);

	if (!body)
		return -1;
	memcpy(body, json, n);
	free(s->dyn_body);
	s->dyn_body = body;
	s->body = body;
	s->body_len = n;
	s->http_status = status;
	s->retry_after = 0;
	s->vote_answered = true;
	return 1;
}

/* "/voters": 0 with *id 0; "/polls/ID/vote": 0 with *id (-1: a bad id); else false */
bool
voting_is_vote_path(const char *path, int64_t *id)
{
	const char *slash;

	if (strcmp(path, "/voters") == 0)
	{
		*id = 0;
		return true;
	}
	if (strncmp(path, "/polls/", 7) != 0 || !(slash = strchr(path + 7, '/')) ||
		strcmp(slash, "/vote") != 0)
		return false;
	if (parse_int64(path + 7, (size_t) (slash - path - 7), id) < 0 || *id <= 0)
		*id = -1;
	return true;
}

/* POST /voters: a new anonymous voter token */
static int
issue_voter_token(struct fanout *f, struct session *s)
{
	unsigned char rnd[16];
	char		id[40], claims[200], token[512], body[600];
	int64_t		now = (int64_t) time(NULL);
	int64_t		retry;
	size_t		n;
	int			len;

	if ((retry = rl_take(&f->voters_rate, peer_of(s), now_us())) > 0)
	{
		f->m.rejected_inputs++;
		return http_error(s, "rate_limited", "too many voter tokens for this address", -1,
						  NULL, retry);
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return http_error(s, "unavailable", "no randomness", -1, NULL, 0);
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	snprintf(claims, sizeof(claims), "{\"sub\":\"anon:%s\",\"vote\":\"*\",\"iat\":%lld,\"exp\":%lld}",
			 id, (long long) now, (long long) (now + VOTER_TOKEN_DAYS * 86400LL));
	n = jwt_sign(f->voter_secret, f->voter_secret_len, claims, token, sizeof(token));
	if (n == 0)
		return http_error(s, "unavailable", "cannot sign", -1, NULL, 0);
	len = snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
	return http_json(s, 200, body, (size_t) len);
}

static int
submit_http(struct fanout *f, struct session *s, int64_t id, enum vote_kind kind,
			const struct client_msg *m)
{
	struct vote *v = votes_new(id, kind, s->grant.sub, s->grant.seg);

	if (!v)
		return http_error(s, "unavailable", "out of memory", id, NULL, 0);
	if (m)
	{
		ballot_text(&m->ballot, v->ballot, sizeof(v->ballot));
		v->has_ref = m->has_ref;
		strcpy(v->ref, m->ref);
	}
	v->done = http_done;
	if (votes_submit(f, s, v) < 0)
		return s->vote_answered ? 1 : -1;	/* http_done() answered */
	return 0;
}

/*
 * A request on /voters or /polls/ID/vote (id: 0 for /voters, -1 for a bad
 * poll id).  1: the answer is in s; 0: it comes later; -1: close.
 */
int
voting_http_request(struct fanout *f, struct lws *wsi, struct session *s, const char *path,
					int64_t id)
{
	bool		post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
	bool		del = lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0;
	bool		get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	const char *why = NULL, *code;
	int64_t		retry;
	char		clen[24];

	(void) path;
	if (id == 0)
	{
		if (!f->anonymous_votes)
			return http_error(s, "not_found", "no such endpoint (the daemon runs without --anonymous-votes)", -1, NULL, 0);
		if (!post)
			return http_error(s, "bad_request", "POST /voters", -1, NULL, 0);
		return issue_voter_token(f, s);
	}
	if (id < 0)
	{
		f->m.rejected_inputs++;
		return http_error(s, "bad_request", "poll id must be a positive integer", -1, NULL, 0);
	}
	if (!post && !del && !get)
		return http_error(s, "bad_request", "GET, POST or DELETE", id, NULL, 0);
	if (session_token_from_request(f, s, wsi) < 0)
		code = "unauthorized", why = "the token is refused", retry = 0;
	else
		code = vote_allowed(s, id, !get, &why, &retry);
	if (code)
	{
		if (get)
			f->m.rejected_inputs++;
		else
			refused_early(f, code);
		return http_error(s, code, why, id, NULL, retry);
	}
	if (get)
		return submit_http(f, s, id, VOTE_LOOKUP, NULL);
	if (del)
		return submit_http(f, s, id, VOTE_RETRACT, NULL);
	/* POST: the vote is in the body, which comes next */
	if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
		strcmp(clen, "0") == 0)
	{
		refused_early(f, "bad_request");
		return http_error(s, "bad_request", "a vote needs a body: {\"option\":2} or {\"options\":[1,3]}",
						  id, NULL, 0);
	}
	s->vote_wants_body = true;	/* http.c gathers it into s->reqbody */
	s->vote_poll = id;
	return 0;
}

/* the body of a POST /polls/ID/vote is in: 1, 0 or -1 as voting_http_request */
int
voting_http_body_done(struct session *s)
{
	struct fanout *f = s->f;
	struct client_msg *m = malloc(sizeof(*m));
	const char *why = NULL;
	int			rc;

	if (!m)
		return -1;
	if (vote_body_parse(s->reqbody ? s->reqbody : "", s->reqbody_len, m, &why) < 0)
	{
		refused_early(f, "bad_request");
		rc = http_error(s, "bad_request", why, s->vote_poll, m->has_ref ? m->ref : NULL, 0);
	}
	else if (m->bad_vote)
	{
		refused_early(f, "bad_vote");
		rc = http_error(s, "bad_vote", m->bad_vote, s->vote_poll, m->has_ref ? m->ref : NULL, 0);
	}
	else
		rc = submit_http(f, s, s->vote_poll, VOTE_CAST, m);
	free(m);
	s->vote_wants_body = false;
	return rc;
}

static void
http_done(struct fanout *f, struct vote *v, const struct vote_outcome *o)
{
	struct session *s = v->s;
	char		buf[1024];
	size_t		n;

	(void) f;
	if (o->code)
		(void) http_error(s, o->code, o->message, v->poll, v->has_ref ? v->ref : NULL, 0);
	else
	{
		if (v->kind == VOTE_LOOKUP)
		{
			struct jbuf b = {buf, 0, sizeof(buf), false};

			jb_fmt(&b, "{\"type\":\"ballot\",\"poll\":%lld,\"options\":[", (long long) v->poll);
			for (int i = 0; i < o->n_options; i++)
				jb_fmt(&b, "%s%d", i ? "," : "", o->options[i]);
			jb_str(&b, "]}");
			n = b.overflow ? 0 : b.len;
		}
		else
			n = render_voted(buf, sizeof(buf), v, o);
		if (http_json(s, 200, buf, n) < 0)
			(void) http_error(s, "unavailable", "out of memory", v->poll, NULL, 0);
	}
	if (s->wsi && !s->gone)
		lws_callback_on_writable(s->wsi);
}

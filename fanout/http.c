/*
 * http.c — HTTP routing: the demo page and the browser client (built in,
 * or from --web-root), GET /polls/ID (a snapshot), GET /polls/ID/events
 * (Server-Sent Events), /healthz, /metrics, CORS preflights, and the CORS
 * headers of every response.  Snapshot and SSE requests wait, as a
 * subscription, for the poll to load.  Votes (/polls/ID/vote, /voters)
 * are voting.c's; their answers are written here.  Calls sessions.c,
 * voting.c, writer.c, messages.c, snapshots.c and stream.c (health),
 * polls.c, metrics.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "fanout.h"

/* assets.S */
extern const char asset_index_html[], asset_index_html_end[];
extern const char asset_client_js[], asset_client_js_end[];

static int	start_response(struct session *s, int status, const char *ctype,
						   const char *body, size_t len, char *owned);
static int	respond_error(struct session *s, int status, const char *code, const char *msg,
						  int64_t poll);
static int	serve_asset(struct fanout *f, struct session *s, const char *name,
						const char *ctype);
static int	parse_poll_path(const char *path, int64_t *id, bool *events);
static int	write_headers(struct session *s, int status, const char *ctype, size_t len);
static int	http_request(struct fanout *f, struct lws *wsi, struct session *s, const char *path);
static int	http_writeable(struct fanout *f, struct session *s);
static int	body_completed(struct fanout *f, struct session *s);
static int64_t request_body_length(struct lws *wsi);
static void stream_ignores_input(struct session *s);
static bool await_client(struct session *s);
static void resume_rx(struct session *s);
static int	serve_poll(struct fanout *f, struct lws *wsi, struct session *s, int64_t id,
					   bool events);
static int	vote_answer(struct session *s, int r);

/*
 * A reconnecting EventSource sends the id of the last event it saw: the
 * version it has.  The stream then resumes like a WebSocket subscribe with
 * that version (a snapshot once the poll changes past it).
 */
static int64_t
last_event_id(struct lws *wsi)
{
	char		buf[32];
	int			n = lws_hdr_custom_copy(wsi, buf, sizeof(buf), "last-event-id:", 14);
	int64_t		v;

	if (n <= 0 || parse_int64(buf, (size_t) n, &v) < 0)
		return 0;
	return v;
}

static int
add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
		   unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *) name,
									   (const unsigned char *) value, (int) strlen(value), p, end);
}

/*
 * The CORS headers every response carries: any origin ("*") by default;
 * with --allow-origin, the request's Origin when it is one of them.  A
 * preflight also gets the methods and headers a request may use.
 * Authority comes from tokens in headers, never from cookies: no
 * credentials are allowed.
 */
static int
add_cors(struct fanout *f, struct lws *wsi, bool preflight, unsigned char **p, unsigned char *end)
{
	char		origin[256];
	const char *allow = f->n_origins ? NULL : "*";

	if (!allow && lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) > 0)
		for (int i = 0; i < f->n_origins; i++)
			if (strcmp(origin, f->origins[i]) == 0)
				allow = origin;
	if ((allow && add_header(wsi, "access-control-allow-origin:", allow, p, end)) ||
		(f->n_origins && add_header(wsi, "vary:", "Origin", p, end)))
		return -1;
	if (preflight &&
		(add_header(wsi, "access-control-allow-methods:", "GET, POST, DELETE", p, end) ||
		 add_header(wsi, "access-control-allow-headers:", "Authorization, Content-Type", p, end) ||
		 add_header(wsi, "access-control-max-age:", "600", p, end)))
		return -1;
	return 0;
}

static int
write_headers(struct session *s, int status, const char *ctype, size_t len)
{
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	char		retry[16];

	snprintf(retry, sizeof(retry), "%d", s->retry_after);

	if (lws_add_http_common_headers(s->wsi, (unsigned) status, ctype,
									len == (size_t) -1 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : len,
									&p, end) ||
		add_header(s->wsi, "cache-control:", "no-cache", &p, end) ||
		add_cors(s->f, s->wsi, status == 204, &p, end) ||
		(status == 429 && s->retry_after > 0 &&
		 lws_add_http_header_by_name(s->wsi, (const unsigned char *) "retry-after:",
									 (const unsigned char *) retry, (int) strlen(retry), &p, end)) ||
		lws_finalize_write_http_header(s->wsi, start, &p, end))
		return -1;
	s->headers_sent = true;
	return 0;
}

/* headers now, the body at the next writeable callback */
static int
start_response(struct session *s, int status, const char *ctype, const char *body,
			   size_t len, char *owned)
{
	free(s->dyn_body);
	s->dyn_body = owned;
	s->body = body;
	s->body_len = len;
	s->body_sent = 0;
	s->body_done = false;
	s->http_status = status;
	if (write_headers(s, status, ctype, len) < 0)
		return -1;
	(void) await_client(s);
	lws_callback_on_writable(s->wsi);
	return 0;
}

static int
respond_error(struct session *s, int status, const char *code, const char *msg, int64_t poll)
{
	size_t		n = render_error(s->errbody, sizeof(s->errbody), code, msg, poll);

	return start_response(s, status, "application/json", s->errbody, n, NULL);
}

static int
serve_asset(struct fanout *f, struct session *s, const char *name, const char *ctype)
{
	if (f->web_root)
	{
		char		path[4096];
		FILE	   *fp;
		struct stat st;
		char	   *body;

		snprintf(path, sizeof(path), "%s/%s", f->web_root, name);
		fp = fopen(path, "rb");
		if (!fp || fstat(fileno(fp), &st) < 0 || st.st_size > 8 * 1024 * 1024)
		{
			if (fp)
				fclose(fp);
			logmsg("http: cannot read %s: %s", path, strerror(errno));
			return respond_error(s, 404, "not_found", "no such file", -1);
		}
		body = malloc((size_t) st.st_size + 1);
		if (!body || fread(body, 1, (size_t) st.st_size, fp) != (size_t) st.st_size)
		{
			free(body);
			fclose(fp);
			return respond_error(s, 500, "bad_request", "cannot read file", -1);
		}
		fclose(fp);
		return start_response(s, 200, ctype, body, (size_t) st.st_size, body);
	}
	if (strcmp(name, "index.html") == 0)
		return start_response(s, 200, ctype, asset_index_html,
							  (size_t) (asset_index_html_end - asset_index_html), NULL);
	return start_response(s, 200, ctype, asset_client_js,
						  (size_t) (asset_client_js_end - asset_client_js), NULL);
}

/* "/polls/42" or "/polls/42/events": 0; not such a path: 1; bad id: -1 */
static int
parse_poll_path(const char *path, int64_t *id, bool *events)
{
	const char *p;
	const char *slash;
	size_t		n;

	if (strncmp(path, "/polls/", 7) != 0)
		return 1;
	p = path + 7;
	slash = strchr(p, '/');
	n = slash ? (size_t) (slash - p) : strlen(p);
	*events = false;
	if (slash)
	{
		if (strcmp(slash, "/events") != 0)
			return 1;
		*events = true;
	}
	if (parse_int64(p, n, id) < 0 || *id <= 0)
		return -1;
	return 0;
}

/* GET /polls/ID and /polls/ID/events: wait, as a subscription, for the poll */
static int
serve_poll(struct fanout *f, struct lws *wsi, struct session *s, int64_t id, bool events)
{
	struct poll *p;
	bool		ok = session_auth_from_request(f, s, wsi) >= 0 && session_may_see(f, s, id);

	grant_free(&s->grant);		/* checked; an SSE session re-reads it below */
	if (!ok)
	{
		f->m.rejected_inputs++;
		return respond_error(s, 401, "unauthorized", "no valid token grants this poll", id);
	}
	if (events && clients_full(f))
	{
		f->m.rejected_clients++;
		logmsg("client: refused, --max-clients %d reached", f->max_clients);
		return respond_error(s, 503, "bad_request", "too many clients", id);
	}
	p = poll_find(f, id);
	if ((!p || p->state == POLL_LOADING) && !stream_connected(f))
		return respond_error(s, 503, "bad_request", "postgres is away", id);
	if (events)
	{
		session_init(f, s, wsi, SESS_SSE);
		(void) session_auth_from_request(f, s, wsi);
		if (request_body_length(wsi) == 0)
			stream_ignores_input(s);
	}
	else
		s->kind = SESS_HTTP_SNAPSHOT;
	if (!session_subscribe(s, id, events ? last_event_id(wsi) : 0))
		return -1;
	return 0;				/* http_writeable() answers once the poll is loaded */
}

static int
serve_text(struct session *s, int status, const char *ctype, size_t cap,
		   size_t (*render) (struct fanout *f, char *out, size_t cap))
{
	char	   *body = malloc(cap);

	if (!body)
		return -1;
	return start_response(s, status, ctype, body, render(s->f, body, cap), body);
}

static size_t
render_health(struct fanout *f, char *out, size_t cap)
{
	/* never the connection's error: that names hosts and roles (it is in the log) */
	int			n = snprintf(out, cap, "%s\n", snap_healthy(f) ? "ok" :
							 stream_connected(f) ? "resyncing or lagging" : "not streaming");

	return n < 0 ? 0 : (size_t) n < cap ? (size_t) n : cap - 1;
}

/*
 * An SSE stream reads nothing more from its client.  Its transaction never
 * completes, so lws neither reads what the client sends after the request
 * (a pipelined request) nor stops polling for it: with those bytes in the
 * socket the loop never waited (a busy loop per such client).  A watcher
 * of ours drops them as they come, and closes the stream when the client
 * goes away.  (lws's rx flow control would stop the polling, but in 4.1 it
 * also stops an HTTP connection's writeable callbacks.)
 */
static void
drain_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = lws_container_of(w, struct session, drain);
	char		buf[1024];
	ssize_t		n;

	(void) revents;
	while ((n = recv(w->fd, buf, sizeof(buf), 0)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
	{
		ev_io_stop(loop, w);
		s->gone = true;
		kill_soon(s->f, s->wsi, PENDING_TIMEOUT_USER_OK);
	}
}

static void
stream_ignores_input(struct session *s)
{
	int			fd = lws_get_socket_fd(s->wsi);

	if (fd < 0 || lws_is_ssl(s->wsi))
		return;					/* over TLS the bytes are lws's to decrypt */
	ev_io_init(&s->drain, drain_cb, fd, EV_READ);
	ev_io_start(s->f->loop, &s->drain);
}

/*
 * A response the client does not read.  While it is unfinished lws 4.1
 * neither parses what the client pipelined behind the request nor stops
 * offering it back on every turn of the loop (its rx buflist): the loop
 * never waited for as long as the client read nothing (a client that
 * pipelined 2 000 requests and stopped reading held a core at ~80%).  So
 * when the socket takes no more, the connection's rx is flow-controlled
 * (the loop then waits) until a watcher of ours sees the socket writable
 * again (lws 4.1 ignores every event of an rx-flow-controlled HTTP
 * connection, POLLOUT too: hence our watcher, not its writeable callback).
 * await_client() is true when the socket is choked and rx paused.
 */
static void
unchoke_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = lws_container_of(w, struct session, unchoke);

	(void) loop;
	(void) revents;
	resume_rx(s);
}

static bool
await_client(struct session *s)
{
	int			fd;

	if (!lws_send_pipe_choked(s->wsi))
	{
		resume_rx(s);
		return false;
	}
	fd = lws_get_socket_fd(s->wsi);
	if (fd < 0 || ev_is_active(&s->unchoke))
		return true;
	if (lws_rx_flow_control(s->wsi, 0) < 0)
		return true;			/* then lws spins, as before, until the client reads */
	ev_io_init(&s->unchoke, unchoke_cb, fd, EV_WRITE);
	ev_io_start(s->f->loop, &s->unchoke);
	return true;
}

static void
resume_rx(struct session *s)
{
	if (!ev_is_active(&s->unchoke))
		return;
	ev_io_stop(s->f->loop, &s->unchoke);
	(void) lws_rx_flow_control(s->wsi, 1);
}

/* the request's Content-Length, 0 without one; lws refuses a malformed one */
static int64_t
request_body_length(struct lws *wsi)
{
	char		buf[32];
	int			n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH);
	int64_t		v;

	if (n <= 0)
		return 0;
	if (parse_int64(buf, (size_t) n, &v) < 0)
		return INT64_MAX;
	return v;
}

static int
http_request(struct fanout *f, struct lws *wsi, struct session *s, const char *path)
{
	int64_t		id = 0;
	bool		events = false;
	int			r;

	session_detach(s);
	session_init(f, s, wsi, SESS_HTTP_STATIC);
	if (request_body_length(wsi) > MAX_BODY)
	{
		f->m.rejected_inputs++;
		return respond_error(s, 413, "bad_request", "request body over 4 KiB", -1);
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0)
		return start_response(s, 204, "text/plain", "", 0, NULL);	/* a CORS preflight */
	if (voting_is_vote_path(path, &id))	/* /polls/ID/vote, /voters: voting.c */
		return vote_answer(s, voting_http_request(f, wsi, s, path, id));
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return respond_error(s, 405, "bad_request", "only GET is served", -1);
	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
		return serve_asset(f, s, "index.html", "text/html; charset=utf-8");
	if (strcmp(path, "/poll-client.js") == 0)
		return serve_asset(f, s, "poll-client.js", "application/javascript; charset=utf-8");
	if (strcmp(path, "/healthz") == 0)
		return serve_text(s, snap_healthy(f) ? 200 : 503, "text/plain", 512, render_health);
	if (strcmp(path, "/metrics") == 0)
		return serve_text(s, 200, "text/plain; version=0.0.4", 16384, metrics_render);
	r = parse_poll_path(path, &id, &events);
	if (r > 0)
		return respond_error(s, 404, "not_found", "no such endpoint", -1);
	if (r < 0)
	{
		f->m.rejected_inputs++;
		return respond_error(s, 400, "bad_request", "poll id must be a positive integer", -1);
	}
	return serve_poll(f, wsi, s, id, events);
}

/*
 * The body of a request that takes none has been read (and ignored).
 * lws's default would complete the transaction under a response still
 * being written.  Until ours completes it, lws stays in its body state and
 * calls this again for every read that brings more bytes (the next
 * pipelined request), without consuming them or getting to our writes: it
 * span.  So bytes after the body, before our answer is out, close the
 * connection (an HTTP client retries what was pipelined); without them the
 * answer goes as usual and the connection is kept.
 */
static int
body_completed(struct fanout *f, struct session *s)
{
	(void) f;
	if (s->body_completed)
		return -1;
	s->body_completed = true;
	if (s->kind == SESS_SSE)
		stream_ignores_input(s);	/* the body is in */
	return 0;
}

int
http_callback(struct fanout *f, struct lws *wsi, enum lws_callback_reasons reason,
			  struct session *s, void *in, size_t len)
{
	(void) len;
	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			return http_request(f, wsi, s, in);
		case LWS_CALLBACK_HTTP_WRITEABLE:
			return http_writeable(f, s);
		case LWS_CALLBACK_HTTP_BODY:
			/*
			 * Only a vote takes a body (voting.c); others are read and
			 * ignored (one over MAX_BODY was answered 413 from its
			 * Content-Length).
			 */
			if (s->vote_body)
				return voting_http_body(s, in, len);
			break;
		case LWS_CALLBACK_HTTP_BODY_COMPLETION:
			if (s->vote_body && !s->body_completed)
			{
				s->body_completed = true;
				return vote_answer(s, voting_http_body_done(s));
			}
			return body_completed(f, s);
		default:
			break;
	}
	return 0;
}

/* voting.c left an answer in s (r = 1), or it comes later (0), or close (-1) */
static int
vote_answer(struct session *s, int r)
{
	char	   *owned = s->dyn_body;

	if (r <= 0 || !s->vote_answered || s->headers_sent)
		return r;
	s->vote_answered = false;
	s->kind = SESS_HTTP_STATIC;
	s->dyn_body = NULL;			/* start_response() frees the old one */
	return start_response(s, s->http_status, "application/json", s->body, s->body_len, owned);
}

static int
http_writeable(struct fanout *f, struct session *s)
{
	if (!s->f)
		return 0;
	if (s->vote_answered && !s->headers_sent)
		return vote_answer(s, 1);	/* a vote's answer, after its commit */
	s->want_write = false;
	if ((s->kind == SESS_HTTP_SNAPSHOT || s->kind == SESS_SSE) && !s->headers_sent)
	{
		struct subscription *sub = s->n_subs ? s->subs[0] : NULL;
		struct poll *p = sub ? sub->poll : NULL;

		if (!p || p->state == POLL_LOADING)
			return 0;			/* poll_changed() wakes us */
		if (p->state == POLL_NOT_FOUND)
		{
			int64_t		id = p->id;

			sub_remove(f, sub);
			s->kind = SESS_HTTP_STATIC;
			return respond_error(s, 404, "not_found", "no such poll", id);
		}
		if (s->kind == SESS_HTTP_SNAPSHOT)
		{
			char	   *body = malloc(SCRATCH_SIZE);
			size_t		n = body ? render_snapshot_json(p, body, SCRATCH_SIZE) : 0;

			sub_remove(f, sub);
			s->kind = SESS_HTTP_STATIC;
			if (!body)
				return -1;
			return start_response(s, 200, "application/json", body, n, body);
		}
		if (write_headers(s, 200, "text/event-stream", (size_t) -1) < 0)
			return -1;
		/* an event stream lives as long as the client: no HTTP timeout */
		lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
		s->want_write = true;
		lws_callback_on_writable(s->wsi);
		return 0;
	}
	if (s->kind == SESS_SSE)
		return session_write_updates(s);
	if (s->headers_sent && s->kind == SESS_HTTP_STATIC)
	{
		struct lws *wsi = s->wsi;

		if (!s->body_done)
		{
			size_t		chunk = s->body_len - s->body_sent;
			unsigned char *buf;

			if (chunk > SCRATCH_SIZE)
				chunk = SCRATCH_SIZE;
			s->body_done = s->body_sent + chunk == s->body_len;
			buf = f->scratch + LWS_PRE;
			memcpy(buf, s->body + s->body_sent, chunk);
			if (lws_write(wsi, buf, chunk,
						  s->body_done ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int) chunk)
				return -1;
			s->body_sent += chunk;
		}
		/*
		 * The rest, or the end lws still holds, goes when the client reads
		 * (see await_client): the transaction completes only then.
		 */
		if (await_client(s) || !s->body_done)
		{
			lws_callback_on_writable(wsi);
			return 0;
		}
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		/*
		 * lws frees the per-session data when a keep-alive transaction
		 * completes, with no CLOSED_HTTP callback: let go of everything
		 * first (an SSE session that met an unknown poll is still on the
		 * stream list and counted).
		 */
		session_detach(s);
		if (lws_http_transaction_completed(wsi))
			return -1;
	}
	return 0;
}

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
extern const char asset_dashboard_html[], asset_dashboard_html_end[];
extern const char asset_widget_js[], asset_widget_js_end[];
extern const char asset_uplot_js[], asset_uplot_js_end[];
extern const char asset_uplot_css[], asset_uplot_css_end[];

/*
 * The built-in files, or with --web-root the files of that name there
 * (the widget is poll-client.js and poll-widget.js in one script, so that
 * it reuses the client rather than copying it).
 */
static const struct asset
{
	const char *path;
	const char *ctype;
	const char *files[2];
	const char *start, *end;
}			assets[] = {
	{"/", "text/html; charset=utf-8", {"index.html"}, asset_index_html, asset_index_html_end},
	{"/index.html", "text/html; charset=utf-8", {"index.html"}, asset_index_html, asset_index_html_end},
	{"/poll-client.js", "application/javascript; charset=utf-8", {"poll-client.js"},
	asset_client_js, asset_client_js_end},
	{"/dashboard", "text/html; charset=utf-8", {"dashboard.html"},
	asset_dashboard_html, asset_dashboard_html_end},
	{"/poll-widget.js", "application/javascript; charset=utf-8", {"poll-client.js", "poll-widget.js"},
	asset_widget_js, asset_widget_js_end},
	{"/vendor/uPlot.iife.min.js", "application/javascript; charset=utf-8", {"vendor/uPlot.iife.min.js"},
	asset_uplot_js, asset_uplot_js_end},
	{"/vendor/uPlot.min.css", "text/css; charset=utf-8", {"vendor/uPlot.min.css"},
	asset_uplot_css, asset_uplot_css_end},
};

static int	start_response(struct session *s, int status, const char *ctype,
						   const char *body, size_t len, char *owned);
static int	respond_error(struct session *s, int status, const char *code, const char *msg,
						  int64_t poll);
static int	serve_asset(struct fanout *f, struct session *s, const struct asset *a);
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

/*
 * If-None-Match of GET /polls/ID: the version in the first entity tag
 * ("18" or W/"18"), -1 for *, 0 without one or for anything else.
 */
static int64_t
if_none_match(struct lws *wsi)
{
	char		buf[128];
	int			n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_IF_NONE_MATCH);
	const char *p = buf, *q;
	int64_t		v;

	if (n <= 0)
		return 0;
	while (*p == ' ')
		p++;
	if (*p == '*')
		return -1;
	if (strncmp(p, "W/", 2) == 0)
		p += 2;
	if (*p++ != '"' || !(q = strchr(p, '"')) || parse_int64(p, (size_t) (q - p), &v) < 0)
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
	if (!preflight && add_header(wsi, "access-control-expose-headers:", "ETag", p, end))
		return -1;
	/* If-None-Match too: a cross-origin short-polling client revalidates with it */
	if (preflight &&
		(add_header(wsi, "access-control-allow-methods:", "GET, POST, DELETE", p, end) ||
		 add_header(wsi, "access-control-allow-headers:", "Authorization, Content-Type, If-None-Match", p, end) ||
		 add_header(wsi, "access-control-max-age:", "600", p, end)))
		return -1;
	return 0;
}

static int
write_headers(struct session *s, int status, const char *ctype, size_t len)
{
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	char		etag[32];
	char		retry[16];

	snprintf(retry, sizeof(retry), "%d", s->retry_after);

	snprintf(etag, sizeof(etag), "\"%lld\"", (long long) s->etag);
	/* a 304 has no body and says nothing of one: no Content-Length, no type */
	if ((status == 304 ? lws_add_http_header_status(s->wsi, 304, &p, end) :
		 lws_add_http_common_headers(s->wsi, (unsigned) status, ctype,
									 len == (size_t) -1 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : len,
									 &p, end)) ||
		add_header(s->wsi, "cache-control:", "no-cache", &p, end) ||
		(s->etag > 0 && add_header(s->wsi, "etag:", etag, &p, end)) ||
		(s->kind == SESS_CSV &&
		 (add_header(s->wsi, "transfer-encoding:", "chunked", &p, end) ||
		  add_header(s->wsi, "content-disposition:", "attachment; filename=\"ballots.csv\"", &p, end))) ||
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
serve_asset(struct fanout *f, struct session *s, const struct asset *a)
{
	if (f->web_root)
	{
		char	   *body = NULL;
		size_t		len = 0;

		for (int i = 0; i < 2 && a->files[i]; i++)
		{
			char		path[4096];
			FILE	   *fp;
			struct stat st;
			char	   *nb;

			snprintf(path, sizeof(path), "%s/%s", f->web_root, a->files[i]);
			fp = fopen(path, "rb");
			if (!fp || fstat(fileno(fp), &st) < 0 || st.st_size > 8 * 1024 * 1024)
			{
				if (fp)
					fclose(fp);
				free(body);
				logmsg("http: cannot read %s: %s", path, strerror(errno));
				return respond_error(s, 404, "not_found", "no such file", -1);
			}
			nb = realloc(body, len + (size_t) st.st_size + 2);
			if (!nb || fread(nb + len, 1, (size_t) st.st_size, fp) != (size_t) st.st_size)
			{
				free(nb ? nb : body);
				fclose(fp);
				return respond_error(s, 500, "bad_request", "cannot read file", -1);
			}
			fclose(fp);
			body = nb;
			len += (size_t) st.st_size;
			body[len++] = '\n';
		}
		return start_response(s, 200, a->ctype, body, len, body);
	}
	return start_response(s, 200, a->ctype, a->start, (size_t) (a->end - a->start), NULL);
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

/*
 * GET /polls/ID of a loaded poll: its snapshot with ETag "<version>", or
 * 304 with no body when the client's If-None-Match names that version.
 * Rendered in the scratch buffer, then copied into a body of its size.
 */
static int
answer_snapshot(struct fanout *f, struct session *s, const struct poll *p)
{
	size_t		n;
	char	   *body;

	s->kind = SESS_HTTP_STATIC;
	s->etag = p->version;
	if (s->if_none_match == -1 || (s->if_none_match > 0 && s->if_none_match == p->version))
		return start_response(s, 304, NULL, "", 0, NULL);
	n = render_snapshot_json(p, (char *) f->scratch, SCRATCH_SIZE);
	body = malloc(n ? n : 1);
	if (!body)
		return -1;
	memcpy(body, f->scratch, n);
	return start_response(s, 200, "application/json", body, n, body);
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
	if (!events && p && p->state == POLL_READY && p->have_row)
	{
		/* cached (someone follows it): the answer is at hand, no subscription needed */
		s->if_none_match = if_none_match(wsi);
		return answer_snapshot(f, s, p);
	}
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
	{
		s->kind = SESS_HTTP_SNAPSHOT;
		s->if_none_match = if_none_match(wsi);
	}
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
 * A client that takes nothing for WRITE_TIMEOUT_SECS is dropped, as a
 * WebSocket or SSE client is.  await_client() is true when the socket is
 * choked and rx paused.
 */
static void
unchoke_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = lws_container_of(w, struct session, unchoke);
	struct lws_pollfd pfd = {.fd = w->fd, .events = LWS_POLLOUT, .revents = LWS_POLLOUT};

	(void) loop;
	(void) revents;
	resume_rx(s);
	if (!lws_partial_buffered(s->wsi))
		return;					/* our writeable callback pauses again if need be */

	/*
	 * lws holds the end of a write the socket did not take (a response
	 * over the socket's buffer).  It sends that on POLLOUT without calling
	 * us back, so with rx left on, a client that took only part of it got
	 * the busy loop back.  Let lws send it now, then pause again.
	 */
	if (lws_service_fd(s->f->lws, &pfd) == 0)
		(void) await_client(s);	/* else lws closed the connection (and s) */
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
	/* from the last byte the client took; the transaction's end clears it */
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WRITE_TIMEOUT_SECS);
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
	voting_note_peer(s);		/* each request's own X-Forwarded-For */
	if (request_body_length(wsi) > MAX_BODY)
	{
		f->m.rejected_inputs++;
		return respond_error(s, 413, "bad_request", "request body over 4 KiB", -1);
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0)
		return start_response(s, 204, "text/plain", "", 0, NULL);	/* a CORS preflight */
	if (voting_is_vote_path(path, &id))	/* /polls/ID/vote, /voters: voting.c */
		return vote_answer(s, voting_http_request(f, wsi, s, path, id));
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
	{
		/* the API's POST endpoints (api.c); their body comes next */
		r = api_request(f, wsi, s, path, true);
		if (r == 0 && api_wants_body(s) && request_body_length(wsi) == 0)
			return api_body_complete(f, s);
		if (r <= 0)
			return r;
		return respond_error(s, 404, "not_found", "no such endpoint", -1);
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return respond_error(s, 405, "bad_request", "only GET and POST are served", -1);
	for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
		if (strcmp(path, assets[i].path) == 0)
			return serve_asset(f, s, &assets[i]);
	if ((r = api_request(f, wsi, s, path, false)) <= 0)
		return r;				/* series, segments, ballots.csv (api.c) */
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
	if (api_wants_body(s))
	{
		s->body_completed = true;
		return api_body_complete(f, s);
	}
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
			 * A vote (voting.c) and the API's POST endpoints (api.c)
			 * take a body; others are read and ignored (one over
			 * MAX_BODY was answered 413 from its Content-Length).
			 */
			if (s->vote_wants_body || api_wants_body(s))
			{
				char	   *b;

				if (s->reqbody_len + len > MAX_BODY)
					return -1;	/* Content-Length said less: close */
				b = realloc(s->reqbody, s->reqbody_len + len + 1);

				if (!b)
					return -1;
				memcpy(b + s->reqbody_len, in, len);
				s->reqbody = b;
				s->reqbody_len += len;
				b[s->reqbody_len] = '\0';
			}
			break;
		case LWS_CALLBACK_HTTP_BODY_COMPLETION:
			if (s->vote_wants_body && !s->body_completed)
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

/*
 * GET /polls/ID/ballots.csv: the headers once the COPY has started (or an
 * error answer), then csv.c writes the rows as the socket takes them; the
 * connection closes after the last chunk (the response said so).
 */
static int
csv_writeable(struct session *s)
{
	int			st;

	if (!s->headers_sent)
	{
		st = csv_state(s);
		if (st == 0)
			return 0;			/* csv.c wakes us */
		if (st != 200)
		{
			csv_forget_session(s);
			s->kind = SESS_HTTP_STATIC;
			return respond_error(s, st, st == 404 ? "not_found" : "unavailable",
								 st == 404 ? "no such poll" : "the export failed (see the daemon's log)",
								 -1);
		}
		if (write_headers(s, 200, "text/csv; charset=utf-8", (size_t) -1) < 0)
			return -1;
		if (lws_get_socket_fd(s->wsi) >= 0)
			stream_ignores_input(s);	/* pipelined requests: the connection closes after this */
		lws_callback_on_writable(s->wsi);
		return 0;
	}
	st = csv_write(s);
	if (st < 0)
		return -1;
	if (st == 1 && !lws_partial_buffered(s->wsi))
		return -1;				/* all sent: close, as the headers said */
	if (st == 1)
		lws_callback_on_writable(s->wsi);
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
	if (s->kind == SESS_API)
	{
		struct apireq *r = s->req;
		char	   *body;
		int			status;
		size_t		len;

		if (!r || !r->done)
			return 0;			/* queries.c wakes us */
		s->req = NULL;
		body = r->body;
		r->body = NULL;
		s->kind = SESS_HTTP_STATIC;
		status = r->status;
		len = r->body_len;
		q_free(r);
		return start_response(s, status, "application/json", body ? body : "", body ? len : 0, body);
	}
	if (s->kind == SESS_CSV)
		return csv_writeable(s);
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
			/* answered from p, then let go of it (the last subscription frees it) */
			int			rc = answer_snapshot(f, s, p);

			sub_remove(f, sub);
			return rc;
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

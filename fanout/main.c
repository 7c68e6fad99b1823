/*
 * main.c — the top layer: the flags, the lws context with its one protocol
 * (HTTP, SSE and WebSocket clients), the routing of lws's callbacks to
 * http.c, ws.c and sessions.c, and the one single-threaded event loop
 * everything runs in: its start (each layer bottom up), the flush of the
 * writer's ready list before the loop waits, SIGINT/SIGTERM, the stop.
 *
 * The loop is ours: a libev loop on epoll, given to lws as a foreign loop
 * (lws's libev plugin puts its sockets and its one timer on it); our
 * timers (loop.c) and the Postgres sockets (db.c) are watchers on it too.
 * lws's default loop was poll() over every descriptor once per turn: at
 * 1 000 clients most of the daemon's CPU.  The layers: fanout.h.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fanout.h"
#include "webhooks.h"

static void usage(FILE *out);
static void die(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
static void parse_flags(struct fanout *f, int argc, char **argv);
static int	callback_main(struct lws *wsi, enum lws_callback_reasons reason, void *user,
						  void *in, size_t len);

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: poll-fanout [--db CONNINFO] [--listen HOST:PORT] [--publication NAME] [--throttle MS]\n"
			"                   [--jwt-secret-file FILE] [--tls-cert FILE --tls-key FILE] [--max-clients N]\n"
			"                   [--web-root DIR] [--verbose] [--allow-origin ORIGIN]... [--keepalive SECONDS]\n"
			"                   [--anonymous-votes --voter-secret-file FILE] [--vote-rate N] [--vote-queue N]\n"
			"                   [--webhooks] [--trusted-proxy ADDR[/PREFIX]]...\n"
			"\n"
			"Pushes committed poll.tally changes, decoded from logical replication, to WebSocket\n"
			"and Server-Sent Events clients, and takes votes from them.  Defaults: libpq's\n"
			"environment, 127.0.0.1:8080, publication poll_feed, throttle 50 ms, keepalive 20 s\n"
			"(0: none), vote rate 5 a second per voter (burst 10; 0: no limit), 20000 votes\n"
			"waiting for a batch at most.\n");
}

static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "poll-fanout: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static long
parse_long(const char *flag, const char *v, long min, long max)
{
	char	   *end;
	long		n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		die("%s must be an integer from %ld to %ld, not \"%s\"", flag, min, max, v);
	return n;
}

static void
readable_file(const char *flag, const char *path)
{
	if (access(path, R_OK) != 0)
		die("%s %s: %s", flag, path, strerror(errno));
}

/* a secret file's bytes, without the trailing newline */
static size_t
read_secret(const char *flag, const char *path, unsigned char *buf, size_t cap)
{
	FILE	   *fp = fopen(path, "rb");
	size_t		n;

	if (!fp)
		die("%s %s: %s", flag, path, strerror(errno));
	n = fread(buf, 1, cap, fp);
	if (!feof(fp))
		die("%s %s: longer than %zu bytes", flag, path, cap - 1);
	fclose(fp);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		die("%s %s is empty", flag, path);
	return n;
}

static void
parse_flags(struct fanout *f, int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"publication", required_argument, NULL, 'p'},
		{"throttle", required_argument, NULL, 't'},
		{"jwt-secret-file", required_argument, NULL, 'j'},
		{"tls-cert", required_argument, NULL, 'c'},
		{"tls-key", required_argument, NULL, 'k'},
		{"max-clients", required_argument, NULL, 'm'},
		{"web-root", required_argument, NULL, 'w'},
		{"allow-origin", required_argument, NULL, 'o'},
		{"keepalive", required_argument, NULL, 'K'},
		{"anonymous-votes", no_argument, NULL, 'A'},
		{"voter-secret-file", required_argument, NULL, 'V'},
		{"vote-rate", required_argument, NULL, 'R'},
		{"vote-queue", required_argument, NULL, 'Q'},
		{"verbose", no_argument, NULL, 'v'},
		{"webhooks", no_argument, NULL, 'W'},
		{"trusted-proxy", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *listen = "127.0.0.1:8080";
	const char *jwt_file = NULL;
	const char *voter_file = NULL;
	bool		any_origin = false;
	int			c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				f->conninfo = optarg;
				break;
			case 'l':
				listen = optarg;
				break;
			case 'p':
				if (!*optarg || strlen(optarg) > 63)
					die("--publication must be a name of 1 to 63 characters");
				f->publication = optarg;
				break;
			case 't':
				f->throttle_ms = (int) parse_long("--throttle", optarg, 0, 60000);
				break;
			case 'j':
				jwt_file = optarg;
				break;
			case 'c':
				f->tls_cert = optarg;
				break;
			case 'k':
				f->tls_key = optarg;
				break;
			case 'm':
				f->max_clients = (int) parse_long("--max-clients", optarg, 1, 10000000);
				break;
			case 'w':
				f->web_root = optarg;
				break;
			case 'K':
				f->keepalive_s = (int) parse_long("--keepalive", optarg, 0, 3600);
				break;
			case 'o':
				if (!*optarg || strpbrk(optarg, " \t\r\n,"))
					die("--allow-origin must be one origin (scheme://host[:port]) or *, not \"%s\"", optarg);
				if (f->n_origins == MAX_ORIGINS)
					die("at most %d --allow-origin", MAX_ORIGINS);
				if (strcmp(optarg, "*") != 0)
					f->origins[f->n_origins++] = optarg;
				else
					any_origin = true;
				break;
			case 'v':
				f->verbose = true;
				break;
			case 'A':
				f->anonymous_votes = true;
				break;
			case 'V':
				voter_file = optarg;
				break;
			case 'R':
				f->vote_rate = (int) parse_long("--vote-rate", optarg, 0, 1000000);
				break;
			case 'Q':
				f->vote_queue = (int) parse_long("--vote-queue", optarg, 1, 10000000);
				break;
			case 'W':
				f->webhooks = true;
				break;
			case 'P':
				{
					const char *why;

					if (f->n_trusted_proxies == PROXIES_MAX)
						die("--trusted-proxy: at most %d", PROXIES_MAX);
					if (proxy_parse(optarg, &f->trusted_proxies[f->n_trusted_proxies], &why) < 0)
						die("--trusted-proxy %s: %s", optarg, why);
					f->n_trusted_proxies++;
				}
				break;
			case 'h':
				usage(stdout);
				exit(0);
			default:
				if (optopt && strchr("dlptjckmwoKVRQ", optopt))
					fprintf(stderr, "poll-fanout: option %s needs a value\n", argv[optind - 1]);
				else
					fprintf(stderr, "poll-fanout: unknown option %s\n", argv[optind - 1]);
				fprintf(stderr, "Try poll-fanout --help.\n");
				exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see --help)", argv[optind]);
	if (any_origin)
		f->n_origins = 0;		/* "*" among them: any origin */

	{
		const char *colon = strrchr(listen, ':');
		size_t		hl = colon ? (size_t) (colon - listen) : 0;

		if (!colon || hl == 0 || hl >= sizeof(f->listen_host))
			die("--listen must be HOST:PORT, not \"%s\"", listen);
		if (listen[0] == '[' && listen[hl - 1] == ']')
		{
			memcpy(f->listen_host, listen + 1, hl - 2);
			f->listen_host[hl - 2] = '\0';
		}
		else
		{
			memcpy(f->listen_host, listen, hl);
			f->listen_host[hl] = '\0';
		}
		f->listen_port = (int) parse_long("--listen port", colon + 1, 1, 65535);
	}
	if (!f->tls_cert != !f->tls_key)
		die("--tls-cert and --tls-key go together");
	if (f->tls_cert)
	{
		readable_file("--tls-cert", f->tls_cert);
		readable_file("--tls-key", f->tls_key);
	}
	if (f->web_root)
	{
		struct stat st;

		if (stat(f->web_root, &st) != 0 || !S_ISDIR(st.st_mode))
			die("--web-root %s is not a directory", f->web_root);
	}
	if (jwt_file)
	{
		f->jwt_secret_len = read_secret("--jwt-secret-file", jwt_file, f->jwt_secret,
										sizeof(f->jwt_secret));
		f->jwt = true;
	}
	if (f->anonymous_votes && !voter_file)
		die("--anonymous-votes needs --voter-secret-file (the key of the voter tokens)");
	if (voter_file && !f->anonymous_votes)
		die("--voter-secret-file goes with --anonymous-votes");
	if (voter_file)
		f->voter_secret_len = read_secret("--voter-secret-file", voter_file, f->voter_secret,
										  sizeof(f->voter_secret));
	f->keys.jwt = f->jwt_secret;
	f->keys.jwt_len = f->jwt_secret_len;
	f->keys.voter = f->voter_secret;
	f->keys.voter_len = f->voter_secret_len;
}

static int
callback_main(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct fanout *f = lws_context_user(lws_get_context(wsi));

	/* lws asks this with freed per-session data (ws.c): before the check below */
	if (reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE)
		return ws_confirm_upgrade(wsi);
	/* lws may report a close before any per-session data exists */
	if (!user && reason != LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
		case LWS_CALLBACK_HTTP_BODY:
		case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		case LWS_CALLBACK_HTTP_WRITEABLE:
			return http_callback(f, wsi, reason, user, in, len);
		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		case LWS_CALLBACK_ESTABLISHED:
		case LWS_CALLBACK_RECEIVE:
		case LWS_CALLBACK_SERVER_WRITEABLE:
		case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
			return ws_callback(f, wsi, reason, user, in, len);
		case LWS_CALLBACK_CLOSED:
		case LWS_CALLBACK_CLOSED_HTTP:
		case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		case LWS_CALLBACK_WSI_DESTROY:

			/*
			 * Every way lws has of freeing the per-session data: a
			 * close, the end of a keep-alive HTTP transaction or a
			 * protocol change (lws_bind_protocol() frees it right after
			 * HTTP_DROP_PROTOCOL), and the wsi's destruction.  The
			 * session lets go of its subscriptions, the ready list, the
			 * throttle wheel and the sweep list first (idempotent).
			 */
			session_note_close(user);
			session_detach(user);
			return 0;
		default:
			return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	{"poll", callback_main, sizeof(struct session), RX_BUFFER_SIZE, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/*
 * Before the loop waits: the sessions that became ready during this turn
 * (a replication change, a throttle window ending, a pong) are written,
 * directly where the socket takes it.  More than one pass's worth keeps
 * the idle watcher on, so that the loop does not block meanwhile.
 */
static ev_prepare flush_prepare;
static ev_idle flush_idle;

static void
on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void) revents;
	if (writer_flush(w->data))
		ev_idle_start(loop, &flush_idle);
}

static void
on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void) revents;
	ev_idle_stop(loop, w);
}

static ev_signal sig_int, sig_term;

static void
stop_loop(struct fanout *f)
{
	ev_break(f->loop, EVBREAK_ALL);
}

/*
 * The first SIGINT or SIGTERM ends the replication copy cleanly, on the
 * loop (db_shutdown(): at most ~2 s), then stops the loop; a second one
 * stops it at once.
 */
static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct fanout *f = w->data;

	(void) revents;
	if (f->stopping)
	{
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	logmsg("shutting down");
	f->stopping = true;
	stream_shutdown(f, stop_loop);
}

static const char *
backend_name(unsigned int b)
{
	switch (b)
	{
		case EVBACKEND_EPOLL:
			return "epoll";
		case EVBACKEND_POLL:
			return "poll";
		case EVBACKEND_SELECT:
			return "select";
		default:
			return "another backend";
	}
}

static void
lws_log(int level, const char *line)
{
	(void) level;
	fprintf(stderr, "lws: %s", line);
}

int
main(int argc, char **argv)
{
	static struct fanout f;
	struct lws_context_creation_info info;
	struct rlimit rl;
	void	   *foreign_loops[1];

	f.publication = "poll_feed";
	f.throttle_ms = 50;
	f.keepalive_s = 20;
	f.vote_rate = 5;
	f.vote_queue = VOTE_QUEUE_MAX;
	f.db.backoff_ms = 250;
	parse_flags(&f, argc, argv);

	/* one descriptor per client: take all the kernel lets us */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			logmsg("cannot raise the open files limit: %s", strerror(errno));
	}

	/*
	 * Without --max-clients, stop a little short of the descriptor limit:
	 * a client past it gets a clean 503 instead of waiting in the listen
	 * backlog while accept() fails with EMFILE.  The margin covers the
	 * listening socket, the two libpq connections and a refused client.
	 */
	if (f.max_clients == 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 256)
	{
		f.max_clients = (int) (rl.rlim_cur - 64 < 10000000 ? rl.rlim_cur - 64 : 10000000);
		logmsg("--max-clients defaults to %d (open files limit %llu)",
			   f.max_clients, (unsigned long long) rl.rlim_cur);
	}
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(getenv("FANOUT_LWS_DEBUG") ? 0xff : f.verbose ? LLL_ERR | LLL_WARN : LLL_ERR, lws_log);

	f.scratch = malloc(LWS_PRE + SCRATCH_SIZE);
	if (!f.scratch)
		die("out of memory");

	f.loop = ev_loop_new(EVBACKEND_EPOLL);
	if (!f.loop)
		f.loop = ev_loop_new(EVFLAG_AUTO);
	if (!f.loop)
		die("cannot create the event loop");

	memset(&info, 0, sizeof(info));
	info.port = f.listen_port;
	info.iface = f.listen_host;
	info.protocols = protocols;
	info.user = &f;
	info.max_http_header_data = 8192;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
	foreign_loops[0] = f.loop;
	info.foreign_loops = foreign_loops;
	if (!strchr(f.listen_host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	if (f.tls_cert)
	{
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = f.tls_cert;
		info.ssl_private_key_filepath = f.tls_key;
	}
	f.lws = lws_create_context(&info);
	if (!f.lws)
	{
		/* lws said why above: the port, the certificate, or its libev plugin */
		fprintf(stderr, "poll-fanout: cannot listen on %s:%d\n", f.listen_host, f.listen_port);
		return 1;
	}
	f.vhost = lws_get_vhost_by_name(f.lws, "default");
	if (!f.vhost)
	{
		fprintf(stderr, "poll-fanout: no vhost\n");
		return 1;
	}
	ev_signal_init(&sig_int, on_signal, SIGINT);
	sig_int.data = &f;
	ev_signal_start(f.loop, &sig_int);
	ev_signal_init(&sig_term, on_signal, SIGTERM);
	sig_term.data = &f;
	ev_signal_start(f.loop, &sig_term);
	ev_prepare_init(&flush_prepare, on_prepare);
	flush_prepare.data = &f;
	ev_prepare_start(f.loop, &flush_prepare);
	ev_idle_init(&flush_idle, on_idle);

	logmsg("listening on %s://%s:%d (publication %s, throttle %d ms%s%s%s)",
		   f.tls_cert ? "https" : "http", f.listen_host, f.listen_port, f.publication,
		   f.throttle_ms, f.jwt ? ", tokens required" : "",
		   f.web_root ? ", web root from disk" : "",
		   f.anonymous_votes ? ", anonymous votes" : "");
	logmsg("event loop: libev %s", backend_name(ev_backend(f.loop)));
	/* bottom up: each layer sets the callbacks the one below calls it through */
	db_init(&f);
	stream_init(&f);
	snap_init(&f);
	votes_init(&f);
	writer_start(&f);
	sessions_start(&f);
	voting_start(&f);
	webhooks_start(&f);
	db_start(&f);
	votes_start(&f);

	ev_run(f.loop, 0);

	/*
	 * Out of the loop (the copy was ended by on_signal): let lws close
	 * every connection.  With a foreign loop that is done in one call,
	 * outside the loop; the loop goes last.
	 */
	f.stopping = true;
	db_stop(&f);
	webhooks_stop(&f);
	timer_stop(&f.db.retry_timer);
	votes_stop(&f);
	lws_context_destroy(f.lws);
	voting_stop(&f);
	sessions_stop(&f);
	writer_stop(&f);
	snap_stop(&f);
	ev_prepare_stop(f.loop, &flush_prepare);
	ev_idle_stop(f.loop, &flush_idle);
	ev_signal_stop(f.loop, &sig_int);
	ev_signal_stop(f.loop, &sig_term);
	ev_loop_destroy(f.loop);
	free(f.scratch);
	return 0;
}

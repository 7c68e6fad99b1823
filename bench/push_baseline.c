/*
 * push_baseline.c — the obvious hand-rolled push, for comparison with
 * poll-fanout: a trigger on poll.tally does pg_notify('poll_<id>', json)
 * (bench/push_baseline.sql), and this server LISTENs and forwards every
 * notification, as it is, to every WebSocket client subscribed to that poll.
 *
 *   push_baseline --db CONNINFO --listen PORT
 *
 * Clients speak the daemon's protocol on /ws ({"type":"subscribe","poll":P});
 * messages are the trigger's {"type":"tally",...} JSON. No snapshot, no
 * coalescing: the usual libwebsockets broadcast idiom, a shared ring of the
 * last RING messages with a read position per client. A client that falls a
 * whole ring behind skips to the oldest message still held (counted as dropped).
 * Built on the same libwebsockets as poll-fanout, single-threaded like it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <libpq-fe.h>
#include <libwebsockets.h>

#define RING	1024
#define MAXSUB	64

struct msg
{
	long		poll;
	size_t		len;
	unsigned char *buf;			/* LWS_PRE bytes, then the JSON */
};

struct pss
{
	long		polls[MAXSUB];
	int			npolls;
	unsigned long next;			/* sequence number of the next message to send */
};

static struct msg ring[RING];
static unsigned long head;		/* sequence number of the next message stored */
static unsigned long dropped, forwarded;
static PGconn *pg;
static long listening[1024];
static int	nlistening;
static struct lws_context *ctx;
static volatile int stop;
static const struct lws_protocols *ws_protocol;

static void
on_notify(const char *channel, const char *payload)
{
	long		poll;
	struct msg *m;
	size_t		len = strlen(payload);

	if (sscanf(channel, "poll_%ld", &poll) != 1)
		return;
	m = &ring[head % RING];
	free(m->buf);
	m->buf = malloc(LWS_PRE + len);
	if (!m->buf)
		abort();
	memcpy(m->buf + LWS_PRE, payload, len);
	m->len = len;
	m->poll = poll;
	head++;
	lws_callback_on_writable_all_protocol(ctx, ws_protocol);
}

static void
pg_drain(void)
{
	PGnotify   *n;

	if (!PQconsumeInput(pg))
	{
		lwsl_err("postgres: %s", PQerrorMessage(pg));
		stop = 1;
		return;
	}
	while ((n = PQnotifies(pg)) != NULL)
	{
		on_notify(n->relname, n->extra);
		PQfreemem(n);
	}
}

static void
listen_poll(long poll)
{
	char		sql[64];
	PGresult   *r;
	int			i;

	for (i = 0; i < nlistening; i++)
		if (listening[i] == poll)
			return;
	if (nlistening == 1024)
		return;
	snprintf(sql, sizeof(sql), "LISTEN poll_%ld", poll);
	r = PQexec(pg, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		lwsl_err("%s: %s", sql, PQerrorMessage(pg));
	else
		listening[nlistening++] = poll;
	PQclear(r);
	pg_drain();
}

static int
subscribed(struct pss *p, long poll)
{
	int			i;

	for (i = 0; i < p->npolls; i++)
		if (p->polls[i] == poll)
			return 1;
	return 0;
}

static int
cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct pss *p = user;

	switch (reason)
	{
		case LWS_CALLBACK_ESTABLISHED:
			memset(p, 0, sizeof(*p));
			p->next = head;
			break;
		case LWS_CALLBACK_RECEIVE:
			{
				char		buf[256];
				const char *q;
				long		poll;

				if (len >= sizeof(buf))
					return -1;
				memcpy(buf, in, len);
				buf[len] = 0;
				q = strstr(buf, "\"poll\"");
				if (strstr(buf, "\"subscribe\"") && q && sscanf(q + 6, " : %ld", &poll) == 1 &&
					p->npolls < MAXSUB && !subscribed(p, poll))
				{
					p->polls[p->npolls++] = poll;
					listen_poll(poll);
				}
				break;
			}
		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (head - p->next > RING)
			{
				dropped += head - p->next - RING;
				p->next = head - RING;
			}
			while (p->next < head)
			{
				struct msg *m = &ring[p->next % RING];

				p->next++;
				if (!subscribed(p, m->poll))
					continue;
				if (lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int) m->len)
					return -1;
				forwarded++;
				break;
			}
			if (p->next < head)
				lws_callback_on_writable(wsi);
			break;
		default:
			break;
	}
	return 0;
}

static int
cb_pg(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void) wsi;
	(void) user;
	(void) in;
	(void) len;
	if (reason == LWS_CALLBACK_RAW_RX_FILE)
		pg_drain();
	else if (reason == LWS_CALLBACK_RAW_CLOSE_FILE)
		stop = 1;
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"push", cb_ws, sizeof(struct pss), 4096, 0, NULL, 0},
	{"pgnotify", cb_pg, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
	if (ctx)
		lws_cancel_service(ctx);
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	lws_sock_file_fd_type fd;
	struct rlimit rl;
	const char *db = NULL;
	int			port = 0,
				i;

	for (i = 1; i + 1 < argc; i += 2)
	{
		if (!strcmp(argv[i], "--db"))
			db = argv[i + 1];
		else if (!strcmp(argv[i], "--listen"))
			port = atoi(argv[i + 1]);
	}
	if (!db || port <= 0 || i != argc)
	{
		fprintf(stderr, "usage: push_baseline --db CONNINFO --listen PORT\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	pg = PQconnectdb(db);
	if (PQstatus(pg) != CONNECTION_OK)
	{
		fprintf(stderr, "push_baseline: %s", PQerrorMessage(pg));
		return 1;
	}
	PQsetnonblocking(pg, 1);

	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	ws_protocol = &protocols[0];
	ctx = lws_create_context(&info);
	if (!ctx)
	{
		fprintf(stderr, "push_baseline: lws_create_context failed\n");
		return 1;
	}
	vh = lws_get_vhost_by_name(ctx, "default");
	fd.filefd = PQsocket(pg);
	if (!vh || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "pgnotify", NULL))
	{
		fprintf(stderr, "push_baseline: cannot watch the postgres socket\n");
		return 1;
	}
	fprintf(stderr, "push_baseline: listening on 127.0.0.1:%d\n", port);
	while (!stop && lws_service(ctx, 0) >= 0)
		;
	fprintf(stderr, "push_baseline: forwarded %lu messages, dropped %lu for lagging clients\n",
			forwarded, dropped);
	lws_context_destroy(ctx);
	PQfinish(pg);
	return 0;
}

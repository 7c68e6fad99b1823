/*
 * voteload.c — WebSocket vote load for poll-fanout: many connections from one
 * process, each voting as its own voter (an HS256 token with sub/vote claims,
 * signed here with the daemon's --jwt-secret-file), through the SPEC's `vote`
 * message; epoll, non-blocking sockets, a minimal RFC 6455 client of its own
 * (the same as pushload.c's).
 *
 *   voteload throughput --port P --poll ID --clients N --secret-file F [--seconds S]
 *                       [--conn-rate R] [--pid PID] [--raw FILE] [--options K] [--src-per-addr A]
 *   voteload paced      --port P --poll ID --clients N --secret-file F --rate R [--seconds S]
 *                       [--pid PID] [--raw FILE] [--push-raw FILE] [--options K] [--src-per-addr A]
 *
 * throughput: every connection votes again as soon as its last vote is
 * answered (one vote in flight per connection), moving its ballot from one
 * option to the next so that every vote after the first is a real change;
 * but never faster than --conn-rate votes/s per connection (default 19), as
 * the daemon closes a connection that sends more than 20 messages/s, votes
 * included (SPEC, "Limits and bad input"). Connections do not subscribe.
 *
 * paced: R votes/s in all, each to the next connection with no vote in
 * flight; every connection subscribes to the poll. Connection 0 is the
 * probe: option 1 of the poll receives only its votes, which move its ballot
 * between option 1 and option 2, so option 1's count alternates between 0
 * and 1 and every other connection can tell when it sees the probe's vote in
 * a pushed tally. A probe is sent when the last one was seen by all, or 1 s
 * after it; at most 10 a second. The others vote on options 2..K.
 *
 * Both: vote -> `voted` latency of every vote (--raw: one ms value a line),
 * results by kind and errors by code, and the VmRSS of --pid (the daemon)
 * sampled every 100 ms (peak and last). paced adds vote -> pushed tally seen
 * by the other subscribers (--push-raw). Prints key=value lines.
 *
 * Source addresses: connection i binds 127.0.0.(2 + i / A) (A = 4 by
 * default), so that the daemon's per-address vote rate (ten times the
 * per-voter rate) sees A voters per address, as from a handful of browsers
 * behind one NAT, not 1 000 voters behind one address. Sockets close with RST.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_INFLIGHT	128
#define MAX_FRAME		(1 << 20)
#define RBUF			65536
#define MAX_ERRCODES	16
#define PROBE_GAP_NS	100000000LL		/* at most 10 probes a second */
#define PROBE_WAIT_NS	1000000000LL	/* a probe not seen by all after 1 s: the next */

enum state
{
	C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED
};

struct conn
{
	int			fd;
	uint8_t		state;
	uint8_t		subscribed;		/* got its snapshot */
	uint8_t		failed;
	uint8_t		counted;		/* the vote in flight was sent in the measured window */
	int32_t		nvotes;			/* votes sent */
	int64_t		started_ns;
	int64_t		sent_ns;		/* the vote in flight, 0 when none */
	int64_t		next_ok_ns;		/* --conn-rate: not before */
	int32_t		probe_seen;		/* highest probe seen in a tally (paced) */
	char		key[25];
	char	   *pend;
	uint32_t	pend_len;
	char	   *frag;
	uint32_t	frag_len;
	char	   *wbuf;
	uint32_t	wlen;
	char	   *token;
};

/* options */
static int	mode_paced;
static int	port;
static long poll_id;
static int	nclients;
static const char *secret_file;
static double seconds = 10;
static double conn_rate = 19;
static double rate = 2000;
static int	server_pid;
static const char *raw_path;
static const char *push_raw_path;
static int	noptions = 4;
static int	src_per_addr = 4;

static struct conn *conns;
static int	epfd;
static long nopen,
			ninflight,
			nfailed,
			nclosed_by_peer,
			nsubscribed;
static char rbuf[RBUF];
static char secret[4096];
static size_t secret_len;

/* counters of the measured window */
static int	in_window;
static long nsent,
			nvoted,
			nerrors,
			nother_errors;
static long results[5];			/* cast changed unchanged retracted none */
static long casts_total;		/* `cast` answers, warm-up included: the ballots made */
static const char *result_names[5] = {"cast", "changed", "unchanged", "retracted", "none"};
static char errcodes[MAX_ERRCODES][32];
static long errcounts[MAX_ERRCODES];
static double *lat;				/* vote -> voted, ms */
static long nlat,
			lat_cap;

/* paced: the probe */
static int	nprobes;			/* probes sent */
static int64_t probe_sent_ns;	/* the probe in flight (sent) */
static int	probe_acked;		/* the daemon answered the probe in flight */
static long probe_seen_by;		/* subscribers that saw the probe in flight */
static double *push_lat;
static long npush,
			push_cap,
			push_missing;

static long rss_peak_kb = -1,
			rss_last_kb = -1;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "voteload: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t) (rng >> 16);
}

static void
push_sample(double **v, long *n, long *cap, double x)
{
	if (*n == *cap)
	{
		*cap = *cap ? *cap * 2 : 65536;
		*v = realloc(*v, sizeof(double) * *cap);
		if (!*v)
			die("realloc");
	}
	(*v)[(*n)++] = x;
}

/* ---- tokens: HS256, base64url ---- */

static size_t
b64url(char *out, const unsigned char *in, size_t n)
{
	int			len = EVP_EncodeBlock((unsigned char *) out, in, (int) n);

	while (len > 0 && out[len - 1] == '=')
		len--;
	for (int i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	out[len] = 0;
	return (size_t) len;
}

static char *
make_token(const char *sub)
{
	char		claims[512],
				body[1024],
				sig[64];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t		n;
	char	   *tok;

	snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"vote\":\"*\",\"polls\":\"*\",\"exp\":%ld}",
			 sub, (long) time(NULL) + 3600);
	n = b64url(body, (const unsigned char *) "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27);
	body[n++] = '.';
	n += b64url(body + n, (const unsigned char *) claims, strlen(claims));
	if (!HMAC(EVP_sha256(), secret, (int) secret_len, (unsigned char *) body, n, md, &mdlen))
		die("HMAC");
	b64url(sig, md, mdlen);
	tok = malloc(n + strlen(sig) + 2);
	if (!tok)
		die("malloc");
	sprintf(tok, "%s.%s", body, sig);
	return tok;
}

static void
read_secret(void)
{
	FILE	   *f = fopen(secret_file, "r");

	if (!f)
		die(secret_file);
	secret_len = fread(secret, 1, sizeof(secret) - 1, f);
	fclose(f);
	while (secret_len > 0 && (secret[secret_len - 1] == '\n' || secret[secret_len - 1] == '\r'))
		secret_len--;
	if (secret_len == 0)
	{
		fprintf(stderr, "voteload: %s is empty\n", secret_file);
		exit(1);
	}
}

/* ---- the connection ---- */

static void
close_conn(int ci, int failed)
{
	struct conn *c = &conns[ci];
	struct linger lg = {1, 0};

	if (c->state == C_CLOSED || c->state == C_IDLE)
		return;
	if (c->state == C_OPEN)
		nopen--;
	else
		ninflight--;
	if (c->state == C_OPEN && c->subscribed)
		nsubscribed--;
	if (failed)
	{
		c->failed = 1;
		nfailed++;
	}
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	c->state = C_CLOSED;
	free(c->pend);
	free(c->frag);
	free(c->wbuf);
	c->pend = c->frag = c->wbuf = NULL;
	c->pend_len = c->frag_len = c->wlen = 0;
}

static void
set_events(int ci, uint32_t ev)
{
	struct epoll_event e = {.events = ev,.data.u64 = (uint64_t) ci};

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, conns[ci].fd, &e) != 0)
		die("epoll_ctl");
}

static void
send_bytes(int ci, const char *buf, size_t len)
{
	struct conn *c = &conns[ci];
	ssize_t		n = 0;

	if (c->wlen == 0)
	{
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0)
		{
			if (errno != EAGAIN && errno != EWOULDBLOCK)
			{
				close_conn(ci, 1);
				return;
			}
			n = 0;
		}
		if ((size_t) n == len)
			return;
	}
	c->wbuf = realloc(c->wbuf, c->wlen + len - n);
	if (!c->wbuf)
		die("realloc");
	memcpy(c->wbuf + c->wlen, buf + n, len - n);
	c->wlen += len - n;
	set_events(ci, EPOLLIN | EPOLLOUT);
}

static void
send_frame(int ci, int opcode, const char *payload, size_t len)
{
	char		f[14 + 256];
	size_t		h = 0,
				i;
	uint32_t	m = rnd32();
	unsigned char mask[4] = {m & 255, (m >> 8) & 255, (m >> 16) & 255, m >> 24};

	if (len > 256)
		len = 256;
	f[h++] = (char) (0x80 | opcode);
	if (len < 126)
		f[h++] = (char) (0x80 | len);
	else
	{
		f[h++] = (char) (0x80 | 126);
		f[h++] = (char) (len >> 8);
		f[h++] = (char) (len & 255);
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (i = 0; i < len; i++)
		f[h + i] = payload[i] ^ mask[i & 3];
	send_bytes(ci, f, h + len);
}

static void
send_vote(int ci, int option, int64_t now)
{
	struct conn *c = &conns[ci];
	char		msg[128];
	int			n;

	c->nvotes++;
	n = snprintf(msg, sizeof(msg), "{\"type\":\"vote\",\"poll\":%ld,\"option\":%d,\"ref\":\"%d-%d\"}",
				 poll_id, option, ci, c->nvotes);
	c->sent_ns = now;
	c->counted = (uint8_t) in_window;
	if (conn_rate > 0)
		c->next_ok_ns = now + (int64_t) (1e9 / conn_rate);
	if (in_window)
		nsent++;
	send_frame(ci, 1, msg, n);
}

/* the load's next option for this connection: paced mode keeps option 1 for the probe */
static int
next_option(struct conn *c)
{
	int			lo = mode_paced ? 2 : 1;
	int			span = noptions - lo + 1;

	return lo + (c->nvotes % span);
}

/* ---- messages ---- */

static const char *
find(const char *p, const char *end, const char *needle)
{
	return memmem(p, end - p, needle, strlen(needle));
}

static const char *
skip_colon(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == ':'))
		p++;
	return p;
}

/* the string value of "key", copied into out; 0 when absent */
static int
str_field(const char *msg, const char *end, const char *key, char *out, size_t outlen)
{
	const char *p = find(msg, end, key),
			   *q;
	size_t		n;

	if (!p)
		return 0;
	p = skip_colon(p + strlen(key), end);
	if (p >= end || *p != '"')
		return 0;
	p++;
	q = memchr(p, '"', end - p);
	if (!q)
		return 0;
	n = (size_t) (q - p) < outlen - 1 ? (size_t) (q - p) : outlen - 1;
	memcpy(out, p, n);
	out[n] = 0;
	return 1;
}

static long
option1_votes(const char *msg, size_t len)
{
	const char *end = msg + len;
	const char *p = find(msg, end, "\"options\"");

	while (p && (p = find(p, end, "\"id\"")) != NULL)
	{
		const char *close;
		char	   *e;
		long		id;

		p = skip_colon(p + 4, end);
		id = strtol(p, &e, 10);
		p = e;
		if (id != 1)
			continue;
		close = memchr(p, '}', end - p);
		p = find(p, close ? close : end, "\"votes\"");
		if (!p)
			return -1;
		p = skip_colon(p + 7, end);
		return strtol(p, NULL, 10);
	}
	return -1;
}

static void
count_error(const char *code)
{
	int			i;

	for (i = 0; i < MAX_ERRCODES && errcodes[i][0]; i++)
		if (strcmp(errcodes[i], code) == 0)
			break;
	if (i == MAX_ERRCODES)
		return;
	if (!errcodes[i][0])
		snprintf(errcodes[i], sizeof(errcodes[i]), "%s", code);
	errcounts[i]++;
}

static void
on_answer(int ci, const char *msg, const char *end, int is_error, int64_t now)
{
	struct conn *c = &conns[ci];
	char		s[32];
	int			i;

	if (!c->sent_ns)
		return;					/* not ours: a vote answered twice would show here */
	if (!is_error && str_field(msg, end, "\"result\"", s, sizeof(s)) && strcmp(s, "cast") == 0)
		casts_total++;
	if (c->counted)
	{
		push_sample(&lat, &nlat, &lat_cap, (now - c->sent_ns) / 1e6);
		if (is_error)
		{
			nerrors++;
			count_error(str_field(msg, end, "\"code\"", s, sizeof(s)) ? s : "?");
		}
		else
		{
			nvoted++;
			if (str_field(msg, end, "\"result\"", s, sizeof(s)))
				for (i = 0; i < 5; i++)
					if (strcmp(s, result_names[i]) == 0)
						results[i]++;
		}
	}
	c->sent_ns = 0;
	if (mode_paced && ci == 0)
		probe_acked = 1;
}

static void
on_message(int ci, const char *msg, size_t len, int64_t now)
{
	struct conn *c = &conns[ci];
	const char *end = msg + len;
	char		type[16];
	long		v;

	if (!str_field(msg, end, "\"type\"", type, sizeof(type)))
		return;
	if (strcmp(type, "voted") == 0)
		on_answer(ci, msg, end, 0, now);
	else if (strcmp(type, "error") == 0)
	{
		if (find(msg, end, "\"ref\""))
			on_answer(ci, msg, end, 1, now);
		else if (in_window)
			nother_errors++;
	}
	else if (strcmp(type, "snapshot") == 0 || strcmp(type, "tally") == 0)
	{
		if (!c->subscribed)
		{
			c->subscribed = 1;
			nsubscribed++;
		}
		if (!mode_paced || ci == 0 || nprobes == 0 || c->probe_seen >= nprobes)
			return;
		/* probe k leaves option 1 at k % 2 */
		v = option1_votes(msg, len);
		if (v == (nprobes % 2))
		{
			if (c->probe_seen == nprobes - 1 && conns[0].counted)
				push_sample(&push_lat, &npush, &push_cap, (now - probe_sent_ns) / 1e6);
			c->probe_seen = nprobes;
			probe_seen_by++;
		}
	}
}

static long
parse_frames(int ci, const unsigned char *p, size_t n, int64_t now)
{
	struct conn *c = &conns[ci];
	size_t		off = 0;

	while (n - off >= 2)
	{
		const unsigned char *f = p + off;
		int			fin = f[0] & 0x80,
					op = f[0] & 0x0f,
					masked = f[1] & 0x80;
		uint64_t	len = f[1] & 0x7f;
		size_t		h = 2;
		char	   *pl;

		if (len == 126)
		{
			if (n - off < 4)
				break;
			len = ((uint64_t) f[2] << 8) | f[3];
			h = 4;
		}
		else if (len == 127)
		{
			if (n - off < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | f[2 + i];
			h = 10;
		}
		if (len > MAX_FRAME)
		{
			close_conn(ci, 1);
			return -1;
		}
		if (masked)
			h += 4;
		if (n - off < h + len)
			break;
		pl = (char *) f + h;
		if (masked)
			for (uint64_t i = 0; i < len; i++)
				pl[i] ^= f[h - 4 + (i & 3)];
		off += h + len;
		switch (op)
		{
			case 1:
			case 2:
				if (fin)
					on_message(ci, pl, len, now);
				else
				{
					free(c->frag);
					c->frag = malloc(len ? len : 1);
					if (!c->frag)
						die("malloc");
					memcpy(c->frag, pl, len);
					c->frag_len = (uint32_t) len;
				}
				break;
			case 0:
				if (!c->frag)
					break;
				c->frag = realloc(c->frag, c->frag_len + len + 1);
				if (!c->frag)
					die("realloc");
				memcpy(c->frag + c->frag_len, pl, len);
				c->frag_len += (uint32_t) len;
				if (fin)
				{
					on_message(ci, c->frag, c->frag_len, now);
					free(c->frag);
					c->frag = NULL;
					c->frag_len = 0;
				}
				break;
			case 8:
				send_frame(ci, 8, pl, len >= 2 ? 2 : 0);
				nclosed_by_peer++;
				close_conn(ci, 0);
				return -1;
			case 9:
				send_frame(ci, 10, pl, len);
				if (c->state == C_CLOSED)
					return -1;
				break;
			default:
				break;
		}
	}
	return (long) off;
}

static void
open_ws(int ci)
{
	struct conn *c = &conns[ci];
	char		sub[128];
	int			n;

	c->state = C_OPEN;
	ninflight--;
	nopen++;
	if (mode_paced)
	{
		n = snprintf(sub, sizeof(sub), "{\"type\":\"subscribe\",\"poll\":%ld}", poll_id);
		send_frame(ci, 1, sub, n);
	}
}

static int
check_handshake(struct conn *c, const char *hdr)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char		cat[64],
				want[40];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	const char *a;

	if (strncmp(hdr, "HTTP/1.1 101", 12) != 0)
		return 0;
	snprintf(cat, sizeof(cat), "%s%s", c->key, guid);
	if (!EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL))
		return 0;
	EVP_EncodeBlock((unsigned char *) want, md, (int) mdlen);
	a = strcasestr(hdr, "\r\nSec-WebSocket-Accept:");
	if (!a)
		return 0;
	a += 23;
	while (*a == ' ')
		a++;
	return strncmp(a, want, strlen(want)) == 0;
}

static void
on_readable(int ci, int64_t now)
{
	struct conn *c = &conns[ci];
	ssize_t		n = recv(c->fd, rbuf, RBUF, 0);
	char	   *data;
	size_t		len;
	long		used;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
	{
		if (c->state == C_OPEN)
			nclosed_by_peer++;
		close_conn(ci, c->state != C_OPEN);
		return;
	}
	if (n < 0)
		return;
	if (c->pend_len)
	{
		c->pend = realloc(c->pend, c->pend_len + n + 1);
		if (!c->pend)
			die("realloc");
		memcpy(c->pend + c->pend_len, rbuf, n);
		c->pend_len += n;
		data = c->pend;
		len = c->pend_len;
	}
	else
	{
		data = rbuf;
		len = n;
	}
	if (c->state == C_HANDSHAKE)
	{
		char	   *eoh = memmem(data, len, "\r\n\r\n", 4);
		size_t		hl;

		if (!eoh)
		{
			if (data == rbuf)
				goto keep;
			return;
		}
		hl = eoh + 4 - data;
		eoh[2] = 0;
		if (!check_handshake(c, data))
		{
			if (ci == 0)
				fprintf(stderr, "voteload: handshake refused: %.200s\n", data);
			close_conn(ci, 1);
			return;
		}
		open_ws(ci);
		if (c->state != C_OPEN)
			return;
		data += hl;
		len -= hl;
	}
	used = parse_frames(ci, (unsigned char *) data, len, now);
	if (used < 0)
		return;
	data += used;
	len -= used;
keep:
	if (len == 0)
	{
		free(c->pend);
		c->pend = NULL;
		c->pend_len = 0;
	}
	else if (data != c->pend)
	{
		char	   *p = malloc(len + 1);

		if (!p)
			die("malloc");
		memcpy(p, data, len);
		free(c->pend);
		c->pend = p;
		c->pend_len = (uint32_t) len;
	}
}

static void
on_writable(int ci)
{
	struct conn *c = &conns[ci];

	if (c->state == C_CONNECTING)
	{
		int			err = 0;
		socklen_t	el = sizeof(err);
		char		req[2048];
		unsigned char k[16];
		int			i,
					n;

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
		{
			close_conn(ci, 1);
			return;
		}
		for (i = 0; i < 16; i++)
			k[i] = rnd32() & 255;
		EVP_EncodeBlock((unsigned char *) c->key, k, 16);
		n = snprintf(req, sizeof(req),
					 "GET /ws?token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
					 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
					 c->token, port, c->key);
		c->state = C_HANDSHAKE;
		set_events(ci, EPOLLIN);
		send_bytes(ci, req, n);
		return;
	}
	if (c->wlen)
	{
		ssize_t		n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);

		if (n < 0)
		{
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				close_conn(ci, 1);
			return;
		}
		memmove(c->wbuf, c->wbuf + n, c->wlen - n);
		c->wlen -= n;
	}
	if (c->wlen == 0)
		set_events(ci, EPOLLIN);
}

static void
start_conn(int ci)
{
	struct conn *c = &conns[ci];
	struct sockaddr_in src = {.sin_family = AF_INET},
				dst = {.sin_family = AF_INET};
	struct epoll_event e = {.events = EPOLLOUT | EPOLLIN,.data.u64 = (uint64_t) ci};
	int			one = 1;
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	c->started_ns = now_ns();
	if (fd < 0)
		die("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	src.sin_addr.s_addr = htonl(0x7f000000u + (uint32_t) (2 + ci / src_per_addr));
	dst.sin_addr.s_addr = htonl(0x7f000001u);
	dst.sin_port = htons(port);
	c->fd = fd;
	c->state = C_CONNECTING;
	ninflight++;
	if (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0 ||
		(connect(fd, (struct sockaddr *) &dst, sizeof(dst)) != 0 && errno != EINPROGRESS) ||
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0)
		close_conn(ci, 1);
}

static void
loop_once(int timeout_ms)
{
	struct epoll_event ev[1024];
	int			n = epoll_wait(epfd, ev, 1024, timeout_ms),
				i;
	int64_t		now = now_ns();

	if (n < 0 && errno != EINTR)
		die("epoll_wait");
	for (i = 0; i < n; i++)
	{
		int			ci = (int) ev[i].data.u64;
		struct conn *c = &conns[ci];

		if (c->state == C_CLOSED)
			continue;
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		{
			if (c->state == C_CONNECTING)
				on_writable(ci);
			else
				on_readable(ci, now);
		}
		if (c->state != C_CLOSED && (ev[i].events & EPOLLOUT))
			on_writable(ci);
	}
}

static void
sample_rss(void)
{
	char		path[64],
				line[256];
	FILE	   *f;

	if (server_pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", server_pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
		{
			rss_last_kb = strtol(line + 6, NULL, 10);
			if (rss_last_kb > rss_peak_kb)
				rss_peak_kb = rss_last_kb;
		}
	fclose(f);
}

/* ---- the two loads ---- */

static void
throughput_step(int64_t now)
{
	for (int i = 0; i < nclients; i++)
	{
		struct conn *c = &conns[i];

		if (c->state == C_OPEN && !c->sent_ns && now >= c->next_ok_ns)
			send_vote(i, next_option(c), now);
	}
}

static int	rr = 1;				/* paced: the next load connection to try */

static void
paced_step(int64_t now, int64_t t0, long *scheduled)
{
	long		due = (long) ((now - t0) / 1e9 * rate);

	/* the probe: when the last was seen by every subscriber, or 1 s after it */
	if (conns[0].state == C_OPEN && !conns[0].sent_ns &&
		(nprobes == 0 ||
		 (probe_acked && now - probe_sent_ns >= PROBE_GAP_NS &&
		  (probe_seen_by >= nsubscribed - 1 || now - probe_sent_ns >= PROBE_WAIT_NS))))
	{
		if (nprobes > 0 && conns[0].counted)
			push_missing += (nsubscribed - 1) - probe_seen_by > 0 ? (nsubscribed - 1) - probe_seen_by : 0;
		nprobes++;
		probe_sent_ns = now;
		probe_acked = 0;
		probe_seen_by = 0;
		send_vote(0, nprobes % 2 ? 1 : 2, now);
		(*scheduled)++;
	}
	while (*scheduled < due)
	{
		int			tries;

		for (tries = 0; tries < nclients - 1; tries++)
		{
			struct conn *c = &conns[rr];

			rr = rr + 1 < nclients ? rr + 1 : 1;
			if (c->state == C_OPEN && !c->sent_ns)
			{
				send_vote((int) (c - conns), next_option(c), now);
				break;
			}
		}
		(*scheduled)++;			/* a vote with no free connection is skipped, not queued */
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static double
pct(const double *v, long n, double p)
{
	long		i = (long) (n * p / 100.0 + 0.999999) - 1;

	if (n == 0)
		return -1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void
write_raw(const char *path, const double *v, long n)
{
	FILE	   *f;

	if (!path)
		return;
	if (!(f = fopen(path, "w")))
		die(path);
	for (long i = 0; i < n; i++)
		fprintf(f, "%.3f\n", v[i]);
	fclose(f);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: voteload throughput|paced --port P --poll ID --clients N --secret-file F [--seconds S]\n"
			"                [--conn-rate R] [--rate R] [--pid PID] [--raw FILE] [--push-raw FILE]\n"
			"                [--options K] [--src-per-addr A] [--run NAME]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	const char *run = "vl";
	int			i;
	int64_t		t,
				w0,
				w1,
				last_rss = 0;
	long		scheduled = 0;
	struct rusage ru0,
				ru1;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "paced") == 0)
		mode_paced = 1;
	else if (strcmp(argv[1], "throughput") != 0)
		usage();
	for (i = 2; i + 1 < argc; i += 2)
	{
		const char *o = argv[i],
				   *v = argv[i + 1];

		if (!strcmp(o, "--port"))
			port = atoi(v);
		else if (!strcmp(o, "--poll"))
			poll_id = atol(v);
		else if (!strcmp(o, "--clients"))
			nclients = atoi(v);
		else if (!strcmp(o, "--secret-file"))
			secret_file = v;
		else if (!strcmp(o, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(o, "--conn-rate"))
			conn_rate = atof(v);
		else if (!strcmp(o, "--rate"))
			rate = atof(v);
		else if (!strcmp(o, "--pid"))
			server_pid = atoi(v);
		else if (!strcmp(o, "--raw"))
			raw_path = v;
		else if (!strcmp(o, "--push-raw"))
			push_raw_path = v;
		else if (!strcmp(o, "--options"))
			noptions = atoi(v);
		else if (!strcmp(o, "--src-per-addr"))
			src_per_addr = atoi(v);
		else if (!strcmp(o, "--run"))
			run = v;
		else
			usage();
	}
	if (i != argc || port <= 0 || poll_id <= 0 || nclients < 2 || !secret_file || seconds <= 0 ||
		rate <= 0 || noptions < 3 || noptions > 64 || src_per_addr < 1 ||
		2 + (nclients - 1) / src_per_addr > 254 || strlen(run) > 64)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) nclients + 64)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	read_secret();
	rng ^= (uint64_t) now_ns() ^ ((uint64_t) getpid() << 32);
	conns = calloc(nclients, sizeof(*conns));
	if (!conns)
		die("calloc");
	for (i = 0; i < nclients; i++)
	{
		char		sub[128];

		snprintf(sub, sizeof(sub), "%s-%d", run, i);
		conns[i].fd = -1;
		conns[i].token = make_token(sub);
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");

	/* connect everyone, MAX_INFLIGHT handshakes at a time, within 30 s */
	t = now_ns();
	{
		int			next = 0;

		while ((next < nclients || ninflight > 0) && now_ns() - t < 30000000000LL)
		{
			while (next < nclients && ninflight < MAX_INFLIGHT)
				start_conn(next++);
			loop_once(10);
		}
		/* paced: every connection has its snapshot before the clock starts (at most 5 s) */
		while (mode_paced && nsubscribed < nopen && now_ns() - t < 35000000000LL)
			loop_once(10);
	}
	printf("clients=%d open=%ld subscribed=%ld failed=%ld connect_s=%.2f\n",
		   nclients, nopen, nsubscribed, nfailed, (now_ns() - t) / 1e9);
	fflush(stdout);
	if (nopen < 2 || (mode_paced && conns[0].state != C_OPEN))
	{
		fprintf(stderr, "voteload: too few connections open\n");
		return 1;
	}

	/* warm-up: one second, not counted */
	w0 = now_ns();
	while (now_ns() - w0 < 1000000000LL)
	{
		int64_t		now = now_ns();

		if (mode_paced)
			paced_step(now, w0, &scheduled);
		else
			throughput_step(now);
		loop_once(1);
	}
	/* the measured window */
	getrusage(RUSAGE_SELF, &ru0);
	in_window = 1;
	w0 = now_ns();
	scheduled = 0;
	while ((w1 = now_ns()) - w0 < (int64_t) (seconds * 1e9))
	{
		if (mode_paced)
			paced_step(w1, w0, &scheduled);
		else
			throughput_step(w1);
		if (w1 - last_rss >= 100000000LL)
		{
			sample_rss();
			last_rss = w1;
		}
		loop_once(1);
	}
	/* answers to votes sent in the window still count, for at most 5 s; no new votes */
	{
		int64_t		until = now_ns() + 5000000000LL;
		int			busy = 1;

		while (busy && now_ns() < until)
		{
			busy = 0;
			for (i = 0; i < nclients && !busy; i++)
				if (conns[i].state == C_OPEN && conns[i].sent_ns)
					busy = 1;
			/* and the last probe, seen by all or 1 s old */
			if (mode_paced && nprobes > 0 && probe_seen_by < nsubscribed - 1 &&
				now_ns() - probe_sent_ns < PROBE_WAIT_NS)
				busy = 1;
			loop_once(5);
		}
		if (mode_paced && nprobes > 0 && conns[0].counted && probe_seen_by < nsubscribed - 1)
			push_missing += (nsubscribed - 1) - probe_seen_by;
	}
	in_window = 0;
	getrusage(RUSAGE_SELF, &ru1);
	sample_rss();

	qsort(lat, nlat, sizeof(double), cmp_double);
	write_raw(raw_path, lat, nlat);
	{
		double		secs = (w1 - w0) / 1e9;
		long		unanswered = nsent - nvoted - nerrors;

		printf("window_s=%.2f sent=%ld voted=%ld errors=%ld unanswered=%ld open_at_end=%ld closed_by_server=%ld\n",
			   secs, nsent, nvoted, nerrors, unanswered, nopen, nclosed_by_peer);
		printf("acked_per_s=%.0f offered_per_s=%.0f\n", nvoted / secs, nsent / secs);
		printf("results:");
		for (i = 0; i < 5; i++)
			printf(" %s=%ld", result_names[i], results[i]);
		printf("\nerror_codes:");
		for (i = 0; i < MAX_ERRCODES && errcodes[i][0]; i++)
			printf(" %s=%ld", errcodes[i], errcounts[i]);
		printf(" other_errors=%ld\ncasts_total=%ld\n", nother_errors, casts_total);
		/* an unanswered vote counts as slower than any answered one */
		printf("voted_p50_ms=%.2f voted_p99_ms=%.2f voted_max_ms=%.2f\n",
			   pct(lat, nlat + unanswered, 50), (nlat + unanswered) * 0.99 <= nlat ? pct(lat, nlat + unanswered, 99) : -1,
			   nlat ? lat[nlat - 1] : -1);
		if (mode_paced)
		{
			long		all = npush + push_missing;

			qsort(push_lat, npush, sizeof(double), cmp_double);
			write_raw(push_raw_path, push_lat, npush);
			printf("probes=%d push_samples=%ld push_missing=%ld push_p50_ms=%.2f push_p99_ms=%.2f push_max_ms=%.2f\n",
				   nprobes, npush, push_missing,
				   all * 0.5 <= npush ? pct(push_lat, all, 50) : -1,
				   all * 0.99 <= npush ? pct(push_lat, all, 99) : -1,
				   npush ? push_lat[npush - 1] : -1);
		}
		printf("server_rss_peak_kb=%ld server_rss_end_kb=%ld\n", rss_peak_kb, rss_last_kb);
		printf("client_cpu_pct=%.1f\n",
			   ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
				(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) /
			   1e4 / ((now_ns() - w0) / 1e9));
	}
	for (i = 0; i < nclients; i++)
		close_conn(i, 0);
	return 0;
}

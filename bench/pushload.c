/*
 * pushload.c — WebSocket load client for poll-fanout and its LISTEN/NOTIFY
 * baseline: many connections from one process (epoll, non-blocking sockets,
 * a minimal RFC 6455 client of its own).
 *
 *   pushload push --port P --poll ID --clients N --conninfo CI [--seconds S]
 *                 [--interval-ms 100] [--pid PID] [--raw FILE] [--src-base B]
 *                 [--settle S] [--drain-max S]
 *   pushload idle --port P --poll ID --clients N [--pid PID] [--hold-seconds S]
 *                 [--src-base B] [--handshake-timeout S]
 *
 * push: N clients subscribe to poll ID. A probe thread (libpq) then casts one
 * vote for option 1 every interval; it records t_k (CLOCK_MONOTONIC) right
 * after the commit of probe k returns. Every client records the first time it
 * sees a tally or snapshot whose option 1 count reaches base + k. Latency is
 * receipt - t_k over all clients and probes. Option 1 must receive only probe
 * votes. After connecting it prints the clients= line and waits --settle
 * seconds (the caller starts its background load then); after the last probe
 * it reads until every client has seen it, at most --drain-max seconds.
 * Prints key=value lines; --raw writes every latency (ms), one a line.
 * Receipt is when the message's bytes reached the client's socket (the
 * kernel's receive timestamp, SO_TIMESTAMPNS), so that this one process's
 * lag in reading 10 000 sockets is not counted against the server;
 * read_p50_ms is the same from the time this process read them.
 * Also the intervals between one client's messages while the probes run:
 * period_ms, their mean, and wait_ms = sum(P^2) / (2 sum(P)), the mean
 * wait until a client's next message for a change that comes at a random
 * moment (longer than period_ms / 2 when the intervals vary).
 *
 * idle: opens up to N subscribed connections, reports how many are held, the
 * VmRSS of --pid (the server) while they are held, and how many are still
 * open after --hold-seconds.
 *
 * Client sockets bind to 127.0.0.B, 127.0.0.B+1, ... (20 000 connections per
 * source address: loopback has about 28 000 ephemeral ports per address) and
 * close with RST, so runs leave no TIME_WAIT behind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define PER_SRC_ADDR	20000
#define MAX_INFLIGHT	256
#define MAX_FRAME		(1 << 20)
#define RBUF			65536

enum state
{
	C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED
};

struct conn
{
	int			fd;
	uint8_t		state;
	uint8_t		got_msg;
	uint8_t		failed;
	int32_t		seen;			/* highest probe index seen */
	int64_t		started_ns;
	int64_t		last_msg_ns;	/* while the probes run */
	char		key[25];		/* Sec-WebSocket-Key */
	char	   *pend;			/* unparsed input: partial headers or frame */
	uint32_t	pend_len;
	char	   *frag;			/* fragmented message being assembled */
	uint32_t	frag_len;
	char	   *wbuf;			/* output the socket did not take yet */
	uint32_t	wlen;
};

/* options */
static int	mode_push;
static int	port;
static long poll_id;
static int	nclients;
static const char *conninfo;
static double seconds = 15;
static int	interval_ms = 100;
static int	server_pid;
static const char *raw_path;
static int	src_base = 2;
static double hold_seconds = 2;
static double drain_max = 10;
static double settle = 0;
static int64_t handshake_ns = 10LL * 1000000000;

static struct conn *conns;
static int	epfd;
static long nopen, ninflight, nfailed, nclosed_by_peer, nstarted, nsubscribed;
static long total_msgs, window_msgs, error_msgs;
static int	in_window;
static double period_sum, period_sq;	/* intervals between one client's messages, ns */
static char rbuf[RBUF];

/* probes, shared with the probe thread */
static int	nprobes;
static int64_t *t_probe;		/* commit acknowledged, ns */
static int64_t *t_recv;			/* [k * nclients + c], ns, reached the socket; 0 = not seen */
static int64_t *t_read;			/* the same, read by us */
static int64_t read_now;		/* when the current batch of events was read */
static int64_t real_minus_mono;	/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
static _Atomic int probes_done;
static _Atomic long base_votes = -1;
static _Atomic int probe_failed;

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
	fprintf(stderr, "pushload: %s: %s\n", what, strerror(errno));
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
	if (c->state == C_OPEN && c->got_msg)
		nsubscribed--;
	if (failed)
	{
		c->failed = 1;
		nfailed++;
	}
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));	/* RST: no TIME_WAIT */
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
	struct epoll_event e = {.events = ev, .data.u64 = (uint64_t) ci};

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, conns[ci].fd, &e) != 0)
		die("epoll_ctl");
}

/* write, keeping what the socket does not take */
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

/* a masked client frame */
static void
send_frame(int ci, int opcode, const char *payload, size_t len)
{
	char		f[14 + 256];
	size_t		h = 0,
				i;
	uint32_t	m = rnd32();
	unsigned char mask[4] = {m & 255, (m >> 8) & 255, (m >> 16) & 255, m >> 24};

	if (len > 256)
		len = 256;				/* subscribe, pong and close payloads are small */
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

/* the votes of option 1 in a tally or snapshot, or -1 */
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
on_message(int ci, const char *msg, size_t len, int64_t now)
{
	struct conn *c = &conns[ci];
	long		base,
				v,
				j,
				k;

	total_msgs++;
	if (in_window)
	{
		window_msgs++;
		if (c->last_msg_ns)
		{
			double		p = (double) (now - c->last_msg_ns);

			period_sum += p;
			period_sq += p * p;
		}
		c->last_msg_ns = now;
	}
	if (!c->got_msg)
	{
		c->got_msg = 1;
		nsubscribed++;
	}
	if (find(msg, msg + len, "\"error\""))
		error_msgs++;
	if (!mode_push || (base = atomic_load(&base_votes)) < 0)
		return;
	v = option1_votes(msg, len);
	if (v < 0)
		return;
	j = v - base;
	if (j > nprobes)
		j = nprobes;
	for (k = c->seen + 1; k <= j; k++)
	{
		t_recv[(k - 1) * nclients + ci] = now;
		t_read[(k - 1) * nclients + ci] = read_now;
	}
	if (j > c->seen)
		c->seen = (int32_t) j;
}

/* parse frames from p; returns bytes consumed, or -1 when the connection closed */
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
			int			i;

			if (n - off < 10)
				break;
			len = 0;
			for (i = 0; i < 8; i++)
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
		{
			uint64_t	i;

			for (i = 0; i < len; i++)
				pl[i] ^= f[h - 4 + (i & 3)];
		}
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
	n = snprintf(sub, sizeof(sub), "{\"type\":\"subscribe\",\"poll\":%ld}", poll_id);
	send_frame(ci, 1, sub, n);
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
	struct iovec iov = {rbuf, RBUF};
	char		cbuf[CMSG_SPACE(sizeof(struct timespec))];
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t		n = recvmsg(c->fd, &mh, 0);
	char	   *data;
	size_t		len;
	long		used;

	/* when the bytes reached the socket (the last of them, when several segments are read at once) */
	for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS)
		{
			struct timespec ts;
			int64_t		t;

			memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
			t = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec - real_minus_mono;
			if (t > 0 && t <= now)
				now = t;
		}

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
		char		req[512];
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
					 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
					 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
					 port, c->key);
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

static int
start_conn(int ci)
{
	struct conn *c = &conns[ci];
	struct sockaddr_in src = {.sin_family = AF_INET},
				dst = {.sin_family = AF_INET};
	struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.u64 = (uint64_t) ci};
	int			one = 1;
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	nstarted++;
	c->started_ns = now_ns();
	if (fd < 0)
	{
		c->state = C_CLOSED;
		c->failed = 1;
		nfailed++;
		return errno == EMFILE || errno == ENFILE ? -1 : 0;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	src.sin_addr.s_addr = htonl(0x7f000000u + (uint32_t) (src_base + ci / PER_SRC_ADDR));
	dst.sin_addr.s_addr = htonl(0x7f000001u);
	dst.sin_port = htons(port);
	c->fd = fd;
	c->state = C_CONNECTING;
	ninflight++;
	if (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0 ||
		(connect(fd, (struct sockaddr *) &dst, sizeof(dst)) != 0 && errno != EINPROGRESS) ||
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0)
	{
		close_conn(ci, 1);
		return 0;
	}
	return 0;
}

static int64_t ramp_deadline;
static int	next_conn;
static int	ramp_stopped;

/* start connections while few are in flight; time out slow handshakes */
static void
ramp(int64_t now)
{
	static int64_t last_sweep;
	int			i;

	while (!ramp_stopped && next_conn < nclients && ninflight < MAX_INFLIGHT)
	{
		if (start_conn(next_conn++) < 0)
			ramp_stopped = 1;	/* out of file descriptors */
		/* in idle mode, stop once failures pile up: the server is full */
		if (!mode_push && nfailed > 200 && nfailed * 20 > nstarted)
			ramp_stopped = 1;
	}
	if (now > ramp_deadline)
		ramp_stopped = 1;
	if (now - last_sweep > 500000000LL)
	{
		last_sweep = now;
		for (i = 0; i < next_conn; i++)
			if ((conns[i].state == C_CONNECTING || conns[i].state == C_HANDSHAKE) &&
				now - conns[i].started_ns > handshake_ns)
				close_conn(i, 1);
	}
}

static void
loop_once(int timeout_ms)
{
	struct epoll_event ev[1024];
	int			n = epoll_wait(epfd, ev, 1024, timeout_ms),
				i;
	int64_t		now = now_ns();
	struct timespec rt;

	clock_gettime(CLOCK_REALTIME, &rt);
	real_minus_mono = (int64_t) rt.tv_sec * 1000000000 + rt.tv_nsec - now_ns();
	read_now = now;

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
read_cpu_rss(int pid, long *ticks, long *rss_kb)
{
	char		path[64],
				line[1024];
	FILE	   *f;

	*ticks = -1;
	*rss_kb = -1;
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) != NULL)
	{
		if (fgets(line, sizeof(line), f))
		{
			char	   *p = strrchr(line, ')');
			long		ut,
						st;

			/* after the comm: state(3) ... utime(14) stime(15) */
			if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) == 2)
				*ticks = ut + st;
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) != NULL)
	{
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "VmRSS:", 6) == 0)
				*rss_kb = strtol(line + 6, NULL, 10);
		fclose(f);
	}
}

static void *
probe_main(void *arg)
{
	PGconn	   *pc = PQconnectdb(conninfo);
	PGresult   *r;
	char		pollbuf[32],
				voter[96];
	const char *params[2] = {pollbuf, voter};
	int64_t		t0;
	int			k;

	(void) arg;
	if (PQstatus(pc) != CONNECTION_OK)
	{
		fprintf(stderr, "pushload: probe: %s", PQerrorMessage(pc));
		atomic_store(&probe_failed, 1);
		return NULL;
	}
	snprintf(pollbuf, sizeof(pollbuf), "%ld", poll_id);
	r = PQexecParams(pc, "SELECT votes FROM poll.results WHERE poll_id = $1::bigint AND option_id = 1",
					 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
	{
		fprintf(stderr, "pushload: probe: reading option 1: %s", PQerrorMessage(pc));
		atomic_store(&probe_failed, 1);
		return NULL;
	}
	atomic_store(&base_votes, atol(PQgetvalue(r, 0, 0)));
	PQclear(r);
	t0 = now_ns();
	for (k = 1; k <= nprobes; k++)
	{
		int64_t		due = t0 + (int64_t) k * interval_ms * 1000000,
					now = now_ns();

		if (due > now)
		{
			struct timespec ts = {(due - now) / 1000000000, (due - now) % 1000000000};

			nanosleep(&ts, NULL);
		}
		snprintf(voter, sizeof(voter), "probe-%d-%lld-%d", (int) getpid(), (long long) t0, k);
		r = PQexecParams(pc, "SELECT poll.cast_vote($1::bigint, $2::text, 1)", 2, NULL, params, NULL, NULL, 0);
		t_probe[k - 1] = now_ns();
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "pushload: probe %d: %s", k, PQerrorMessage(pc));
			atomic_store(&probe_failed, 1);
			PQclear(r);
			break;
		}
		PQclear(r);
		atomic_store(&probes_done, k);
	}
	PQfinish(pc);
	return NULL;
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
usage(void)
{
	fprintf(stderr,
			"usage: pushload push --port P --poll ID --clients N --conninfo CI [--seconds S] [--interval-ms MS]\n"
			"                     [--pid SERVER_PID] [--raw FILE] [--src-base B] [--drain-max S] [--settle S]\n"
			"       pushload idle --port P --poll ID --clients N [--pid SERVER_PID] [--hold-seconds S] [--src-base B]\n"
			"                     [--handshake-timeout S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	int			i;
	int64_t		t;
	long		hz = sysconf(_SC_CLK_TCK);

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "push") == 0)
		mode_push = 1;
	else if (strcmp(argv[1], "idle") != 0)
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
		else if (!strcmp(o, "--conninfo"))
			conninfo = v;
		else if (!strcmp(o, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(o, "--interval-ms"))
			interval_ms = atoi(v);
		else if (!strcmp(o, "--pid"))
			server_pid = atoi(v);
		else if (!strcmp(o, "--raw"))
			raw_path = v;
		else if (!strcmp(o, "--src-base"))
			src_base = atoi(v);
		else if (!strcmp(o, "--hold-seconds"))
			hold_seconds = atof(v);
		else if (!strcmp(o, "--drain-max"))
			drain_max = atof(v);
		else if (!strcmp(o, "--settle"))
			settle = atof(v);
		else if (!strcmp(o, "--handshake-timeout"))
			handshake_ns = (int64_t) (atof(v) * 1e9);
		else
			usage();
	}
	if (i != argc || port <= 0 || poll_id <= 0 || nclients <= 0 || interval_ms <= 0 ||
		(mode_push && !conninfo) || src_base < 1 || src_base + nclients / PER_SRC_ADDR > 254)
		usage();
	signal(SIGPIPE, SIG_IGN);

	/* one descriptor per connection, and some to spare */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) nclients + 256)
	{
		rlim_t		want = (rlim_t) nclients + 256;

		rl.rlim_cur = rl.rlim_max = want > rl.rlim_max ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		{
			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			fprintf(stderr, "pushload: file descriptors limited to %lu\n", (unsigned long) rl.rlim_cur);
		}
	}
	rng ^= (uint64_t) now_ns() ^ ((uint64_t) getpid() << 32);
	conns = calloc(nclients, sizeof(*conns));
	if (!conns)
		die("calloc");
	for (i = 0; i < nclients; i++)
		conns[i].fd = -1;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");

	/* connect everyone, a few hundred handshakes at a time */
	t = now_ns();
	ramp_deadline = t + 90LL * 1000000000;
	while (!(next_conn >= nclients || ramp_stopped) || ninflight > 0)
	{
		int64_t		now = now_ns();

		ramp(now);
		if (ramp_stopped && now > ramp_deadline + handshake_ns)
			break;
		loop_once(10);
	}
	/* wait for the first message (a snapshot) when one is coming, at most 5 s */
	{
		int64_t		until = now_ns() + (mode_push ? 1000000000LL : 5000000000LL);

		while (now_ns() < until && nsubscribed < nopen)
			loop_once(10);
	}
	printf("clients=%d started=%ld open=%ld subscribed=%ld failed=%ld connect_s=%.2f\n",
		   nclients, nstarted, nopen, nsubscribed, nfailed, (now_ns() - t) / 1e9);
	fflush(stdout);
	/* --settle: the caller starts its background load now */
	{
		int64_t		until = now_ns() + (int64_t) (settle * 1e9);

		while (now_ns() < until)
			loop_once(10);
	}

	if (!mode_push)
	{
		long		ticks,
					rss;
		int64_t		until;

		read_cpu_rss(server_pid, &ticks, &rss);
		printf("held=%ld server_rss_kb=%ld\n", nsubscribed, rss);
		fflush(stdout);
		until = now_ns() + (int64_t) (hold_seconds * 1e9);
		while (now_ns() < until)
			loop_once(50);
		printf("still_open=%ld still_subscribed=%ld closed_by_server=%ld\n", nopen, nsubscribed, nclosed_by_peer);
		for (i = 0; i < nclients; i++)
			close_conn(i, 0);
		return 0;
	}

	/* push: probes while clients read */
	{
		pthread_t	th;
		long		ticks0,
					ticks1,
					rss,
					nsamples = 0,
					missing = 0,
					negative = 0,
					k,
					c;
		int64_t		w0,
					w1,
					until;
		double	   *lat;
		FILE	   *raw = NULL;
		long		open_at_start = nopen;
		struct rusage ru0,
					ru1;

		nprobes = (int) (seconds * 1000 / interval_ms);
		t_probe = calloc(nprobes, sizeof(*t_probe));
		t_recv = calloc((size_t) nprobes * nclients, sizeof(*t_recv));
		t_read = calloc((size_t) nprobes * nclients, sizeof(*t_read));
		if (!t_probe || !t_recv || !t_read)
			die("calloc");
		read_cpu_rss(server_pid, &ticks0, &rss);
		getrusage(RUSAGE_SELF, &ru0);
		w0 = now_ns();
		in_window = 1;
		if (pthread_create(&th, NULL, probe_main, NULL) != 0)
			die("pthread_create");
		while (atomic_load(&probes_done) < nprobes && !atomic_load(&probe_failed))
			loop_once(5);
		w1 = now_ns();
		in_window = 0;
		getrusage(RUSAGE_SELF, &ru1);
		read_cpu_rss(server_pid, &ticks1, &rss);
		pthread_join(th, NULL);
		if (atomic_load(&probe_failed))
			return 1;
		/* drain: until every open client has seen the last probe */
		until = now_ns() + (int64_t) (drain_max * 1e9);
		while (now_ns() < until)
		{
			int			behind = 0;

			for (i = 0; i < nclients && !behind; i++)
				if (conns[i].state == C_OPEN && conns[i].seen < nprobes)
					behind = 1;
			if (!behind)
				break;
			loop_once(10);
		}

		lat = malloc(sizeof(double) * (size_t) nprobes * nclients);
		if (!lat)
			die("malloc");
		if (raw_path && !(raw = fopen(raw_path, "w")))
			die(raw_path);
		for (k = 0; k < nprobes; k++)
			for (c = 0; c < nclients; c++)
			{
				int64_t		r = t_recv[k * nclients + c];

				if (conns[c].failed)
					continue;	/* never connected */
				if (r == 0)
				{
					missing++;
					continue;
				}
				if (r < t_probe[k])
					negative++;
				lat[nsamples] = (r - t_probe[k]) / 1e6;
				if (raw)
					fprintf(raw, "%.3f\n", lat[nsamples]);
				nsamples++;
			}
		if (raw)
			fclose(raw);
		qsort(lat, nsamples, sizeof(double), cmp_double);
		/* a sample never received counts as slower than any received */
		{
			long		all = nsamples + missing;
			double		p50 = (all * 0.5 <= nsamples) ? pct(lat, all, 50) : -1,
						p99 = (all * 0.99 <= nsamples) ? pct(lat, all, 99) : -1;

			printf("probes=%d open_at_start=%ld open_at_end=%ld closed_by_server=%ld samples=%ld missing=%ld early=%ld\n",
				   nprobes, open_at_start, nopen, nclosed_by_peer, nsamples, missing, negative);
			printf("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", p50, p99,
				   missing ? -1.0 : (nsamples ? lat[nsamples - 1] : -1.0));
			printf("window_s=%.2f msgs=%ld msgs_per_s=%.0f error_msgs=%ld\n",
				   (w1 - w0) / 1e9, window_msgs, window_msgs / ((w1 - w0) / 1e9), error_msgs);
			{
				/* the same latencies from the time this process read the bytes */
				double	   *rl = malloc(sizeof(double) * (size_t) (nsamples ? nsamples : 1));
				long		m = 0;

				if (!rl)
					die("malloc");
				for (k = 0; k < nprobes; k++)
					for (c = 0; c < nclients; c++)
						if (!conns[c].failed && t_read[k * nclients + c])
							rl[m++] = (t_read[k * nclients + c] - t_probe[k]) / 1e6;
				qsort(rl, m, sizeof(double), cmp_double);
				printf("read_p50_ms=%.2f\n", (all * 0.5 <= m) ? pct(rl, all, 50) : -1);
				free(rl);
			}
			printf("period_ms=%.2f wait_ms=%.2f\n",
				   window_msgs > open_at_start ? period_sum / 1e6 / (double) (window_msgs - open_at_start) : -1.0,
				   period_sum > 0 ? period_sq / (2 * period_sum) / 1e6 : -1.0);
			printf("client_cpu_pct=%.1f\n",
				   ((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
					(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) /
				   1e4 / ((w1 - w0) / 1e9));
			if (server_pid > 0 && ticks0 >= 0 && ticks1 >= 0)
				printf("server_cpu_pct=%.1f server_rss_kb=%ld\n",
					   (ticks1 - ticks0) * 100.0 / hz / ((w1 - w0) / 1e9), rss);
		}
		for (i = 0; i < nclients; i++)
			close_conn(i, 0);
		free(lat);
	}
	return 0;
}

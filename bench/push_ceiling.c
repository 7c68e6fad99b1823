/*
 * push_ceiling.c — the most messages/s this machine can deliver to N
 * WebSocket clients over loopback TCP, with the same client (pushload) and
 * the same background vote load as the push benchmark.
 *
 *   push_ceiling --port P [--bytes N] [--rate R]
 *
 * It accepts WebSocket upgrades on 127.0.0.1:P, answers each client's
 * handshake, and from then on writes one ready-made text frame of N bytes
 * (a tally message of the push benchmark's size, 150 by default) to every
 * open connection in turn, as fast as the sockets take them: one send() per
 * message, no JSON, no coalescing, no timers, no Postgres. A socket that is
 * full leaves the round until the kernel says it has room again (EPOLLOUT,
 * edge-triggered, registered once at accept: no epoll_ctl per message), and
 * while every socket is full the loop sleeps in epoll_wait: the CPU it uses
 * is the work of the messages it delivers, not retries of full sockets, so
 * its CPU per message is a fair floor for a daemon's. What the client receives per second
 * from this loop bounds any daemon that sends each client its own copy of a
 * message: at N clients, a client can get at most ceiling/N messages a
 * second, so a steady stream of changes waits at least N/(2·ceiling)
 * seconds for its message on average.
 *
 * --rate R paces the loop to R messages/s in all (default: as fast as it
 * goes), to compare its cost per message with a daemon's at the same rate.
 *
 * Runs until SIGTERM/SIGINT. Prints nothing but errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#define HDR_MAX	4096

struct client
{
	int			fd;
	int			open;			/* handshake answered */
	int			full;			/* the socket took no more: out of the round until EPOLLOUT */
	int			pos;			/* place in ready[] while open and not full */
	int			hlen;
	int			off;			/* bytes of the current frame already sent */
	char	   *hdr;			/* request being read, until the handshake */
};

static volatile sig_atomic_t stop;
static struct client *clients;	/* indexed by fd */
static int	maxfd;
static int *ready;				/* fds of open connections whose socket has room */
static int	nready;

static void
ready_add(struct client *c)
{
	c->pos = nready;
	ready[nready++] = c->fd;
}

static void
ready_remove(struct client *c)
{
	int			last = ready[--nready];

	ready[c->pos] = last;
	clients[last].pos = c->pos;
}

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

static void
fail(const char *what)
{
	fprintf(stderr, "push_ceiling: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
drop(int fd)
{
	struct client *c = &clients[fd];

	if (c->open && !c->full)
		ready_remove(c);
	free(c->hdr);
	memset(c, 0, sizeof(*c));
	close(fd);
}

/* Answers a complete upgrade request; 0 when it is not one. */
static int
answer(struct client *c)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char		key[64],
				cat[128],
				accept[64],
				resp[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	const char *k = strcasestr(c->hdr, "\r\nSec-WebSocket-Key:");
	int			n = 0,
				len;

	if (!k)
		return 0;
	k += 20;
	while (*k == ' ')
		k++;
	while (n < 40 && k[n] && k[n] != '\r')
	{
		key[n] = k[n];
		n++;
	}
	key[n] = '\0';
	snprintf(cat, sizeof(cat), "%s%s", key, guid);
	if (!EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL))
		return 0;
	EVP_EncodeBlock((unsigned char *) accept, md, (int) mdlen);
	len = snprintf(resp, sizeof(resp),
				   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
	return send(c->fd, resp, len, MSG_NOSIGNAL) == len;
}

/* edge-triggered: reads until the socket is empty */
static void
on_input(int fd)
{
	struct client *c = &clients[fd];
	char		buf[HDR_MAX];

	for (;;)
	{
		ssize_t		n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		{
			drop(fd);
			return;
		}
		if (n < 0)
			return;
		if (c->open)
			continue;			/* after the handshake, input (subscribe) is ignored */
		if (c->hlen + n >= HDR_MAX)
		{
			drop(fd);
			return;
		}
		memcpy(c->hdr + c->hlen, buf, n);
		c->hlen += (int) n;
		c->hdr[c->hlen] = '\0';
		if (!strstr(c->hdr, "\r\n\r\n"))
			continue;
		if (!answer(c))
		{
			drop(fd);
			return;
		}
		c->open = 1;
		ready_add(c);
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct epoll_event ev,
				evs[256];
	struct rlimit rl;
	unsigned char *frame;
	double		rate = 0;
	long		sent = 0;
	struct timespec t0 = {0};
	int			port = 0,
				bytes = 150,
				one = 1,
				lfd,
				ep,
				flen;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--bytes"))
			bytes = atoi(argv[i + 1]);
	}
	if (port <= 0 || bytes < 64 || bytes > 65535)
	{
		fprintf(stderr, "usage: push_ceiling --port P [--bytes 64..65535]\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
	{
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	maxfd = (int) rl.rlim_cur;
	clients = calloc(maxfd, sizeof(*clients));
	ready = calloc(maxfd, sizeof(*ready));
	/* a tally-shaped JSON text frame of exactly `bytes` payload bytes */
	frame = malloc(4 + bytes);
	if (!clients || !ready || !frame)
		fail("calloc");
	frame[0] = 0x81;
	if (bytes < 126)
	{
		frame[1] = (unsigned char) bytes;
		flen = 2;
	}
	else
	{
		frame[1] = 126;
		frame[2] = (unsigned char) (bytes >> 8);
		frame[3] = (unsigned char) bytes;
		flen = 4;
	}
	memset(frame + flen, ' ', bytes);
	memcpy(frame + flen, "{\"type\":\"tally\",\"poll\":0,\"version\":1,\"options\":[]}", 50);
	flen += bytes;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(lfd, 4096) < 0)
		fail("listen");
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	while (!stop)
	{
		/* while nobody can be written to, wait for input; else only look */
		int			n = epoll_wait(ep, evs, 256, nready ? 0 : 100);

		for (int i = 0; i < n; i++)
		{
			int			fd = evs[i].data.fd;

			if (fd == lfd)
			{
				int			cfd;

				while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				{
					if (cfd >= maxfd || !(clients[cfd].hdr = malloc(HDR_MAX)))
					{
						close(cfd);
						continue;
					}
					clients[cfd].fd = cfd;
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
					ev.data.fd = cfd;
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
				}
			}
			else
			{
				struct client *c = &clients[fd];

				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					on_input(fd);
				if (c->fd == fd && c->open && c->full && (evs[i].events & EPOLLOUT))
				{
					c->full = 0;	/* room again: back in the round */
					ready_add(c);
				}
			}
		}
		/* one round: a message to every open connection that has room */
		for (int i = 0; i < nready && !stop; i++)
		{
			struct client *c = &clients[ready[i]];
			ssize_t		w = send(c->fd, frame + c->off, flen - c->off,
								 MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w >= 0 && w < flen - c->off)
			{
				c->off += (int) w;	/* a partial frame is finished first, when there is room */
				c->full = 1;
				ready_remove(c);
				i--;
			}
			else if (w >= 0)
			{
				c->off = 0;
				if (rate > 0 && ++sent % 64 == 0)
				{
					struct timespec t;
					double		ahead;

					if (t0.tv_sec == 0)
						clock_gettime(CLOCK_MONOTONIC, &t0);
					clock_gettime(CLOCK_MONOTONIC, &t);
					ahead = sent / rate - ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9);
					if (ahead > 0)
						usleep((useconds_t) (ahead * 1e6));
				}
			}
			else if (errno == EAGAIN || errno == EWOULDBLOCK)
			{
				c->full = 1;
				ready_remove(c);
				i--;
			}
			else
			{
				drop(c->fd);
				i--;
			}
		}
	}
	return 0;
}

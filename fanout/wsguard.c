/*
 * wsguard.c — the RFC 6455 frame checks lws 4.1 does not make, done on the
 * bytes of client connections before lws reads them.
 *
 * lws 4.1's server parser (lws_ws_rx_sm) accepts unmasked client frames
 * (it notes the mask bit and moves on), drops TCP without a close frame on
 * a control frame with an extended length (> 125 bytes), and echoes a close
 * frame's payload even when that is a single byte.  None of this reaches a
 * callback: control frames never do, and the mask bit is not in its API.
 * So the daemon defines recv() and SSL_read(), which lws calls through the
 * PLT and so reach ours first (the executable is first in the symbol search
 * order); they call the real ones (dlsym RTLD_NEXT) and walk the frame
 * headers of what a WebSocket client sent.  A bad frame ends the read just
 * before it, and the connection is closed with 1002 and a close frame
 * (lws_close_reason, then the kill): lws never parses the bad frame.
 *
 * Only sockets accepted from our listener are guarded (accept() is ours
 * too; close() forgets the descriptor), so libpq's sockets pass untouched.
 * Until the connection is a WebSocket a read stops at the end of each HTTP
 * header block (MSG_PEEK or SSL_peek first), so that the first frame after
 * the upgrade request is never read by lws before the guard knows it is a
 * WebSocket (guard_websocket() from ESTABLISHED).  Once it is, a read is
 * one real read and a walk over the header bytes: the hot path of client
 * input gains no system call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "fanout.h"

enum guard_mode { G_OFF, G_HTTP, G_WS, G_BAD };

struct guard {
	uint8_t		mode;
	uint8_t		crlf;			/* HTTP: how much of "\r\n\r\n" ends what was read */
	uint8_t		hlen;			/* WS: header bytes of the current frame seen so far */
	uint8_t		hb[14];
	uint64_t	remain;			/* WS: payload bytes of the current frame still to come */
	struct lws *wsi;			/* WS: to close it */
};

static struct guard *guards;
static int	n_guards;

static ssize_t (*real_recv) (int, void *, size_t, int);
static int	(*real_ssl_read) (SSL *, void *, int);
static int	(*real_ssl_peek) (SSL *, void *, int);
static int	(*real_accept) (int, struct sockaddr *, socklen_t *);
static int	(*real_accept4) (int, struct sockaddr *, socklen_t *, int);
static int	(*real_close) (int);

static void *
next_symbol(const char *name)
{
	void	   *p = dlsym(RTLD_NEXT, name);

	if (!p)
		abort();				/* libc or libssl without it: cannot run */
	return p;
}

/* the real ones, before main() (nothing reads or accepts before it) */
__attribute__((constructor))
static void
guard_init(void)
{
	real_recv = next_symbol("recv");
	real_ssl_read = next_symbol("SSL_read");
	real_ssl_peek = next_symbol("SSL_peek");
	real_accept = next_symbol("accept");
	real_accept4 = next_symbol("accept4");
	real_close = next_symbol("close");
}

static struct guard *
guard_of(int fd)
{
	return fd >= 0 && fd < n_guards && guards[fd].mode != G_OFF ? &guards[fd] : NULL;
}

/* a client connection: guarded from its first byte */
static void
guard_accepted(int fd)
{
	if (fd < 0)
		return;
	if (fd >= n_guards)
	{
		int			n = fd < 1024 ? 1024 : fd * 2;
		struct guard *g = realloc(guards, sizeof(*g) * (size_t) n);

		if (!g)
			return;				/* unguarded: lws's own checks only */
		memset(g + n_guards, 0, sizeof(*g) * (size_t) (n - n_guards));
		guards = g;
		n_guards = n;
	}
	memset(&guards[fd], 0, sizeof(guards[fd]));
	guards[fd].mode = G_HTTP;
}

void
guard_websocket(struct lws *wsi)
{
	struct guard *g = guard_of(lws_get_socket_fd(wsi));

	if (g && g->mode == G_HTTP)
	{
		g->mode = G_WS;
		g->wsi = wsi;
	}
}

/* bytes of buf up to and including the end of the HTTP header block, or all */
static size_t
http_scan(struct guard *g, const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		if (buf[i] == (g->crlf % 2 ? '\n' : '\r'))
			g->crlf++;
		else
			g->crlf = buf[i] == '\r';
		if (g->crlf == 4)
		{
			g->crlf = 0;
			return i + 1;
		}
	}
	return n;
}

/*
 * Walks the frame headers in buf.  Returns the bytes before the first bad
 * frame (all of them when none is), with *why set when there is one.
 */
static size_t
ws_scan(struct guard *g, const unsigned char *buf, size_t n, const char **why)
{
	size_t		i = 0;
	size_t		frame_start = 0;	/* a header begun in an earlier read: before buf */

	while (i < n)
	{
		unsigned	len7;
		size_t		need;

		if (g->remain)
		{
			size_t		take = g->remain < n - i ? (size_t) g->remain : n - i;

			i += take;
			g->remain -= take;
			continue;
		}
		if (g->hlen == 0)
			frame_start = i;
		g->hb[g->hlen++] = buf[i++];
		if (g->hlen < 2)
			continue;
		len7 = g->hb[1] & 0x7f;
		if (g->hlen == 2)
		{
			if (!(g->hb[1] & 0x80))
				*why = "unmasked client frame";
			else if ((g->hb[0] & 0x08) && len7 > 125)
				*why = "control frame over 125 bytes";
			else if ((g->hb[0] & 0x0f) == 0x8 && len7 == 1)
				*why = "close frame with a 1-byte payload";
			if (*why)
				return frame_start;
		}
		need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
		if (g->hlen < need)
			continue;
		if (len7 < 126)
			g->remain = len7;
		else
		{
			g->remain = 0;
			for (size_t k = 2; k < need - 4; k++)
				g->remain = (g->remain << 8) | g->hb[k];
		}
		g->hlen = 0;
	}
	return n;
}

/* a bad frame: lws closes with 1002 and a close frame; its bytes are never parsed */
static void
guard_violation(struct guard *g, const char *why)
{
	struct lws *wsi = g->wsi;
	struct fanout *f = lws_context_user(lws_get_context(wsi));
	struct session *s = lws_wsi_user(wsi);

	g->mode = G_BAD;
	f->m.rejected_inputs++;
	if (f->verbose)
		logmsg("client: %s, closing with 1002", why);
	if (s)
		s->gone = true;			/* nothing more for it but the close */
	/*
	 * The close frame goes at the next writeable callback, which returns
	 * -1 (ws_callback): closed by a timeout instead, lws would drop the
	 * connection without it.  A client that takes no writes is dropped
	 * after 5 s all the same.
	 */
	lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *) why, strlen(why));
	lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
	lws_callback_on_writable(wsi);
}

/*
 * What a read of n bytes (done, or only peeked at when peeked) may hand to
 * lws: -1 when nothing (a bad frame first), else a count.
 */
static ssize_t
guard_filter(struct guard *g, const unsigned char *buf, size_t n)
{
	const char *why = NULL;
	size_t		ok;

	if (g->mode == G_HTTP)
		return (ssize_t) http_scan(g, buf, n);
	ok = ws_scan(g, buf, n, &why);
	if (why)
		guard_violation(g, why);
	return ok ? (ssize_t) ok : -1;
}

ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
	struct guard *g = guard_of(fd);
	bool		peek;
	ssize_t		n, ok;

	if (!g || flags)
		return real_recv(fd, buf, len, flags);
	if (g->mode == G_BAD)
	{
		/* closing: what the client still sends is dropped unparsed */
		n = real_recv(fd, buf, len, 0);
		if (n <= 0)
			return n;
		errno = EAGAIN;
		return -1;
	}
	peek = g->mode == G_HTTP;
	n = real_recv(fd, buf, len, peek ? MSG_PEEK : 0);
	if (n <= 0)
		return n;
	ok = guard_filter(g, buf, (size_t) n);
	if (peek)
		return real_recv(fd, buf, (size_t) ok, 0);
	if (ok < 0)
	{
		errno = EAGAIN;
		return -1;
	}
	if (g->mode == G_WS)
	{
		struct session *s = lws_wsi_user(g->wsi);

		if (s)
			s->lws_check = true;	/* a ping makes lws owe a pong, a bad frame a close (writer.c) */
	}
	return ok;
}

/* TLS: the same on the decrypted bytes (SSL_peek, SSL_read) */
int
SSL_read(SSL *ssl, void *buf, int num)
{
	struct guard *g = guard_of(SSL_get_fd(ssl));
	bool		peek;
	int			n;
	ssize_t		ok;

	if (!g)
		return real_ssl_read(ssl, buf, num);
	peek = g->mode == G_HTTP;
	n = g->mode == G_BAD ? 0 : peek ? real_ssl_peek(ssl, buf, num) : real_ssl_read(ssl, buf, num);
	if (n > 0 && (ok = guard_filter(g, buf, (size_t) n)) >= 0)
		return peek ? real_ssl_read(ssl, buf, (int) ok) : (int) ok;
	if (g->mode != G_BAD)
		return n;
	/* closing: drained until OpenSSL wants to read (lws then waits) */
	while ((n = real_ssl_read(ssl, buf, num)) > 0)
		;
	return n;
}

int
accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
	int			c = real_accept(fd, addr, alen);

	guard_accepted(c);
	return c;
}

int
accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	int			c = real_accept4(fd, addr, alen, flags);

	guard_accepted(c);
	return c;
}

int
close(int fd)
{
	if (fd >= 0 && fd < n_guards)
		guards[fd].mode = G_OFF;
	return real_close(fd);
}

/*
 * proxies.c — --trusted-proxy networks and the client's address from
 * X-Forwarded-For (see proxies.h).  Only a trusted peer's header counts: a
 * client talking to the daemon directly cannot choose its address.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxies.h"

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* text -> 16 bytes (IPv4 mapped); false when not an address */
static bool
to_bytes(const char *text, unsigned char *out, bool *v4)
{
	struct in_addr a4;

	*v4 = false;
	if (inet_pton(AF_INET, text, &a4) == 1)
	{
		memcpy(out, v4mapped, 12);
		memcpy(out + 12, &a4, 4);
		*v4 = true;
		return true;
	}
	if (inet_pton(AF_INET6, text, out) != 1)
		return false;
	*v4 = memcmp(out, v4mapped, 12) == 0;
	return true;
}

int
proxy_parse(const char *spec, struct proxy_net *out, const char **why)
{
	char		buf[64];
	const char *slash = strchr(spec, '/');
	size_t		len = slash ? (size_t) (slash - spec) : strlen(spec);
	bool		v4;
	int			bits;

	*why = "must be an IPv4 or IPv6 address, optionally /PREFIX";
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, spec, len);
	buf[len] = '\0';
	if (!to_bytes(buf, out->addr, &v4))
		return -1;
	bits = 128;
	if (slash)
	{
		char	   *end;
		long		p;

		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		p = strtol(slash + 1, &end, 10);
		if (*end || p > (v4 ? 32 : 128))
		{
			*why = "prefix longer than the address";
			return -1;
		}
		bits = (int) p + (v4 ? 96 : 0);
	}
	for (int i = bits; i < 128; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
		{
			*why = "bits set past the prefix";
			return -1;
		}
	out->bits = bits;
	return 0;
}

static bool
inside(const struct proxy_net *nets, int n, const unsigned char *a)
{
	for (int k = 0; k < n; k++)
	{
		int			full = nets[k].bits / 8,
					rest = nets[k].bits % 8;

		if (memcmp(a, nets[k].addr, full) == 0 &&
			(rest == 0 || ((a[full] ^ nets[k].addr[full]) & (0xff00 >> rest) & 0xff) == 0))
			return true;
	}
	return false;
}

bool
proxy_trusted(const struct proxy_net *nets, int n, const char *addr)
{
	unsigned char a[16];
	bool		v4;

	return to_bytes(addr, a, &v4) && inside(nets, n, a);
}

/* the canonical text of a (16 bytes) */
static void
canonical(const unsigned char *a, bool v4, char *out, size_t cap)
{
	char		t[INET6_ADDRSTRLEN];

	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, t, sizeof(t)))
		strcpy(t, "?");
	snprintf(out, cap, "%s", t);
}

void
proxy_client_address(const struct proxy_net *nets, int n, const char *peer,
					 const char *xff, char *out, size_t cap)
{
	unsigned char a[16];
	bool		v4;
	const char *end;

	if (!to_bytes(peer, a, &v4))
	{
		snprintf(out, cap, "%s", peer[0] ? peer : "?");
		return;
	}
	canonical(a, v4, out, cap);
	if (!xff || !inside(nets, n, a))
		return;
	/* from the right: each entry is what the proxy to its right saw */
	end = xff + strlen(xff);
	while (end > xff)
	{
		const char *start = end;
		char		entry[64];
		size_t		len;

		while (start > xff && start[-1] != ',')
			start--;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		len = (size_t) (end - start);
		while (len && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof(entry))
			return;
		memcpy(entry, start, len);
		entry[len] = '\0';
		if (!to_bytes(entry, a, &v4))
			return;
		canonical(a, v4, out, cap);
		if (!inside(nets, n, a))
			return;
		end = start;
		while (end > xff && end[-1] != ',')
			end--;
		if (end > xff)
			end--;				/* before the comma */
	}
}

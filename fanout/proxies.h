/*
 * proxies.h — --trusted-proxy: which TCP peers are balancers, and the
 * client's address behind them from X-Forwarded-For.  Pure (no fanout.h),
 * unit tested.
 */
#ifndef PROXIES_H
#define PROXIES_H

#include <stdbool.h>
#include <stddef.h>

#define PROXIES_MAX	64

/* an address or a network: IPv4 stored as IPv4-mapped IPv6 */
struct proxy_net {
	unsigned char addr[16];
	int			bits;			/* prefix length over the 128 bits */
};

/*
 * Parses ADDR or ADDR/PREFIX (IPv4 or IPv6; the bits past the prefix must be
 * zero): 0, or -1 with *why set.
 */
int			proxy_parse(const char *spec, struct proxy_net *out, const char **why);

/* is addr (text, IPv4, IPv6 or IPv4-mapped IPv6) inside one of nets? */
bool		proxy_trusted(const struct proxy_net *nets, int n, const char *addr);

/*
 * The client's address into out (cap bytes), canonical text (an
 * IPv4-mapped IPv6 address as IPv4): peer itself unless peer is trusted and
 * xff (the X-Forwarded-For entries, comma-separated, or NULL) names one;
 * then the rightmost entry that is not a trusted proxy (every proxy appends
 * the address it got the request from), or the leftmost when all are; an
 * entry that is not an address stops the walk at the entry to its right.
 */
void		proxy_client_address(const struct proxy_net *nets, int n, const char *peer,
								 const char *xff, char *out, size_t cap);

#endif

/*
 * ratelimit.c — token buckets in a chained hash table keyed by string
 * (FNV-1a), bounded by an entry count; rl_sweep() drops the entries that
 * have refilled, so that the table holds only recent keys.
 */
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

struct rl_entry {
	struct rl_entry *next;
	uint64_t	hash;
	double		tokens;
	int64_t		at_us;
	char		key[];
};

static uint64_t
fnv1a(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

void
rl_init(struct ratelimit *r, double rate, double burst, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->rate = rate;
	r->burst = burst < 1 ? 1 : burst;
	r->max = max;
}

static double
refill(const struct ratelimit *r, const struct rl_entry *e, int64_t now)
{
	double		t = e->tokens + (double) (now - e->at_us) * r->rate / 1e6;

	return t > r->burst ? r->burst : t;
}

int64_t
rl_take(struct ratelimit *r, const char *key, int64_t now)
{
	uint64_t	h;
	struct rl_entry *e;
	size_t		len;

	if (r->rate <= 0)
		return 0;
	if (!r->buckets)
	{
		r->n_buckets = 1024;
		r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
		if (!r->buckets)
			return 1000000;
	}
	h = fnv1a(key);
	for (e = r->buckets[h & (r->n_buckets - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			break;
	if (!e)
	{
		if (r->n >= r->max)
			rl_sweep(r, now);
		if (r->n >= r->max)
			return 1000000;
		if (r->n >= r->n_buckets * 2)
		{
			/* grow: rehash into twice the buckets */
			size_t		nb = r->n_buckets * 2;
			struct rl_entry **b = calloc(nb, sizeof(*b));

			if (b)
			{
				for (size_t i = 0; i < r->n_buckets; i++)
					while (r->buckets[i])
					{
						struct rl_entry *x = r->buckets[i];

						r->buckets[i] = x->next;
						x->next = b[x->hash & (nb - 1)];
						b[x->hash & (nb - 1)] = x;
					}
				free(r->buckets);
				r->buckets = b;
				r->n_buckets = nb;
			}
		}
		len = strlen(key);
		e = malloc(sizeof(*e) + len + 1);
		if (!e)
			return 1000000;
		memcpy(e->key, key, len + 1);
		e->hash = h;
		e->tokens = r->burst;
		e->at_us = now;
		e->next = r->buckets[h & (r->n_buckets - 1)];
		r->buckets[h & (r->n_buckets - 1)] = e;
		r->n++;
	}
	e->tokens = refill(r, e, now);
	e->at_us = now;
	if (e->tokens >= 1)
	{
		e->tokens -= 1;
		return 0;
	}
	return (int64_t) ((1 - e->tokens) * 1e6 / r->rate) + 1;
}

void
rl_sweep(struct ratelimit *r, int64_t now)
{
	for (size_t i = 0; i < r->n_buckets; i++)
	{
		struct rl_entry **pp = &r->buckets[i];

		while (*pp)
		{
			struct rl_entry *e = *pp;

			if (refill(r, e, now) >= r->burst)
			{
				*pp = e->next;
				free(e);
				r->n--;
			}
			else
				pp = &e->next;
		}
	}
}

void
rl_free(struct ratelimit *r)
{
	for (size_t i = 0; i < r->n_buckets; i++)
		while (r->buckets[i])
		{
			struct rl_entry *e = r->buckets[i];

			r->buckets[i] = e->next;
			free(e);
		}
	free(r->buckets);
	r->buckets = NULL;
	r->n = r->n_buckets = 0;
}

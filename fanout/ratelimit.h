/*
 * ratelimit.h — token buckets by key (a voter, a client address): rate
 * tokens a second up to burst.  A bounded hash table; an entry whose bucket
 * is full again says nothing and is swept away.  Pure (no fanout.h), unit
 * tested.
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct rl_entry;

struct ratelimit {
	double		rate;			/* tokens a second; 0: no limit */
	double		burst;
	size_t		max;			/* entries at most */
	size_t		n;
	size_t		n_buckets;		/* a power of two */
	struct rl_entry **buckets;
};

void		rl_init(struct ratelimit *r, double rate, double burst, size_t max);
/*
 * Takes one token of key's bucket at now (microseconds): 0 when there was
 * one, else the microseconds until there will be (a full table: 1 s).
 */
int64_t		rl_take(struct ratelimit *r, const char *key, int64_t now);
/* forgets the keys whose bucket is full again */
void		rl_sweep(struct ratelimit *r, int64_t now);
void		rl_free(struct ratelimit *r);

#endif

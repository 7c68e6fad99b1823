/*
 * auth.h — HS256 JSON Web Tokens: verification and the grant they carry
 * (claim "polls": an array of poll ids, or "*").  Pure functions over a
 * secret and a token string, unit tested and fuzzed (fuzz_auth.c).
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRANT_MAX_POLLS	1024

struct grant {
	bool		present;
	bool		all;
	bool		admin;			/* claim admin: true (create and close polls, export ballots) */
	int64_t		exp;
	int			n_polls;
	int64_t	   *polls;			/* malloc'd */
};

/*
 * Verifies token against secret at time now (Unix seconds): the header's
 * alg must be exactly "HS256", the signature must match, exp must be a
 * number in the future (nbf, when present, in the past; either must be a
 * date before the year 10000) and polls an array of positive ids or "*".
 * Returns 0 and fills *g, or -1 with *why set.
 */
int			jwt_verify(const unsigned char *secret, size_t secret_len, const char *token,
					   int64_t now, struct grant *g, const char **why);
bool		grant_allows(const struct grant *g, int64_t poll, int64_t now);
bool		grant_admin(const struct grant *g, int64_t now);
void		grant_free(struct grant *g);

#endif

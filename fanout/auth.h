/*
 * auth.h — HS256 JSON Web Tokens: verification and the grant they carry
 * (claim "polls": an array of poll ids, or "*"; for votes "sub", "vote"
 * and "seg"), and the signing of anonymous voter tokens.  Pure functions
 * over secrets and token strings, unit tested and fuzzed (fuzz_auth.c).
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRANT_MAX_POLLS	1024

#define SUB_MAX_CHARS	256		/* poll.cast_vote's voter */
#define SEG_MAX_CHARS	64		/* and its segment */

struct grant {
	bool		present;
	bool		all;
	int64_t		exp;
	int			n_polls;
	int64_t	   *polls;			/* malloc'd */
	/* votes: who ("sub"), where ("vote": ids or "*") and the segment ("seg") */
	char	   *sub;			/* malloc'd, NULL: none */
	char	   *seg;			/* malloc'd, NULL: none */
	bool		vote_all;
	int			n_vote;
	int64_t	   *vote;			/* malloc'd */
	bool		voter_token;	/* signed with the voter secret: votes only */
};

/* the secrets a daemon checks tokens with; a secret of length 0 is absent */
struct keys {
	const unsigned char *jwt;
	size_t		jwt_len;
	const unsigned char *voter;
	size_t		voter_len;
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
void		grant_free(struct grant *g);

/*
 * Verifies with the --jwt-secret-file secret, then the voter secret: a
 * token signed with the latter (an anonymous voter token) grants votes
 * only, never reads.  Claims as for jwt_verify; a token must grant reads
 * ("polls") or votes ("vote" with "sub").
 */
int			token_verify(const struct keys *k, const char *token, int64_t now,
						 struct grant *g, const char **why);
/* may the bearer vote in poll (a sub, a vote claim naming it, not expired) */
bool		grant_allows_vote(const struct grant *g, int64_t poll, int64_t now);

/* an HS256 token of the claims (a JSON object's text); its length, 0 if cap is too small */
size_t		jwt_sign(const unsigned char *secret, size_t secret_len, const char *claims,
					 char *out, size_t cap);
/* the number of UTF-8 characters of s (continuation bytes not counted) */
size_t		utf8_chars(const char *s);

#endif

/*
 * auth.c — verifies HS256 JSON Web Tokens with OpenSSL's HMAC.  The
 * algorithm is pinned: a token whose header says anything but HS256
 * (notably "none") is refused before its signature is looked at.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

static int	b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
						  size_t *outlen);
static json_t *decode_json_part(const char *in, size_t len);
static int	numeric_date(const json_t *v, int64_t *out);
static int	id_list(const json_t *v, bool *all, int *n, int64_t **ids);
static int	claim_text(const json_t *claims, const char *name, size_t max, char **out);

#define NUMERIC_DATE_MAX	INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */

size_t
utf8_chars(const char *s)
{
	size_t		n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			n++;
	return n;
}

/* "*" (all) or an array of at most GRANT_MAX_POLLS positive ids */
static int
id_list(const json_t *v, bool *all, int *n, int64_t **ids)
{
	size_t		i;
	json_t	   *e;

	if (json_is_string(v) && strcmp(json_string_value(v), "*") == 0)
	{
		*all = true;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > GRANT_MAX_POLLS)
		return -1;
	*ids = calloc(json_array_size(v) + 1, sizeof(int64_t));
	if (!*ids)
		return -1;
	json_array_foreach(v, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) <= 0)
			return -1;			/* grant_free() frees *ids */
		(*ids)[(*n)++] = json_integer_value(e);
	}
	return 0;
}

/*
 * An optional text claim: absent (NULL), or a string of 1 to max UTF-8
 * characters without NUL (Postgres text holds none).
 */
static int
claim_text(const json_t *claims, const char *name, size_t max, char **out)
{
	const json_t *v = json_object_get(claims, name);
	const char *s;
	size_t		chars;

	if (!v)
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	chars = utf8_chars(s);
	if (json_string_length(v) != strlen(s) || chars < 1 || chars > max)
		return -1;
	*out = strdup(s);
	return *out ? 0 : -1;
}

static int
b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* unpadded base64url, as JWS uses it; strict about trailing bits */
static int
b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		n = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		int			v = b64url_value(in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (unsigned char) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	*outlen = n;
	return 0;
}

static json_t *
decode_json_part(const char *in, size_t len)
{
	unsigned char buf[8192];
	size_t		n;

	if (b64url_decode(in, len, buf, sizeof(buf), &n) < 0)
		return NULL;
	return json_loadb((const char *) buf, n, JSON_REJECT_DUPLICATES, NULL);
}

/*
 * A NumericDate claim (exp, nbf) as whole seconds.  The range is checked
 * on the double before any conversion: casting one outside int64_t's range
 * is undefined behaviour (exp: 1e300).  Beyond the year 9999 is refused.
 */
static int
numeric_date(const json_t *v, int64_t *out)
{
	double		d;

	if (json_is_integer(v))
	{
		if (json_integer_value(v) < 0 || json_integer_value(v) > NUMERIC_DATE_MAX)
			return -1;
		*out = json_integer_value(v);
		return 0;
	}
	if (!json_is_real(v))
		return -1;
	d = json_real_value(v);
	if (!(d >= 0 && d <= (double) NUMERIC_DATE_MAX))	/* also refuses NaN */
		return -1;
	*out = (int64_t) d;
	return 0;
}

int
jwt_verify(const unsigned char *secret, size_t secret_len, const char *token,
		   int64_t now, struct grant *g, const char **why)
{
	const char *dot1, *dot2;
	json_t	   *hdr = NULL, *claims = NULL, *alg, *nbf, *polls, *vote;
	int64_t		nbf_at = 0;
	unsigned char sig[64], mac[EVP_MAX_MD_SIZE];
	size_t		sig_len;
	unsigned int mac_len = 0;
	int			rc = -1;

	memset(g, 0, sizeof(*g));
	dot1 = strchr(token, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
	{
		*why = "token is not a JWS compact serialization";
		return -1;
	}
	hdr = decode_json_part(token, (size_t) (dot1 - token));
	if (!json_is_object(hdr))
	{
		*why = "token header is not a JSON object";
		goto out;
	}
	alg = json_object_get(hdr, "alg");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0)
	{
		*why = "token algorithm must be HS256";
		goto out;
	}
	if (b64url_decode(dot2 + 1, strlen(dot2 + 1), sig, sizeof(sig), &sig_len) < 0 ||
		sig_len != 32)
	{
		*why = "token signature is malformed";
		goto out;
	}
	if (!HMAC(EVP_sha256(), secret, (int) secret_len, (const unsigned char *) token,
			  (size_t) (dot2 - token), mac, &mac_len) || mac_len != 32 ||
		CRYPTO_memcmp(mac, sig, 32) != 0)
	{
		*why = "token signature does not match";
		goto out;
	}
	claims = decode_json_part(dot1 + 1, (size_t) (dot2 - dot1 - 1));
	if (!json_is_object(claims))
	{
		*why = "token claims are not a JSON object";
		goto out;
	}
	if (!json_is_number(json_object_get(claims, "exp")))
	{
		*why = "token has no exp";
		goto out;
	}
	if (numeric_date(json_object_get(claims, "exp"), &g->exp) < 0 ||
		((nbf = json_object_get(claims, "nbf")) && numeric_date(nbf, &nbf_at) < 0))
	{
		*why = "token exp or nbf is out of range";
		goto out;
	}
	if (g->exp <= now)
	{
		*why = "token has expired";
		goto out;
	}
	if (nbf && nbf_at > now)
	{
		*why = "token is not yet valid (nbf)";
		goto out;
	}
	polls = json_object_get(claims, "polls");
	vote = json_object_get(claims, "vote");
	if ((polls || !vote) && id_list(polls, &g->all, &g->n_polls, &g->polls) < 0)
	{
		*why = "token claim polls must be an array of positive poll ids or \"*\"";
		grant_free(g);
		goto out;
	}
	if (vote && id_list(vote, &g->vote_all, &g->n_vote, &g->vote) < 0)
	{
		*why = "token claim vote must be an array of positive poll ids or \"*\"";
		grant_free(g);
		goto out;
	}
	if (claim_text(claims, "sub", SUB_MAX_CHARS, &g->sub) < 0 ||
		claim_text(claims, "seg", SEG_MAX_CHARS, &g->seg) < 0)
	{
		*why = "token claim sub (1 to 256 characters) or seg (1 to 64) is malformed";
		grant_free(g);
		goto out;
	}
	if (vote && !g->sub)
	{
		*why = "token claim vote needs sub, the voter";
		grant_free(g);
		goto out;
	}
	g->present = true;
	rc = 0;
out:
	json_decref(hdr);
	json_decref(claims);
	return rc;
}

bool
grant_allows_vote(const struct grant *g, int64_t poll, int64_t now)
{
	if (!g->present || !g->sub || g->exp <= now)
		return false;
	if (g->vote_all)
		return true;
	for (int i = 0; i < g->n_vote; i++)
		if (g->vote[i] == poll)
			return true;
	return false;
}

int
token_verify(const struct keys *k, const char *token, int64_t now, struct grant *g,
			 const char **why)
{
	const char *why_jwt = NULL;

	if (k->jwt_len > 0)
	{
		if (jwt_verify(k->jwt, k->jwt_len, token, now, g, why) == 0)
			return 0;
		why_jwt = *why;
		if (k->voter_len == 0 || strcmp(*why, "token signature does not match") != 0)
			return -1;
	}
	if (k->voter_len == 0)
	{
		memset(g, 0, sizeof(*g));
		*why = "no token is taken here";
		return -1;
	}
	if (jwt_verify(k->voter, k->voter_len, token, now, g, why) < 0)
	{
		if (why_jwt && strcmp(*why, "token signature does not match") == 0)
			*why = why_jwt;
		return -1;
	}
	/* the voter secret grants votes, never reads */
	free(g->polls);
	g->polls = NULL;
	g->n_polls = 0;
	g->all = false;
	g->voter_token = true;
	if (!g->sub)
	{
		grant_free(g);
		*why = "a voter token must carry sub";
		return -1;
	}
	return 0;
}

/* base64url without padding */
static size_t
b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		n = 0;

	if ((len + 2) / 3 * 4 + 1 > cap)
		return 0;
	for (size_t i = 0; i < len; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t) in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[n++] = tab[(v >> 18) & 63];
		out[n++] = tab[(v >> 12) & 63];
		if (i + 1 < len)
			out[n++] = tab[(v >> 6) & 63];
		if (i + 2 < len)
			out[n++] = tab[v & 63];
	}
	out[n] = '\0';
	return n;
}

size_t
jwt_sign(const unsigned char *secret, size_t secret_len, const char *claims, char *out,
		 size_t cap)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	size_t		n, m;

	n = b64url_encode((const unsigned char *) header, sizeof(header) - 1, out, cap);
	if (n == 0 || n + 2 >= cap)
		return 0;
	out[n++] = '.';
	m = b64url_encode((const unsigned char *) claims, strlen(claims), out + n, cap - n);
	if (m == 0 || n + m + 2 >= cap)
		return 0;
	n += m;
	if (!HMAC(EVP_sha256(), secret, (int) secret_len, (const unsigned char *) out, n, mac,
			  &mac_len) || mac_len != 32)
		return 0;
	out[n++] = '.';
	m = b64url_encode(mac, 32, out + n, cap - n);
	if (m == 0)
		return 0;
	return n + m;
}

bool
grant_allows(const struct grant *g, int64_t poll, int64_t now)
{
	if (!g->present || g->exp <= now)
		return false;
	if (g->all)
		return true;
	for (int i = 0; i < g->n_polls; i++)
		if (g->polls[i] == poll)
			return true;
	return false;
}

void
grant_free(struct grant *g)
{
	free(g->polls);
	free(g->vote);
	free(g->sub);
	free(g->seg);
	memset(g, 0, sizeof(*g));
}

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

int
jwt_verify(const unsigned char *secret, size_t secret_len, const char *token,
		   int64_t now, struct grant *g, const char **why)
{
	const char *dot1, *dot2;
	json_t	   *hdr = NULL, *claims = NULL, *alg, *exp, *polls;
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
	exp = json_object_get(claims, "exp");
	if (!json_is_number(exp))
	{
		*why = "token has no exp";
		goto out;
	}
	if (json_number_value(exp) <= (double) now)
	{
		*why = "token has expired";
		goto out;
	}
	g->exp = json_is_integer(exp) ? json_integer_value(exp) : (int64_t) json_number_value(exp);
	polls = json_object_get(claims, "polls");
	if (json_is_string(polls) && strcmp(json_string_value(polls), "*") == 0)
		g->all = true;
	else if (json_is_array(polls) && json_array_size(polls) <= GRANT_MAX_POLLS)
	{
		size_t		i;
		json_t	   *v;

		g->polls = calloc(json_array_size(polls) + 1, sizeof(int64_t));
		if (!g->polls)
		{
			*why = "out of memory";
			goto out;
		}
		json_array_foreach(polls, i, v)
		{
			if (!json_is_integer(v) || json_integer_value(v) <= 0)
			{
				*why = "token claim polls must hold positive poll ids";
				grant_free(g);
				goto out;
			}
			g->polls[g->n_polls++] = json_integer_value(v);
		}
	}
	else
	{
		*why = "token claim polls must be an array of poll ids or \"*\"";
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
	memset(g, 0, sizeof(*g));
}

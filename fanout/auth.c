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

#define NUMERIC_DATE_MAX	INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */

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
	json_t	   *hdr = NULL, *claims = NULL, *alg, *nbf, *polls;
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
	if (json_object_get(claims, "admin") && !json_is_boolean(json_object_get(claims, "admin")))
	{
		*why = "token claim admin must be true or false";
		grant_free(g);
		goto out;
	}
	g->admin = json_is_true(json_object_get(claims, "admin"));
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

bool
grant_admin(const struct grant *g, int64_t now)
{
	return g->present && g->exp > now && g->admin;
}

void
grant_free(struct grant *g)
{
	free(g->polls);
	memset(g, 0, sizeof(*g));
}

/*
 * fuzz_auth.c — libFuzzer target for token verification: any string as a
 * token must be refused or accepted without crashing, and nothing without
 * the right signature is ever accepted.
 */
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char	   *tok = malloc(size + 1);
	struct grant g;
	const char *why = NULL;
	const struct keys keys = {(const unsigned char *) "fuzz-secret", 11,
	(const unsigned char *) "voter-secret", 12};
	int			rc;

	memcpy(tok, data, size);
	tok[size] = '\0';
	rc = jwt_verify((const unsigned char *) "fuzz-secret", 11, tok, 1700000000, &g, &why);
	if (rc == 0)
	{
		/* a forged HS256 signature: would be a finding worth crashing for */
		abort();
	}
	if (!why)
		abort();
	grant_free(&g);
	/* with both secrets, as a daemon with --anonymous-votes has them */
	why = NULL;
	if (token_verify(&keys, tok, 1700000000, &g, &why) == 0 || !why)
		abort();
	grant_free(&g);
	free(tok);
	return 0;
}

/*
 * fuzz_protocol.c — libFuzzer target for client message parsing and the
 * JSON string writer: parsing any bytes must not crash, and whatever
 * string we escape must parse back, with jansson, to the same string.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct client_msg m;
	const char *why;
	char	   *copy = malloc(size + 1);
	size_t		cap = size * 6 + 3;
	char	   *out = malloc(cap);
	struct jbuf b = {out, 0, cap, false};
	json_t	   *in, *back;

	memcpy(copy, data, size);
	copy[size] = '\0';
	if (client_msg_parse(copy, size, &m, &why) == 0)
	{
		if (m.type == CMSG_PING && strlen(m.ping_id) > PING_ID_MAX)
			abort();
	}
	else if (!why)
		abort();

	/* escaping round-trips for every valid UTF-8 string */
	in = json_string(copy);
	if (in)
	{
		jb_json_string(&b, copy);
		if (b.overflow)
			abort();
		back = json_loadb(out, b.len, JSON_DECODE_ANY, NULL);
		if (!back || !json_equal(in, back))
			abort();
		json_decref(back);
		json_decref(in);
	}
	free(out);
	free(copy);
	return 0;
}

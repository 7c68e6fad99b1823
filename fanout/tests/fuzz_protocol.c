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

/* a vote that parsed is a ballot Postgres can be sent, and its ref is short */
static void
check_vote(const struct client_msg *m)
{
	char		text[256];

	if (m->type != CMSG_VOTE && m->type != CMSG_RETRACT)
		return;
	if (strlen(m->ref) > REF_MAX)
		abort();
	if (m->type != CMSG_VOTE || m->bad_vote)
		return;
	if (m->ballot.n < 1 || m->ballot.n > BALLOT_MAX || (m->ballot.single && m->ballot.n != 1))
		abort();
	for (int i = 0; i < m->ballot.n; i++)
	{
		if (m->ballot.options[i] < 1 || m->ballot.options[i] > BALLOT_MAX)
			abort();
		for (int j = 0; j < i; j++)
			if (m->ballot.options[j] == m->ballot.options[i])
				abort();
	}
	if (ballot_text(&m->ballot, text, sizeof(text)) == 0)
		abort();
}

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
		check_vote(&m);
	}
	else if (!why)
		abort();
	/* the same bytes as the body of POST /polls/ID/vote */
	if (vote_body_parse(copy, size, &m, &why) == 0)
		check_vote(&m);
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

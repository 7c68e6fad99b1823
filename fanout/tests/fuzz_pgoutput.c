/*
 * fuzz_pgoutput.c — libFuzzer target for the pgoutput parser: any bytes
 * as a message stream (a 2-byte length before each message), Relation
 * messages feeding the relation cache, Insert/Update tuples decoded as
 * poll.tally rows.  Must never crash or read out of bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

static struct pgo_att atts[PGO_MAX_COLS];
static struct pgo_col cols[PGO_MAX_COLS];

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct pgo_relcache rc = {NULL};
	size_t		off = 0;
	int64_t		votes[TALLY_MAX_VOTES];
	int			n;

	/* the whole input as one message, then as a length-prefixed stream */
	{
		struct pgo_msg m = {.atts = atts, .cols = cols};

		(void) pgo_parse(data, size, &m);
		(void) parse_votes((const char *) data, size, votes, TALLY_MAX_VOTES, &n);
	}
	{
		char	   *str = malloc(size + 1);
		char	  **labels;

		memcpy(str, data, size);
		str[size] = '\0';
		(void) parse_text_array(str, 64, &labels, &n);
		for (int i = 0; i < n; i++)
			free(labels[i]);
		free(labels);
		free(str);
	}
	while (off + 2 <= size)
	{
		size_t		len = (size_t) data[off] << 8 | data[off + 1];
		unsigned char *copy;
		struct pgo_msg m = {.atts = atts, .cols = cols};

		off += 2;
		if (len > size - off)
			len = size - off;
		/* an exact-size heap copy, so ASan sees any overread */
		copy = malloc(len ? len : 1);
		memcpy(copy, data + off, len);
		if (pgo_parse(copy, len, &m) == 0)
		{
			if (m.type == 'R')
				pgo_relcache_put(&rc, &m);
			else if (m.type == 'I' || m.type == 'U')
			{
				struct tally_row row;
				const struct pgo_relation *rel = pgo_relcache_get(&rc, m.relid);

				if (tally_from_tuple(rel, &m, &row) == 0 && !row.votes_unchanged &&
					(row.n_votes < 0 || row.n_votes > TALLY_MAX_VOTES))
					abort();
			}
		}
		free(copy);
		off += len;
	}
	pgo_relcache_free(&rc);
	return 0;
}

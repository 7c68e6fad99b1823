/*
 * pgoutput.c — parses pgoutput (protocol version 1) messages and turns
 * poll.tally tuples into tally rows.  Every read is bounds-checked: the
 * input comes from the network and is fuzzed (fuzz_pgoutput.c).
 */
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

struct reader {
	const unsigned char *p;
	size_t		left;
	bool		bad;
};

static uint8_t rd_u8(struct reader *r);
static uint16_t rd_u16(struct reader *r);
static uint32_t rd_u32(struct reader *r);
static uint64_t rd_u64(struct reader *r);
static const char *rd_str(struct reader *r);
static int	rd_tuple(struct reader *r, struct pgo_msg *out);

static uint8_t
rd_u8(struct reader *r)
{
	if (r->left < 1)
	{
		r->bad = true;
		return 0;
	}
	r->left--;
	return *r->p++;
}

static uint16_t
rd_u16(struct reader *r)
{
	uint16_t	v = (uint16_t) (rd_u8(r) << 8);

	return v | rd_u8(r);
}

static uint32_t
rd_u32(struct reader *r)
{
	uint32_t	v = (uint32_t) rd_u16(r) << 16;

	return v | rd_u16(r);
}

static uint64_t
rd_u64(struct reader *r)
{
	uint64_t	v = (uint64_t) rd_u32(r) << 32;

	return v | rd_u32(r);
}

static const char *
rd_str(struct reader *r)
{
	const unsigned char *nul;

	if (r->bad)
		return NULL;
	nul = memchr(r->p, '\0', r->left);
	if (!nul)
	{
		r->bad = true;
		return NULL;
	}
	{
		const char *s = (const char *) r->p;
		size_t		n = (size_t) (nul - r->p) + 1;

		r->p += n;
		r->left -= n;
		return s;
	}
}

static int
rd_tuple(struct reader *r, struct pgo_msg *out)
{
	uint16_t	n = rd_u16(r);

	if (r->bad || n > PGO_MAX_COLS)
		return -1;
	out->ncols = n;
	for (int i = 0; i < n; i++)
	{
		struct pgo_col *c = &out->cols[i];
		char		kind = (char) rd_u8(r);

		if (r->bad)
			return -1;
		c->kind = kind;
		c->data = NULL;
		c->len = 0;
		if (kind == 'n' || kind == 'u')
			continue;
		if (kind != 't' && kind != 'b')
			return -1;
		c->len = rd_u32(r);
		if (r->bad || c->len > r->left)
			return -1;
		c->data = (const char *) r->p;
		r->p += c->len;
		r->left -= c->len;
	}
	return 0;
}

int
pgo_parse(const unsigned char *buf, size_t len, struct pgo_msg *out)
{
	struct reader r = {buf, len, false};
	char		tag;

	out->type = 0;
	out->ncols = 0;
	out->natts = 0;
	tag = (char) rd_u8(&r);
	if (r.bad)
		return -1;
	switch (tag)
	{
		case 'B':
			out->lsn = rd_u64(&r);
			out->ts = (int64_t) rd_u64(&r);
			(void) rd_u32(&r);	/* xid */
			break;
		case 'C':
			(void) rd_u8(&r);	/* flags */
			out->lsn = rd_u64(&r);
			out->end_lsn = rd_u64(&r);
			out->ts = (int64_t) rd_u64(&r);
			break;
		case 'O':
			(void) rd_u64(&r);
			(void) rd_str(&r);
			break;
		case 'R':
			{
				uint16_t	natts;

				out->relid = rd_u32(&r);
				out->nspname = rd_str(&r);
				out->relname = rd_str(&r);
				(void) rd_u8(&r);	/* replica identity */
				natts = rd_u16(&r);
				if (r.bad || natts > PGO_MAX_COLS)
					return -1;
				out->natts = natts;
				for (int i = 0; i < natts; i++)
				{
					uint8_t		flags = rd_u8(&r);

					out->atts[i].key = (flags & 1) != 0;
					out->atts[i].name = rd_str(&r);
					out->atts[i].typoid = rd_u32(&r);
					(void) rd_u32(&r);	/* typmod */
					if (r.bad)
						return -1;
				}
				break;
			}
		case 'Y':
			(void) rd_u32(&r);
			(void) rd_str(&r);
			(void) rd_str(&r);
			break;
		case 'I':
			out->relid = rd_u32(&r);
			if (rd_u8(&r) != 'N' || rd_tuple(&r, out) < 0)
				return -1;
			break;
		case 'U':
			{
				char		k;

				out->relid = rd_u32(&r);
				k = (char) rd_u8(&r);
				if (k == 'K' || k == 'O')
				{
					/* the old tuple: parsed for validation, then replaced */
					if (rd_tuple(&r, out) < 0)
						return -1;
					k = (char) rd_u8(&r);
				}
				if (k != 'N' || rd_tuple(&r, out) < 0)
					return -1;
				break;
			}
		case 'D':
			{
				char		k;

				out->relid = rd_u32(&r);
				k = (char) rd_u8(&r);
				if ((k != 'K' && k != 'O') || rd_tuple(&r, out) < 0)
					return -1;
				break;
			}
		case 'T':
			{
				uint32_t	n = rd_u32(&r);

				(void) rd_u8(&r);
				if (r.bad || n > r.left / 4)
					return -1;
				for (uint32_t i = 0; i < n; i++)
					(void) rd_u32(&r);
				break;
			}
		case 'M':
			(void) rd_u8(&r);
			(void) rd_u64(&r);
			(void) rd_str(&r);
			{
				uint32_t	n = rd_u32(&r);

				if (r.bad || n > r.left)
					return -1;
			}
			break;
		default:
			/* a message type of a later protocol version: not ours to judge */
			out->type = 0;
			return 0;
	}
	if (r.bad)
		return -1;
	out->type = tag;
	return 0;
}

void
pgo_relcache_put(struct pgo_relcache *rc, const struct pgo_msg *m)
{
	struct pgo_relation *rel = NULL;

	for (struct pgo_relation *x = rc->head; x; x = x->next)
		if (x->relid == m->relid)
			rel = x;
	if (!rel)
	{
		rel = calloc(1, sizeof(*rel));
		if (!rel)
			return;
		rel->next = rc->head;
		rc->head = rel;
	}
	rel->relid = m->relid;
	rel->natts = m->natts;
	rel->col_poll_id = rel->col_version = rel->col_status = -1;
	rel->col_ballots = rel->col_votes = -1;
	for (int i = 0; i < m->natts; i++)
	{
		const char *n = m->atts[i].name;

		if (strcmp(n, "poll_id") == 0)
			rel->col_poll_id = i;
		else if (strcmp(n, "version") == 0)
			rel->col_version = i;
		else if (strcmp(n, "status") == 0)
			rel->col_status = i;
		else if (strcmp(n, "ballots") == 0)
			rel->col_ballots = i;
		else if (strcmp(n, "votes") == 0)
			rel->col_votes = i;
	}
	rel->is_tally = m->nspname && m->relname &&
		strcmp(m->nspname, "poll") == 0 && strcmp(m->relname, "tally") == 0 &&
		rel->col_poll_id >= 0 && rel->col_version >= 0 && rel->col_status >= 0 &&
		rel->col_ballots >= 0 && rel->col_votes >= 0;
}

const struct pgo_relation *
pgo_relcache_get(const struct pgo_relcache *rc, uint32_t relid)
{
	for (const struct pgo_relation *x = rc->head; x; x = x->next)
		if (x->relid == relid)
			return x;
	return NULL;
}

void
pgo_relcache_free(struct pgo_relcache *rc)
{
	while (rc->head)
	{
		struct pgo_relation *n = rc->head->next;

		free(rc->head);
		rc->head = n;
	}
}

int
parse_int64(const char *s, size_t len, int64_t *out)
{
	uint64_t	v = 0;

	if (len == 0 || len > 19)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t) (s[i] - '0');
	}
	if (v > INT64_MAX)
		return -1;
	*out = (int64_t) v;
	return 0;
}

int
parse_status(const char *s, size_t len)
{
	static const char *const names[] = {"scheduled", "open", "closed"};

	for (int i = 0; i < 3; i++)
		if (len == strlen(names[i]) && memcmp(s, names[i], len) == 0)
			return i;
	return -1;
}

int
parse_votes(const char *s, size_t len, int64_t *votes, int max, int *n)
{
	size_t		i = 1;

	*n = 0;
	if (len < 2 || s[0] != '{' || s[len - 1] != '}')
		return -1;
	if (len == 2)
		return 0;
	while (i < len - 1)
	{
		size_t		j = i;

		while (j < len - 1 && s[j] != ',')
			j++;
		if (*n >= max || parse_int64(s + i, j - i, &votes[*n]) < 0)
			return -1;
		(*n)++;
		if (j == len - 1)
			break;
		i = j + 1;
		if (i == len - 1)
			return -1;			/* trailing comma */
	}
	return 0;
}

static bool
col_text(const struct pgo_msg *m, int i, const struct pgo_col **c)
{
	if (i < 0 || i >= m->ncols)
		return false;
	*c = &m->cols[i];
	return (*c)->kind == 't';
}

int
tally_from_tuple(const struct pgo_relation *rel, const struct pgo_msg *m,
				 struct tally_row *row)
{
	const struct pgo_col *c;

	memset(row, 0, sizeof(*row));
	if (!rel || !rel->is_tally || (m->type != 'I' && m->type != 'U'))
		return -1;
	if (!col_text(m, rel->col_poll_id, &c) || parse_int64(c->data, c->len, &row->poll_id) < 0)
		return -1;
	if (!col_text(m, rel->col_version, &c) || parse_int64(c->data, c->len, &row->version) < 0)
		return -1;
	if (!col_text(m, rel->col_status, &c) || (row->status = parse_status(c->data, c->len)) < 0)
		return -1;
	if (!col_text(m, rel->col_ballots, &c) || parse_int64(c->data, c->len, &row->ballots) < 0)
		return -1;
	if (rel->col_votes < m->ncols && m->cols[rel->col_votes].kind == 'u')
	{
		row->votes_unchanged = true;
		return 0;
	}
	if (!col_text(m, rel->col_votes, &c) ||
		parse_votes(c->data, c->len, row->votes, TALLY_MAX_VOTES, &row->n_votes) < 0)
		return -1;
	return 0;
}

/*
 * A text[] in PostgreSQL's text output ({a,"b c","q\\"x"}) -> malloc'd
 * strings.  NULL elements are refused (labels are NOT NULL).  On error,
 * *labels and *n still describe what was allocated, for the caller to free.
 */
int
parse_text_array(const char *s, int max, char ***labels, int *n)
{
	size_t		len = strlen(s);
	char	  **out = calloc((size_t) (max > 0 ? max : 1), sizeof(char *));
	int			k = 0;
	size_t		i = 1;

	*labels = out;
	*n = 0;
	if (!out || len < 2 || s[0] != '{' || s[len - 1] != '}')
		return -1;
	while (i < len - 1)
	{
		char	   *buf;
		size_t		o = 0;
		bool		quoted = s[i] == '"';

		if (k >= max || !(buf = malloc(len)))
			goto bad;
		out[k++] = buf;
		*n = k;
		if (quoted)
		{
			i++;
			while (i < len - 1 && s[i] != '"')
			{
				if (s[i] == '\\' && i + 1 < len - 1)
					i++;
				buf[o++] = s[i++];
			}
			if (i >= len - 1)
				goto bad;		/* no closing quote */
			i++;
		}
		else
		{
			while (i < len - 1 && s[i] != ',')
				buf[o++] = s[i++];
			if (o == 0 || (o == 4 && memcmp(buf, "NULL", 4) == 0))
			{
				buf[o] = '\0';
				goto bad;		/* empty or NULL element */
			}
		}
		buf[o] = '\0';
		if (i < len - 1)
		{
			if (s[i] != ',' || i + 1 == len - 1)
				goto bad;
			i++;
		}
	}
	return 0;
bad:
	return -1;
}

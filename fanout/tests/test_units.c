/*
 * test_units.c — unit tests of poll-fanout's pure parsers: pgoutput
 * messages and poll.tally tuples, client JSON messages, the JSON writer,
 * and HS256 token verification.  Run by `make -C fanout unit`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "pgoutput.h"
#include "protocol.h"
#include "ratelimit.h"
#include "proxies.h"

static int	failures, checks;

#define CHECK(cond, ...) do { \
	checks++; \
	if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

/* building pgoutput messages */
struct msg {
	unsigned char b[8192];
	size_t		n;
};

static void u8(struct msg *m, unsigned v) { m->b[m->n++] = (unsigned char) v; }
static void u16(struct msg *m, unsigned v) { u8(m, v >> 8); u8(m, v & 255); }
static void u32(struct msg *m, uint32_t v) { u16(m, v >> 16); u16(m, v & 0xffff); }
static void u64(struct msg *m, uint64_t v) { u32(m, (uint32_t) (v >> 32)); u32(m, (uint32_t) v); }
static void str(struct msg *m, const char *s) { memcpy(m->b + m->n, s, strlen(s) + 1); m->n += strlen(s) + 1; }
static void text(struct msg *m, const char *s)
{
	u8(m, 't');
	u32(m, (uint32_t) strlen(s));
	memcpy(m->b + m->n, s, strlen(s));
	m->n += strlen(s);
}

static struct pgo_att atts[PGO_MAX_COLS];
static struct pgo_col cols[PGO_MAX_COLS];

static int
parse(const struct msg *m, struct pgo_msg *out)
{
	out->atts = atts;
	out->cols = cols;
	return pgo_parse(m->b, m->n, out);
}

/* Relation message for poll.tally, columns in the given order */
static void
relation(struct msg *m, uint32_t relid, const char *nsp, const char *rel,
		 const char **names, int n)
{
	m->n = 0;
	u8(m, 'R');
	u32(m, relid);
	str(m, nsp);
	str(m, rel);
	u8(m, 'd');
	u16(m, (unsigned) n);
	for (int i = 0; i < n; i++)
	{
		u8(m, strcmp(names[i], "poll_id") == 0);
		str(m, names[i]);
		u32(m, 20);
		u32(m, (uint32_t) -1);
	}
}

static void
test_pgoutput(void)
{
	struct msg m = {{0}, 0};
	struct pgo_msg pm;
	struct pgo_relcache rc = {NULL};
	struct tally_row row;
	const char *names[] = {"poll_id", "version", "status", "ballots", "votes",
		"last_vote_at", "folded_at"};
	const char *shuffled[] = {"votes", "folded_at", "ballots", "poll_id", "status",
		"version", "last_vote_at"};
	const struct pgo_relation *rel;

	/* Begin and Commit */
	u8(&m, 'B');
	u64(&m, 0x16B3748);
	u64(&m, 777);
	u32(&m, 42);
	CHECK(parse(&m, &pm) == 0 && pm.type == 'B' && pm.lsn == 0x16B3748 && pm.ts == 777, "begin");
	m.n = 0;
	u8(&m, 'C');
	u8(&m, 0);
	u64(&m, 100);
	u64(&m, 200);
	u64(&m, 300);
	CHECK(parse(&m, &pm) == 0 && pm.type == 'C' && pm.lsn == 100 && pm.end_lsn == 200, "commit");
	for (size_t cut = 0; cut < m.n; cut++)
	{
		struct msg t = m;

		t.n = cut;
		CHECK(parse(&t, &pm) < 0, "commit truncated at %zu must fail", cut);
	}

	/* Relation, then Insert and Update of poll.tally */
	relation(&m, 16400, "poll", "tally", names, 7);
	CHECK(parse(&m, &pm) == 0 && pm.type == 'R' && pm.natts == 7 &&
		  strcmp(pm.relname, "tally") == 0 && strcmp(pm.atts[4].name, "votes") == 0 &&
		  pm.atts[0].key, "relation");
	pgo_relcache_put(&rc, &pm);
	rel = pgo_relcache_get(&rc, 16400);
	CHECK(rel && rel->is_tally && rel->col_votes == 4, "relcache");
	for (size_t cut = 0; cut < m.n; cut++)
	{
		struct msg t = m;

		t.n = cut;
		CHECK(parse(&t, &pm) < 0, "relation truncated at %zu must fail", cut);
	}

	m.n = 0;
	u8(&m, 'I');
	u32(&m, 16400);
	u8(&m, 'N');
	u16(&m, 7);
	text(&m, "42");
	text(&m, "19");
	text(&m, "open");
	text(&m, "124");
	text(&m, "{71,53,0}");
	u8(&m, 'n');
	text(&m, "2026-01-01 00:00:00+00");
	CHECK(parse(&m, &pm) == 0 && pm.type == 'I' && pm.ncols == 7, "insert");
	CHECK(tally_from_tuple(rel, &pm, &row) == 0 && row.poll_id == 42 && row.version == 19 &&
		  row.status == 1 && row.ballots == 124 && row.n_votes == 3 && row.votes[0] == 71 &&
		  row.votes[1] == 53 && row.votes[2] == 0 && !row.votes_unchanged, "insert row");
	for (size_t cut = 0; cut < m.n; cut++)
	{
		struct msg t = m;

		t.n = cut;
		CHECK(parse(&t, &pm) < 0, "insert truncated at %zu must fail", cut);
	}

	/* Update with an old key tuple and an unchanged (toasted) votes column */
	m.n = 0;
	u8(&m, 'U');
	u32(&m, 16400);
	u8(&m, 'K');
	u16(&m, 7);
	text(&m, "42");
	for (int i = 0; i < 6; i++)
		u8(&m, 'n');
	u8(&m, 'N');
	u16(&m, 7);
	text(&m, "42");
	text(&m, "20");
	text(&m, "closed");
	text(&m, "124");
	u8(&m, 'u');
	u8(&m, 'n');
	u8(&m, 'n');
	CHECK(parse(&m, &pm) == 0 && pm.type == 'U', "update");
	CHECK(tally_from_tuple(rel, &pm, &row) == 0 && row.version == 20 && row.status == 2 &&
		  row.votes_unchanged, "update row with unchanged votes");

	/* bad values in a tally tuple */
	{
		const char *bad_versions[] = {"", "-1", "1.5", "abc", "99999999999999999999", " 1"};

		for (size_t i = 0; i < sizeof(bad_versions) / sizeof(*bad_versions); i++)
		{
			m.n = 0;
			u8(&m, 'I');
			u32(&m, 16400);
			u8(&m, 'N');
			u16(&m, 7);
			text(&m, "42");
			text(&m, bad_versions[i]);
			text(&m, "open");
			text(&m, "1");
			text(&m, "{1}");
			u8(&m, 'n');
			u8(&m, 'n');
			CHECK(parse(&m, &pm) == 0 && tally_from_tuple(rel, &pm, &row) < 0,
				  "version \"%s\" must be refused", bad_versions[i]);
		}
		m.n = 0;
		u8(&m, 'I');
		u32(&m, 16400);
		u8(&m, 'N');
		u16(&m, 3);				/* fewer columns than the relation */
		text(&m, "42");
		text(&m, "1");
		text(&m, "open");
		CHECK(parse(&m, &pm) == 0 && tally_from_tuple(rel, &pm, &row) < 0, "short tuple refused");
		m.n = 0;
		u8(&m, 'I');
		u32(&m, 16400);
		u8(&m, 'N');
		u16(&m, 7);
		text(&m, "42");
		text(&m, "1");
		text(&m, "paused");
		text(&m, "1");
		text(&m, "{1}");
		u8(&m, 'n');
		u8(&m, 'n');
		CHECK(parse(&m, &pm) == 0 && tally_from_tuple(rel, &pm, &row) < 0, "unknown status refused");
	}

	/* columns in another order: found by name */
	relation(&m, 16500, "poll", "tally", shuffled, 7);
	CHECK(parse(&m, &pm) == 0, "shuffled relation");
	pgo_relcache_put(&rc, &pm);
	rel = pgo_relcache_get(&rc, 16500);
	m.n = 0;
	u8(&m, 'I');
	u32(&m, 16500);
	u8(&m, 'N');
	u16(&m, 7);
	text(&m, "{5,6}");
	u8(&m, 'n');
	text(&m, "11");
	text(&m, "7");
	text(&m, "scheduled");
	text(&m, "3");
	u8(&m, 'n');
	CHECK(parse(&m, &pm) == 0 && tally_from_tuple(rel, &pm, &row) == 0 && row.poll_id == 7 &&
		  row.version == 3 && row.status == 0 && row.ballots == 11 && row.votes[1] == 6,
		  "shuffled columns decoded by name");

	/* another table of the publication is not poll.tally */
	relation(&m, 16600, "public", "tally", names, 7);
	CHECK(parse(&m, &pm) == 0, "other relation");
	pgo_relcache_put(&rc, &pm);
	CHECK(!pgo_relcache_get(&rc, 16600)->is_tally, "public.tally is not poll.tally");
	relation(&m, 16700, "poll", "tally", names, 4);	/* missing votes */
	CHECK(parse(&m, &pm) == 0, "relation without votes");
	pgo_relcache_put(&rc, &pm);
	CHECK(!pgo_relcache_get(&rc, 16700)->is_tally, "poll.tally without votes is not usable");
	/* a Relation message replaces the earlier one for the same relid (ALTER TABLE) */
	relation(&m, 16400, "poll", "tally", shuffled, 7);
	CHECK(parse(&m, &pm) == 0, "relation again");
	pgo_relcache_put(&rc, &pm);
	CHECK(pgo_relcache_get(&rc, 16400)->col_votes == 0, "relation replaced");

	/* malformed messages */
	m.n = 0;
	u8(&m, 'R');
	u32(&m, 1);
	memcpy(m.b + m.n, "poll", 4);	/* no terminator */
	m.n += 4;
	CHECK(parse(&m, &pm) < 0, "string without a terminator");
	m.n = 0;
	u8(&m, 'I');
	u32(&m, 1);
	u8(&m, 'N');
	u16(&m, 1);
	u8(&m, 't');
	u32(&m, 1000);				/* longer than the message */
	CHECK(parse(&m, &pm) < 0, "column longer than the message");
	m.n = 0;
	u8(&m, 'I');
	u32(&m, 1);
	u8(&m, 'X');
	CHECK(parse(&m, &pm) < 0, "insert without N");
	m.n = 0;
	u8(&m, 'I');
	u32(&m, 1);
	u8(&m, 'N');
	u16(&m, 1);
	u8(&m, 'q');
	CHECK(parse(&m, &pm) < 0, "unknown column kind");
	m.n = 0;
	u8(&m, 'I');
	u32(&m, 1);
	u8(&m, 'N');
	u16(&m, 2000);
	CHECK(parse(&m, &pm) < 0, "too many columns");
	m.n = 0;
	u8(&m, 'T');
	u32(&m, 0x7fffffff);
	u8(&m, 0);
	CHECK(parse(&m, &pm) < 0, "truncate with too many relations");
	m.n = 0;
	CHECK(parse(&m, &pm) < 0, "empty message");
	m.n = 0;
	u8(&m, 'Z');
	CHECK(parse(&m, &pm) == 0 && pm.type == 0, "unknown tag is skipped");
	pgo_relcache_free(&rc);
	CHECK(rc.head == NULL, "relcache freed");
}

static void
test_values(void)
{
	int64_t		v[TALLY_MAX_VOTES], x;
	int			n;
	char		big[2048];

	CHECK(parse_votes("{}", 2, v, 64, &n) == 0 && n == 0, "empty array");
	CHECK(parse_votes("{1,2,3}", 7, v, 64, &n) == 0 && n == 3 && v[2] == 3, "three votes");
	CHECK(parse_votes("{9223372036854775807}", 21, v, 64, &n) == 0 && v[0] == INT64_MAX, "max bigint");
	CHECK(parse_votes("{9223372036854775808}", 21, v, 64, &n) < 0, "overflow");
	CHECK(parse_votes("{1,,2}", 6, v, 64, &n) < 0, "empty element");
	CHECK(parse_votes("{1,2,}", 6, v, 64, &n) < 0, "trailing comma");
	CHECK(parse_votes("{-1}", 4, v, 64, &n) < 0, "negative");
	CHECK(parse_votes("{NULL}", 6, v, 64, &n) < 0, "null element");
	CHECK(parse_votes("1,2", 3, v, 64, &n) < 0, "no braces");
	CHECK(parse_votes("{", 1, v, 64, &n) < 0, "one brace");
	CHECK(parse_votes("{1,2}", 4, v, 64, &n) < 0, "length cuts the brace");
	strcpy(big, "{");
	for (int i = 0; i < 65; i++)
		strcat(big, i ? ",1" : "1");
	strcat(big, "}");
	CHECK(parse_votes(big, strlen(big), v, 64, &n) < 0, "65 elements refused");
	CHECK(parse_int64("0", 1, &x) == 0 && x == 0, "zero");
	CHECK(parse_int64("", 0, &x) < 0, "empty int");
	CHECK(parse_int64("12a", 3, &x) < 0, "not digits");
	CHECK(parse_status("open", 4) == 1 && parse_status("closed", 6) == 2 &&
		  parse_status("scheduled", 9) == 0 && parse_status("ope", 3) < 0 &&
		  parse_status("opened", 6) < 0, "status names");
}

static void
free_labels(char **l, int n)
{
	for (int i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static void
test_text_array(void)
{
	char	  **l;
	int			n;

	CHECK(parse_text_array("{Red,Blue,Green}", 64, &l, &n) == 0 && n == 3 &&
		  strcmp(l[2], "Green") == 0, "plain labels");
	free_labels(l, n);
	CHECK(parse_text_array("{\"a b\",\"q\\\"x\",\"c,d\",\"{}\",\"NULL\",\"back\\\\slash\",Ünï}", 64, &l, &n) == 0 &&
		  n == 7 && strcmp(l[0], "a b") == 0 && strcmp(l[1], "q\"x") == 0 &&
		  strcmp(l[2], "c,d") == 0 && strcmp(l[3], "{}") == 0 && strcmp(l[4], "NULL") == 0 &&
		  strcmp(l[5], "back\\slash") == 0 && strcmp(l[6], "Ünï") == 0, "quoted labels");
	free_labels(l, n);
	CHECK(parse_text_array("{}", 64, &l, &n) == 0 && n == 0, "empty array");
	free_labels(l, n);
	{
		static const struct
		{
			const char *in;
			int			max;
			const char *what;
		}			bad[] = {
			{"{a,NULL}", 64, "NULL element"},
			{"{a,,b}", 64, "empty element"},
			{"{\"open}", 64, "unterminated quote"},
			{"{a,b,c}", 2, "more than max"},
			{"a,b", 64, "no braces"},
			{"{a,}", 64, "trailing comma"},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			CHECK(parse_text_array(bad[i].in, bad[i].max, &l, &n) < 0, "%s", bad[i].what);
			free_labels(l, n);
		}
	}
}

static void
test_client_messages(void)
{
	struct client_msg m;
	const char *why;

#define PARSE(s) client_msg_parse(s, strlen(s), &m, &why)
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":42}") == 0 && m.type == CMSG_SUBSCRIBE &&
		  m.poll == 42 && !m.has_version, "subscribe");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":42,\"version\":18}") == 0 && m.has_version &&
		  m.version == 18, "subscribe with version");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":42,\"version\":null}") == 0 && !m.has_version,
		  "null version is no version");
	CHECK(PARSE("{\"type\":\"unsubscribe\",\"poll\":9}") == 0 && m.type == CMSG_UNSUBSCRIBE &&
		  m.poll == 9, "unsubscribe");
	CHECK(PARSE("{\"type\":\"ping\",\"id\":\"anything\"}") == 0 && m.type == CMSG_PING &&
		  strcmp(m.ping_id, "\"anything\"") == 0, "ping id kept as JSON");
	CHECK(PARSE("{\"type\":\"ping\",\"id\":{\"a\":[1,2]}}") == 0 &&
		  strcmp(m.ping_id, "{\"a\":[1,2]}") == 0, "structured ping id");
	CHECK(PARSE("{\"type\":\"ping\"}") == 0 && m.ping_id[0] == '\0', "ping without id");
	CHECK(PARSE("{\"type\":\"auth\",\"token\":\"a.b.c\"}") == 0 && m.type == CMSG_AUTH &&
		  strcmp(m.token, "a.b.c") == 0, "auth");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":\"42\"}") < 0, "string poll id");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":0}") < 0, "poll id 0");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":-1}") < 0, "negative poll id");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":4.2}") < 0, "real poll id");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":1e3}") < 0, "exponent poll id");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":99999999999999999999}") < 0, "huge poll id");
	CHECK(PARSE("{\"type\":\"subscribe\"}") < 0 && !m.has_poll, "missing poll id");
	CHECK(PARSE("{\"type\":\"subscribe\",\"poll\":5,\"version\":-1}") < 0 && m.has_poll &&
		  m.poll == 5, "bad version keeps the poll for the error");
	CHECK(PARSE("{\"type\":\"nope\"}") < 0 && strstr(why, "unknown"), "unknown type");
	CHECK(PARSE("{\"type\":7}") < 0, "type not a string");
	CHECK(PARSE("{\"type\":\"subscribe\",\"type\":\"ping\",\"poll\":1}") < 0, "duplicate keys");
	CHECK(PARSE("[]") < 0, "array");
	CHECK(PARSE("\"subscribe\"") < 0, "string");
	CHECK(PARSE("{") < 0 && strstr(why, "malformed"), "truncated");
	CHECK(PARSE("") < 0, "empty");
	CHECK(client_msg_parse("{\"type\":\"ping\"}\0xx", 18, &m, &why) < 0, "NUL inside");
	CHECK(PARSE("{\"type\":\"auth\",\"token\":5}") < 0, "token not a string");
	{
		char		buf[600];

		snprintf(buf, sizeof(buf), "{\"type\":\"ping\",\"id\":\"%0300d\"}", 1);
		CHECK(PARSE(buf) < 0, "ping id over 256 bytes");
	}
#undef PARSE
}

static void
test_json_writer(void)
{
	char		out[512];
	struct jbuf b = {out, 0, sizeof(out), false};
	const char *nasty = "q\"b\\s/\n\r\t\x01\x1f ü✓ </script>";
	json_t	   *j;

	jb_json_string(&b, nasty);
	j = json_loadb(out, b.len, JSON_DECODE_ANY, NULL);
	CHECK(j && json_is_string(j) && strcmp(json_string_value(j), nasty) == 0,
		  "escaped string round-trips: %.*s", (int) b.len, out);
	json_decref(j);
	CHECK(memchr(out, '\n', b.len) == NULL && memchr(out, 1, b.len) == NULL, "no raw control characters");

	b.len = 0;
	b.cap = 4;
	jb_str(&b, "12345");
	CHECK(b.overflow, "overflow is sticky");
	{
		size_t		n = render_error(out, sizeof(out), "not_found", "no \"such\" poll", 42);

		j = json_loadb(out, n, 0, NULL);
		CHECK(j && strcmp(json_string_value(json_object_get(j, "code")), "not_found") == 0 &&
			  json_integer_value(json_object_get(j, "poll")) == 42 &&
			  strcmp(json_string_value(json_object_get(j, "message")), "no \"such\" poll") == 0,
			  "error message");
		json_decref(j);
		n = render_error(out, sizeof(out), "bad_request", "x", -1);
		j = json_loadb(out, n, 0, NULL);
		CHECK(j && !json_object_get(j, "poll"), "error without poll");
		json_decref(j);
	}
}

/* a token signed here, independently of auth.c's decoder */
static void
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		o = 0;

	for (size_t i = 0; i < n; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (i + 1 < n ? (uint32_t) in[i + 1] << 8 : 0) |
			(i + 2 < n ? in[i + 2] : 0);

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = a[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

static char *
make_token(const char *header, const char *claims, const char *key)
{
	static char tok[4096];
	char		h[1024], c[2048], s[128];
	unsigned char mac[32];
	unsigned int len = 0;

	b64url((const unsigned char *) header, strlen(header), h);
	b64url((const unsigned char *) claims, strlen(claims), c);
	snprintf(tok, sizeof(tok), "%s.%s", h, c);
	HMAC(EVP_sha256(), key, (int) strlen(key), (unsigned char *) tok, strlen(tok), mac, &len);
	b64url(mac, 32, s);
	strcat(tok, ".");
	strcat(tok, s);
	return tok;
}

static void
test_tokens(void)
{
	const unsigned char *key = (const unsigned char *) "k3y";
	struct grant g;
	const char *why;
	char		claims[256];
	int64_t		now = 1700000000;
	const char *hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

	snprintf(claims, sizeof(claims), "{\"polls\":[4,2],\"exp\":%lld}", (long long) now + 60);
	CHECK(jwt_verify(key, 3, make_token(hs, claims, "k3y"), now, &g, &why) == 0 &&
		  g.n_polls == 2 && grant_allows(&g, 2, now) && !grant_allows(&g, 3, now) &&
		  !grant_allows(&g, 4, now + 61), "valid token grants its polls until exp");
	grant_free(&g);
	CHECK(jwt_verify(key, 3, make_token(hs, claims, "other"), now, &g, &why) < 0 &&
		  strstr(why, "signature"), "wrong key");
	CHECK(jwt_verify(key, 3, make_token(hs, claims, "k3y"), now + 60, &g, &why) < 0 &&
		  strstr(why, "expired"), "expired at exp");
	CHECK(jwt_verify(key, 3, make_token("{\"alg\":\"none\"}", claims, "k3y"), now, &g, &why) < 0 &&
		  strstr(why, "HS256"), "alg none");
	CHECK(jwt_verify(key, 3, make_token("{\"alg\":\"HS384\"}", claims, "k3y"), now, &g, &why) < 0,
		  "alg HS384");
	CHECK(jwt_verify(key, 3, make_token("{\"typ\":\"JWT\"}", claims, "k3y"), now, &g, &why) < 0,
		  "no alg");
	{
		char		t[4096];

		strcpy(t, make_token("{\"alg\":\"none\"}", claims, "k3y"));
		*strrchr(t, '.') = '\0';
		strcat(t, ".");
		CHECK(jwt_verify(key, 3, t, now, &g, &why) < 0, "unsigned alg none");
		strcpy(t, make_token(hs, claims, "k3y"));
		t[strlen(t) - 1] = t[strlen(t) - 1] == 'A' ? 'B' : 'A';
		CHECK(jwt_verify(key, 3, t, now, &g, &why) < 0, "flipped signature");
		strcat(t, ".x");
		CHECK(jwt_verify(key, 3, t, now, &g, &why) < 0, "four parts");
	}
	CHECK(jwt_verify(key, 3, make_token(hs, "{\"polls\":\"*\",\"exp\":1800000000}", "k3y"), now,
					 &g, &why) == 0 && g.all && grant_allows(&g, 123456, now), "polls *");
	grant_free(&g);
	CHECK(jwt_verify(key, 3, make_token(hs, "{\"polls\":[1]}", "k3y"), now, &g, &why) < 0 &&
		  strstr(why, "exp"), "no exp");
	CHECK(jwt_verify(key, 3, make_token(hs, "{\"polls\":\"all\",\"exp\":1800000000}", "k3y"), now,
					 &g, &why) < 0, "polls \"all\"");
	CHECK(jwt_verify(key, 3, make_token(hs, "{\"polls\":[\"1\"],\"exp\":1800000000}", "k3y"), now,
					 &g, &why) < 0, "string poll ids");
	CHECK(jwt_verify(key, 3, make_token(hs, "{\"exp\":1800000000}", "k3y"), now, &g, &why) < 0,
		  "no polls");
	CHECK(jwt_verify(key, 3, make_token(hs, "[1]", "k3y"), now, &g, &why) < 0, "claims not an object");
	/* numeric dates beyond any int64 (or any sane date) are refused, not converted */
	{
		static const char *const extreme[] = {
			"{\"polls\":\"*\",\"exp\":1e300}",
			"{\"polls\":\"*\",\"exp\":-1e300}",
			"{\"polls\":\"*\",\"exp\":9.3e18}",
			"{\"polls\":\"*\",\"exp\":9223372036854775807}",
			"{\"polls\":\"*\",\"exp\":1800000000,\"nbf\":1e300}",
			"{\"polls\":\"*\",\"exp\":1800000000,\"nbf\":-1e300}",
			"{\"polls\":\"*\",\"exp\":1800000000,\"nbf\":\"x\"}",
		};

		for (size_t i = 0; i < sizeof(extreme) / sizeof(extreme[0]); i++)
			CHECK(jwt_verify(key, 3, make_token(hs, extreme[i], "k3y"), now, &g, &why) < 0 &&
				  (strstr(why, "out of range") || strstr(why, "nbf")), "extreme claims %s", extreme[i]);
	}
	CHECK(jwt_verify(key, 3, make_token(hs, "{\"polls\":\"*\",\"exp\":1800000000.5}", "k3y"), now,
					 &g, &why) == 0 && g.exp == 1800000000, "a fractional exp");
	grant_free(&g);
	snprintf(claims, sizeof(claims), "{\"polls\":\"*\",\"exp\":1800000000,\"nbf\":%lld}",
			 (long long) now + 60);
	CHECK(jwt_verify(key, 3, make_token(hs, claims, "k3y"), now, &g, &why) < 0 && strstr(why, "not yet"),
		  "nbf in the future");
	snprintf(claims, sizeof(claims), "{\"polls\":\"*\",\"exp\":1800000000,\"nbf\":%lld}",
			 (long long) now - 60);
	CHECK(jwt_verify(key, 3, make_token(hs, claims, "k3y"), now, &g, &why) == 0, "nbf passed");
	grant_free(&g);
	CHECK(jwt_verify(key, 3, "", now, &g, &why) < 0 && jwt_verify(key, 3, "..", now, &g, &why) < 0 &&
		  jwt_verify(key, 3, "a.b", now, &g, &why) < 0, "garbage tokens");
}

/* voter claims (sub, vote, seg), the two secrets, signing */
static void
test_voter_tokens(void)
{
	const unsigned char *jk = (const unsigned char *) "jwt-key", *vk = (const unsigned char *) "voter-key";
	struct keys keys = {jk, 7, vk, 9};
	struct keys only_jwt = {jk, 7, NULL, 0};
	const char *hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	int64_t		now = 1700000000;
	struct grant g;
	const char *why;
	char		tok[1024], claims[1024], sub[600];

	CHECK(jwt_sign(vk, 9, "{\"sub\":\"anon:1\",\"vote\":\"*\",\"exp\":1800000000}", tok, sizeof(tok)) > 0,
		  "jwt_sign");
	CHECK(token_verify(&keys, tok, now, &g, &why) == 0 && g.voter_token && g.vote_all &&
		  strcmp(g.sub, "anon:1") == 0 && grant_allows_vote(&g, 42, now) && !grant_allows(&g, 42, now),
		  "a voter token votes everywhere, reads nothing");
	grant_free(&g);
	CHECK(jwt_sign(vk, 9, "{\"sub\":\"a\",\"vote\":\"*\",\"polls\":\"*\",\"exp\":1800000000}", tok,
				   sizeof(tok)) > 0 && token_verify(&keys, tok, now, &g, &why) == 0 &&
		  !grant_allows(&g, 1, now) && grant_allows_vote(&g, 1, now), "the voter secret never grants reads");
	grant_free(&g);
	CHECK(token_verify(&only_jwt, tok, now, &g, &why) < 0 && strstr(why, "signature"),
		  "a voter token without the voter secret");
	CHECK(jwt_sign(vk, 9, "{\"sub\":\"a\",\"vote\":\"*\",\"exp\":1600000000}", tok, sizeof(tok)) > 0 &&
		  token_verify(&keys, tok, now, &g, &why) < 0 && strstr(why, "expired"), "an expired voter token");
	CHECK(jwt_sign((const unsigned char *) "other", 5, "{\"sub\":\"a\",\"vote\":\"*\",\"exp\":1800000000}",
				   tok, sizeof(tok)) > 0 && token_verify(&keys, tok, now, &g, &why) < 0 &&
		  strstr(why, "signature"), "a token of another key");
	CHECK(jwt_sign(jk, 7, "{\"sub\":\"b\",\"vote\":[3,5],\"seg\":\"eu\",\"polls\":[3],\"exp\":1800000000}",
				   tok, sizeof(tok)) > 0 && token_verify(&keys, tok, now, &g, &why) == 0 &&
		  !g.voter_token && grant_allows(&g, 3, now) && grant_allows_vote(&g, 5, now) &&
		  !grant_allows_vote(&g, 4, now) && strcmp(g.seg, "eu") == 0, "a jwt with sub, vote, seg");
	grant_free(&g);
	CHECK(jwt_verify(jk, 7, make_token(hs, "{\"sub\":\"b\",\"vote\":\"*\",\"exp\":1800000000}", "jwt-key"),
					 now, &g, &why) == 0 && !grant_allows(&g, 1, now) && grant_allows_vote(&g, 1, now),
		  "vote without polls: no reads");
	grant_free(&g);
	CHECK(jwt_verify(jk, 7, make_token(hs, "{\"polls\":\"*\",\"exp\":1800000000}", "jwt-key"), now, &g,
					 &why) == 0 && !grant_allows_vote(&g, 1, now), "polls without vote: no votes");
	grant_free(&g);
	{
		static const char *const refused[] = {
			"{\"vote\":\"*\",\"exp\":1800000000}",	/* no sub */
			"{\"sub\":\"\",\"vote\":\"*\",\"exp\":1800000000}",
			"{\"sub\":7,\"vote\":\"*\",\"exp\":1800000000}",
			"{\"sub\":\"a\\u0000b\",\"vote\":\"*\",\"exp\":1800000000}",
			"{\"sub\":\"a\",\"vote\":[0],\"exp\":1800000000}",
			"{\"sub\":\"a\",\"vote\":\"all\",\"exp\":1800000000}",
			"{\"sub\":\"a\",\"vote\":\"*\",\"seg\":\"\",\"exp\":1800000000}",
			"{\"sub\":\"a\",\"vote\":\"*\",\"seg\":[],\"exp\":1800000000}",
			"{\"sub\":\"a\",\"exp\":1800000000}",	/* grants nothing */
		};

		for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
			CHECK(jwt_verify(jk, 7, make_token(hs, refused[i], "jwt-key"), now, &g, &why) < 0,
				  "refused claims %s", refused[i]);
	}
	/* sub: 256 characters (multi-byte ones too) but not 257; seg: 64 */
	memset(sub, 0, sizeof(sub));
	for (int i = 0; i < 256; i++)
		strcat(sub, "\xc3\xa9");
	snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"vote\":\"*\",\"exp\":1800000000}", sub);
	CHECK(jwt_verify(jk, 7, make_token(hs, claims, "jwt-key"), now, &g, &why) == 0 &&
		  utf8_chars(g.sub) == 256, "sub of 256 two-byte characters");
	grant_free(&g);
	snprintf(claims, sizeof(claims), "{\"sub\":\"x%s\",\"vote\":\"*\",\"exp\":1800000000}", sub);
	CHECK(jwt_verify(jk, 7, make_token(hs, claims, "jwt-key"), now, &g, &why) < 0, "sub of 257 characters");
	snprintf(claims, sizeof(claims), "{\"sub\":\"a\",\"vote\":\"*\",\"seg\":\"%065d\",\"exp\":1800000000}", 0);
	CHECK(jwt_verify(jk, 7, make_token(hs, claims, "jwt-key"), now, &g, &why) < 0, "seg of 65 characters");
	CHECK(jwt_sign(jk, 7, "{}", tok, 20) == 0, "jwt_sign into too small a buffer");
}

static void
test_vote_messages(void)
{
	struct client_msg m;
	const char *why;
	char		buf[512], text[256];

#define PARSE(s) client_msg_parse(s, strlen(s), &m, &why)
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":2,\"ref\":\"c1\"}") == 0 &&
		  m.type == CMSG_VOTE && m.poll == 4 && m.ballot.single && m.ballot.n == 1 &&
		  m.ballot.options[0] == 2 && m.has_ref && strcmp(m.ref, "c1") == 0 && !m.bad_vote, "vote");
	CHECK(ballot_text(&m.ballot, text, sizeof(text)) == 1 && strcmp(text, "2") == 0, "ballot text 2");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"options\":[3,1]}") == 0 && !m.ballot.single &&
		  m.ballot.n == 2 && !m.has_ref, "multi vote");
	CHECK(ballot_text(&m.ballot, text, sizeof(text)) == 5 && strcmp(text, "{3,1}") == 0, "ballot text {3,1}");
	CHECK(PARSE("{\"type\":\"retract\",\"poll\":4,\"ref\":\"x\"}") == 0 && m.type == CMSG_RETRACT,
		  "retract");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":\"2\",\"ref\":\"r\"}") < 0 &&
		  m.type == CMSG_VOTE && m.has_ref && m.has_poll, "a bad vote still has its ref and poll");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4}") < 0, "no option");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":1,\"options\":[1]}") < 0, "both");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"options\":[1,null]}") < 0, "null in options");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"options\":{}}") < 0, "options an object");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":1,\"ref\":5}") < 0, "ref a number");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":1,\"ref\":\"a\\u0000b\"}") < 0, "ref with NUL");
	snprintf(buf, sizeof(buf), "{\"type\":\"vote\",\"poll\":4,\"option\":1,\"ref\":\"%064d\"}", 0);
	CHECK(PARSE(buf) == 0 && strlen(m.ref) == 64, "ref of 64");
	snprintf(buf, sizeof(buf), "{\"type\":\"vote\",\"poll\":4,\"option\":1,\"ref\":\"%065d\"}", 0);
	CHECK(PARSE(buf) < 0, "ref of 65");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":0}") == 0 && m.bad_vote, "option 0");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":65}") == 0 && m.bad_vote, "option 65");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"option\":-9223372036854775808}") == 0 && m.bad_vote,
		  "option INT64_MIN");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"options\":[]}") == 0 && m.bad_vote, "no options");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":4,\"options\":[2,2]}") == 0 && m.bad_vote, "duplicates");
	CHECK(PARSE("{\"type\":\"vote\",\"poll\":0,\"option\":1}") < 0, "poll 0");
#undef PARSE
	CHECK(vote_body_parse("{\"option\":3,\"ref\":\"h\"}", 22, &m, &why) == 0 && m.ballot.options[0] == 3 &&
		  m.has_ref, "vote body");
	CHECK(vote_body_parse("[1]", 3, &m, &why) < 0 && vote_body_parse("{", 1, &m, &why) < 0 &&
		  vote_body_parse("{}", 2, &m, &why) < 0, "bad vote bodies");
	buf[render_error_ref(buf, sizeof(buf) - 1, "closed", "poll 4 is closed", 4, "q\"1")] = '\0';
	CHECK(strcmp(buf, "{\"type\":\"error\",\"code\":\"closed\",\"message\":\"poll 4 is closed\","
				 "\"poll\":4,\"ref\":\"q\\\"1\"}") == 0, "error with ref: %s", buf);
}

static void
test_rate_limit(void)
{
	struct ratelimit r;
	int64_t		t = 1000000000;
	int			ok = 0;

	rl_init(&r, 5, 10, 3);
	for (int i = 0; i < 12; i++)
		ok += rl_take(&r, "alice", t) == 0;
	CHECK(ok == 10, "a burst of 10, not %d", ok);
	CHECK(rl_take(&r, "alice", t) == 200001, "the next token in 0.2 s");
	CHECK(rl_take(&r, "alice", t + 200000) == 0 && rl_take(&r, "alice", t + 200000) > 0, "one token in 0.2 s");
	CHECK(rl_take(&r, "bob", t) == 0 && rl_take(&r, "carol", t) == 0, "others have their own");
	CHECK(rl_take(&r, "dave", t) == 1000000, "the table is full: refused");
	rl_sweep(&r, t + 3000000);
	CHECK(r.n == 0 && rl_take(&r, "dave", t + 3000000) == 0, "full buckets swept");
	rl_free(&r);
	rl_init(&r, 0, 0, 1);
	for (int i = 0; i < 100; i++)
		CHECK(rl_take(&r, "x", t) == 0, "rate 0: no limit");
	rl_free(&r);
	rl_init(&r, 1, 2, 100000);
	for (int i = 0; i < 5000; i++)
	{
		char		key[16];

		snprintf(key, sizeof(key), "k%d", i);
		ok = rl_take(&r, key, t) == 0;
		if (!ok)
			break;
	}
	CHECK(ok && r.n == 5000 && r.n_buckets >= 2048, "the table grows");
	rl_free(&r);
}

/* --trusted-proxy: the networks, and the client's address from X-Forwarded-For */
static void
test_proxies(void)
{
	struct proxy_net n[4];
	const char *why;
	char		out[64];
	static const char *bad[] = {"", "/8", "localhost", "10.0.0.1/33", "10.0.0.1/", "10.0.0.1/x",
		"10.0.0.0/8x", "10.1.0.0/8", "::1/129", "fe80::/-1", "1.2.3.4:80", "[::1]", "1.2.3", NULL};

	for (int i = 0; bad[i]; i++)
		CHECK(proxy_parse(bad[i], &n[0], &why) < 0 && why, "\"%s\" refused", bad[i]);
	CHECK(proxy_parse("127.0.0.1", &n[0], &why) == 0 && n[0].bits == 128, "one IPv4 address");
	CHECK(proxy_parse("10.0.0.0/8", &n[1], &why) == 0 && n[1].bits == 104, "an IPv4 network");
	CHECK(proxy_parse("fd00::/16", &n[2], &why) == 0 && n[2].bits == 16, "an IPv6 network");
	CHECK(proxy_parse("::1", &n[3], &why) == 0, "IPv6 loopback");

	CHECK(proxy_trusted(n, 4, "127.0.0.1") && proxy_trusted(n, 4, "::ffff:127.0.0.1") &&
		  !proxy_trusted(n, 4, "127.0.0.2"), "one address");
	CHECK(proxy_trusted(n, 4, "10.255.0.1") && !proxy_trusted(n, 4, "11.0.0.1") &&
		  !proxy_trusted(n, 4, "9.255.255.255"), "an IPv4 /8");
	CHECK(proxy_trusted(n, 4, "fd00:1::5") && !proxy_trusted(n, 4, "fd01::5") &&
		  proxy_trusted(n, 4, "::1") && !proxy_trusted(n, 4, "::2") && !proxy_trusted(n, 4, "junk"),
		  "IPv6");

#define ADDR(peer, xff, want) do { \
	proxy_client_address(n, 4, peer, xff, out, sizeof(out)); \
	CHECK(strcmp(out, want) == 0, "peer %s, X-Forwarded-For %s: %s, not %s", peer, xff ? xff : "-", out, want); \
} while (0)
	ADDR("203.0.113.9", NULL, "203.0.113.9");
	ADDR("::ffff:203.0.113.9", NULL, "203.0.113.9");
	/* an untrusted peer's header means nothing: no choosing one's address */
	ADDR("203.0.113.9", "198.51.100.1", "203.0.113.9");
	ADDR("::ffff:203.0.113.9", "198.51.100.1", "203.0.113.9");
	/* a trusted peer's: the rightmost entry not a trusted proxy */
	ADDR("127.0.0.1", "198.51.100.1", "198.51.100.1");
	ADDR("::ffff:127.0.0.1", " 198.51.100.1 ", "198.51.100.1");
	ADDR("127.0.0.1", NULL, "127.0.0.1");
	ADDR("127.0.0.1", "", "127.0.0.1");
	ADDR("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1");	/* the client wrote 6.6.6.6 */
	ADDR("127.0.0.1", "6.6.6.6,198.51.100.1,10.1.2.3", "198.51.100.1");	/* two balancers */
	ADDR("127.0.0.1", "10.9.9.9, 127.0.0.1", "10.9.9.9");	/* all trusted: the leftmost */
	ADDR("127.0.0.1", "2001:db8::7", "2001:db8::7");
	ADDR("::1", "2001:DB8:0:0::7", "2001:db8::7");
	ADDR("127.0.0.1", "::ffff:198.51.100.1", "198.51.100.1");
	/* a malformed entry stops the walk at the entry to its right */
	ADDR("127.0.0.1", "198.51.100.1, junk", "127.0.0.1");
	ADDR("127.0.0.1", "198.51.100.1, junk, 10.0.0.5", "10.0.0.5");
	ADDR("127.0.0.1", "198.51.100.1,,10.0.0.5", "10.0.0.5");
	ADDR("127.0.0.1", "198.51.100.1:4000", "127.0.0.1");
	ADDR("127.0.0.1", "unknown", "127.0.0.1");
	ADDR("127.0.0.1", "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee:ffff:0000", "127.0.0.1");
	ADDR("", "198.51.100.1", "?");
	/* no trusted proxy at all */
	proxy_client_address(n, 0, "127.0.0.1", "198.51.100.1", out, sizeof(out));
	CHECK(strcmp(out, "127.0.0.1") == 0, "without --trusted-proxy the header is ignored");
#undef ADDR
}

int
main(void)
{
	test_pgoutput();
	test_values();
	test_text_array();
	test_client_messages();
	test_json_writer();
	test_tokens();
	test_voter_tokens();
	test_vote_messages();
	test_rate_limit();
	test_proxies();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

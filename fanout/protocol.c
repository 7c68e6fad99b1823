/*
 * protocol.c — parses client messages with jansson and writes JSON text
 * with correct string escaping.  Nothing here touches a socket.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol.h"

static int	get_poll_id(json_t *o, struct client_msg *m, const char **why);
static int	get_ref(json_t *o, struct client_msg *m, const char **why);
static int	get_ballot(json_t *o, struct client_msg *m, const char **why);

/* "ref": optional, a string of at most 64 characters (echoed in the answer) */
static int
get_ref(json_t *o, struct client_msg *m, const char **why)
{
	json_t	   *v = json_object_get(o, "ref");
	const char *s;
	size_t		chars = 0;

	if (!v)
		return 0;
	if (!json_is_string(v))
	{
		*why = "\"ref\" must be a string";
		return -1;
	}
	s = json_string_value(v);
	for (const char *p = s; *p; p++)
		if (((unsigned char) *p & 0xC0) != 0x80)
			chars++;
	if (json_string_length(v) != strlen(s) || chars > REF_MAX_CHARS || strlen(s) > REF_MAX)
	{
		*why = "\"ref\" must be at most 64 characters, without NUL";
		return -1;
	}
	strcpy(m->ref, s);
	m->has_ref = true;
	return 0;
}

/*
 * "option": an integer, or "options": an array of integers.  Types are
 * bad_request; values no poll can take (out of 1..64, none, too many,
 * repeated) set m->bad_vote, so that they cost no trip to Postgres; the
 * rest (an option the poll lacks, the wrong kind) is for Postgres to say.
 */
static int
get_ballot(json_t *o, struct client_msg *m, const char **why)
{
	json_t	   *one = json_object_get(o, "option");
	json_t	   *many = json_object_get(o, "options");
	struct ballot *b = &m->ballot;
	size_t		i;
	json_t	   *e;

	if ((one != NULL) == (many != NULL))
	{
		*why = "a vote needs \"option\" or \"options\" (one of them)";
		return -1;
	}
	if (one)
	{
		if (!json_is_integer(one))
		{
			*why = "\"option\" must be an integer";
			return -1;
		}
		b->single = true;
		b->n = 1;
		if (json_integer_value(one) < 1 || json_integer_value(one) > BALLOT_MAX)
			m->bad_vote = "option ids are 1 to 64";
		else
			b->options[0] = (int) json_integer_value(one);
		return 0;
	}
	if (!json_is_array(many))
	{
		*why = "\"options\" must be an array of integers";
		return -1;
	}
	json_array_foreach(many, i, e)
	{
		if (!json_is_integer(e))
		{
			*why = "\"options\" must be an array of integers";
			return -1;
		}
	}
	if (json_array_size(many) == 0)
		m->bad_vote = "a ballot must choose at least one option";
	else if (json_array_size(many) > BALLOT_MAX)
		m->bad_vote = "a ballot may choose at most 64 options";
	if (m->bad_vote)
		return 0;
	json_array_foreach(many, i, e)
	{
		json_int_t	v = json_integer_value(e);

		if (v < 1 || v > BALLOT_MAX)
		{
			m->bad_vote = "option ids are 1 to 64";
			return 0;
		}
		for (int j = 0; j < b->n; j++)
			if (b->options[j] == v)
			{
				m->bad_vote = "an option is chosen more than once";
				return 0;
			}
		b->options[b->n++] = (int) v;
	}
	return 0;
}

int
vote_body_parse(const char *buf, size_t len, struct client_msg *m, const char **why)
{
	json_t	   *o;
	int			rc = -1;

	memset(m, 0, sizeof(*m));
	m->type = CMSG_VOTE;
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o))
		*why = o ? "the body must be a JSON object" : "malformed JSON";
	else if (get_ref(o, m, why) == 0 && get_ballot(o, m, why) == 0)
		rc = 0;
	json_decref(o);
	return rc;
}

size_t
ballot_text(const struct ballot *b, char *out, size_t cap)
{
	struct jbuf j = {out, 0, cap - 1, false};

	if (b->single)
		jb_fmt(&j, "%d", b->options[0]);
	else
	{
		jb_str(&j, "{");
		for (int i = 0; i < b->n; i++)
			jb_fmt(&j, "%s%d", i ? "," : "", b->options[i]);
		jb_str(&j, "}");
	}
	if (j.overflow)
		return 0;
	out[j.len] = '\0';
	return j.len;
}

static int
get_poll_id(json_t *o, struct client_msg *m, const char **why)
{
	json_t	   *v = json_object_get(o, "poll");

	if (!v)
	{
		*why = "missing \"poll\"";
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
	{
		*why = "\"poll\" must be a positive integer";
		return -1;
	}
	m->poll = json_integer_value(v);
	m->has_poll = true;
	return 0;
}

int
client_msg_parse(const char *buf, size_t len, struct client_msg *m, const char **why)
{
	json_error_t err;
	json_t	   *o;
	json_t	   *t;
	const char *type;
	int			rc = -1;

	memset(m, 0, sizeof(*m));
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!o)
	{
		*why = "malformed JSON";
		return -1;
	}
	if (!json_is_object(o))
	{
		*why = "a message must be a JSON object";
		goto out;
	}
	t = json_object_get(o, "type");
	if (!json_is_string(t))
	{
		*why = "missing \"type\"";
		goto out;
	}
	type = json_string_value(t);
	if (strcmp(type, "subscribe") == 0)
	{
		json_t	   *v;

		m->type = CMSG_SUBSCRIBE;
		if (get_poll_id(o, m, why) < 0)
			goto out;
		v = json_object_get(o, "version");
		if (v && !json_is_null(v))
		{
			if (!json_is_integer(v) || json_integer_value(v) < 0)
			{
				*why = "\"version\" must be a non-negative integer";
				goto out;
			}
			m->has_version = true;
			m->version = json_integer_value(v);
		}
	}
	else if (strcmp(type, "unsubscribe") == 0)
	{
		m->type = CMSG_UNSUBSCRIBE;
		if (get_poll_id(o, m, why) < 0)
			goto out;
	}
	else if (strcmp(type, "ping") == 0)
	{
		json_t	   *id = json_object_get(o, "id");

		m->type = CMSG_PING;
		if (id)
		{
			char	   *s = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);

			if (!s || strlen(s) > PING_ID_MAX)
			{
				free(s);
				*why = "\"id\" is too long";
				goto out;
			}
			strcpy(m->ping_id, s);
			free(s);
		}
	}
	else if (strcmp(type, "auth") == 0)
	{
		json_t	   *tok = json_object_get(o, "token");

		m->type = CMSG_AUTH;
		if (!json_is_string(tok) || json_string_length(tok) > TOKEN_MAX)
		{
			*why = "\"token\" must be a string";
			goto out;
		}
		strcpy(m->token, json_string_value(tok));
	}
	else if (strcmp(type, "vote") == 0 || strcmp(type, "retract") == 0)
	{
		m->type = type[0] == 'v' ? CMSG_VOTE : CMSG_RETRACT;
		if (get_ref(o, m, why) < 0 || get_poll_id(o, m, why) < 0 ||
			(m->type == CMSG_VOTE && get_ballot(o, m, why) < 0))
			goto out;
	}
	else
	{
		*why = "unknown message type";
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

void
jb_raw(struct jbuf *b, const char *s, size_t n)
{
	if (b->overflow || b->len + n > b->cap)
	{
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void
jb_str(struct jbuf *b, const char *s)
{
	jb_raw(b, s, strlen(s));
}

void
jb_fmt(struct jbuf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (b->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= b->cap - b->len)
	{
		b->overflow = true;
		return;
	}
	b->len += (size_t) n;
}

void
jb_json_string(struct jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	jb_raw(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		char		e[6];

		switch (*p)
		{
			case '"':
				jb_raw(b, "\\\"", 2);
				break;
			case '\\':
				jb_raw(b, "\\\\", 2);
				break;
			case '\n':
				jb_raw(b, "\\n", 2);
				break;
			case '\r':
				jb_raw(b, "\\r", 2);
				break;
			case '\t':
				jb_raw(b, "\\t", 2);
				break;
			default:
				if (*p < 0x20)
				{
					e[0] = '\\';
					e[1] = 'u';
					e[2] = '0';
					e[3] = '0';
					e[4] = hex[*p >> 4];
					e[5] = hex[*p & 15];
					jb_raw(b, e, 6);
				}
				else
					jb_raw(b, (const char *) p, 1);
		}
	}
	jb_raw(b, "\"", 1);
}

size_t
render_error(char *out, size_t cap, const char *code, const char *message, int64_t poll)
{
	return render_error_ref(out, cap, code, message, poll, NULL);
}

size_t
render_error_ref(char *out, size_t cap, const char *code, const char *message, int64_t poll,
				 const char *ref)
{
	struct jbuf b = {out, 0, cap, false};

	jb_str(&b, "{\"type\":\"error\",\"code\":");
	jb_json_string(&b, code);
	jb_str(&b, ",\"message\":");
	jb_json_string(&b, message);
	if (poll >= 0)
		jb_fmt(&b, ",\"poll\":%lld", (long long) poll);
	if (ref)
	{
		jb_str(&b, ",\"ref\":");
		jb_json_string(&b, ref);
	}
	jb_str(&b, "}");
	return b.overflow ? 0 : b.len;
}

/*
 * messages.c — what the daemon says: the snapshot, tally and status
 * messages of a poll (each rendered once per version and shared by every
 * subscriber that needs it), the pong, and which message brings a
 * subscriber from its version to the poll's.  With protocol.c (client JSON
 * in, the JSON writer, error messages) this is all the JSON in and out.
 * Reads polls.c's state; calls nothing above it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

static void render_options(struct jbuf *b, const struct poll *p, bool labels);
static size_t render_kind(const struct poll *p, enum msg_kind k, char *out, size_t cap);

const char *
status_name(enum poll_status s)
{
	switch (s)
	{
		case STATUS_SCHEDULED:
			return "scheduled";
		case STATUS_OPEN:
			return "open";
		case STATUS_CLOSED:
			return "closed";
	}
	return "open";
}

static void
render_options(struct jbuf *b, const struct poll *p, bool labels)
{
	int			n = p->n_options > 0 ? p->n_options : p->n_votes;

	jb_str(b, ",\"options\":[");
	for (int i = 0; i < n; i++)
	{
		jb_fmt(b, "%s{\"id\":%d", i ? "," : "", i + 1);
		if (labels)
		{
			jb_str(b, ",\"label\":");
			jb_json_string(b, i < p->n_options ? p->labels[i] : "");
		}
		jb_fmt(b, ",\"votes\":%lld}", (long long) (i < p->n_votes ? p->votes[i] : 0));
	}
	jb_str(b, "]}");
}

size_t
render_snapshot_json(const struct poll *p, char *out, size_t cap)
{
	struct jbuf b = {out, 0, cap, false};

	jb_fmt(&b, "{\"type\":\"snapshot\",\"poll\":%lld,\"version\":%lld,\"status\":\"%s\",\"title\":",
		   (long long) p->id, (long long) p->version, status_name(p->status));
	jb_json_string(&b, p->title ? p->title : "");
	jb_fmt(&b, ",\"ballots\":%lld", (long long) p->ballots);
	render_options(&b, p, true);
	return b.overflow ? 0 : b.len;
}

static size_t
render_kind(const struct poll *p, enum msg_kind k, char *out, size_t cap)
{
	struct jbuf b = {out, 0, cap, false};

	if (k == MSG_SNAPSHOT)
		return render_snapshot_json(p, out, cap);
	if (k == MSG_STATUS)
	{
		jb_fmt(&b, "{\"type\":\"status\",\"poll\":%lld,\"version\":%lld,\"status\":\"%s\"}",
			   (long long) p->id, (long long) p->version, status_name(p->status));
		return b.overflow ? 0 : b.len;
	}
	jb_fmt(&b, "{\"type\":\"tally\",\"poll\":%lld,\"version\":%lld,\"ballots\":%lld",
		   (long long) p->id, (long long) p->version, (long long) p->ballots);
	render_options(&b, p, false);
	return b.overflow ? 0 : b.len;
}

/* one message of the poll's current state, for webhooks.c */
size_t
render_message(const struct poll *p, enum msg_kind k, char *out, size_t cap)
{
	return render_kind(p, k, out, cap);
}

/*
 * The WebSocket frame header of an unfragmented text message of len bytes,
 * as a server sends it (unmasked): 2, 4 or 10 bytes, written to out.
 */
size_t
ws_frame_header(unsigned char *out, size_t len)
{
	out[0] = 0x81;				/* FIN, text */
	if (len < 126)
	{
		out[1] = (unsigned char) len;
		return 2;
	}
	if (len < 65536)
	{
		out[1] = 126;
		out[2] = (unsigned char) (len >> 8);
		out[3] = (unsigned char) len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
	return 10;
}

/*
 * The message that brings the subscriber from sent_version to the poll's
 * current version: a snapshot first, then a tally or a status, or a
 * snapshot again when both changed since the client's version.  Each kind
 * is rendered once per version and shared by every subscriber that needs
 * it, with its WebSocket frame header right before the JSON: the text
 * stays valid until the poll changes or goes.  Returns false when there is
 * nothing to send.
 */
bool
message_for(struct fanout *f, struct subscription *sub, struct msg_ref *m)
{
	struct poll *p = sub->poll;
	enum msg_kind k;
	bool		sc, tc;
	char	   *json;

	if (p->state != POLL_READY || !p->have_row || p->version <= sub->sent_version)
		return false;
	sc = p->status_version > sub->sent_version;
	tc = p->tally_version > sub->sent_version;
	if (sub->need_snapshot || sub->sent_version < p->base_version || (sc && tc))
		k = MSG_SNAPSHOT;
	else if (sc)
		k = MSG_STATUS;
	else
		k = MSG_TALLY;
	if (!p->msg[k] || p->msg_version[k] != p->version)
	{
		char	   *out = (char *) f->scratch;
		size_t		n = render_kind(p, k, out, SCRATCH_SIZE);

		if (n == 0)
			return false;
		if (MSG_HEADROOM + n > p->msg_cap[k])
		{
			/* reused from version to version: grows, never churns */
			size_t		cap = MSG_HEADROOM + (n < 256 ? 256 : n + n / 4);
			char	   *b = realloc(p->msg[k], cap);

			if (!b)
				return false;
			p->msg[k] = b;
			p->msg_cap[k] = cap;
		}
		memcpy(p->msg[k] + MSG_HEADROOM, out, n);
		p->msg_len[k] = n;
		p->msg_version[k] = p->version;
		{
			unsigned char hdr[10];
			size_t		hl = ws_frame_header(hdr, n);

			memcpy(p->msg[k] + MSG_HEADROOM - hl, hdr, hl);
		}
	}
	json = p->msg[k] + MSG_HEADROOM;
	m->json = json;
	m->json_len = p->msg_len[k];
	{
		size_t		hl = m->json_len < 126 ? 2 : m->json_len < 65536 ? 4 : 10;

		m->frame = json - hl;
		m->frame_len = hl + m->json_len;
	}
	m->version = p->version;
	return true;
}

/* {"type":"pong","id":...}: ping_id is the client's id as JSON text, or empty */
size_t
render_pong(char *out, size_t cap, const char *ping_id)
{
	int			n = ping_id[0] ? snprintf(out, cap, "{\"type\":\"pong\",\"id\":%s}", ping_id) :
		snprintf(out, cap, "{\"type\":\"pong\"}");

	return n < 0 || (size_t) n >= cap ? 0 : (size_t) n;
}

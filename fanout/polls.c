/*
 * polls.c — the poll cache and subscriptions: the latest state of every
 * poll someone watches, applied by version (a row whose version is not
 * higher than the cached one is ignored, whether it came from a snapshot
 * or the stream), each poll's subscriptions in a clean and a dirty list,
 * and the negative cache of ids that do not exist.
 *
 * A subscription never queues messages: it remembers the version the
 * client has, and at write time the message is rendered from the poll's
 * current state (messages.c).  That is the coalescing, and what bounds
 * memory.  When a subscription becomes dirty the writer is told through
 * f->sub_dirty, which writer.c sets: the cache calls nothing above it.
 *
 * Unknown ids are remembered for NEG_TTL_US in a fixed-size, direct-mapped
 * negative cache (NEG_SLOTS entries, a collision replaces the older one:
 * bounded whatever the ids), so asking again costs no query; a row of the
 * id on the replication stream (the poll was created) forgets it at once.
 */
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define NEG_SLOTS	4096
#define NEG_TTL_US	(10 * 1000 * 1000)

static struct neg_entry {
	int64_t		id;
	int64_t		until_us;
}			neg[NEG_SLOTS];

static unsigned neg_slot(int64_t id);
static bool poll_known_missing(int64_t id);
static void neg_add(int64_t id);
static unsigned bucket_of(int64_t id);
static void poll_free(struct poll *p);
static void sub_unlink(struct subscription *sub);
static void sub_link(struct subscription *sub);

static unsigned
neg_slot(int64_t id)
{
	return (unsigned) (((uint64_t) id * 11400714819323198485ull) >> 52) % NEG_SLOTS;
}

static bool
poll_known_missing(int64_t id)
{
	struct neg_entry *e = &neg[neg_slot(id)];

	return e->id == id && e->until_us > now_us();
}

/* a row of the poll came on the stream: it exists */
void
poll_seen(struct fanout *f, int64_t id)
{
	struct neg_entry *e = &neg[neg_slot(id)];

	(void) f;
	if (e->id == id)
		e->until_us = 0;
}

static void
neg_add(int64_t id)
{
	struct neg_entry *e = &neg[neg_slot(id)];

	e->id = id;
	e->until_us = now_us() + NEG_TTL_US;
}

static unsigned
bucket_of(int64_t id)
{
	return (unsigned) (((uint64_t) id * 11400714819323198485ull) >> 54) % POLL_BUCKETS;
}

struct poll *
poll_find(struct fanout *f, int64_t id)
{
	for (struct poll *p = f->buckets[bucket_of(id)]; p; p = p->next_in_bucket)
		if (p->id == id)
			return p;
	return NULL;
}

struct poll *
poll_get(struct fanout *f, int64_t id)
{
	struct poll *p = poll_find(f, id);
	unsigned	b;

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->id = id;
	/* loaded when a subscriber asks for it (snapshots.c); unknown a moment ago: still unknown */
	p->state = poll_known_missing(id) ? POLL_NOT_FOUND : POLL_LOADING;
	b = bucket_of(id);
	p->next_in_bucket = f->buckets[b];
	f->buckets[b] = p;
	f->n_polls++;
	return p;
}

static void
poll_free(struct poll *p)
{
	free(p->title);
	for (int i = 0; i < p->n_options; i++)
		free(p->labels[i]);
	free(p->labels);
	for (int k = 0; k < 3; k++)
		free(p->msg[k]);
	free(p);
}

/* drops a poll nobody watches; a queued snapshot request goes with it */
void
poll_release_if_unused(struct fanout *f, struct poll *p)
{
	struct poll **pp;

	if (p->n_subs > 0)
		return;
	for (pp = &f->buckets[bucket_of(p->id)]; *pp; pp = &(*pp)->next_in_bucket)
		if (*pp == p)
		{
			*pp = p->next_in_bucket;
			break;
		}
	f->n_polls--;
	poll_free(p);
}

/*
 * Every subscriber needs the new state.  One that is already dirty has its
 * session scheduled (a write due, or its throttle window running, at whose
 * end the writer looks at it): only the clean ones need scheduling, so a
 * change costs nothing per subscriber that is waiting anyway.  The changes
 * a message merges are counted when it is written (writer.c), from
 * n_changes.
 */
void
poll_changed(struct fanout *f, struct poll *p)
{
	struct subscription *s;

	for (int k = 0; k < 3; k++)
		p->msg_version[k] = -1;
	p->n_changes++;
	while ((s = p->subs) != NULL)
	{
		sub_set_dirty(s, true);
		f->sub_dirty(s->sess, s);
	}
}

static void
sub_unlink(struct subscription *sub)
{
	struct poll *p = sub->poll;

	if (sub->poll_prev)
		sub->poll_prev->poll_next = sub->poll_next;
	else if (sub->dirty)
		p->dirty_subs = sub->poll_next;
	else
		p->subs = sub->poll_next;
	if (sub->poll_next)
		sub->poll_next->poll_prev = sub->poll_prev;
	sub->poll_prev = sub->poll_next = NULL;
	if (sub->dirty)
		p->n_dirty--;
}

static void
sub_link(struct subscription *sub)
{
	struct poll *p = sub->poll;
	struct subscription **head = sub->dirty ? &p->dirty_subs : &p->subs;

	sub->poll_prev = NULL;
	sub->poll_next = *head;
	if (*head)
		(*head)->poll_prev = sub;
	*head = sub;
	if (sub->dirty)
		p->n_dirty++;
}

/* moves sub to its poll's dirty or clean list */
void
sub_set_dirty(struct subscription *sub, bool dirty)
{
	if (sub->dirty == dirty)
		return;
	sub_unlink(sub);
	sub->dirty = dirty;
	sub_link(sub);
}

void
poll_apply_row(struct fanout *f, struct poll *p, const struct tally_row *row)
{
	bool		status_changed, tally_changed;

	if (p->have_row && row->version <= p->version)
		return;
	if (row->votes_unchanged && !p->have_row)
		return;					/* nothing to keep: the snapshot will tell */
	status_changed = !p->have_row || (int) p->status != row->status;
	tally_changed = !p->have_row || p->ballots != row->ballots ||
		(!row->votes_unchanged && (p->n_votes != row->n_votes ||
								   memcmp(p->votes, row->votes,
										  sizeof(int64_t) * (size_t) row->n_votes) != 0));
	if (!p->have_row)
		p->base_version = row->version;
	p->have_row = true;
	p->version = row->version;
	p->status = (enum poll_status) row->status;
	p->ballots = row->ballots;
	if (!row->votes_unchanged)
	{
		p->n_votes = row->n_votes;
		memcpy(p->votes, row->votes, sizeof(int64_t) * (size_t) row->n_votes);
	}
	if (status_changed)
		p->status_version = row->version;
	if (tally_changed || !status_changed)
		p->tally_version = row->version;
	if (p->state == POLL_READY)
		poll_changed(f, p);
}

void
poll_apply_snapshot(struct fanout *f, struct poll *p, const char *title,
					char **labels, int n_labels, const struct tally_row *row)
{
	if (!p->title)
	{
		p->title = strdup(title);
		p->labels = labels;
		p->n_options = n_labels;
	}
	else
	{
		for (int i = 0; i < n_labels; i++)
			free(labels[i]);
		free(labels);
	}
	if (p->state != POLL_READY)
	{
		/* a stream row may have arrived while the snapshot was in flight */
		poll_apply_row(f, p, row);
		p->state = POLL_READY;
		poll_changed(f, p);
	}
	else
		poll_apply_row(f, p, row);
}

/* the poll does not exist; remembered (the negative cache) when asked */
void
poll_not_found(struct fanout *f, struct poll *p, bool remember)
{
	if (remember)
		neg_add(p->id);
	p->state = POLL_NOT_FOUND;
	poll_changed(f, p);
}

struct subscription *
sub_add(struct fanout *f, struct session *s, struct poll *p, int64_t version)
{
	struct subscription *sub;

	if (s->n_subs == s->subs_cap)
	{
		int			cap = s->subs_cap ? s->subs_cap * 2 : 2;
		struct subscription **a;

		if (cap > MAX_SUBSCRIPTIONS)
			cap = MAX_SUBSCRIPTIONS;
		if (s->n_subs >= cap)
			return NULL;
		a = realloc(s->subs, sizeof(*a) * (size_t) cap);
		if (!a)
			return NULL;
		s->subs = a;
		s->subs_cap = cap;
	}
	sub = calloc(1, sizeof(*sub));
	if (!sub)
		return NULL;
	sub->poll = p;
	sub->sess = s;
	sub->sent_version = version;
	sub->need_snapshot = true;
	sub->changes_seen = p->n_changes;
	sub->dirty = p->state != POLL_LOADING;
	sub_link(sub);
	p->n_subs++;
	s->subs[s->n_subs++] = sub;
	f->n_subscriptions++;
	if (sub->dirty)
		f->sub_dirty(s, sub);
	return sub;
}

void
sub_remove(struct fanout *f, struct subscription *sub)
{
	struct session *s = sub->sess;
	struct poll *p = sub->poll;

	for (int i = 0; i < s->n_subs; i++)
		if (s->subs[i] == sub)
		{
			s->subs[i] = s->subs[--s->n_subs];
			break;
		}
	sub_unlink(sub);
	p->n_subs--;
	f->n_subscriptions--;
	free(sub);
	poll_release_if_unused(f, p);
}

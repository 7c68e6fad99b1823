/*
 * webhooks.h — --webhooks (webhooks.c, layer 5): poll events POSTed to the
 * receivers registered with poll.add_webhook.
 */
#ifndef WEBHOOKS_H
#define WEBHOOKS_H

#include "fanout.h"

void		webhooks_start(struct fanout *f);	/* after db_init; nothing without --webhooks */
void		webhooks_stop(struct fanout *f);
void		webhooks_metrics(struct fanout *f, struct jbuf *b);

#endif

/*
 * loop.c — the bottom layer: time, the log, and our timers on the libev
 * loop (struct timer).  Not lws_sul: lws 4.1's libev glue arms one libev
 * timer for its whole list and cannot move it earlier once armed, so an
 * lws_sul due sooner waited for that timer or for the next socket event.
 * Calls nothing of ours.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "fanout.h"

static void timer_fired(struct ev_loop *loop, ev_timer *w, int revents);

void
logmsg(const char *fmt,...)
{
	va_list		ap;
	char		ts[32];
	struct timespec now;
	struct tm	tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ poll-fanout: ", ts, now.tv_nsec / 1000000);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
timer_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct timer *t = lws_container_of(w, struct timer, w);

	(void) loop;
	(void) revents;
	t->cb(t->f);
}

void
timer_init(struct fanout *f, struct timer *t, void (*cb) (struct fanout *f))
{
	ev_timer_init(&t->w, timer_fired, 0., 0.);
	t->f = f;
	t->cb = cb;
}

void
timer_start(struct timer *t, int64_t delay_us)
{
	struct ev_loop *loop = t->f->loop;

	ev_timer_stop(loop, &t->w);
	/*
	 * From now, not from the start of this turn of the loop (libev's
	 * clock): after a long pass of writes a throttle window would end
	 * early.  libev rounds its waits up, never down.
	 */
	ev_now_update(loop);
	ev_timer_set(&t->w, delay_us > 0 ? (ev_tstamp) delay_us / 1e6 : 0., 0.);
	ev_timer_start(loop, &t->w);
}

void
timer_stop(struct timer *t)
{
	if (t->f)
		ev_timer_stop(t->f->loop, &t->w);
}

/*
 * metrics.c — the Prometheus text exposition of /metrics: clients,
 * subscriptions, messages and bytes sent, coalesced updates, replication
 * state and lag, reconnects, rejected inputs; the votes' counters and
 * histograms (votes.c renders them).
 */
#include <stdio.h>

#include "fanout.h"
#include "webhooks.h"

size_t
metrics_render(struct fanout *f, char *out, size_t cap)
{
	struct jbuf b = {out, 0, cap, false};
	uint64_t	lag = f->stream.server_end > f->stream.received_lsn ?
		f->stream.server_end - f->stream.received_lsn : 0;
	double		since_msg = f->stream.last_msg_us ? (double) (now_us() - f->stream.last_msg_us) / 1e6 : -1;

#define GAUGE(name, help, fmt, val) \
	jb_fmt(&b, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " " fmt "\n", val)
#define COUNTER(name, help, val) \
	jb_fmt(&b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", \
		   (unsigned long long) (val))

	jb_fmt(&b, "# HELP poll_fanout_clients Connected clients by transport.\n"
		   "# TYPE poll_fanout_clients gauge\n"
		   "poll_fanout_clients{transport=\"websocket\"} %d\n"
		   "poll_fanout_clients{transport=\"sse\"} %d\n",
		   f->n_clients_ws, f->n_clients_sse);
	GAUGE("poll_fanout_subscriptions", "Subscriptions of all clients.", "%d", f->n_subscriptions);
	GAUGE("poll_fanout_polls_cached", "Polls whose state the daemon holds.", "%d", f->n_polls);
	COUNTER("poll_fanout_messages_sent_total", "Messages sent to clients.", f->m.messages_sent);
	COUNTER("poll_fanout_bytes_sent_total", "Bytes of messages sent to clients.", f->m.bytes_sent);
	COUNTER("poll_fanout_coalesced_updates_total",
			"Updates merged into a later message for a client instead of sent alone.", f->m.coalesced);
	GAUGE("poll_fanout_replication_streaming", "1 while streaming from Postgres.", "%d",
		  f->stream.state == REPL_STREAMING ? 1 : 0);
	GAUGE("poll_fanout_replication_healthy", "1 while streaming, resynced and caught up.", "%d",
		  snap_healthy(f) ? 1 : 0);
	GAUGE("poll_fanout_replication_lag_bytes",
		  "WAL the server reported beyond what the daemon has processed.", "%llu",
		  (unsigned long long) lag);
	GAUGE("poll_fanout_replication_last_message_seconds",
		  "Seconds since the last message from the replication stream (-1: none).", "%.3f", since_msg);
	jb_fmt(&b, "# HELP poll_fanout_replication_received_lsn Last WAL position processed.\n"
		   "# TYPE poll_fanout_replication_received_lsn gauge\n"
		   "poll_fanout_replication_received_lsn %llu\n", (unsigned long long) f->stream.received_lsn);
	COUNTER("poll_fanout_reconnects_total", "Reconnection attempts to Postgres.", f->m.reconnects);
	COUNTER("poll_fanout_rejected_inputs_total",
			"Client inputs refused: bad JSON, bad ids, oversize frames, rate limits, bad tokens.",
			f->m.rejected_inputs);
	COUNTER("poll_fanout_rejected_clients_total", "Connections refused by --max-clients.",
			f->m.rejected_clients);
	COUNTER("poll_fanout_slow_disconnects_total", "Clients closed after taking no writes for 30 s.",
			f->m.slow_disconnects);
	COUNTER("poll_fanout_stream_rows_total", "poll.tally rows decoded from the stream.",
			f->m.stream_rows);
	COUNTER("poll_fanout_snapshots_total", "Snapshot queries answered.", f->m.snapshots);
	webhooks_metrics(f, &b);
#undef GAUGE
#undef COUNTER
	if (!b.overflow)
		b.len += votes_metrics(f, b.p + b.len, b.cap - b.len);
	return b.overflow ? b.len : b.len;
}

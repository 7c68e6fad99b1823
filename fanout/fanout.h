/*
 * fanout.h — the shared types of poll-fanout and the interfaces of its
 * layers.
 *
 * Layers, top to bottom.  A file calls only files of its own layer listed
 * after it, or of layers below; a lower layer reaches a higher one only
 * through a callback the higher one set (named below), never by name.
 *
 *   7 main.c        flags, the lws context, routing of lws callbacks, the
 *                   loop's start, flush hook, signals and stop
 *   6 http.c        HTTP routing (snapshots, SSE, health, metrics, CORS;
 *                   writes the answers voting.c leaves for /polls/ID/vote)
 *     api.c         the HTTP API: create, close, series, segments, ballots.csv
 *     ws.c          the WebSocket protocol: handshake, client messages, limits
 *     wsguard.c     RFC 6455 frame checks on client bytes (recv/SSL_read)
 *     metrics.c     the Prometheus text (reads every layer's counters)
 *   5 voting.c      votes from clients: who (the token), where, the rates,
 *                   vote/retract messages, /polls/ID/vote, POST /voters,
 *                   the voted or error answers
 *     sessions.c    a session's lifetime (init, detach), grants, the 1 s sweep
 *     webhooks.c    --webhooks: due deliveries, libcurl multi on our loop, the
 *                   leader lock, delivery state on a connection of its own
 *   4 writer.c      the ready list, the throttle wheel, framing, the writes
 *     csv.c         a ballots export: its connection, COPY, flow-controlled writes
 *   3 messages.c    snapshot/tally/status/pong JSON, rendered once per version
 *   2 snapshots.c   snapshot queries: fair ring, batches, resync
 *     queries.c     the API's queries, in order, on a connection of their own
 *     stream.c      the replication stream: slot, decoder, status, shutdown
 *     votes.c       the bounded vote queue, group commit on the vote
 *                   connections (poll.cast_vote_batch), each vote's outcome
 *   1 polls.c       the poll cache, subscriptions, the negative cache
 *   0 db.c          the libpq connections: non-blocking connect, backoff
 *     loop.c        time, the log, our timers
 *     protocol.c, pgoutput.c, auth.c, ratelimit.c, proxies.c: pure (client JSON and
 *                   the JSON writer, the pgoutput decoder, HS256 tokens and
 *                   voter tokens, token buckets, --trusted-proxy), no fanout.h
 *
 * Callbacks up: f->sub_dirty (polls.c -> writer.c, set by writer_start);
 * f->on_tally_row (stream.c -> webhooks.c, set by webhooks_start);
 * each struct pgc's on_ready, on_readable, on_down (db.c -> stream.c for
 * the replication connection, -> snapshots.c for the query connection,
 * set by stream_init and snap_init; -> votes.c for the vote connections,
 * and -> webhooks.c for its own, with on_fail, set by votes_init and
 * webhooks_start; -> queries.c and csv.c for the API's own, with on_fail
 * and on_event); each struct vote's done (votes.c -> voting.c, set when
 * the vote is made); a request's on_result (queries.c -> api.c, set with
 * each query).  lws calls main.c and wsguard.c.
 *
 * Ownership and lifetimes:
 *   struct fanout        owns everything; one per process, reached from any
 *                        lws callback through lws_context_user().
 *   struct poll          cached state of one poll (the latest poll.tally row
 *                        with the highest version, plus title and labels);
 *                        lives while a subscription refers to it (polls.c
 *                        frees it at the last sub_remove).  Nothing else
 *                        keeps a pointer to it: snapshots.c keeps poll ids.
 *   struct subscription  one (session, poll) pair, owned by both: created by
 *                        sub_add, freed by sub_remove, which unlinks it from
 *                        both; holds what was last sent, never a queue.
 *   struct session       the per-wsi user data of lws, so lws frees it.
 *                        Every lws path that does (CLOSED, CLOSED_HTTP,
 *                        HTTP_DROP_PROTOCOL, WSI_DESTROY) goes through
 *                        session_detach() first (main.c), which takes it off
 *                        its subscriptions, the ready list, the throttle
 *                        wheel, the sweep list and the snapshots' ring; it is
 *                        idempotent (a detached session is all zero).  While
 *                        attached, each of those points to it.
 *   struct pgc           one libpq connection; db.c opens and closes them
 *                        (a layer's own, votes.c's and webhooks.c's, with
 *                        its on_fail).
 *   struct vote          one vote, retraction or ballot lookup: votes.c's
 *                        from votes_submit() until its done callback has
 *                        run (after the commit, or a refusal); on its
 *                        session's list (s->votes) while that lives:
 *                        session_detach() frees the queued ones and
 *                        unlinks those in a batch (v->s NULL: answered to
 *                        no one).  Never acknowledged before its commit.
 *   struct webhooks      webhooks.c's, reached as f->wh: its connection, its
 *                        jobs (one per webhook, poll and event while pending;
 *                        the database holds what was delivered) and libcurl's
 *                        handles; dropped whole when its connection fails.
 *   struct apireq        one API query and its answer: queries.c's from
 *                        q_submit until the session takes the answer (http.c,
 *                        q_free); a session that goes first only cuts it loose
 *                        (q_forget_session), and queries.c frees it later.
 *   struct csv_export    one ballots export, with its connection: csv.c's,
 *                        freed with its session (csv_forget_session).
 *   struct timer         one of our timers on the loop (loop.c).
 */
#ifndef FANOUT_H
#define FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <libpq-fe.h>
#include <libwebsockets.h>

#include "auth.h"
#include "pgoutput.h"
#include "protocol.h"
#include "proxies.h"
#include "ratelimit.h"

#define MAX_OPTIONS			64
#define MAX_SUBSCRIPTIONS	64
#define MAX_FRAME			4096
#define MAX_ORIGINS			32
#define MAX_BODY			4096	/* HTTP request bodies; larger get 413 */
#define RATE_PER_SEC		20
#define RATE_BURST			80		/* a reconnecting client resubscribes to 64 polls at once */
#define WRITE_TIMEOUT_SECS	30
#define POLL_BUCKETS		1024
#define OUTQ_MAX			128		/* pongs and errors waiting for a write; > RATE_BURST */
#define SCRATCH_SIZE		(256 * 1024)
#define RX_BUFFER_SIZE		1024	/* lws per-connection rx buffer; bigger frames come in pieces */

#define VOTE_CONNS			2		/* vote connections, one batch in flight on each */
#define VOTE_BATCH_MAX		1000	/* votes in one transaction */
#define VOTE_QUEUE_MAX		20000	/* --vote-queue's default: votes waiting for a batch */
#define BALLOT_TEXT_MAX		(BALLOT_MAX * 3 + 3)

enum poll_state { POLL_LOADING, POLL_READY, POLL_NOT_FOUND };
enum poll_status { STATUS_SCHEDULED, STATUS_OPEN, STATUS_CLOSED };

struct session;
struct fanout;

/*
 * One of our timers, on the libev loop that main.c owns.  Not an lws_sul:
 * lws 4.1's libev glue cannot move its one timer earlier once it is armed,
 * so an lws_sul due before the one lws armed for waits for that one (or
 * for the next socket event).  lws keeps its own lws_sul for its timeouts.
 */
struct timer {
	ev_timer		w;
	struct fanout  *f;
	void			(*cb) (struct fanout *f);
};

struct poll {
	int64_t			id;
	enum poll_state	state;
	char		   *title;			/* NULL until the snapshot arrived */
	char		  **labels;
	int				n_options;
	bool			multi;			/* kind 'multi' (from the snapshot query) */
	int				max_choices;

	/* the latest row: from the snapshot or the stream, highest version wins */
	bool			have_row;
	int64_t			version;
	int64_t			status_version;	/* version at which status last changed */
	int64_t			tally_version;	/* version at which ballots/votes last changed */
	int64_t			base_version;	/* first version known in full; older => snapshot */
	enum poll_status status;
	int64_t			ballots;
	int				n_votes;
	int64_t			votes[MAX_OPTIONS];

	bool			in_flight;		/* in the snapshot query running now */
	struct poll	   *next_in_bucket;
	/*
	 * Subscriptions, doubly linked through sub->poll_next: the clean ones
	 * (the client has, or is about to be written, the current state) and
	 * the dirty ones.  A change only visits the clean ones: the work is
	 * per message sent, not per subscriber per change.
	 */
	struct subscription *subs;		/* clean */
	struct subscription *dirty_subs;
	int				n_subs, n_dirty;

	/*
	 * The messages of the current version, rendered once for all the
	 * subscribers that need them (MSG_*), NULL until first asked for:
	 * the JSON at msg[k] + MSG_HEADROOM, its WebSocket frame header
	 * right before it, so that a WebSocket client's copy is one send()
	 * of this very buffer (messages.c).
	 */
	char		   *msg[3];
	size_t			msg_len[3], msg_cap[3];	/* JSON length; buffer size */
	int64_t			msg_version[3];
	uint64_t		n_changes;		/* poll_changed() calls: coalescing is counted at write */
};

#define MSG_HEADROOM	16			/* before a message's JSON: room for its frame header */

/* one message ready to go: its JSON, and its WebSocket frame (header + JSON, contiguous) */
struct msg_ref {
	const char	   *json;
	size_t			json_len;
	const char	   *frame;
	size_t			frame_len;
	int64_t			version;
};

enum msg_kind { MSG_SNAPSHOT, MSG_TALLY, MSG_STATUS };

struct subscription {
	struct poll	   *poll;
	struct session *sess;
	struct subscription *poll_prev, *poll_next;
	int64_t			sent_version;	/* last version the client has */
	bool			need_snapshot;	/* first message of this subscription */
	/*
	 * On the poll's dirty list: its session will look at it without a
	 * wake-up from poll_changed() (a write is due, or its throttle window
	 * runs and ends with a look); clean: it has the poll's latest state
	 * and a change must schedule its session.
	 */
	bool			dirty;
	int64_t			last_sent_us;
	uint64_t		changes_seen;	/* the poll's n_changes at the last message sent */
};

enum session_kind { SESS_NONE, SESS_WS, SESS_SSE, SESS_HTTP_SNAPSHOT, SESS_HTTP_STATIC,
	SESS_API, SESS_CSV };

struct apireq;
struct csv_export;

struct outmsg {
	struct outmsg  *next;
	size_t			len;
	bool			close_after;	/* rate_limited: close once sent */
	char			text[];
};

struct session {
	/* what a write touches first, together (writer.c) */
	enum session_kind kind;
	bool			want_write;		/* a write is on its way: on f's ready list, or a
									 * writeable callback asked for */
	bool			gone;			/* closing: no more writes, direct or not */
	bool			closing;		/* close after the queued messages */
	bool			keepalive_due;	/* idle for --keepalive: a comment or ping goes next */
	bool			write_armed;	/* the 30 s write timeout is running */
	bool			direct;			/* plain TCP, a connection of its own: writer.c
									 * send()s to fd itself (writer.c's header) */
	bool			lws_check;		/* lws may have bytes of its own to send or a close
									 * frame prepared: ask it before a direct write
									 * (set by input, wsguard.c; cleared by a
									 * writeable callback) */
	bool			counted;		/* included in f->n_clients */
	int				fd;				/* the socket, for direct writes */
	int				n_subs;
	struct lws	   *wsi;
	struct fanout  *f;
	struct subscription **subs;		/* grows up to MAX_SUBSCRIPTIONS */
	struct outmsg  *outq_head, *outq_tail;	/* pongs and errors */
	int64_t			wheel_slot;		/* on the throttle wheel in this slot, 0: not */
	int				wheel_pos;		/* its place in the slot */
	int				subs_cap;
	int64_t			write_armed_us;	/* since when, or since the last write */
	int64_t			last_write_us;
	struct lws_dll2	ready_node;		/* on f->ready while attached */
	int64_t			close_at_us;
	struct lws_dll2	stream_node;	/* on f->streams (the write-timeout sweep) while attached */
	struct lws_dll2	snap_node;		/* on f->snap_ring while a poll it wants is loading */
	int				outq_len;
	struct grant	grant;

	/* WebSocket input: one message, reassembled from fragments when it comes in pieces */
	char		   *rx;				/* MAX_FRAME + 1 when allocated */
	size_t			rx_len;
	double			tokens;			/* rate limit bucket */
	int64_t			tokens_at_us;

	/* votes (votes.c, voting.c) */
	lws_dll2_owner_t votes;			/* its votes on their way to Postgres */
	struct vote_conn *vote_conn;	/* the one connection whose batch holds some of them */
	unsigned		vote_pass;		/* votes.c: a vote of it was passed over in this pass */
	bool			vote_wants_body;	/* HTTP: a POST /polls/ID/vote waits for its body (reqbody) */
	bool			vote_answered;	/* HTTP: the answer is in errbody/dyn_body */
	int64_t			vote_poll;		/* HTTP: the poll of the vote the body brings */
	int				retry_after;	/* HTTP 429: seconds, for Retry-After */
	char			peer[64];		/* the client's address, as the rate limit keys it */

	/* HTTP responses */
	ev_io			drain;			/* SSE: drops what the client sends (http.c) */
	ev_io			unchoke;		/* the socket took no more: waits for it, rx paused (http.c) */
	bool			body_done;		/* the last of the body is handed to lws */
	bool			body_completed;	/* the request's (ignored) body is all read */
	bool			headers_sent;
	int				http_status;
	const char	   *body;			/* static body, not owned */
	size_t			body_len, body_sent;
	char		   *dyn_body;		/* owned body (json) */
	char			errbody[320];	/* error bodies need no allocation */

	/* the HTTP API (api.c, queries.c, csv.c) */
	int64_t			if_none_match;	/* GET /polls/ID: the version the client has, 0: none, -1: * */
	int64_t			etag;			/* the response's ETag (a version), 0: none */
	int				api_route;		/* a POST waiting for its body (api.c) */
	int64_t			api_poll;
	char		   *reqbody;		/* a POST's body (api.c's or a vote's), gathered by http.c, at most MAX_BODY bytes */
	size_t			reqbody_len;
	struct apireq  *req;			/* its query, queued or running (queries.c) */
	struct csv_export *csv;			/* GET /polls/ID/ballots.csv (csv.c) */
};

/*
 * The throttle wheel (writer.c): sessions waiting for a time (the end of a
 * throttle window, a close's linger), in slots of gran_us; slot k (counted
 * from the epoch of now_us()) holds the sessions due in ((k-1)·gran, k·gran]
 * and is served at k·gran, never earlier.  A slot is an array, so that a
 * pass over it can prefetch the sessions ahead.
 */
struct wheel_slot {
	struct session **v;				/* NULL entries: removed during a pass */
	int				n, cap;
};

struct wheel {
	int64_t			gran_us;
	int				n_slots;		/* a power of 2, covering the longest wait */
	int64_t			next;			/* the first slot not served yet */
	int				n;				/* sessions on the wheel */
	struct wheel_slot *slots;
	uint64_t	   *used;			/* one bit per non-empty slot */
	struct wheel_slot pass;			/* the slot being served (swapped out) */
	int64_t			pass_slot;		/* its number, 0: no pass */
};

struct metrics {
	uint64_t		messages_sent;
	uint64_t		bytes_sent;
	uint64_t		coalesced;
	uint64_t		reconnects;
	uint64_t		rejected_inputs;
	uint64_t		rejected_clients;
	uint64_t		stream_rows;
	uint64_t		snapshots;
	uint64_t		slow_disconnects;	/* took no writes for 30 s */
};

enum repl_state { REPL_DOWN, REPL_SLOT, REPL_STARTING, REPL_STREAMING, REPL_STOPPING };

enum pgc_event { PGC_READY, PGC_READABLE, PGC_FAILED };

/* one libpq connection, its socket watched on our loop (db.c) */
struct pgc {
	PGconn		   *conn;
	struct fanout  *f;
	ev_io			io;
	int				fd;				/* what io watches (PQconnectPoll may change it), -1: none */
	int				events;
	bool			connecting;		/* PQconnectPoll still going */
	bool			replication;
	const char	   *what;			/* for the log */
	/* set by the layer that uses the connection */
	void			(*on_ready) (struct fanout *f);		/* connected */
	void			(*on_readable) (struct fanout *f);
	void			(*on_down) (struct fanout *f);		/* both connections closed */
	/* set: a connection of its own (votes.c, webhooks.c), which fails alone, closed by db.c first */
	void			(*on_fail) (struct fanout *f, struct pgc *c, const char *why);
	/*
	 * One of its own with several instances (the API's queries, each CSV
	 * export): its owner, and its events (ready, readable) with the pgc
	 * (its failures come through on_fail).
	 */
	void			(*on_event) (struct pgc *c, enum pgc_event ev);
	void		   *owner;
};

/* queries.c: the API's queries, one at a time on a connection of their own */
struct apiq {
	struct pgc		c;
	struct apireq  *head, *tail;	/* waiting; head runs when running is set */
	bool			running;
	bool			up;
	int				n_queued;
	PGresult	   *res;			/* the running query's outcome so far */
};

/*
 * votes.c: one vote, retraction or ballot lookup on its way to Postgres.
 * Owned by votes.c from votes_submit() until its done callback returns;
 * on its session's list (s->votes) while the session lives (v->s NULL
 * once it went: the outcome then reaches no one).
 */
enum vote_kind { VOTE_CAST, VOTE_RETRACT, VOTE_LOOKUP };

struct vote_outcome {
	const char	   *code;			/* NULL: done; else the SPEC's error code */
	const char	   *result;			/* cast, changed, unchanged, retracted, none */
	const char	   *message;		/* for an error */
	int				n_options;		/* the voter's ballot after it (or looked up) */
	int				options[BALLOT_MAX];
};

struct vote {
	struct vote	   *next;			/* in the queue, then in its batch */
	struct lws_dll2	owner_node;		/* on s->votes */
	struct session *s;
	void			(*done) (struct fanout *f, struct vote *v, const struct vote_outcome *o);
	enum vote_kind	kind;
	bool			in_flight;
	int64_t			poll;
	int64_t			received_us;
	char		   *voter;			/* in the same allocation */
	char		   *seg;			/* likewise, or NULL */
	char			ballot[BALLOT_TEXT_MAX];	/* cast: "2" or "{1,3}" */
	bool			has_ref;
	char			ref[REF_MAX + 1];
};

enum vote_conn_state { VC_DOWN, VC_CONNECTING, VC_SETUP, VC_IDLE, VC_BUSY, VC_RETRY };

/* one vote connection: at most one batch (one transaction) in flight */
struct vote_conn {
	struct pgc		pgc;
	enum vote_conn_state state;
	struct vote	   *batch, *batch_tail;
	int				batch_n;
	bool			lookup;			/* the batch is one ballot lookup */
	bool			retried;
	bool			failed;			/* an error result came */
	char			sqlstate[6];
	char			error[200];		/* its message, for the log */
	PGresult	   *res;			/* the rows of the batch */
	int64_t			sent_us;
	int64_t			retry_at_us;	/* VC_DOWN: when to reconnect; VC_RETRY: to send again */
	int				backoff_ms;
};

#define VOTE_CODES			11
#define VOTE_LAT_BUCKETS	12
#define VOTE_SIZE_BUCKETS	11

struct votes {
	struct vote_conn conns[VOTE_CONNS];
	struct vote	   *q_head, *q_tail;	/* waiting for a batch, in arrival order */
	int				q_len;
	unsigned		pass;
	struct inflight **inflight;		/* voters with votes in a batch, by hash */
	struct timer	timer;			/* reconnections and the batch watchdog */
	/* metrics */
	uint64_t		received, acknowledged;
	uint64_t		refused[VOTE_CODES];
	uint64_t		lat_buckets[VOTE_LAT_BUCKETS + 1];
	double			lat_sum;
	uint64_t		size_buckets[VOTE_SIZE_BUCKETS + 1];
	uint64_t		size_sum, batches;
	int				n_conns_up;
};

/* db.c: the connections (what runs on them is stream.c's and snapshots.c's) */
struct db {
	struct pgc		repl;
	struct pgc		query;
	int				backoff_ms;
	struct timer	retry_timer;
	struct timer	connect_timer;
};

/* stream.c */
struct stream {
	enum repl_state	state;
	char			slot[64];
	uint64_t		received_lsn;	/* end of the last XLogData processed */
	uint64_t		server_end;		/* latest end of WAL the server reported */
	int64_t			last_status_us;
	int64_t			last_msg_us;	/* anything at all from the stream, keepalives too */
	int64_t			last_commit_ts;	/* commit time of the last transaction (PG epoch us) */
	struct timer	status_timer;	/* 1 s while streaming: status updates, silence */
	struct timer	stop_timer;
	void			(*on_stopped) (struct fanout *f);
	struct pgo_relcache rels;
};

struct fanout {
	/* flags */
	const char	   *conninfo;
	char			listen_host[128];
	int				listen_port;
	const char	   *publication;
	int				throttle_ms;
	int				keepalive_s;	/* 0: none */
	const char	   *tls_cert, *tls_key;
	int				max_clients;
	const char	   *web_root;
	bool			verbose;
	const char	   *origins[MAX_ORIGINS];	/* --allow-origin; none: any ("*") */
	int				n_origins;
	unsigned char	jwt_secret[512];
	size_t			jwt_secret_len;
	bool			jwt;
	bool			anonymous_votes;	/* --anonymous-votes: POST /voters */
	unsigned char	voter_secret[512];	/* --voter-secret-file */
	size_t			voter_secret_len;
	struct proxy_net trusted_proxies[PROXIES_MAX];	/* --trusted-proxy */
	int				n_trusted_proxies;
	int				vote_rate;		/* --vote-rate: per voter per second, 0: no limit */
	int				vote_queue;		/* --vote-queue: votes waiting for a batch at most */
	struct keys		keys;			/* the secrets tokens are checked with */

	struct ev_loop *loop;			/* ours (main.c); lws runs on it */
	struct lws_context *lws;
	struct lws_vhost *vhost;
	bool			stopping;

	struct poll	   *buckets[POLL_BUCKETS];
	int				n_polls;
	int				n_clients_ws, n_clients_sse;
	int				n_subscriptions;
	struct db		db;
	struct stream	stream;
	struct votes	votes;
	struct ratelimit voter_rate, address_rate, voters_rate;	/* voting.c */
	struct timer	rate_sweep;
	struct metrics	m;
	unsigned char  *scratch;		/* LWS_PRE + SCRATCH_SIZE, for rendering */

	/*
	 * Write scheduling (writer.c): a session with something to send now
	 * waits on the ready list, which writer_flush() empties once per
	 * turn of the event loop (writing directly to every socket that takes
	 * it); sessions whose next message waits for a throttle window sit on
	 * the wheel, whose timer writes each slot's sessions when it ends;
	 * WebSocket and SSE sessions are on one list that a once a second
	 * sweep checks for the 30 s write timeout.  No per-client lws timers:
	 * lws keeps those in a sorted list, O(clients) per insert.
	 */
	lws_dll2_owner_t ready;			/* sessions to write before the loop waits, FIFO */
	struct wheel	wheel;
	struct timer	tick_timer;
	int64_t			tick_at_us;		/* when tick_timer fires, 0: not scheduled */
	struct timer	sweep_timer;
	lws_dll2_owner_t streams;		/* WebSocket and SSE sessions */

	/* --webhooks (webhooks.c): every poll.tally row of the stream is told to it */
	bool			webhooks;
	struct webhooks *wh;
	void			(*on_tally_row) (struct fanout *f, int64_t poll_id, int status);

	/* writer.c sets it: polls.c tells the writer of a subscription that became dirty */
	void			(*sub_dirty) (struct session *s, struct subscription *sub);

	/* snapshots.c: the sessions waiting for polls, round-robin; the resync list; the batch */
	lws_dll2_owner_t snap_ring;
	int64_t		   *snap_resync;	/* ids of the polls to re-snapshot after a connection */
	int				snap_resync_n, snap_resync_cap, snap_resync_at;
	bool			snap_resynced;	/* every cached poll re-snapshotted since the connection */
	bool			snap_busy;
	int				snap_n;
	int64_t			snap_ids[64];
	int64_t			stream_polled_us;	/* last read of the replication stream */

	struct apiq		api;			/* queries.c */
	int				n_exports;		/* csv.c: exports streaming now */
};

/* writer.c and sessions.c: WebSocket and SSE sessions past their headers are on the sweep list */
static inline bool
session_swept(const struct session *s)
{
	return !lws_dll2_is_detached(&s->stream_node) && (s->kind == SESS_WS || s->headers_sent);
}

/* 7 main.c: nothing exported */

/* 6 http.c */
int			http_callback(struct fanout *f, struct lws *wsi, enum lws_callback_reasons reason,
						  struct session *s, void *in, size_t len);

/* 6 api.c: routed from http.c */
int			api_request(struct fanout *f, struct lws *wsi, struct session *s, const char *path,
						bool post);
int			api_body_complete(struct fanout *f, struct session *s);
bool		api_wants_body(const struct session *s);

/* 6 ws.c */
int			ws_callback(struct fanout *f, struct lws *wsi, enum lws_callback_reasons reason,
						struct session *s, void *in, size_t len);
int			ws_confirm_upgrade(struct lws *wsi);

/* 6 wsguard.c: recv(), SSL_read(), accept(), accept4() and close() are ours */
void		guard_websocket(struct lws *wsi);

/* 6 metrics.c */
size_t		metrics_render(struct fanout *f, char *out, size_t cap);

/* 5 sessions.c */
void		sessions_start(struct fanout *f);
void		sessions_stop(struct fanout *f);
void		session_init(struct fanout *f, struct session *s, struct lws *wsi,
						 enum session_kind kind);
void		session_detach(struct session *s);
void		session_note_close(struct session *s);
bool		clients_full(struct fanout *f);
int			session_auth_from_request(struct fanout *f, struct session *s, struct lws *wsi);
int			session_token_from_request(struct fanout *f, struct session *s, struct lws *wsi);
bool		session_may_see(struct fanout *f, struct session *s, int64_t poll_id);
void		session_enforce_grant(struct session *s, int64_t now_s);
struct subscription *session_subscribe(struct session *s, int64_t id, int64_t version);

/* 4 writer.c */
void		writer_start(struct fanout *f);
void		writer_stop(struct fanout *f);
bool		writer_flush(struct fanout *f);
void		writer_request(struct session *s);
void		writer_mark_dirty(struct session *s, struct subscription *sub);
void		writer_queue(struct session *s, const char *text, size_t len, bool close_after);
void		writer_error(struct session *s, const char *code, const char *msg, int64_t poll);
int			session_write_updates(struct session *s);
void		writer_forget(struct session *s);
void		kill_soon(struct fanout *f, struct lws *wsi, enum pending_timeout reason);

/* 4 csv.c: the ballots export, written as the client's socket takes it */
bool		csv_start(struct fanout *f, struct session *s, int64_t poll_id);
int			csv_state(struct session *s);
int			csv_write(struct session *s);
void		csv_forget_session(struct session *s);

/* 3 messages.c */
const char *status_name(enum poll_status s);
bool		message_for(struct fanout *f, struct subscription *sub, struct msg_ref *m);
size_t		ws_frame_header(unsigned char *out, size_t len);
size_t		render_snapshot_json(const struct poll *p, char *out, size_t cap);
size_t		render_message(const struct poll *p, enum msg_kind k, char *out, size_t cap);
size_t		render_pong(char *out, size_t cap, const char *ping_id);

/* 5 voting.c (above sessions.c) */
void		voting_start(struct fanout *f);
void		voting_note_peer(struct session *s);
void		voting_stop(struct fanout *f);
void		voting_ws_message(struct session *s, const struct client_msg *m);
void		voting_ws_refuse(struct session *s, const struct client_msg *m, const char *code,
							 const char *why);
int			voting_http_request(struct fanout *f, struct lws *wsi, struct session *s,
								const char *path, int64_t id);
int			voting_http_body_done(struct session *s);
bool		voting_is_vote_path(const char *path, int64_t *id);

/* 2 votes.c */
void		votes_init(struct fanout *f);
void		votes_start(struct fanout *f);
void		votes_stop(struct fanout *f);
struct vote *votes_new(int64_t poll, enum vote_kind kind, const char *voter, const char *seg);
int			votes_submit(struct fanout *f, struct session *s, struct vote *v);
void		votes_forget_session(struct session *s);
void		votes_count_refusal(struct fanout *f, const char *code);
size_t		votes_metrics(struct fanout *f, char *out, size_t cap);

/* 2 snapshots.c */
extern const char *const snapshot_sql;	/* columns: id, title, version, status, ballots, votes, labels, kind, max_choices */
void		snap_init(struct fanout *f);
void		snap_stop(struct fanout *f);
void		snap_want(struct fanout *f, struct session *s);
void		snap_forget_session(struct fanout *f, struct session *s);
bool		snap_healthy(const struct fanout *f);

/* 2 queries.c: the API's queries on a connection of their own */
struct apireq {
	struct apireq  *next;
	struct session *s;				/* NULL once the client went away */
	/* the query to run: params copied; simple: a multi-statement text */
	char		   *sql;
	bool			simple;
	int				n_params;
	char		   *params[8];
	char			param_names[8][16];	/* the fields the params came from, for errors */
	/*
	 * Called with the query's outcome (the last result, or the first error;
	 * NULL: the connection failed): sets status and body, or a next query
	 * (sql, params) and returns 1 to run it.  Set by the layer above.
	 */
	int				(*on_result) (struct apireq *r, PGresult *res);
	int				status;
	char		   *body;
	size_t			body_len;
	bool			done;
	int64_t			poll;
	int				step;
	char			width[16];
};
struct apireq *q_new(const char *sql, int n_params, const char *const *params);
void		q_set(struct apireq *r, const char *sql, int n_params, const char *const *params);
void		q_submit(struct fanout *f, struct session *s, struct apireq *r);
void		q_forget_session(struct session *s);
void		q_free(struct apireq *r);
void		q_stop(struct fanout *f);

/* 2 stream.c */
void		stream_init(struct fanout *f);
void		stream_shutdown(struct fanout *f, void (*done) (struct fanout *f));
bool		stream_connected(const struct fanout *f);
bool		stream_healthy(const struct fanout *f);
void		stream_poll(struct fanout *f);

/* 1 polls.c */
struct poll *poll_find(struct fanout *f, int64_t id);
struct poll *poll_get(struct fanout *f, int64_t id);	/* find or create (LOADING) */
void		poll_release_if_unused(struct fanout *f, struct poll *p);
void		poll_apply_row(struct fanout *f, struct poll *p, const struct tally_row *row);
void		poll_apply_snapshot(struct fanout *f, struct poll *p, const char *title,
								char **labels, int n_labels, const struct tally_row *row);
void		poll_not_found(struct fanout *f, struct poll *p, bool remember);
void		poll_seen(struct fanout *f, int64_t id);
void		poll_changed(struct fanout *f, struct poll *p);
struct subscription *sub_add(struct fanout *f, struct session *s, struct poll *p,
							 int64_t version);
void		sub_remove(struct fanout *f, struct subscription *sub);
void		sub_set_dirty(struct subscription *sub, bool dirty);

/* 0 db.c */
void		db_init(struct fanout *f);
void		db_pgc_init(struct fanout *f, struct pgc *c, const char *what);
void		db_start(struct fanout *f);
void		db_stop(struct fanout *f);
bool		db_open(struct fanout *f, struct pgc *c);
void		db_close(struct pgc *c);
int			db_flush(struct pgc *c);
void		db_pause(struct pgc *c, bool paused);
void		db_fail(struct fanout *f, const char *what, PGconn *conn);
void		db_reason(PGconn *conn, char *reason, size_t cap);
void		db_pgc_init(struct fanout *f, struct pgc *c, const char *what);
void		db_connected(struct fanout *f);
bool		db_query_ready(const struct fanout *f);
int			db_query_send(struct fanout *f, const char *sql, int n_params,
						  const char *const *params);

/* 0 loop.c */
void		logmsg(const char *fmt,...) __attribute__((format(printf, 1, 2)));
int64_t		now_us(void);
void		timer_init(struct fanout *f, struct timer *t, void (*cb) (struct fanout *f));
void		timer_start(struct timer *t, int64_t delay_us);	/* (re)arms */
void		timer_stop(struct timer *t);

#endif

/*
 * poll.h — declarations shared by the poll extension's C files.
 *
 * poll.c owns _PG_init, the settings and the shared state; cache.c the
 * per-session cache of poll settings; vote.c the vote path; batch.c the
 * vote path's batch entry point (cast_vote_batch); segment.c the registry
 * of segments; launcher.c the launcher, which starts the
 * background worker that folds, worker.c.
 */
#ifndef POLL_H
#define POLL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/rel.h"

#define POLL_MAX_OPTIONS	64
#define POLL_MAX_VOTER		256		/* characters */
#define POLL_MAX_SEGMENT	64		/* characters */
#define POLL_MAX_BATCH		10000	/* elements of one cast_vote_batch call */

/* settings (poll.c) */
extern char *poll_database;
extern int	poll_fold_interval_ms;
extern int	poll_minute_retention_s;
extern int	poll_hour_retention_s;
extern int	poll_max_segments;
extern int	poll_segment_min_ballots;

/*
 * The state shared between the launcher, the fold worker and every session
 * (launcher.c and worker.c describe the two processes).
 *
 * Who writes, who reads, under which lock (mutex, a spinlock, for every
 * field):
 *	- launcher_latch, launcher_pid: written by the launcher when it starts
 *	  and when it exits; read by any session at commit (poll_worker_wake)
 *	  and by the worker when it exits, to set the latch.
 *	- worker_latch, worker_pid, database, started_at: written by the worker
 *	  that claims them (poll_worker_main, only while worker_pid is 0) and
 *	  cleared by that worker when it exits; read by any session at commit
 *	  (to set the latch), by poll._worker_status(), and by a launcher that
 *	  holds no handle of a worker (a worker left by a launcher that exited
 *	  still runs, and no second one is started while worker_pid is set).
 *	  At most one worker folds: a worker that finds worker_pid set exits.
 *	- worker_connects: incremented by each worker that claims; read by the
 *	  launcher when its worker exits, to tell an exit before connecting
 *	  (backoff) from the exit of a worker that served (restart soon).
 *	- last_fold_at, folds, changes_folded, errors, last_error: written by
 *	  the worker only; read by poll._worker_status().
 * A session sets worker_latch at the commit of any transaction that wrote
 * a change record, and both latches at the commit of a transaction that
 * called poll._worker_wake() (the install script does: the first votes
 * after CREATE EXTENSION need not wait for the launcher's or the worker's
 * next look).  A latch set spuriously (a process that just exited, its
 * PGPROC reused) only causes one extra wake-up; a missed set costs at most
 * poll.fold_interval for the worker and one second for the launcher,
 * their timeouts.
 */
typedef struct PollShared
{
	slock_t		mutex;
	Latch	   *launcher_latch;
	pid_t		launcher_pid;
	Latch	   *worker_latch;
	pid_t		worker_pid;
	uint64		worker_connects;
	char		database[NAMEDATALEN];
	TimestampTz started_at;
	TimestampTz last_fold_at;
	uint64		folds;
	uint64		changes_folded;
	uint64		errors;
	char		last_error[256];
} PollShared;

extern PollShared *poll_shared;	/* NULL unless preloaded */

/* poll.c */
extern void poll_note_change_written(void);

/* launcher.c */
extern void poll_register_launcher(void);
extern PGDLLEXPORT void poll_launcher_main(Datum arg);

/* worker.c */
extern PGDLLEXPORT void poll_worker_main(Datum arg);

/*
 * A poll's settings as the vote path needs them (cache.c).  Read from
 * poll.poll and kept per session until a relcache invalidation of that
 * table, which close_poll sends at commit.
 */
typedef struct PollInfo
{
	int64		poll_id;		/* hash key */
	bool		multi;
	bool		allow_change;
	bool		closed;			/* closed by close_poll */
	bool		has_closes_at;
	int			n_options;
	int			max_choices;
	TimestampTz opens_at;
	TimestampTz closes_at;
} PollInfo;

/* Looks a poll up; ERROR with P0002 when it does not exist. */
extern const PollInfo *poll_info(int64 poll_id);

/* The role the vote path runs its statements as: the owner of poll.ballot. */
extern Oid	poll_owner(void);

/* poll.change, where the vote path appends change records. */
extern Oid	poll_change_relid(void);

/* poll.ballot, where the vote path inserts new voters' ballots. */
extern Oid	poll_ballot_relid(void);

/*
 * A statement the extension's C code runs through SPI, as the owner of its
 * tables, prepared (a generic plan, kept) on first use: vote.c, segment.c.
 * Its SQL names every function, operator and type with its schema.
 */
typedef struct PollStatement
{
	const char *sql;
	int			nargs;
	Oid			argtypes[6];
	SPIPlanPtr	plan;
} PollStatement;

extern void poll_run(PollStatement *st, Datum *args, const char *nulls, int expect);

/*
 * vote.c: the pieces of the vote path that batch.c shares.  A vote runs
 * between poll_vote_begin (which refuses a read-only transaction) and
 * poll_vote_end: SPI connected, as the owner
 * of the extension's tables.  The checks raise the errors cast_vote and
 * retract_vote raise (element > 0: "In element n." as detail).
 */
typedef struct VoteSession
{
	Oid			userid;			/* the caller's identity, restored at the end */
	int			sec_context;
} VoteSession;

extern void poll_vote_begin(VoteSession *s, const char *what);
extern void poll_vote_end(VoteSession *s);
extern void poll_check_open(const PollInfo *poll);
extern void poll_check_text(text *value, const char *what, int max_chars, int element);
extern int	poll_normalize_options(const PollInfo *poll, int32 *options, int n);
extern int	poll_parse_ballot_text(const char *text, int32 *options, bool *list);
extern void poll_refuse_change(const PollInfo *poll, const char *what, int element);
extern Datum poll_options_datum(const int32 *options, int n);
extern bool poll_insert_new_ballot(int64 poll_id, Datum voter, Datum options,
								   Datum segment, bool segment_null);
extern Relation poll_open_changes(void);
extern int	poll_array_elements(ArrayType *a, const char *name, Oid type,
								Datum **values, bool **nulls);
extern void poll_write_ballot_changes(Relation rel, int64 poll_id, const int32 *options, int n,
									  Datum segment, bool segment_null, int sign);

/* A ballot's statements (vote.c): $1 poll, $2 voter, $3 options, $4 segment. */
extern PollStatement poll_sql_insert_ballot;	/* ON CONFLICT DO NOTHING */
extern PollStatement poll_sql_lock_ballot;	/* its options and segment, FOR UPDATE */
extern PollStatement poll_sql_change_ballot;	/* replaces a locked ballot */
extern PollStatement poll_sql_delete_ballot;	/* RETURNING options, segment */

/* segment.c: the registry that bounds a poll's segments (SPI connected, as the owner) */
extern void poll_check_segment(const PollInfo *poll, text *segment);
extern void poll_check_segments(const PollInfo *poll, Datum *segments, bool *nulls, int n);

#endif							/* POLL_H */

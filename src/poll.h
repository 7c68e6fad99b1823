/*
 * poll.h — declarations shared by the poll extension's C files.
 *
 * poll.c owns _PG_init, the settings and the shared state; cache.c the
 * per-session cache of poll settings; vote.c the vote path; worker.c the
 * background worker that folds.
 */
#ifndef POLL_H
#define POLL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define POLL_MAX_OPTIONS	64
#define POLL_MAX_VOTER		256		/* characters */
#define POLL_MAX_SEGMENT	64		/* characters */

/* settings (poll.c) */
extern char *poll_database;
extern int	poll_fold_interval_ms;
extern int	poll_minute_retention_s;
extern int	poll_hour_retention_s;
extern int	poll_max_segments;
extern int	poll_segment_min_ballots;

/*
 * The state shared between the background worker and every session.
 *
 * Who writes, who reads, under which lock:
 *	- worker_latch, worker_pid, database, started_at: written by the worker
 *	  when it starts and when it exits, under mutex; read by any session
 *	  under mutex (poll_wake_worker at commit, poll._worker_status()).
 *	- last_fold_at, folds, changes_folded, errors, last_error: written by
 *	  the worker only, under mutex; read by poll._worker_status().
 *	- connect_failed: set by a worker whose connection to poll.database
 *	  failed (its exit callback, when InitPostgres raised FATAL), cleared by
 *	  the worker that connects; read by the next worker at start, which then
 *	  waits without a database connection until poll.database exists
 *	  instead of failing every bgw_restart_time.  Under mutex.
 * A session sets worker_latch at the commit of any transaction that wrote
 * a change record.  A latch set spuriously (a worker that just exited, its
 * PGPROC reused) only causes one extra wake-up; a missed set costs at most
 * poll.fold_interval, the worker's timeout.
 */
typedef struct PollShared
{
	slock_t		mutex;
	Latch	   *worker_latch;
	pid_t		worker_pid;
	bool		connect_failed;
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

/* worker.c */
extern void poll_register_worker(void);
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

/* segment.c: the registry that bounds a poll's segments (SPI connected, as the owner) */
extern void poll_check_segment(const PollInfo *poll, text *segment);
extern void poll_check_segments(const PollInfo *poll, Datum *segments, bool *nulls, int n);

#endif							/* POLL_H */

/*
 * worker.c — the background worker that folds votes continuously (the
 * launcher, launcher.c, starts it).
 *
 * The fold worker serves poll.database.  It sleeps on its latch, which
 * every session sets at the commit of a transaction that voted (poll.c),
 * so a vote is folded as soon as it commits; under load the latch is set
 * again while a fold runs, and the next fold absorbs everything committed
 * meanwhile.  After each fold the worker rests FOLD_REST_FACTOR times the
 * fold's duration (FOLD_REST_MIN_US to FOLD_REST_MAX_US): each fold is a
 * transaction with a commit, and at thousands of votes per second folding
 * on every wake-up would spend a core on commits alone; the rest bounds
 * folding to a fifth of the worker's time and batches hundreds of votes
 * into one fold.  poll.fold_interval bounds the sleep when no wake-up
 * comes.  Every 500 ms it also records status changes made by the clock,
 * applies rollup retention, and vacuums poll.change when it folded
 * anything: that queue table turns over thousands of rows a second, and a
 * fold's DELETE and every poll.results query scan it whole, so it must not
 * wait for autovacuum's next round (a minute by default) to be emptied.
 *
 * The worker runs as the bootstrap superuser in a database whose owner
 * may create objects: its session's search_path is pg_catalog, pg_temp and
 * every statement it runs names its functions and types schema-qualified,
 * so nothing a user creates is ever called.  It never waits on a lock for
 * long (lock_timeout WORKER_LOCK_TIMEOUT): a lock it cannot skip is an
 * error, not a stall.
 *
 * Each unit of work is its own transaction.  An error is logged, counted
 * in shared memory and retried with backoff: the worker never exits on an
 * ERROR (no crash loop).  Folding and the status clock back off apart, so
 * that one's failure does not stop the other.  One poll whose changes
 * cannot be folded (a constraint someone added, a damaged row, a row lock
 * held past the lock timeout) must not stop the folding of the others:
 * when a fold of all polls fails, each pending poll is folded alone, and a
 * poll that fails alone is quarantined — left out of later folds, its
 * changes kept pending (poll.results still counts them) and retried alone
 * every QUARANTINE_RETRY_MS.  A lock on a whole table of the extension
 * stops every poll alike: that is retried with backoff, not isolated.
 * Folding is poll._fold(), which is safe to run concurrently with a
 * manual poll.fold() (see poll--1.1.sql).  A missing extension is logged
 * once and looked for every second (or at a wake-up).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "commands/vacuum.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "poll.h"

#define TICK_MS			500		/* status clock and retention */
#define FOLD_REST_FACTOR	4	/* rest after a fold, in multiples of its duration */
#define FOLD_REST_MIN_US	1000
#define FOLD_REST_MAX_US	20000
#define MAX_BACKOFF_MS	30000
#define MAX_QUARANTINE	64
#define QUARANTINE_RETRY_MS 5000
#define QUARANTINE_RETRY_BUDGET_MS 500	/* per round, so that retries never stall the others */
#define WORKER_LOCK_TIMEOUT "500ms"
#define EXTENSION_LOOK_MS	1000

typedef enum StepResult
{
	STEP_OK,
	STEP_NO_EXTENSION,
	STEP_FAILED
} StepResult;

static void worker_detach(int code, Datum arg);
static bool claim_worker(void);
static void set_session_settings(void);
static StepResult run_step(const char *activity, void (*step) (void));
static StepResult fold_round(void);
static StepResult tick_round(void);
static int	next_backoff(StepResult r, int backoff_ms);

/* ----------------------------------------------------------------
 * The fold worker
 * ---------------------------------------------------------------- */

/*
 * Claims the worker's place in shared memory; false when another worker
 * holds it (see PollShared: at most one worker folds).
 */
static bool
claim_worker(void)
{
	bool		claimed = false;

	SpinLockAcquire(&poll_shared->mutex);
	if (poll_shared->worker_pid == 0)
	{
		poll_shared->worker_latch = MyLatch;
		poll_shared->worker_pid = MyProcPid;
		poll_shared->worker_connects++;
		strlcpy(poll_shared->database, poll_database, NAMEDATALEN);
		poll_shared->started_at = GetCurrentTimestamp();
		claimed = true;
	}
	SpinLockRelease(&poll_shared->mutex);
	return claimed;
}

/* Gives the worker's place back and tells the launcher. */
static void
worker_detach(int code, Datum arg)
{
	Latch	   *launcher;

	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->worker_latch = NULL;
	poll_shared->worker_pid = 0;
	launcher = poll_shared->launcher_latch;
	SpinLockRelease(&poll_shared->mutex);
	if (launcher != NULL)
		SetLatch(launcher);
}

/*
 * The worker's session, whatever ALTER DATABASE/ROLE ... SET or the
 * configuration file say (as if it ran SET first; a function's own SET
 * clause still applies within it): no user object on its search_path; no
 * long lock wait; no statement or idle timeout, which would fail folds; read
 * committed, which the fold's concurrent DELETE relies on; writable.
 */
static void
set_session_settings(void)
{
	static const char *const settings[][2] = {
		{"search_path", "pg_catalog, pg_temp"},
		{"lock_timeout", WORKER_LOCK_TIMEOUT},
		{"statement_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_read_only", "off"},
	};

	for (int i = 0; i < lengthof(settings); i++)
		SetConfigOption(settings[i][0], settings[i][1], PGC_SUSET, PGC_S_SESSION);
}

static bool extension_missing_logged = false;

/* SQLSTATE of the last step that failed */
static int	last_error_code = 0;

/*
 * Locks the extension against DROP EXTENSION for the rest of the
 * transaction (DROP takes an exclusive lock on the extension before it
 * drops its objects), so that a step never sees the extension and then
 * half of its objects gone: that was an ERROR at every DROP that met a
 * step.  False when a DROP holds or awaits the lock: no wait.  True too
 * when there is no extension (get_extension_oid, after the lock, says so).
 */
static bool
lock_extension(void)
{
	Oid			ext = get_extension_oid("poll", true);

	return !OidIsValid(ext) ||
		ConditionalLockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
}

/*
 * Runs one step in its own transaction.  Returns STEP_NO_EXTENSION when
 * the extension is not installed (logged once until it appears) or is
 * being dropped.
 */
static StepResult
run_step(const char *activity, void (*step) (void))
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile StepResult result = STEP_OK;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (!lock_extension())
			result = STEP_NO_EXTENSION;	/* being dropped: look again soon */
		else if (!OidIsValid(get_extension_oid("poll", true)))
		{
			if (!extension_missing_logged)
				ereport(LOG,
						(errmsg("poll fold worker: extension \"poll\" is not installed in database \"%s\"; waiting for CREATE EXTENSION poll",
								poll_database)));
			extension_missing_logged = true;
			result = STEP_NO_EXTENSION;
		}
		else
		{
			if (extension_missing_logged)
				ereport(LOG,
						(errmsg("poll fold worker: extension \"poll\" found in database \"%s\"; folding",
								poll_database)));
			extension_missing_logged = false;
			pgstat_report_activity(STATE_RUNNING, activity);
			step();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		EmitErrorReport();
		AbortCurrentTransaction();
		FlushErrorState();

		SpinLockAcquire(&poll_shared->mutex);
		poll_shared->errors++;
		strlcpy(poll_shared->last_error, edata->message, sizeof(poll_shared->last_error));
		SpinLockRelease(&poll_shared->mutex);
		last_error_code = edata->sqlerrcode;
		FreeErrorData(edata);
		result = STEP_FAILED;
	}
	PG_END_TRY();

	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/* Runs a query returning one bigint, in the current transaction. */
static int64
exec_int8(const char *sql)
{
	bool		isnull;
	int64		result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "query failed: %s", sql);
	result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	PopActiveSnapshot();
	SPI_finish();
	return result;
}

static uint64 folded_since_vacuum = 0;

/* polls left out of the folds of all polls; worker-local */
static int64 quarantine[MAX_QUARANTINE];
static int	nquarantine = 0;

/* fold_step's argument: one poll, or 0 for all but the quarantined */
static int64 fold_only = 0;

/* pending_step's result: polls with pending changes, not quarantined */
static int64 pending[1024];
static int	npending = 0;

/* tables_writable_step's result */
static bool tables_writable = false;

static void
fold_step(void)
{
	StringInfoData sql;
	int64		folded;

	initStringInfo(&sql);
	if (fold_only != 0)
		appendStringInfo(&sql, "SELECT poll._fold(" INT64_FORMAT "::pg_catalog.int8, '{}'::pg_catalog.int8[])",
						 fold_only);
	else
	{
		appendStringInfoString(&sql, "SELECT poll._fold(NULL::pg_catalog.int8, '{");
		for (int i = 0; i < nquarantine; i++)
			appendStringInfo(&sql, "%s" INT64_FORMAT, i > 0 ? "," : "", quarantine[i]);
		appendStringInfoString(&sql, "}'::pg_catalog.int8[])");
	}
	folded = exec_int8(sql.data);

	folded_since_vacuum += folded;
	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->last_fold_at = GetCurrentTimestamp();
	poll_shared->folds++;
	poll_shared->changes_folded += folded;
	SpinLockRelease(&poll_shared->mutex);
}

static void
pending_step(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute("SELECT DISTINCT c.poll_id FROM poll.change c", true, lengthof(pending)) != SPI_OK_SELECT)
		elog(ERROR, "reading pending polls failed");
	npending = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		bool		quarantined = false;

		for (int q = 0; q < nquarantine; q++)
			quarantined |= (quarantine[q] == id);
		if (!quarantined)
			pending[npending++] = id;
	}
	PopActiveSnapshot();
	SPI_finish();
}

/*
 * Whether every table of the extension can be written at once: a lock on a
 * whole table (LOCK TABLE, an ALTER TABLE in an open transaction) stops the
 * folds of all polls alike, and folding them one by one would only wait
 * for it once per poll.
 */
static void
tables_writable_step(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute("SELECT c.oid FROM pg_catalog.pg_class c"
					" WHERE c.relnamespace OPERATOR(pg_catalog.=) 'poll'::pg_catalog.regnamespace"
					" AND c.relkind OPERATOR(pg_catalog.=) 'r'::pg_catalog.\"char\"",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading the extension's tables failed");
	tables_writable = true;
	for (uint64 i = 0; i < SPI_processed && tables_writable; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		tables_writable = ConditionalLockRelationOid(relid, RowExclusiveLock);
	}
	PopActiveSnapshot();
	SPI_finish();
}

/*
 * After a failed fold of all polls: fold each pending poll alone and
 * quarantine those that fail alone.  Returns true when that isolated the
 * failure (the folds of all polls can go on).  A lock timeout with a table
 * locked is no one poll's failure: nothing is isolated.
 */
static bool
isolate_failing_polls(void)
{
	bool		isolated = false;

	if (last_error_code == ERRCODE_LOCK_NOT_AVAILABLE &&
		(run_step("checking locks on the extension's tables", tables_writable_step) != STEP_OK ||
		 !tables_writable))
		return false;
	if (run_step("finding the poll that fails to fold", pending_step) != STEP_OK)
		return false;
	for (int i = 0; i < npending; i++)
	{
		fold_only = pending[i];
		if (run_step("folding one poll", fold_step) == STEP_FAILED && nquarantine < MAX_QUARANTINE)
		{
			quarantine[nquarantine++] = pending[i];
			ereport(LOG,
					(errmsg("poll fold worker: changes of poll " INT64_FORMAT " cannot be folded; they stay pending and are retried every %d s",
							pending[i], QUARANTINE_RETRY_MS / 1000)));
			isolated = true;
		}
	}
	fold_only = 0;
	return isolated;
}

/*
 * Retries quarantined polls alone; one that folds leaves quarantine.  A
 * round stops after QUARANTINE_RETRY_BUDGET_MS (each retry may wait out
 * the lock timeout) and the next one starts where it stopped.
 */
static void
retry_quarantine(void)
{
	static int	next = 0;
	TimestampTz stop_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  QUARANTINE_RETRY_BUDGET_MS);

	for (int n = nquarantine; n > 0 && nquarantine > 0 && GetCurrentTimestamp() < stop_at; n--)
	{
		int			i = next++ % nquarantine;

		fold_only = quarantine[i];
		if (run_step("folding a quarantined poll", fold_step) == STEP_OK)
		{
			ereport(LOG,
					(errmsg("poll fold worker: poll " INT64_FORMAT " folds again", quarantine[i])));
			quarantine[i] = quarantine[--nquarantine];
			next = i;
		}
	}
	fold_only = 0;
}

/* Folds all polls but the quarantined; isolates a failure; retries the quarantine. */
static StepResult
fold_round(void)
{
	static TimestampTz next_quarantine_retry = 0;
	StepResult	r = run_step("folding", fold_step);

	if (r == STEP_FAILED && isolate_failing_polls())
	{
		r = STEP_OK;
		next_quarantine_retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															QUARANTINE_RETRY_MS);
	}
	if (r == STEP_OK && nquarantine > 0 && GetCurrentTimestamp() >= next_quarantine_retry)
	{
		retry_quarantine();
		next_quarantine_retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															QUARANTINE_RETRY_MS);
	}
	return r;
}

static void
tick_step(void)
{
	char		sql[256];

	exec_int8("SELECT poll._record_status()");
	snprintf(sql, sizeof(sql),
			 "SELECT poll._apply_retention(pg_catalog.make_interval(secs => %d::pg_catalog.float8),"
			 " pg_catalog.make_interval(secs => %d::pg_catalog.float8))",
			 poll_minute_retention_s, poll_hour_retention_s);
	exec_int8(sql);
}

/*
 * VACUUM (TRUNCATE false, SKIP_LOCKED) poll.change, as a top-level
 * command: vacuum() commits the caller's transaction and starts one of its
 * own per table.  No truncation: it would need an exclusive lock that
 * voters hold off.  When the table is locked (autovacuum is on it), no
 * wait: the next tick vacuums.  The lock is tried first because VACUUM's
 * own SKIP_LOCKED logs a WARNING.
 */
static void
vacuum_step(void)
{
	VacuumStmt *stmt;

	if (!ConditionalLockRelationOid(poll_change_relid(), ShareUpdateExclusiveLock))
		return;
	stmt = makeNode(VacuumStmt);
	stmt->is_vacuumcmd = true;
	stmt->options = list_make2(makeDefElem("truncate", (Node *) makeBoolean(false), -1),
							   makeDefElem("skip_locked", (Node *) makeBoolean(true), -1));
	stmt->rels = list_make1(makeVacuumRelation(makeRangeVar("poll", "change", -1), InvalidOid, NIL));
	ExecVacuum(make_parsestate(NULL), stmt, true);
	folded_since_vacuum = 0;
}

/* The status clock, retention, and the vacuum of poll.change after folds. */
static StepResult
tick_round(void)
{
	StepResult	r = run_step("recording status and applying retention", tick_step);

	if (r == STEP_OK && folded_since_vacuum > 0)
		r = run_step("vacuuming poll.change", vacuum_step);
	return r;
}

/* Only errors back off: 1 s, doubling up to MAX_BACKOFF_MS. */
static int
next_backoff(StepResult r, int backoff_ms)
{
	return r == STEP_FAILED ? Min(MAX_BACKOFF_MS, Max(1000, backoff_ms * 2)) : 0;
}

void
poll_worker_main(Datum arg)
{
	TimestampTz fold_after = 0;		/* a failed fold's backoff */
	TimestampTz tick_after = 0;
	TimestampTz rest_until = 0;
	int			fold_backoff_ms = 0;
	int			tick_backoff_ms = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(poll_database, NULL, 0);
	pgstat_report_appname("poll fold worker");
	set_session_settings();

	if (!claim_worker())
	{
		ereport(LOG,
				(errmsg("poll fold worker: another fold worker serves database \"%s\"; exiting",
						poll_database)));
		proc_exit(0);
	}
	before_shmem_exit(worker_detach, (Datum) 0);

	ereport(LOG,
			(errmsg("poll fold worker started for database \"%s\"", poll_database)));

	for (;;)
	{
		StepResult	r = STEP_OK;
		long		timeout;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* after a failure, even a vote's wake-up waits for the backoff */
		now = GetCurrentTimestamp();
		if (now >= fold_after)
		{
			TimestampTz fold_start;

			if (now < rest_until)
				pg_usleep(rest_until - now);	/* at most FOLD_REST_MAX_US */
			fold_start = GetCurrentTimestamp();
			r = fold_round();
			now = GetCurrentTimestamp();
			rest_until = now + Max(FOLD_REST_MIN_US,
								   Min(FOLD_REST_MAX_US, FOLD_REST_FACTOR * (now - fold_start)));
			fold_backoff_ms = next_backoff(r, fold_backoff_ms);
			fold_after = TimestampTzPlusMilliseconds(now, fold_backoff_ms);
		}
		if (r != STEP_NO_EXTENSION && now >= tick_after)
		{
			tick_backoff_ms = next_backoff(tick_round(), tick_backoff_ms);
			now = GetCurrentTimestamp();
			tick_after = TimestampTzPlusMilliseconds(now, Max(TICK_MS, tick_backoff_ms));
		}

		/*
		 * Without the extension the worker looks again every second, or at
		 * once when a commit wakes it: the first vote after CREATE
		 * EXTENSION must not wait.
		 */
		if (r == STEP_NO_EXTENSION)
			timeout = EXTENSION_LOOK_MS;
		else
		{
			TimestampTz next_fold = fold_after > now ? fold_after
				: TimestampTzPlusMilliseconds(now, poll_fold_interval_ms);

			timeout = Max(1, TimestampDifferenceMilliseconds(now, Min(next_fold, tick_after)));
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

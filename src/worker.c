/*
 * worker.c — the background worker that folds votes continuously.
 *
 * One worker per cluster, serving the database poll.database.  It sleeps
 * on its latch, which every session sets at the commit of a transaction
 * that voted (poll.c), so a vote is folded as soon as it commits; under
 * load the latch is set again while a fold runs, and the next fold absorbs
 * everything committed meanwhile.  After each fold the worker rests
 * FOLD_REST_FACTOR times the fold's duration (FOLD_REST_MIN_US to
 * FOLD_REST_MAX_US): each fold is a transaction with a commit, and at
 * thousands of votes per second folding on every wake-up would spend a
 * core on commits alone; the rest bounds folding to a fifth of the worker's
 * time and batches hundreds of votes into one fold.  poll.fold_interval
 * bounds the sleep when no wake-up comes.
 * Every 500 ms it also records status changes made by the clock, applies
 * rollup retention, and vacuums poll.change when it folded anything: that
 * queue table turns over thousands of rows a second, and a fold's DELETE
 * and every poll.results query scan it whole, so it must not wait for
 * autovacuum's next round (a minute by default) to be emptied.
 *
 * Each unit of work is its own transaction.  An error is logged, counted
 * in shared memory and retried with backoff: the worker never exits on an
 * ERROR (no crash loop).  One poll whose changes cannot be folded (a
 * constraint someone added, a damaged row) must not stop the folding of
 * the others: when a fold of all polls fails, each pending poll is folded
 * alone, and a poll that fails alone is quarantined — left out of later
 * folds, its changes kept pending (poll.results still counts them) and
 * retried alone every QUARANTINE_RETRY_MS.  Folding is poll.fold(), which is safe to run
 * concurrently with a manual poll.fold() (see poll--1.0.sql).
 *
 * A missing extension is logged once and looked for every second (or at a
 * vote's wake-up).  A missing database cannot be waited for in the same
 * process, which connects once: the worker that failed to connect marks
 * PollShared.connect_failed, and the next one connects to no database,
 * logs once, checks pg_database every second and exits when the database
 * exists, so that the postmaster starts one that connects to it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
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
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
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

typedef enum StepResult
{
	STEP_OK,
	STEP_NO_EXTENSION,
	STEP_FAILED
} StepResult;

static void worker_detach(int code, Datum arg);
static StepResult run_step(const char *activity, void (*step) (void));
static void fold_step(void);
static void tick_step(void);

void
poll_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	snprintf(worker.bgw_name, BGW_MAXLEN, "poll fold worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "poll fold worker");
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "poll");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "poll_worker_main");
	RegisterBackgroundWorker(&worker);
}

static void
worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->worker_latch = NULL;
	poll_shared->worker_pid = 0;
	SpinLockRelease(&poll_shared->mutex);
}

static bool extension_missing_logged = false;

/*
 * Runs one step in its own transaction.  Returns STEP_NO_EXTENSION when
 * the extension is not installed (logged once until it appears).
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
		if (!OidIsValid(get_extension_oid("poll", true)))
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

static void
fold_step(void)
{
	StringInfoData sql;
	int64		folded;

	initStringInfo(&sql);
	if (fold_only != 0)
		appendStringInfo(&sql, "SELECT poll._fold(" INT64_FORMAT ", '{}')", fold_only);
	else
	{
		appendStringInfoString(&sql, "SELECT poll._fold(NULL, '{");
		for (int i = 0; i < nquarantine; i++)
			appendStringInfo(&sql, "%s" INT64_FORMAT, i > 0 ? "," : "", quarantine[i]);
		appendStringInfoString(&sql, "}')");
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
	if (SPI_execute("SELECT DISTINCT poll_id FROM poll.change", true, lengthof(pending)) != SPI_OK_SELECT)
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
 * After a failed fold of all polls: fold each pending poll alone and
 * quarantine those that fail alone.  Returns true when that isolated the
 * failure (the folds of all polls can go on).
 */
static bool
isolate_failing_polls(void)
{
	bool		isolated = false;

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

/* Retries each quarantined poll alone; one that folds leaves quarantine. */
static void
retry_quarantine(void)
{
	for (int i = 0; i < nquarantine; i++)
	{
		fold_only = quarantine[i];
		if (run_step("folding a quarantined poll", fold_step) == STEP_OK)
		{
			ereport(LOG,
					(errmsg("poll fold worker: poll " INT64_FORMAT " folds again", quarantine[i])));
			quarantine[i--] = quarantine[--nquarantine];
		}
	}
	fold_only = 0;
}

static void
tick_step(void)
{
	char		sql[200];

	exec_int8("SELECT poll._record_status()");
	snprintf(sql, sizeof(sql),
			 "SELECT poll._apply_retention(make_interval(secs => %d), make_interval(secs => %d))",
			 poll_minute_retention_s, poll_hour_retention_s);
	exec_int8(sql);
}

/*
 * VACUUM (TRUNCATE false) poll.change, as a top-level command: vacuum()
 * commits the caller's transaction and starts one of its own per table.
 * No truncation: it would need an exclusive lock that voters hold off.
 */
static void
vacuum_step(void)
{
	VacuumStmt *stmt = makeNode(VacuumStmt);

	stmt->is_vacuumcmd = true;
	stmt->options = list_make1(makeDefElem("truncate", (Node *) makeBoolean(false), -1));
	stmt->rels = list_make1(makeVacuumRelation(makeRangeVar("poll", "change", -1), InvalidOid, NIL));
	ExecVacuum(make_parsestate(NULL), stmt, true);
	folded_since_vacuum = 0;
}

/* Set while this worker connects: a FATAL in between means it could not. */
static bool connecting = false;

static void
note_connect_failure(int code, Datum arg)
{
	if (!connecting)
		return;
	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->connect_failed = true;
	SpinLockRelease(&poll_shared->mutex);
}

/*
 * Whether a database of that name exists.  Connected to no database, only
 * a heap scan of the shared catalog pg_database works (as the autovacuum
 * launcher reads it): the syscache and its index need a database.
 */
static bool
database_exists(const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		found = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname), name) == 0;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

/*
 * Waits, connected to no database (only the shared catalogs), until
 * poll.database exists; then exits for the postmaster to start a worker
 * that connects to it (a process connects to one database, once).  Without
 * this, a missing database made every worker FATAL at connect, logged
 * every bgw_restart_time for as long as the database was missing.
 */
static void
wait_for_database(void)
{
	bool		logged = false;

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("poll fold worker");
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (database_exists(poll_database))
			break;
		if (!logged)
			ereport(LOG,
					(errmsg("poll fold worker: database \"%s\" (poll.database) does not exist; waiting for it, checking every second",
							poll_database)));
		logged = true;
		pgstat_report_activity(STATE_IDLE, "waiting for poll.database to exist");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->connect_failed = false;
	SpinLockRelease(&poll_shared->mutex);
	ereport(LOG,
			(errmsg("poll fold worker: database \"%s\" exists now; a new worker connects to it",
					poll_database)));
	proc_exit(1);				/* exit code 1: the postmaster restarts us */
}

/*
 * Connects to poll.database, unless the last worker could not: then waits
 * until it exists (and does not return).
 */
static void
connect_to_database(void)
{
	bool		failed;

	SpinLockAcquire(&poll_shared->mutex);
	failed = poll_shared->connect_failed;
	SpinLockRelease(&poll_shared->mutex);
	if (failed)
		wait_for_database();

	before_shmem_exit(note_connect_failure, (Datum) 0);
	connecting = true;
	BackgroundWorkerInitializeConnection(poll_database, NULL, 0);
	connecting = false;
}

void
poll_worker_main(Datum arg)
{
	TimestampTz next_tick = 0;
	TimestampTz retry_at = 0;
	TimestampTz fold_start;
	TimestampTz rest_until = 0;
	TimestampTz next_quarantine_retry = 0;
	int			backoff_ms = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	connect_to_database();
	pgstat_report_appname("poll fold worker");

	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->worker_latch = MyLatch;
	poll_shared->worker_pid = MyProcPid;
	strlcpy(poll_shared->database, poll_database, NAMEDATALEN);
	poll_shared->started_at = GetCurrentTimestamp();
	SpinLockRelease(&poll_shared->mutex);
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
		if (now >= retry_at)
		{
			if (now < rest_until)
				pg_usleep(rest_until - now);	/* at most FOLD_REST_MAX_US */
			fold_start = GetCurrentTimestamp();
			r = run_step("folding", fold_step);
			if (r == STEP_FAILED && isolate_failing_polls())
			{
				r = STEP_OK;
				next_quarantine_retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																	QUARANTINE_RETRY_MS);
			}
			now = GetCurrentTimestamp();
			if (nquarantine > 0 && now >= next_quarantine_retry)
			{
				retry_quarantine();
				next_quarantine_retry = TimestampTzPlusMilliseconds(now, QUARANTINE_RETRY_MS);
			}
			rest_until = now + Max(FOLD_REST_MIN_US,
								   Min(FOLD_REST_MAX_US, FOLD_REST_FACTOR * (now - fold_start)));
			now = GetCurrentTimestamp();
			if (r == STEP_OK && now >= next_tick)
			{
				r = run_step("recording status and applying retention", tick_step);
				if (r == STEP_OK && folded_since_vacuum > 0)
					r = run_step("vacuuming poll.change", vacuum_step);
				next_tick = TimestampTzPlusMilliseconds(now, TICK_MS);
			}
			/*
			 * Only errors back off.  Without the extension the worker looks
			 * again every second, or at once when a vote's commit wakes it:
			 * the first vote after CREATE EXTENSION must not wait.
			 */
			if (r == STEP_FAILED)
				backoff_ms = Min(MAX_BACKOFF_MS, Max(1000, backoff_ms * 2));
			else
				backoff_ms = 0;
			retry_at = TimestampTzPlusMilliseconds(now, backoff_ms);
		}

		if (now < retry_at)
			timeout = Max(1, TimestampDifferenceMilliseconds(now, retry_at));
		else if (r == STEP_NO_EXTENSION)
			timeout = 1000;
		else
			timeout = Min(poll_fold_interval_ms,
						  Max(1, TimestampDifferenceMilliseconds(now, next_tick)));

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * launcher.c — the launcher: starts the fold worker (worker.c) once
 * poll.database exists, and again after it exits.
 *
 * The launcher is the static background worker registered in _PG_init.
 * It connects to no database (a process connects to one database, once,
 * and poll.database may not exist yet), looks in pg_database every second
 * or when a commit that called poll._worker_wake() sets its latch, and
 * when poll.database exists starts the fold worker as a dynamic background
 * worker connected to it.  When the worker exits (terminated, its database
 * dropped WITH (FORCE), a FATAL at connect) the launcher starts another
 * after WORKER_RESTART_MS, doubling the delay up to MAX_BACKOFF_MS while
 * workers exit without having connected.  A missing database is logged
 * once and costs no FATAL: the worker starts only once it can connect.
 *
 * Shared state (PollShared, poll.h): the launcher writes launcher_latch and
 * launcher_pid; it only reads worker_pid and worker_connects, which the
 * worker writes.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "poll.h"

#define LAUNCHER_LOOK_MS	1000	/* the launcher's look at pg_database */
#define WORKER_RESTART_MS	1000	/* after the worker exits */
#define MAX_BACKOFF_MS		30000	/* while workers exit before connecting */

typedef enum DatabaseState
{
	DATABASE_CONNECTABLE,
	DATABASE_MISSING,
	DATABASE_NOT_CONNECTABLE,	/* datallowconn off, or a half-dropped database */
	DATABASE_UNKNOWN			/* pg_database locked: look again later */
} DatabaseState;

static DatabaseState database_state(const char *name);
static BackgroundWorkerHandle *start_worker(void);
static void launcher_detach(int code, Datum arg);

void
poll_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	snprintf(worker.bgw_name, BGW_MAXLEN, "poll launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "poll launcher");
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "poll");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "poll_launcher_main");
	RegisterBackgroundWorker(&worker);
}

static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->launcher_latch = NULL;
	poll_shared->launcher_pid = 0;
	SpinLockRelease(&poll_shared->mutex);
}

/*
 * Whether a database of that name exists and accepts connections.
 * Connected to no database, only a heap scan of the shared catalog
 * pg_database works (as the autovacuum launcher reads it): the syscache and
 * its index need a database.  It never waits: when pg_database is locked
 * (VACUUM FULL), it says so and the launcher looks again later.
 */
static DatabaseState
database_state(const char *name)
{
	DatabaseState state = DATABASE_MISSING;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	if (!ConditionalLockRelationOid(DatabaseRelationId, AccessShareLock))
	{
		CommitTransactionCommand();
		return DATABASE_UNKNOWN;
	}
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, NoLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) != 0)
			continue;
		state = db->datallowconn ? DATABASE_CONNECTABLE : DATABASE_NOT_CONNECTABLE;
#ifdef DATCONNLIMIT_INVALID_DB
		if (db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			state = DATABASE_NOT_CONNECTABLE;
#endif
		break;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return state;
}

/* Starts the fold worker; NULL (logged once) when no slot is free. */
static BackgroundWorkerHandle *
start_worker(void)
{
	static bool no_slot_logged = false;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	snprintf(worker.bgw_name, BGW_MAXLEN, "poll fold worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "poll fold worker");
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "poll");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "poll_worker_main");
	worker.bgw_notify_pid = MyProcPid;

	if (RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		no_slot_logged = false;
		return handle;
	}
	if (!no_slot_logged)
		ereport(LOG,
				(errmsg("poll launcher: no background worker slot is free for the fold worker; trying again every second"),
				 errhint("Raise max_worker_processes.")));
	no_slot_logged = true;
	return NULL;
}

/*
 * The worker's pid in shared memory (0: none runs) and how many workers
 * have claimed it so far.
 */
static pid_t
shared_worker(uint64 *connects)
{
	pid_t		pid;

	SpinLockAcquire(&poll_shared->mutex);
	pid = poll_shared->worker_pid;
	*connects = poll_shared->worker_connects;
	SpinLockRelease(&poll_shared->mutex);
	return pid;
}

void
poll_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *worker = NULL;
	uint64		connects_before = 0;
	TimestampTz start_after = 0;
	int			restart_ms = WORKER_RESTART_MS;
	DatabaseState logged = DATABASE_CONNECTABLE;	/* the last state logged */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("poll launcher");

	SpinLockAcquire(&poll_shared->mutex);
	poll_shared->launcher_latch = MyLatch;
	poll_shared->launcher_pid = MyProcPid;
	SpinLockRelease(&poll_shared->mutex);
	before_shmem_exit(launcher_detach, (Datum) 0);

	while (!ShutdownRequestPending)
	{
		long		timeout = LAUNCHER_LOOK_MS;
		pid_t		pid;
		uint64		connects;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (worker != NULL && GetBackgroundWorkerPid(worker, &pid) == BGWH_STOPPED)
		{
			/* a worker that never connected backs off; one that served restarts soon */
			pfree(worker);
			worker = NULL;
			(void) shared_worker(&connects);
			restart_ms = connects == connects_before
				? Min(MAX_BACKOFF_MS, restart_ms * 2) : WORKER_RESTART_MS;
			start_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), restart_ms);
		}

		/*
		 * Without a handle, a worker can still run: one started by a
		 * launcher that exited (it outlives it).  Its exit sets our latch.
		 */
		if (worker == NULL && shared_worker(&connects) == 0)
		{
			TimestampTz now = GetCurrentTimestamp();
			DatabaseState state;

			if (now < start_after)
				timeout = Max(1, TimestampDifferenceMilliseconds(now, start_after));
			else if ((state = database_state(poll_database)) == DATABASE_CONNECTABLE)
			{
				if (logged != DATABASE_CONNECTABLE)
					ereport(LOG,
							(errmsg("poll launcher: database \"%s\" exists now; starting the fold worker",
									poll_database)));
				logged = DATABASE_CONNECTABLE;
				connects_before = connects;
				worker = start_worker();
			}
			else if (state != DATABASE_UNKNOWN && state != logged)
			{
				ereport(LOG,
						(errmsg(state == DATABASE_MISSING
								? "poll launcher: database \"%s\" (poll.database) does not exist; waiting for it, checking every second"
								: "poll launcher: database \"%s\" (poll.database) does not accept connections; waiting, checking every second",
								poll_database)));
				logged = state;
			}
		}

		pgstat_report_activity(STATE_IDLE, worker != NULL ? NULL : "waiting to start the fold worker");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	/*
	 * Shutdown, or pg_terminate_backend(): exit code 1, for the postmaster
	 * to start a launcher again unless the server is stopping.  The worker
	 * gets its own SIGTERM at shutdown; otherwise it goes on folding and
	 * the next launcher finds it running.
	 */
	proc_exit(1);
}

/*
 * poll.c — the poll extension's entry point: settings, shared state, and
 * the commit hook that wakes the background worker (and its launcher).
 *
 * The locking protocol of the shared state (PollShared) is described in
 * poll.h, beside the struct.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "poll.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *poll_database = NULL;
int			poll_fold_interval_ms = 50;
int			poll_minute_retention_s = 7 * 86400;
int			poll_hour_retention_s = 90 * 86400;
int			poll_max_segments = 1000;
int			poll_segment_min_ballots = 1;

PollShared *poll_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Did the current transaction write a change record? */
static bool change_written = false;

/* Did it call poll._worker_wake()? */
static bool wake_requested = false;

static void poll_shmem_request(void);
static void poll_shmem_startup(void);
static void poll_xact_callback(XactEvent event, void *arg);
static void poll_define_settings(void);

void
_PG_init(void)
{
	poll_define_settings();
	RegisterXactCallback(poll_xact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = poll_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = poll_shmem_startup;

	poll_register_launcher();
}

static void
poll_define_settings(void)
{
	/*
	 * PGC_POSTMASTER variables can only be defined while the postmaster
	 * loads the library: defining one later (CREATE EXTENSION or LOAD
	 * without the preload) is a FATAL error.  Without the preload there is
	 * no worker, and poll.database means nothing but what SHOW prints.
	 */
	DefineCustomStringVariable("poll.database",
							   "Database the poll background worker serves.",
							   NULL,
							   &poll_database,
							   "postgres",
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("poll.fold_interval",
							"Longest time a committed vote waits to be folded.",
							"The worker is woken at the commit of every vote; this bounds the wait when a wake-up is missed.",
							&poll_fold_interval_ms,
							50, 1, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("poll.minute_retention",
							"Minute rollups older than this are dropped.",
							"Hour and day rollups keep the data.",
							&poll_minute_retention_s,
							7 * 86400, 60, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("poll.hour_retention",
							"Hour rollups older than this are dropped.",
							"Day rollups keep the data.",
							&poll_hour_retention_s,
							90 * 86400, 3600, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("poll.max_segments",
							"Distinct segments one poll may hold.",
							"A vote that would add one more segment to a poll is refused.",
							&poll_max_segments,
							1000, 1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("poll.segment_min_ballots",
							"Smallest segment results_by_segment shows apart to roles other than poll_admin.",
							"Smaller segments are reported under segment NULL, so that a small group cannot reveal a ballot.",
							&poll_segment_min_ballots,
							1, 1, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("poll");
}

static void
poll_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PollShared)));
}

static void
poll_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	poll_shared = ShmemInitStruct("poll", sizeof(PollShared), &found);
	if (!found)
	{
		memset(poll_shared, 0, sizeof(PollShared));
		SpinLockInit(&poll_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called by the vote path each time it writes a change record. */
void
poll_note_change_written(void)
{
	change_written = true;
}

/*
 * poll._worker_wake(): wakes the launcher and the worker at the commit of
 * the calling transaction.  The install script calls it last, so that a
 * poll.database that just got the extension (or was just created) is
 * served at once, not at the launcher's or the worker's next look.
 */
PG_FUNCTION_INFO_V1(poll_worker_wake);
Datum
poll_worker_wake(PG_FUNCTION_ARGS)
{
	wake_requested = true;
	PG_RETURN_VOID();
}

/*
 * At commit (after the transaction became visible), wake the worker so a
 * vote never waits for a timer.  Under load the latch is already set and
 * SetLatch returns at once: one fold absorbs every vote committed meanwhile.
 */
static void
poll_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if ((change_written || wake_requested) && poll_shared != NULL)
			{
				Latch	   *worker;
				Latch	   *launcher;

				SpinLockAcquire(&poll_shared->mutex);
				worker = poll_shared->worker_latch;
				launcher = wake_requested ? poll_shared->launcher_latch : NULL;
				SpinLockRelease(&poll_shared->mutex);
				if (worker != NULL)
					SetLatch(worker);
				if (launcher != NULL)
					SetLatch(launcher);
			}
			change_written = wake_requested = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			change_written = wake_requested = false;
			break;
		default:
			break;
	}
}

/*
 * poll._worker_status(): the worker's shared state, one row while it runs.
 */
PG_FUNCTION_INFO_V1(poll_worker_status);
Datum
poll_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PollShared	copy;
	Datum		values[8];
	bool		nulls[8] = {0};

	InitMaterializedSRF(fcinfo, 0);

	if (poll_shared == NULL)
		PG_RETURN_VOID();

	SpinLockAcquire(&poll_shared->mutex);
	memcpy(&copy, poll_shared, sizeof(copy));
	SpinLockRelease(&poll_shared->mutex);

	if (copy.worker_pid == 0)
		PG_RETURN_VOID();

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(copy.database));
	values[1] = Int32GetDatum(copy.worker_pid);
	values[2] = TimestampTzGetDatum(copy.started_at);
	values[3] = TimestampTzGetDatum(copy.last_fold_at);
	nulls[3] = (copy.last_fold_at == 0);
	values[4] = Int64GetDatum((int64) copy.folds);
	values[5] = Int64GetDatum((int64) copy.changes_folded);
	values[6] = Int64GetDatum((int64) copy.errors);
	values[7] = CStringGetTextDatum(copy.last_error);
	nulls[7] = (copy.last_error[0] == '\0');

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	PG_RETURN_VOID();
}

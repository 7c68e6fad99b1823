/*
 * cache.c — the per-session cache of poll settings read by the vote path.
 *
 * Every vote needs its poll's kind, option count, schedule and rules.
 * Reading poll.poll for each vote would cost an index scan per vote, yet
 * these settings change only through close_poll.  So each session keeps
 * them in a hash table, under this invariant:
 *
 *	An entry is never staler than the poll.poll row visible to a new
 *	transaction.  close_poll calls poll._poll_changed(), which queues a
 *	relcache invalidation of poll.poll; at commit it reaches every session,
 *	which processes it at its next transaction start (or lock acquisition),
 *	and our callback marks the whole cache stale.  On abort the queued
 *	invalidation is processed locally only, which is as harmless.
 *	A row written by the current, uncommitted transaction (a poll created
 *	or closed in it) is never cached: if that transaction rolls back, no
 *	later vote may see it.
 *
 * Only this session reads and writes the cache; nothing here is shared.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "poll.h"

static HTAB *poll_cache = NULL;
static bool cache_valid = false;
static bool callback_registered = false;
static Oid	poll_relid = InvalidOid;	/* poll.poll */
static Oid	owner_oid = InvalidOid;		/* its owner */
static Oid	change_relid = InvalidOid;	/* poll.change */
static Oid	ballot_relid = InvalidOid;	/* poll.ballot */
static SPIPlanPtr lookup_plan = NULL;

static void cache_reset(void);
static void cache_invalidate(Datum arg, Oid relid);

static void
cache_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == poll_relid || relid == change_relid ||
		relid == ballot_relid)
		cache_valid = false;
}

/* Rebuilds an empty cache and re-resolves the extension's table and owner. */
static void
cache_reset(void)
{
	HASHCTL		ctl;
	Oid			nsp;
	HeapTuple	tup;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(cache_invalidate, (Datum) 0);
		callback_registered = true;
	}
	if (poll_cache != NULL)
		hash_destroy(poll_cache);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(PollInfo);
	ctl.hcxt = TopMemoryContext;
	poll_cache = hash_create("poll settings cache", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	nsp = get_namespace_oid("poll", true);
	poll_relid = OidIsValid(nsp) ? get_relname_relid("poll", nsp) : InvalidOid;
	if (!OidIsValid(poll_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"poll\" is not installed in this database")));

	change_relid = get_relname_relid("change", nsp);
	ballot_relid = get_relname_relid("ballot", nsp);
	if (!OidIsValid(change_relid) || !OidIsValid(ballot_relid))
		elog(ERROR, "tables of extension \"poll\" are missing");

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(poll_relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", poll_relid);
	owner_oid = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	/*
	 * Set only now: an invalidation arriving during the catalog lookups
	 * above cleared it, and this rebuild already sees its effect.
	 */
	cache_valid = true;
}

Oid
poll_owner(void)
{
	if (!cache_valid)
		cache_reset();
	return owner_oid;
}

Oid
poll_change_relid(void)
{
	if (!cache_valid)
		cache_reset();
	return change_relid;
}

Oid
poll_ballot_relid(void)
{
	if (!cache_valid)
		cache_reset();
	return ballot_relid;
}

/*
 * Reads one poll's settings (SPI must be connected, as the owner).
 */
const PollInfo *
poll_info(int64 poll_id)
{
	PollInfo   *entry;
	PollInfo	info;
	bool		found;
	bool		isnull;
	Datum		arg = Int64GetDatum(poll_id);
	HeapTuple	row;
	TupleDesc	desc;
	char	   *kind;
	TransactionId xmin;

	if (!cache_valid)
		cache_reset();

	entry = hash_search(poll_cache, &poll_id, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	if (lookup_plan == NULL)
	{
		Oid			argtype = INT8OID;
		SPIPlanPtr	plan;

		plan = SPI_prepare("SELECT kind, n_options, max_choices, opens_at, closes_at,"
						   "       closed_at IS NOT NULL, allow_change, xmin"
						   "  FROM poll.poll WHERE poll_id OPERATOR(pg_catalog.=) $1",
						   1, &argtype);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		lookup_plan = plan;
	}

	if (SPI_execute_plan(lookup_plan, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "poll lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("poll " INT64_FORMAT " does not exist", poll_id)));

	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	memset(&info, 0, sizeof(info));
	info.poll_id = poll_id;
	kind = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
	info.multi = (strcmp(kind, "multi") == 0);
	info.n_options = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
	info.max_choices = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
	info.opens_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull));
	info.closes_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 5, &isnull));
	info.has_closes_at = !isnull;
	info.closed = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
	info.allow_change = DatumGetBool(SPI_getbinval(row, desc, 7, &isnull));
	xmin = DatumGetTransactionId(SPI_getbinval(row, desc, 8, &isnull));

	if (TransactionIdIsCurrentTransactionId(xmin))
	{
		/* not committed yet: answer from a per-call copy, do not cache */
		static PollInfo uncommitted;

		uncommitted = info;
		return &uncommitted;
	}

	entry = hash_search(poll_cache, &poll_id, HASH_ENTER, &found);
	*entry = info;
	return entry;
}

/*
 * poll._poll_changed(): queue, for the end of this transaction, the
 * invalidation that makes every session drop its cached poll settings.
 */
PG_FUNCTION_INFO_V1(poll_poll_changed);
Datum
poll_poll_changed(PG_FUNCTION_ARGS)
{
	Oid			nsp = get_namespace_oid("poll", false);
	Oid			relid = get_relname_relid("poll", nsp);

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	PG_RETURN_VOID();
}

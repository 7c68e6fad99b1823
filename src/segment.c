/*
 * segment.c — the registry of each poll's segments, which bounds them.
 *
 * A segment is a free-form analytics dimension a ballot carries.  Each
 * distinct one costs a row per option in poll.tally_segment forever and a
 * group in every fold, so a poll may hold at most poll.max_segments of
 * them (SQLSTATE 54000 beyond it).  poll.segment lists them:
 *
 *	- rows are inserted by the vote path only (this file), before the
 *	  ballot that carries a new segment is written, in the same
 *	  transaction; they are never deleted (but with their poll, by DROP
 *	  EXTENSION);
 *	- poll.segment.ballots is the folded number of live ballots carrying
 *	  the segment, written by the fold only (poll._fold), the pending part
 *	  being the change records' ballots (results_by_segment adds both);
 *	- a vote that adds a segment first locks its poll's poll.poll row
 *	  (FOR NO KEY UPDATE: votes do not lock that row, so only adders of new
 *	  segments and close_poll wait for each other), then counts and
 *	  inserts, so that two sessions adding segments at once cannot pass the
 *	  limit together (under READ COMMITTED; a REPEATABLE READ transaction
 *	  counts from its snapshot and may pass it by the concurrent adders).
 *
 * Each session caches the (poll, segment) pairs it saw registered and
 * committed, so that a vote in a known segment costs a hash probe, not an
 * index scan.  A pair is never cached from the transaction that inserts it
 * (it could roll back); the cache is dropped with the table's relcache
 * entry (DROP EXTENSION) and when it grows past SEGMENT_CACHE_MAX.
 * Nothing here is shared between sessions.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "poll.h"

#define SEGMENT_CACHE_MAX	65536
#define SEGMENT_KEY_BYTES	(POLL_MAX_SEGMENT * MAX_MULTIBYTE_CHAR_LEN + 1)

typedef struct SegmentKey
{
	int64		poll_id;
	char		segment[SEGMENT_KEY_BYTES];	/* NUL-padded */
} SegmentKey;

static PollStatement probe_segment = {
	"SELECT xmin FROM poll.segment"
	" WHERE poll_id OPERATOR(pg_catalog.=) $1 AND segment OPERATOR(pg_catalog.=) $2",
	2, {INT8OID, TEXTOID}
};

/* The poll's registry, locked against other adders; returns its size. */
static PollStatement lock_poll = {
	"SELECT FROM poll.poll WHERE poll_id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
	1, {INT8OID}
};

static PollStatement count_segments = {
	"SELECT pg_catalog.count(*) FROM poll.segment WHERE poll_id OPERATOR(pg_catalog.=) $1",
	1, {INT8OID}
};

static PollStatement insert_segments = {
	"INSERT INTO poll.segment (poll_id, segment)"
	" SELECT $1, s FROM pg_catalog.unnest($2) AS s WHERE s IS NOT NULL"
	" ON CONFLICT (poll_id, segment) DO NOTHING",
	2, {INT8OID, TEXTARRAYOID}
};

/*
 * The segments of a bulk call not registered yet, each with the 1-based
 * element that first carries it, in that order.
 */
static PollStatement new_segments = {
	"SELECT u.segment, pg_catalog.min(u.ord)"
	"  FROM ROWS FROM (pg_catalog.unnest($2)) WITH ORDINALITY AS u(segment, ord)"
	" WHERE u.segment IS NOT NULL"
	"   AND NOT EXISTS (SELECT FROM poll.segment g"
	"                    WHERE g.poll_id OPERATOR(pg_catalog.=) $1"
	"                      AND g.segment OPERATOR(pg_catalog.=) u.segment)"
	" GROUP BY u.segment ORDER BY 2",
	2, {INT8OID, TEXTARRAYOID}
};

static HTAB *segment_cache = NULL;
static bool callback_registered = false;
static Oid	segment_relid = InvalidOid;
static bool segment_relid_known = false;

static void
segment_cache_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == segment_relid)
	{
		if (segment_cache != NULL)
			hash_destroy(segment_cache);
		segment_cache = NULL;
		segment_relid_known = false;
	}
}

/*
 * poll.segment's oid; InvalidOid under a 1.0 schema (the 1.1 library
 * serves it until ALTER EXTENSION poll UPDATE), which has no registry.
 */
static Oid
registry_relid(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(segment_cache_invalidate, (Datum) 0);
		callback_registered = true;
	}
	if (!segment_relid_known)
	{
		Oid			nsp = get_namespace_oid("poll", true);

		segment_relid = OidIsValid(nsp) ? get_relname_relid("segment", nsp) : InvalidOid;
		segment_relid_known = true;
	}
	return segment_relid;
}

static void
make_key(SegmentKey *key, int64 poll_id, text *segment)
{
	memset(key, 0, sizeof(*key));
	key->poll_id = poll_id;
	memcpy(key->segment, VARDATA_ANY(segment),
		   Min(VARSIZE_ANY_EXHDR(segment), SEGMENT_KEY_BYTES - 1));
}

static bool
cached(int64 poll_id, text *segment)
{
	SegmentKey	key;

	if (segment_cache == NULL)
		return false;
	make_key(&key, poll_id, segment);
	return hash_search(segment_cache, &key, HASH_FIND, NULL) != NULL;
}

static void
remember(int64 poll_id, text *segment)
{
	SegmentKey	key;

	if (segment_cache != NULL && hash_get_num_entries(segment_cache) >= SEGMENT_CACHE_MAX)
	{
		hash_destroy(segment_cache);
		segment_cache = NULL;
	}
	if (segment_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(SegmentKey);
		ctl.entrysize = sizeof(SegmentKey);
		ctl.hcxt = TopMemoryContext;
		segment_cache = hash_create("poll segment cache", 256, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	make_key(&key, poll_id, segment);
	(void) hash_search(segment_cache, &key, HASH_ENTER, NULL);
}

/*
 * Locks the poll against other adders and returns how many segments it
 * holds.
 */
static int64
lock_and_count(int64 poll_id)
{
	Datum		arg = Int64GetDatum(poll_id);
	bool		isnull;

	poll_run(&lock_poll, &arg, NULL, SPI_OK_SELECT);
	poll_run(&count_segments, &arg, NULL, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
refuse_segment(const PollInfo *poll, text *segment, int element)
{
	char	   *name = text_to_cstring(segment);

	if (element > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("segment \"%s\" would be more than the %d segments poll " INT64_FORMAT " may hold",
						name, poll_max_segments, poll->poll_id),
				 errdetail("In element %d.", element),
				 errhint("poll.max_segments bounds the distinct segments of a poll.")));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("segment \"%s\" would be more than the %d segments poll " INT64_FORMAT " may hold",
					name, poll_max_segments, poll->poll_id),
			 errhint("poll.max_segments bounds the distinct segments of a poll.")));
}

static Datum
one_text_array(text *segment)
{
	Datum		d = PointerGetDatum(segment);

	return PointerGetDatum(construct_array(&d, 1, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Registers a vote's segment in its poll, or refuses it with 54000 when
 * it is new and the poll holds poll.max_segments already.  SPI must be
 * connected, as the owner of the extension's tables.
 */
void
poll_check_segment(const PollInfo *poll, text *segment)
{
	Datum		args[2];
	bool		isnull;

	if (!OidIsValid(registry_relid()) || cached(poll->poll_id, segment))
		return;

	args[0] = Int64GetDatum(poll->poll_id);
	args[1] = PointerGetDatum(segment);
	poll_run(&probe_segment, args, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 1,
																 &isnull));

		if (!TransactionIdIsCurrentTransactionId(xmin))
			remember(poll->poll_id, segment);
		return;
	}

	if (lock_and_count(poll->poll_id) >= poll_max_segments)
	{
		/* another session may have added this very segment meanwhile */
		poll_run(&probe_segment, args, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
			refuse_segment(poll, segment, 0);
		return;
	}
	args[1] = one_text_array(segment);
	poll_run(&insert_segments, args, NULL, SPI_OK_INSERT);
}

/*
 * The same for the segments of a bulk call (nulls[i]: element i has
 * none): the first element whose segment would pass the limit is named.
 */
void
poll_check_segments(const PollInfo *poll, Datum *segments, bool *nulls, int n)
{
	Datum		args[2];
	int			dims[1] = {n};
	int			lbs[1] = {1};
	bool		all_cached = true;
	int64		held;
	uint64		nnew;

	if (!OidIsValid(registry_relid()))
		return;
	for (int i = 0; i < n && all_cached; i++)
		all_cached = nulls[i] || cached(poll->poll_id, (text *) DatumGetPointer(segments[i]));
	if (all_cached)
		return;

	args[0] = Int64GetDatum(poll->poll_id);
	args[1] = PointerGetDatum(construct_md_array(segments, nulls, 1, dims, lbs, TEXTOID, -1,
												 false, TYPALIGN_INT));
	poll_run(&new_segments, args, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;

	held = lock_and_count(poll->poll_id);
	/* the list again, under the lock: others may have added some */
	poll_run(&new_segments, args, NULL, SPI_OK_SELECT);
	nnew = SPI_processed;
	if (held + (int64) nnew > poll_max_segments)
	{
		int64		room = Max(0, poll_max_segments - held);
		bool		isnull;
		HeapTuple	row = SPI_tuptable->vals[room];
		text	   *segment = DatumGetTextPP(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
		int64		element = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));

		refuse_segment(poll, segment, (int) element);
	}
	if (nnew > 0)
		poll_run(&insert_segments, args, NULL, SPI_OK_INSERT);
}

/*
 * poll._segment_floor(): the fewest ballots a segment needs for
 * results_by_segment to show it apart to the current user: 0 (all) for
 * members of poll_admin, else poll.segment_min_ballots.
 *
 * A C function, not current_setting(): calling it loads the library, which
 * drops any placeholder value a user SET for the variable before it was
 * loaded, so the floor is always the one the superuser configured.
 */
PG_FUNCTION_INFO_V1(poll_segment_floor);
Datum
poll_segment_floor(PG_FUNCTION_ARGS)
{
	Oid			admin = get_role_oid("poll_admin", true);

	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		PG_RETURN_INT32(0);
	PG_RETURN_INT32(poll_segment_min_ballots);
}

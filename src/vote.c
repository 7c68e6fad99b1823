/*
 * vote.c — the vote path: cast_vote, cast_votes and retract_vote.
 *
 * A vote writes its ballot (poll.ballot, one row per voter per poll) and,
 * in the same transaction, the change records that describe it (poll.change:
 * +1/-1 per option and segment).  It never touches a shared counter: the
 * tallies are folded later from the change records (poll.fold()), so
 * concurrent voters on one hot poll never wait for each other.
 *
 * Invariants this file keeps, at every commit:
 *	- a voter has at most one ballot per poll: the primary key of
 *	  poll.ballot; a second session casting for the same voter waits in
 *	  INSERT ... ON CONFLICT for the first and then sees its ballot;
 *	- for every ballot row inserted, updated or deleted, change records
 *	  with exactly the opposite and new deltas are written in the same
 *	  transaction, so ballots = folded tallies + pending changes;
 *	- a change reads the old ballot under FOR UPDATE (or takes it from
 *	  DELETE ... RETURNING), so a change racing a retraction or another
 *	  change records the deltas of the row version it actually replaced;
 *	- every rule (poll exists, kind, open, options, voter, segment,
 *	  allow_change) is checked before anything is written, or the error
 *	  aborts the statement that wrote it: no partial write survives.
 *
 * A new voter's ballot is inserted without SQL too, optimistically: a
 * speculative insertion with no index probe before it, whose unique check
 * tells whether the voter had a ballot (see poll_insert_new_ballot).  Only then (or when poll.ballot has
 * grown an index or trigger of someone else's) does the vote take the SQL
 * path, which waits for a concurrent insert of the same voter and reads the
 * old ballot.
 *
 * Change records of single votes are appended with heap_insert, not SQL:
 * poll.change has no index and no trigger (checked on each open), so a
 * heap tuple is all a row is, and the executor's set-up for a statement
 * would cost more than the rest of the vote.
 *
 * Statements run as the owner of the extension's tables (like SECURITY
 * DEFINER, without its per-call cost), and name every table, function and
 * operator with its schema, so the caller's search_path cannot redirect
 * them.  Their plans are prepared once per session.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "parser/scansup.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "poll.h"

PG_FUNCTION_INFO_V1(poll_cast_vote);
PG_FUNCTION_INFO_V1(poll_cast_vote_multi);
PG_FUNCTION_INFO_V1(poll_cast_vote_text);
PG_FUNCTION_INFO_V1(poll_cast_votes);
PG_FUNCTION_INFO_V1(poll_retract_vote);

/*
 * A new ballot, the SQL path; SPI_processed is 0 when the voter already had
 * one.  $1 poll, $2 voter, $3 options, $4 segment.
 */
PollStatement poll_sql_insert_ballot = {
	"INSERT INTO poll.ballot (poll_id, voter, options, segment, cast_at)"
	" VALUES ($1, $2, $3, $4, pg_catalog.statement_timestamp())"
	" ON CONFLICT (poll_id, voter) DO NOTHING",
	4, {INT8OID, TEXTOID, INT4ARRAYOID, TEXTOID}
};

/* The voter's ballot, locked.  $1 poll, $2 voter. */
PollStatement poll_sql_lock_ballot = {
	"SELECT options, segment FROM poll.ballot"
	" WHERE poll_id OPERATOR(pg_catalog.=) $1 AND voter OPERATOR(pg_catalog.=) $2"
	" FOR UPDATE",
	2, {INT8OID, TEXTOID}
};

/* Replaces a locked ballot.  $1 poll, $2 voter, $3 new options, $4 new segment. */
PollStatement poll_sql_change_ballot = {
	"UPDATE poll.ballot SET options = $3, segment = $4, cast_at = pg_catalog.statement_timestamp()"
	" WHERE poll_id OPERATOR(pg_catalog.=) $1 AND voter OPERATOR(pg_catalog.=) $2",
	4, {INT8OID, TEXTOID, INT4ARRAYOID, TEXTOID}
};

/* Deletes a ballot, returning it; no row when there was none.  $1 poll, $2 voter. */
PollStatement poll_sql_delete_ballot = {
	"DELETE FROM poll.ballot"
	" WHERE poll_id OPERATOR(pg_catalog.=) $1 AND voter OPERATOR(pg_catalog.=) $2"
	" RETURNING options, segment",
	2, {INT8OID, TEXTOID}
};

/*
 * Bulk: new single-option ballots, with one change record per (option,
 * segment) group; returns how many ballots were inserted.
 * $1 poll, $2 voters, $3 options, $4 segments (NULL: none).
 */
static PollStatement insert_ballots = {
	"WITH ins AS ("
	"  INSERT INTO poll.ballot AS b (poll_id, voter, options, segment, cast_at)"
	"  SELECT $1, u.voter, ARRAY[u.option_id], u.segment, pg_catalog.statement_timestamp()"
	"    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
	"         AS u(voter, option_id, segment)"
	"  ON CONFLICT (poll_id, voter) DO NOTHING"
	"  RETURNING b.options[1] AS option_id, b.segment),"
	" ch AS ("
	"  INSERT INTO poll.change (poll_id, option_id, segment, votes, ballots, at)"
	"  SELECT $1, i.option_id, i.segment, pg_catalog.count(*), pg_catalog.count(*), pg_catalog.statement_timestamp()"
	"    FROM ins i GROUP BY i.option_id, i.segment)"
	" SELECT pg_catalog.count(*) FROM ins",
	4, {INT8OID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID}
};

/*
 * Bulk, when none of the voters has a ballot: a plain INSERT, without ON
 * CONFLICT's speculative insertion, which costs twice as much per row.
 * Raises a unique violation when a voter has a ballot.
 * $1 poll, $2 voters, $3 options, $4 segments (NULL: none).
 */
static PollStatement insert_new_ballots = {
	"WITH ins AS ("
	"  INSERT INTO poll.ballot (poll_id, voter, options, segment, cast_at)"
	"  SELECT $1, u.voter, ARRAY[u.option_id], u.segment, pg_catalog.statement_timestamp()"
	"    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
	"         AS u(voter, option_id, segment))"
	" INSERT INTO poll.change (poll_id, option_id, segment, votes, ballots, at)"
	" SELECT $1, u.option_id, u.segment, pg_catalog.count(*), pg_catalog.count(*), pg_catalog.statement_timestamp()"
	"   FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(option_id, segment)"
	"  GROUP BY u.option_id, u.segment",
	4, {INT8OID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID}
};

/*
 * Bulk: the change records of new single-option ballots written without
 * SQL (copy_new_ballots), one per (option, segment) group.
 * $1 poll, $2 options, $3 segments (NULL: none).
 */
static PollStatement insert_new_changes = {
	"INSERT INTO poll.change (poll_id, option_id, segment, votes, ballots, at)"
	" SELECT $1, u.option_id, u.segment, pg_catalog.count(*), pg_catalog.count(*),"
	" pg_catalog.statement_timestamp()"
	"   FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(option_id, segment)"
	"  GROUP BY u.option_id, u.segment",
	3, {INT8OID, INT4ARRAYOID, TEXTARRAYOID}
};

/* Bulk: the existing ballots of these voters, locked.  $1 poll, $2 voters. */
static PollStatement lock_ballots = {
	"SELECT u.ord, b.options[1], b.segment"
	"  FROM ROWS FROM (pg_catalog.unnest($2)) WITH ORDINALITY AS u(voter, ord)"
	"  JOIN poll.ballot b ON b.poll_id OPERATOR(pg_catalog.=) $1"
	"                    AND b.voter OPERATOR(pg_catalog.=) u.voter"
	" ORDER BY u.ord"
	"   FOR UPDATE OF b",
	2, {INT8OID, TEXTARRAYOID}
};

/*
 * Bulk: replaces locked single-option ballots.  $1 poll, $2 voters, $3 new
 * options, $4 new segments, $5 old options, $6 old segments.
 */
static PollStatement change_ballots = {
	"WITH u AS ("
	"  UPDATE poll.ballot b"
	"     SET options = ARRAY[x.option_id], segment = x.segment, cast_at = pg_catalog.statement_timestamp()"
	"    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
	"         AS x(voter, option_id, segment)"
	"   WHERE b.poll_id OPERATOR(pg_catalog.=) $1 AND b.voter OPERATOR(pg_catalog.=) x.voter)"
	" INSERT INTO poll.change (poll_id, option_id, segment, votes, ballots, at)"
	" SELECT $1, d.option_id, d.segment, pg_catalog.sum(d.votes), pg_catalog.sum(d.votes),"
	" pg_catalog.statement_timestamp()"
	"   FROM (SELECT n.option_id, n.segment, 1 AS votes"
	"           FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS n(option_id, segment)"
	"         UNION ALL"
	"         SELECT o.option_id, o.segment, -1"
	"           FROM ROWS FROM (pg_catalog.unnest($5), pg_catalog.unnest($6)) AS o(option_id, segment)) d"
	"  GROUP BY d.option_id, d.segment",
	6, {INT8OID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID}
};

static const char *cast_ballot(const PollInfo *poll, Datum voter,
							   const int32 *options, int n,
							   Datum segment, bool segment_null);

#define ELEMENT_DETAIL(element) \
	((element) > 0 ? errdetail("In element %d.", (element)) : 0)

void
poll_vote_begin(VoteSession *s, const char *what)
{
	Oid			owner;

	/*
	 * The vote path writes through the table AM, below the executor's
	 * read-only check: refuse here (25006), which also covers a standby.
	 */
	PreventCommandIfReadOnly(what);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = poll_owner();
	GetUserIdAndSecContext(&s->userid, &s->sec_context);
	SetUserIdAndSecContext(owner, s->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/* On error, transaction abort restores the user and closes SPI instead. */
void
poll_vote_end(VoteSession *s)
{
	SetUserIdAndSecContext(s->userid, s->sec_context);
	SPI_finish();
}

/*
 * Runs one of the extension's statements (SPI connected), preparing it on
 * first use; ERROR unless SPI answers expect.
 */
void
poll_run(PollStatement *st, Datum *args, const char *nulls, int expect)
{
	int			rc;

	if (st->plan == NULL)
	{
		/*
		 * A generic plan: the statements are single-row (or unnest-driven),
		 * and re-planning them on each vote would cost more than the vote.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(st->sql, st->nargs, st->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		st->plan = plan;
	}
	rc = SPI_execute_plan(st->plan, args, nulls, false, 0);
	if (rc != expect)
		elog(ERROR, "poll statement failed: %s", SPI_result_code_string(rc));
}

/* Refuses a poll that does not accept votes now. */
void
poll_check_open(const PollInfo *poll)
{
	TimestampTz now = GetCurrentStatementStartTimestamp();

	if (poll->closed || (poll->has_closes_at && now >= poll->closes_at))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("poll " INT64_FORMAT " is closed", poll->poll_id)));
	if (now < poll->opens_at)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("poll " INT64_FORMAT " is not open yet", poll->poll_id),
				 errdetail("It opens at %s.", timestamptz_to_str(poll->opens_at))));
}

/* A voter or segment: 1 to max_chars characters. */
void
poll_check_text(text *value, const char *what, int max_chars, int element)
{
	int			bytes = VARSIZE_ANY_EXHDR(value);
	int			chars;

	if (bytes == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what),
				 ELEMENT_DETAIL(element)));
	if (bytes <= max_chars)
		return;					/* never more characters than bytes */
	chars = pg_mbstrlen_with_len(VARDATA_ANY(value), bytes);
	if (chars > max_chars)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d characters, not %d", what, max_chars, chars),
				 ELEMENT_DETAIL(element)));
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * Sorts a ballot's options and checks them against the poll: each exists,
 * none twice, at most max_choices.  Returns the count.
 */
int
poll_normalize_options(const PollInfo *poll, int32 *options, int n)
{
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a ballot must choose at least one option")));
	if (n > poll->max_choices)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a ballot in poll " INT64_FORMAT " may choose at most %d options, not %d",
						poll->poll_id, poll->max_choices, n)));
	for (int i = 0; i < n; i++)
		if (options[i] < 1 || options[i] > poll->n_options)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option %d does not exist in poll " INT64_FORMAT,
							options[i], poll->poll_id),
					 errdetail("The poll's options are numbered 1 to %d.", poll->n_options)));
	qsort(options, n, sizeof(int32), cmp_int32);
	for (int i = 1; i < n; i++)
		if (options[i] == options[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option %d is chosen more than once", options[i])));
	return n;
}

Datum
poll_options_datum(const int32 *options, int n)
{
	Datum		d[POLL_MAX_OPTIONS];

	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(options[i]);
	return PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/*
 * Opens poll.ballot and its primary key for a write without SQL, when the
 * table is as the extension made it: no trigger, no row security, the
 * primary key (poll_id, voter) its only index.  Otherwise (someone added a
 * trigger or an index) returns false, having opened nothing, and the
 * caller writes through SQL, which honours them.
 */
static bool
open_plain_ballots(Relation *ballots, Relation *pkey)
{
	Relation	rel = table_open(poll_ballot_relid(), RowExclusiveLock);
	List	   *indexes = RelationGetIndexList(rel);
	Relation	index;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhastriggers ||
		rel->rd_rel->relrowsecurity || list_length(indexes) != 1 ||
		RelationGetDescr(rel)->natts != 5)
	{
		table_close(rel, NoLock);
		return false;
	}
	index = index_open(linitial_oid(indexes), RowExclusiveLock);
	if (!index->rd_index->indisunique || index->rd_index->indnatts != 2 ||
		index->rd_index->indkey.values[0] != 1 || index->rd_index->indkey.values[1] != 2)
	{
		index_close(index, NoLock);
		table_close(rel, NoLock);
		return false;
	}
	*ballots = rel;
	*pkey = index;
	return true;
}

/*
 * Inserts a new voter's ballot directly.  Returns false, having written
 * nothing that survives, when the voter may already have a ballot (or one
 * is being inserted concurrently) or when poll.ballot is not as the
 * extension made it: the caller then takes the SQL path.
 *
 * The insertion is speculative, as INSERT ... ON CONFLICT's: on a possible
 * duplicate the tuple is super-deleted, dead to every snapshot at once, so
 * that two sessions racing for the same new voter never wait for each
 * other's transaction (a plain insert and delete would make each wait for
 * the other: a deadlock).  The index insert checks uniqueness without
 * waiting (UNIQUE_CHECK_PARTIAL); the SQL path does the waiting.
 */
bool
poll_insert_new_ballot(int64 poll_id, Datum voter, Datum options, Datum segment, bool segment_null)
{
	Relation	ballots;
	Relation	pkey;
	IndexInfo  *info;
	TupleTableSlot *slot;
	TransactionId xid;
	uint32		token;
	bool		unique;

	if (!open_plain_ballots(&ballots, &pkey))
		return false;

	slot = MakeSingleTupleTableSlot(RelationGetDescr(ballots), &TTSOpsVirtual);
	ExecClearTuple(slot);
	slot->tts_values[0] = Int64GetDatum(poll_id);
	slot->tts_values[1] = voter;
	slot->tts_values[2] = options;
	slot->tts_values[3] = segment;
	slot->tts_values[4] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	memset(slot->tts_isnull, 0, 5 * sizeof(bool));
	slot->tts_isnull[3] = segment_null;
	ExecStoreVirtualTuple(slot);

	xid = GetCurrentTransactionId();
	token = SpeculativeInsertionLockAcquire(xid);
	table_tuple_insert_speculative(ballots, slot, GetCurrentCommandId(true), 0, NULL, token);
	info = BuildIndexInfo(pkey);
	unique = index_insert(pkey, slot->tts_values, slot->tts_isnull, &slot->tts_tid, ballots,
						  UNIQUE_CHECK_PARTIAL, false, info);
	/* on a possible conflict the heap tuple is super-deleted, as ON CONFLICT does */
	table_tuple_complete_speculative(ballots, slot, token, unique);
	SpeculativeInsertionLockRelease(xid);

	ExecDropSingleTupleTableSlot(slot);
	index_close(pkey, NoLock);
	table_close(ballots, NoLock);
	return unique;
}

Relation
poll_open_changes(void)
{
	Relation	rel = table_open(poll_change_relid(), RowExclusiveLock);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasindex ||
		rel->rd_rel->relhastriggers || RelationGetDescr(rel)->natts != 6)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("poll.change must be a plain table without indexes or triggers")));
	return rel;
}

/* One change record: votes and ballots are deltas of one option in one segment. */
static void
write_change(Relation rel, int64 poll_id, int32 option, Datum segment, bool segment_null,
			 int32 votes, int32 ballots)
{
	Datum		values[6];
	bool		nulls[6] = {false, false, segment_null, false, false, false};
	HeapTuple	tuple;

	values[0] = Int64GetDatum(poll_id);
	values[1] = Int32GetDatum(option);
	values[2] = segment;
	values[3] = Int32GetDatum(votes);
	values[4] = Int32GetDatum(ballots);
	values[5] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	simple_heap_insert(rel, tuple);
	heap_freetuple(tuple);
}

/*
 * The change records of one ballot: sign +1 for a ballot that appears, -1
 * for one that goes.  Each moves the ballot count of its segment by one,
 * on its first option: a change writes -1 for the old ballot and +1 for
 * the new, so the poll's count stays and a ballot that moves to another
 * segment is counted there (results_by_segment's smallest segment).
 */
void
poll_write_ballot_changes(Relation rel, int64 poll_id, const int32 *options, int n,
					 Datum segment, bool segment_null, int sign)
{
	for (int i = 0; i < n; i++)
		write_change(rel, poll_id, options[i], segment, segment_null, sign,
					 i == 0 ? sign : 0);
}

void
poll_refuse_change(const PollInfo *poll, const char *what, int element)
{
	if (element > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("%s not allowed in poll " INT64_FORMAT, what, poll->poll_id),
				 errdetail("In element %d: the voter already has a ballot, and the poll does not allow changing it.",
						   element)));
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("%s not allowed in poll " INT64_FORMAT, what, poll->poll_id),
			 errdetail("The poll does not allow changing or retracting a ballot.")));
}

/*
 * One voter's ballot: insert it, or replace the one the voter has.  The
 * loop runs again only when the ballot it found was retracted before it
 * could lock it.
 */
static const char *
cast_ballot(const PollInfo *poll, Datum voter, const int32 *options, int n,
			Datum segment, bool segment_null)
{
	Datum		opts = poll_options_datum(options, n);

	if (poll_insert_new_ballot(poll->poll_id, voter, opts, segment, segment_null))
	{
		Relation	changes = poll_open_changes();

		poll_write_ballot_changes(changes, poll->poll_id, options, n, segment, segment_null, 1);
		table_close(changes, NoLock);
		poll_note_change_written();
		return "cast";
	}

	for (;;)
	{
		Datum		args[4] = {Int64GetDatum(poll->poll_id), voter, opts, segment};
		char		nulls[4] = {' ', ' ', ' ', segment_null ? 'n' : ' '};
		ArrayType  *old;
		int			nold;
		bool		isnull;
		bool		old_segment_null;
		Datum		old_segment;
		Relation	changes;

		poll_run(&poll_sql_insert_ballot, args, nulls, SPI_OK_INSERT);
		if (SPI_processed > 0)
		{
			changes = poll_open_changes();
			poll_write_ballot_changes(changes, poll->poll_id, options, n, segment, segment_null, 1);
			table_close(changes, NoLock);
			poll_note_change_written();
			return "cast";
		}

		poll_run(&poll_sql_lock_ballot, args, nulls, SPI_OK_SELECT);
		if (SPI_processed == 0)
		{
			CHECK_FOR_INTERRUPTS();
			continue;
		}

		old = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
		nold = ArrayGetNItems(ARR_NDIM(old), ARR_DIMS(old));
		old_segment = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
									&old_segment_null);
		if (nold == n && memcmp(ARR_DATA_PTR(old), options, n * sizeof(int32)) == 0)
			return "unchanged";
		if (!poll->allow_change)
			poll_refuse_change(poll, "changing a ballot is", 0);

		poll_run(&poll_sql_change_ballot, args, nulls, SPI_OK_UPDATE);
		changes = poll_open_changes();
		poll_write_ballot_changes(changes, poll->poll_id, (int32 *) ARR_DATA_PTR(old), nold,
							 old_segment, old_segment_null, -1);
		poll_write_ballot_changes(changes, poll->poll_id, options, n, segment, segment_null, 1);
		table_close(changes, NoLock);
		poll_note_change_written();
		return "changed";
	}
}

/*
 * Both forms of cast_vote; array_form: the ballot was given as an array,
 * which only multi-choice polls take.
 */
static const char *
cast_vote(FunctionCallInfo fcinfo, int32 *options, int n, bool array_form)
{
	int64		poll_id = PG_GETARG_INT64(0);
	text	   *voter = PG_GETARG_TEXT_PP(1);
	bool		segment_null = PG_ARGISNULL(3);
	Datum		segment = segment_null ? (Datum) 0 : PointerGetDatum(PG_GETARG_TEXT_PP(3));
	VoteSession s;
	PollInfo	poll;
	const char *result;

	poll_check_text(voter, "voter", POLL_MAX_VOTER, 0);
	if (!segment_null)
		poll_check_text((text *) DatumGetPointer(segment), "segment", POLL_MAX_SEGMENT, 0);

	poll_vote_begin(&s, "poll.cast_vote()");
	poll = *poll_info(poll_id);
	if (array_form && !poll.multi)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("poll " INT64_FORMAT " is a single-choice poll", poll_id),
				 errhint("Pass one option_id, not an array.")));
	poll_check_open(&poll);
	n = poll_normalize_options(&poll, options, n);
	if (!segment_null)
		poll_check_segment(&poll, (text *) DatumGetPointer(segment));
	result = cast_ballot(&poll, PointerGetDatum(voter), options, n, segment, segment_null);
	poll_vote_end(&s);
	return result;
}

static void
require_args(FunctionCallInfo fcinfo, int nargs, const char *const *names)
{
	for (int i = 0; i < nargs; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", names[i])));
}

/*
 * poll.cast_vote(poll_id bigint, voter text, option_id int, segment text)
 */
Datum
poll_cast_vote(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"poll_id", "voter", "option_id"};
	int32		option;

	require_args(fcinfo, 3, names);
	option = PG_GETARG_INT32(2);
	PG_RETURN_TEXT_P(cstring_to_text(cast_vote(fcinfo, &option, 1, false)));
}

/*
 * poll.cast_vote(poll_id bigint, voter text, option_ids int[], segment text)
 */
Datum
poll_cast_vote_multi(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"poll_id", "voter", "option_ids"};
	ArrayType  *array;
	int32		options[POLL_MAX_OPTIONS];
	int			n;

	require_args(fcinfo, 3, names);
	array = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option_ids must be a one-dimensional array")));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("option_ids must not contain nulls")));
	n = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	if (n > POLL_MAX_OPTIONS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a ballot may choose at most %d options, not %d", POLL_MAX_OPTIONS, n)));
	memcpy(options, ARR_DATA_PTR(array), n * sizeof(int32));
	PG_RETURN_TEXT_P(cstring_to_text(cast_vote(fcinfo, options, n, true)));
}

static void
bad_ballot_text(const char *text)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid ballot: \"%s\"", text),
			 errhint("Give one option id, such as 2, or a list of them, such as {1,3} or [1,3].")));
}

/*
 * Parses a ballot given as text: one option id ("2"), or a list of them in
 * PostgreSQL's array syntax ("{1,3}", or "{"1","3"}" as node-postgres
 * sends a JavaScript array), JSON's ("[1,3]") or bare ("1,3", as
 * postgres.js sends an array for a text parameter); elements may be
 * quoted.  Returns the number of options; *list tells whether it was a
 * list, which only multi-choice polls take.
 */
int
poll_parse_ballot_text(const char *text, int32 *options, bool *list)
{
	const char *p = text;
	char		close = '\0';
	int			n = 0;

	while (scanner_isspace(*p))
		p++;
	if (*p == '{' || *p == '[')
	{
		close = (*p == '{') ? '}' : ']';
		p++;
	}
	*list = (close != '\0');
	for (;;)
	{
		char		token[16];
		int			len = 0;
		bool		quoted;

		while (scanner_isspace(*p))
			p++;
		if (close != '\0' && *p == close && n == 0)
			break;				/* an empty list */
		quoted = (*p == '"');
		if (quoted)
			p++;
		if (*p == '-' || *p == '+')
			token[len++] = *p++;
		while (*p >= '0' && *p <= '9' && len < (int) sizeof(token) - 1)
			token[len++] = *p++;
		if (len == 0 || (len == 1 && (token[0] == '-' || token[0] == '+')) ||
			(*p >= '0' && *p <= '9') || (quoted && *p != '"'))
			bad_ballot_text(text);
		if (quoted)
			p++;
		token[len] = '\0';
		if (n == POLL_MAX_OPTIONS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a ballot may choose at most %d options", POLL_MAX_OPTIONS)));
		options[n++] = pg_strtoint32(token);
		while (scanner_isspace(*p))
			p++;
		if (*p != ',')
			break;
		*list = true;			/* "1,3" without brackets is a list too */
		p++;
	}
	if (close != '\0')
	{
		if (*p != close)
			bad_ballot_text(text);
		p++;
	}
	while (scanner_isspace(*p))
		p++;
	if (*p != '\0')
		bad_ballot_text(text);
	return n;
}

/*
 * poll.cast_vote(poll_id bigint, voter text, ballot text, segment text)
 *
 * For drivers that send parameters untyped (node-postgres, postgres.js,
 * pgbench -M extended): given an unknown-typed third argument, PostgreSQL
 * prefers the overload whose parameter is of the string category, so this
 * one receives '2', '{1,3}', '{"1","3"}', '[1,3]' or '1,3' and votes as the
 * int or the int[] form would.
 */
Datum
poll_cast_vote_text(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"poll_id", "voter", "ballot"};
	int32		options[POLL_MAX_OPTIONS];
	bool		list;
	int			n;

	require_args(fcinfo, 3, names);
	n = poll_parse_ballot_text(text_to_cstring(PG_GETARG_TEXT_PP(2)), options, &list);
	PG_RETURN_TEXT_P(cstring_to_text(cast_vote(fcinfo, options, n, list)));
}

/*
 * poll.retract_vote(poll_id bigint, voter text)
 */
Datum
poll_retract_vote(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"poll_id", "voter"};
	VoteSession s;
	PollInfo	poll;
	Datum		args[2];
	bool		removed;

	require_args(fcinfo, 2, names);
	poll_check_text(PG_GETARG_TEXT_PP(1), "voter", POLL_MAX_VOTER, 0);

	poll_vote_begin(&s, "poll.retract_vote()");
	poll = *poll_info(PG_GETARG_INT64(0));
	poll_check_open(&poll);
	if (!poll.allow_change)
		poll_refuse_change(&poll, "retracting a ballot is", 0);
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PointerGetDatum(PG_GETARG_TEXT_PP(1));
	poll_run(&poll_sql_delete_ballot, args, NULL, SPI_OK_DELETE_RETURNING);
	removed = SPI_processed > 0;
	if (removed)
	{
		bool		isnull;
		ArrayType  *old = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));
		bool		segment_null;
		Datum		segment = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
											&segment_null);
		Relation	changes = poll_open_changes();

		poll_write_ballot_changes(changes, poll.poll_id, (int32 *) ARR_DATA_PTR(old),
							 ArrayGetNItems(ARR_NDIM(old), ARR_DIMS(old)),
							 segment, segment_null, -1);
		table_close(changes, NoLock);
		poll_note_change_written();
	}
	poll_vote_end(&s);
	PG_RETURN_BOOL(removed);
}

/* ---- bulk ingest ---- */

typedef struct VoterRef
{
	const char *data;
	int			len;
	int			index;
} VoterRef;

static int
cmp_voter(const void *a, const void *b)
{
	const VoterRef *x = a;
	const VoterRef *y = b;
	int			c;

	if (x->len != y->len)
		return (x->len > y->len) - (x->len < y->len);
	c = memcmp(x->data, y->data, x->len);
	if (c != 0)
		return c;
	return (x->index > y->index) - (x->index < y->index);
}

/* A one-dimensional array's elements; NULL elements are reported by the caller. */
int
poll_array_elements(ArrayType *a, const char *name, Oid type, Datum **values, bool **nulls)
{
	int			n;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", name)));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(a, type, typlen, typbyval, typalign, values, nulls, &n);
	return n;
}

/*
 * Checks every element, in order, so that the error names the first bad
 * one.  Returns nothing: any bad element aborts the call.
 */
static void
check_elements(const PollInfo *poll, int n, Datum *voters, bool *voter_nulls,
			   Datum *options, bool *option_nulls, Datum *segments, bool *segment_nulls)
{
	VoterRef   *refs = palloc(n * sizeof(VoterRef));
	bool	   *repeated = palloc0(n * sizeof(bool));
	int			m = 0;

	/* a voter twice in one call: every occurrence after the first is bad */
	for (int i = 0; i < n; i++)
		if (!voter_nulls[i])
		{
			text	   *t = (text *) DatumGetPointer(voters[i]);

			refs[m].data = VARDATA_ANY(t);
			refs[m].len = VARSIZE_ANY_EXHDR(t);
			refs[m].index = i;
			m++;
		}
	qsort(refs, m, sizeof(VoterRef), cmp_voter);
	for (int i = 1; i < m; i++)
		if (refs[i].len == refs[i - 1].len &&
			memcmp(refs[i].data, refs[i - 1].data, refs[i].len) == 0)
			repeated[refs[i].index] = true;

	for (int i = 0; i < n; i++)
	{
		int			element = i + 1;

		if (voter_nulls[i] || option_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", voter_nulls[i] ? "voter" : "option_id"),
					 ELEMENT_DETAIL(element)));
		poll_check_text((text *) DatumGetPointer(voters[i]), "voter", POLL_MAX_VOTER, element);
		if (segments != NULL && !segment_nulls[i])
			poll_check_text((text *) DatumGetPointer(segments[i]), "segment", POLL_MAX_SEGMENT, element);
		if (DatumGetInt32(options[i]) < 1 || DatumGetInt32(options[i]) > poll->n_options)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option %d does not exist in poll " INT64_FORMAT,
							DatumGetInt32(options[i]), poll->poll_id),
					 errdetail("In element %d; the poll's options are numbered 1 to %d.",
							   element, poll->n_options)));
		if (repeated[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("voter \"%s\" appears more than once",
							text_to_cstring((text *) DatumGetPointer(voters[i]))),
					 ELEMENT_DETAIL(element)));
	}
	pfree(refs);
	pfree(repeated);
}

static ArrayType *
text_array(Datum *values, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return construct_md_array(values, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT);
}

static ArrayType *
int4_array(Datum *values, int n)
{
	return construct_array(values, n, INT4OID, sizeof(int32), true, TYPALIGN_INT);
}

/*
 * Replaces the ballots of voters who already had one; returns how many
 * changed.  Sets *missing for elements whose ballot was neither inserted
 * by us nor found (retracted meanwhile): the caller inserts them again.
 */
static int64
change_existing(const PollInfo *poll, int n, Datum *voters, Datum *options,
				Datum *segments, bool *segment_nulls, bool *missing)
{
	Datum		args[6];
	int			nchanged = 0;
	Datum	   *v = palloc(n * sizeof(Datum));
	Datum	   *new_opt = palloc(n * sizeof(Datum));
	Datum	   *new_seg = palloc(n * sizeof(Datum));
	bool	   *new_seg_null = palloc(n * sizeof(bool));
	Datum	   *old_opt = palloc(n * sizeof(Datum));
	Datum	   *old_seg = palloc(n * sizeof(Datum));
	bool	   *old_seg_null = palloc(n * sizeof(bool));

	args[0] = Int64GetDatum(poll->poll_id);
	args[1] = PointerGetDatum(text_array(voters, NULL, n));
	poll_run(&lock_ballots, args, NULL, SPI_OK_SELECT);

	for (int i = 0; i < n; i++)
		missing[i] = true;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	row = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			i = (int) DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull)) - 1;
		int32		old = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
		bool		seg_null;
		Datum		seg = SPI_getbinval(row, desc, 3, &seg_null);

		missing[i] = false;
		if (old == DatumGetInt32(options[i]))
			continue;			/* inserted by this call, or unchanged */
		if (!poll->allow_change)
			poll_refuse_change(poll, "changing a ballot is", i + 1);
		v[nchanged] = voters[i];
		new_opt[nchanged] = options[i];
		new_seg[nchanged] = segments ? segments[i] : (Datum) 0;
		new_seg_null[nchanged] = segments ? segment_nulls[i] : true;
		old_opt[nchanged] = Int32GetDatum(old);
		old_seg[nchanged] = seg_null ? (Datum) 0 : datumCopy(seg, false, -1);
		old_seg_null[nchanged] = seg_null;
		nchanged++;
	}

	if (nchanged > 0)
	{
		args[1] = PointerGetDatum(text_array(v, NULL, nchanged));
		args[2] = PointerGetDatum(int4_array(new_opt, nchanged));
		args[3] = PointerGetDatum(text_array(new_seg, new_seg_null, nchanged));
		args[4] = PointerGetDatum(int4_array(old_opt, nchanged));
		args[5] = PointerGetDatum(text_array(old_seg, old_seg_null, nchanged));
		poll_run(&change_ballots, args, NULL, SPI_OK_INSERT);
	}
	return nchanged;
}

/* The arguments of the bulk statements for the first n elements. */
static void
bulk_args(Datum *args, char *nulls, int64 poll_id, int n, Datum *voters, Datum *options,
		  Datum *segments, bool *segment_nulls)
{
	args[0] = Int64GetDatum(poll_id);
	args[1] = PointerGetDatum(text_array(voters, NULL, n));
	args[2] = PointerGetDatum(int4_array(options, n));
	args[3] = segments ? PointerGetDatum(text_array(segments, segment_nulls, n)) : (Datum) 0;
	nulls[3] = segments ? ' ' : 'n';
}

#define BULK_BATCH	1000		/* tuples per heap_multi_insert, as COPY's buffer */

/*
 * New single-option ballots for every element, written as COPY writes
 * rows: heap tuples in batches (one WAL record per page), then their
 * primary-key entries, whose unique check raises 23505 when a voter has a
 * ballot (or waits for a concurrent insert of it, as INSERT does).
 * Returns false, having written nothing, when poll.ballot is not as the
 * extension made it (see open_plain_ballots).
 */
static bool
copy_new_ballots(const PollInfo *poll, int n, Datum *voters, Datum *options,
				 Datum *segments, bool *segment_nulls)
{
	Relation	ballots;
	Relation	pkey;
	IndexInfo  *info;
	TupleTableSlot *slots[BULK_BATCH];
	int			nslots = Min(n, BULK_BATCH);
	BulkInsertState bistate;
	CommandId	cid = GetCurrentCommandId(true);
	TimestampTz now = GetCurrentStatementStartTimestamp();
	Datum		one_option[POLL_MAX_OPTIONS + 1];
	MemoryContext batch_cxt;

	if (!open_plain_ballots(&ballots, &pkey))
		return false;
	info = BuildIndexInfo(pkey);
	bistate = GetBulkInsertState();
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "poll bulk ballots",
									  ALLOCSET_DEFAULT_SIZES);
	/* a ballot's options: the one-element arrays, built once (check_elements checked 1..n) */
	for (int o = 1; o <= poll->n_options; o++)
		one_option[o] = poll_options_datum(&o, 1);
	for (int j = 0; j < nslots; j++)
		slots[j] = table_slot_create(ballots, NULL);

	for (int start = 0; start < n; start += BULK_BATCH)
	{
		int			k = Min(BULK_BATCH, n - start);
		MemoryContext old = MemoryContextSwitchTo(batch_cxt);

		for (int j = 0; j < k; j++)
		{
			int			i = start + j;
			TupleTableSlot *slot = slots[j];

			ExecClearTuple(slot);
			slot->tts_values[0] = Int64GetDatum(poll->poll_id);
			slot->tts_values[1] = voters[i];
			slot->tts_values[2] = one_option[DatumGetInt32(options[i])];
			slot->tts_values[3] = segments ? segments[i] : (Datum) 0;
			slot->tts_values[4] = TimestampTzGetDatum(now);
			memset(slot->tts_isnull, 0, 5 * sizeof(bool));
			slot->tts_isnull[3] = (segments == NULL || segment_nulls[i]);
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(ballots, slots, k, cid, 0, bistate);
		for (int j = 0; j < k; j++)
		{
			Datum		key[2] = {Int64GetDatum(poll->poll_id), voters[start + j]};
			bool		key_nulls[2] = {false, false};

			index_insert(pkey, key, key_nulls, &slots[j]->tts_tid, ballots,
						 UNIQUE_CHECK_YES, false, info);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
		CHECK_FOR_INTERRUPTS();
	}

	for (int j = 0; j < nslots; j++)
		ExecDropSingleTupleTableSlot(slots[j]);
	MemoryContextDelete(batch_cxt);
	FreeBulkInsertState(bistate);
	index_close(pkey, NoLock);
	table_close(ballots, NoLock);
	return true;
}

/*
 * New ballots for every element: without SQL when the table allows, then
 * their change records; through one SQL statement otherwise.
 */
static void
insert_new(const PollInfo *poll, int n, Datum *voters, Datum *options,
		   Datum *segments, bool *segment_nulls, Datum *args, const char *nulls)
{
	if (copy_new_ballots(poll, n, voters, options, segments, segment_nulls))
	{
		Datum		change_args[3] = {args[0], args[2], args[3]};
		char		change_nulls[3] = {nulls[0], nulls[2], nulls[3]};

		poll_run(&insert_new_changes, change_args, change_nulls, SPI_OK_INSERT);
	}
	else
		poll_run(&insert_new_ballots, args, nulls, SPI_OK_INSERT);
}

/*
 * Tries the whole call as new ballots, in a subtransaction; false when a
 * voter already had a ballot (the subtransaction is rolled back, nothing
 * is written).  Any other error propagates.
 */
static bool
insert_all_new(const PollInfo *poll, int n, Datum *voters, Datum *options,
			   Datum *segments, bool *segment_nulls, Datum *args, const char *nulls)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool inserted = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		insert_new(poll, n, voters, options, segments, segment_nulls, args, nulls);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * Whatever the error (a cancel, a timeout and a deadlock included),
		 * the subtransaction is rolled back before it goes on: an error
		 * thrown past an open internal subtransaction leaves the session's
		 * transaction state broken, and the next statement fails.
		 */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		inserted = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return inserted;
}

/*
 * poll.cast_votes(poll_id bigint, voters text[], option_ids int[], segments text[])
 *
 * All or nothing: every element is checked before anything is written;
 * an error found while writing aborts the whole call.  The common case,
 * new voters, is one plain INSERT; when some voter already had a ballot,
 * it is rolled back and the call takes the general path: insert the new
 * ones with ON CONFLICT DO NOTHING, then lock and replace the others.
 */
Datum
poll_cast_votes(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"poll_id", "voters", "option_ids"};
	VoteSession s;
	PollInfo	poll;
	Datum	   *voters,
			   *options,
			   *segments = NULL;
	bool	   *voter_nulls,
			   *option_nulls,
			   *segment_nulls = NULL;
	int			n,
				nopt;
	int64		count = 0;
	bool	   *missing;
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	require_args(fcinfo, 3, names);
	n = poll_array_elements(PG_GETARG_ARRAYTYPE_P(1), "voters", TEXTOID, &voters, &voter_nulls);
	nopt = poll_array_elements(PG_GETARG_ARRAYTYPE_P(2), "option_ids", INT4OID, &options, &option_nulls);
	if (nopt != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("voters and option_ids must have the same length, not %d and %d", n, nopt)));
	if (!PG_ARGISNULL(3))
	{
		int			nseg = poll_array_elements(PG_GETARG_ARRAYTYPE_P(3), "segments", TEXTOID,
										  &segments, &segment_nulls);

		if (nseg != n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("segments must be null or as long as voters, not %d and %d", nseg, n)));
	}

	poll_vote_begin(&s, "poll.cast_votes()");
	poll = *poll_info(PG_GETARG_INT64(0));
	if (poll.multi)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("poll " INT64_FORMAT " is a multi-choice poll", poll.poll_id),
				 errhint("cast_votes takes single-choice polls; use cast_vote with an array of options.")));
	poll_check_open(&poll);
	check_elements(&poll, n, voters, voter_nulls, options, option_nulls, segments, segment_nulls);
	if (segments != NULL)
		poll_check_segments(&poll, segments, segment_nulls, n);
	if (n == 0)
	{
		poll_vote_end(&s);
		PG_RETURN_INT64(0);
	}

	missing = palloc(n * sizeof(bool));
	bulk_args(args, nulls, poll.poll_id, n, voters, options, segments, segment_nulls);
	if (insert_all_new(&poll, n, voters, options, segments, segment_nulls, args, nulls))
	{
		poll_note_change_written();
		poll_vote_end(&s);
		PG_RETURN_INT64(n);
	}

	for (;;)
	{
		int64		inserted;
		int			nmissing = 0;
		bool		isnull;

		poll_run(&insert_ballots, args, nulls, SPI_OK_SELECT);
		inserted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   1, &isnull));
		count += inserted;
		if (inserted > 0)
			poll_note_change_written();
		if (inserted == n)
			break;

		count += change_existing(&poll, n, voters, options, segments, segment_nulls, missing);
		if (count > 0)
			poll_note_change_written();

		/* voters whose ballot vanished between the two passes go round again */
		for (int i = 0; i < n; i++)
			if (missing[i])
			{
				voters[nmissing] = voters[i];
				options[nmissing] = options[i];
				if (segments != NULL)
				{
					segments[nmissing] = segments[i];
					segment_nulls[nmissing] = segment_nulls[i];
				}
				nmissing++;
			}
		if (nmissing == 0)
			break;
		n = nmissing;
		bulk_args(args, nulls, poll.poll_id, n, voters, options, segments, segment_nulls);
		CHECK_FOR_INTERRUPTS();
	}
	poll_vote_end(&s);
	PG_RETURN_INT64(count);
}

/*
 * batch.c — poll.cast_vote_batch: many votes and retractions in one call,
 * each with an outcome of its own.
 *
 * poll-fanout records the votes of many clients in one transaction (group
 * commit), and one bad vote must fail alone, never its batch.  Element i
 * is (poll_ids[i], voters[i], ballots[i], segments[i]); a NULL ballot is a
 * retraction.  Each element follows the rules of cast_vote (the untyped
 * overload, whose ballot text parser it shares) or retract_vote, and gets
 * the result, or the SQLSTATE and message, that call would have given it.
 *
 * An element fails without a subtransaction, because nothing is written
 * for it before every rule it could break has been checked:
 *	1. the checks that need no ballot (arguments, ballot text, voter,
 *	   segment, poll, kind, schedule, options; allow_change for a
 *	   retraction) are the vote path's own, run under PG_TRY.  They compute
 *	   and raise, holding no lock, buffer or running statement, so catching
 *	   their error is safe; only the SQLSTATEs they raise are caught
 *	   (element_error), anything else (a cancel, out of memory) aborts the
 *	   call.
 *	2. a new segment past poll.max_segments (54000): poll_check_segment
 *	   under PG_TRY too, which raises only after its statements finished.
 *	   A segment is registered by the first element that carries it (in
 *	   array order) once that element passed step 1, even if step 3 then
 *	   refuses it.
 *	3. the one rule that needs the ballot (a change where the poll does not
 *	   allow it: 23505) is decided in memory, from the voter's locked ballot,
 *	   before the ballot is written.
 * So no subtransaction, no subtransaction xid: a batch of any size keeps
 * every other backend's snapshots cheap.
 *
 * Order, and why two batches never deadlock: the elements of one voter in
 * one poll (a group) apply in array order, to the ballot in memory, which
 * is then written once (its change records are written per element, as
 * the calls one by one would write them).  Groups are applied in a fixed
 * order, by poll_id, then by the voter's bytes, so every batch locks
 * ballots (and waits for other transactions' inserts of the same voter) in
 * the same order; new segments lock their polls' poll.poll rows in step 2,
 * in poll_id order, before any ballot, as cast_vote locks the poll row
 * before its ballot.  A single cast_vote or retract_vote holds one ballot,
 * so it cannot close a cycle either.  (This holds for one call per
 * transaction; a transaction that calls twice may hold ballots of the
 * first call that the second's order does not know.)
 *
 * A group of a new voter, the common case, is written as cast_vote writes
 * a new voter: one speculative insertion, no probe before it.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"

#include "poll.h"

PG_FUNCTION_INFO_V1(poll_cast_vote_batch);

/* A voter's ballot in one poll, as a group's elements leave it. */
typedef struct Ballot
{
	bool		exists;
	int			n;
	int32		options[POLL_MAX_OPTIONS];	/* ascending */
	Datum		segment;
	bool		segment_null;
} Ballot;

typedef struct Element
{
	int			ord;			/* 1-based */
	int64		poll_id;
	text	   *voter;
	text	   *segment;		/* NULL: none */
	bool		retract;		/* the ballot was NULL */
	int			n;				/* options chosen, ascending */
	int32	   *options;
	PollInfo	poll;
	/* the outcome: result or sqlstate */
	const char *result;
	int			nlive;			/* the voter's ballot after the element */
	int32	   *live;
	char	   *sqlstate;
	char	   *message;
} Element;

/* The arguments of one call, deconstructed. */
typedef struct BatchArgs
{
	Datum	   *poll_ids;
	bool	   *poll_id_nulls;
	Datum	   *voters;
	bool	   *voter_nulls;
	Datum	   *ballots;
	bool	   *ballot_nulls;
	Datum	   *segments;		/* NULL: no segments at all */
	bool	   *segment_nulls;
} BatchArgs;

typedef void (*ElementCheck) (Element *e, const void *arg);

static bool element_error(int sqlerrcode);
static bool run_check(Element *e, ElementCheck check, const void *arg, int only);
static void check_element(Element *e, const void *arg);
static void check_segment(Element *e, const void *arg);
static void refuse_element_change(Element *e, const void *arg);
static int	apply_elements(Element **group, int k, Ballot *ballot, Relation changes);
static void apply_group(Element **group, int k);

/* The SQLSTATEs the vote path's checks raise for a bad vote or retraction. */
static bool
element_error(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_NULL_VALUE_NOT_ALLOWED:
		case ERRCODE_INVALID_PARAMETER_VALUE:
		case ERRCODE_INVALID_TEXT_REPRESENTATION:
		case ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE:
		case ERRCODE_NO_DATA_FOUND:
		case ERRCODE_WRONG_OBJECT_TYPE:
		case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:
		case ERRCODE_UNIQUE_VIOLATION:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return true;
		default:
			return false;
	}
}

/*
 * Runs a check of one element; false, with the element's outcome set to
 * the error, when it raised one of element_error's SQLSTATEs (only: that
 * one alone, unless 0).  Safe only for checks that raise while holding
 * nothing (see the header).
 */
static bool
run_check(Element *e, ElementCheck check, const void *arg, int only)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		check(e, arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (only != 0 ? edata->sqlerrcode != only : !element_error(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		e->result = NULL;
		e->sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
		e->message = edata->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static void
null_argument(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", name)));
}

/*
 * Step 1: the element's checks that need no ballot, in the order
 * cast_vote(bigint, text, text, text) and retract_vote make them.
 */
static void
check_element(Element *e, const void *arg)
{
	const BatchArgs *a = arg;
	int			i = e->ord - 1;
	int32		options[POLL_MAX_OPTIONS];
	bool		list = false;

	if (a->poll_id_nulls[i])
		null_argument("poll_id");
	if (a->voter_nulls[i])
		null_argument("voter");
	e->poll_id = DatumGetInt64(a->poll_ids[i]);
	e->retract = a->ballot_nulls[i];
	if (!e->retract)
		e->n = poll_parse_ballot_text(TextDatumGetCString(a->ballots[i]), options, &list);
	e->voter = (text *) DatumGetPointer(a->voters[i]);
	poll_check_text(e->voter, "voter", POLL_MAX_VOTER, 0);
	if (!e->retract && a->segments != NULL && !a->segment_nulls[i])
	{
		e->segment = (text *) DatumGetPointer(a->segments[i]);
		poll_check_text(e->segment, "segment", POLL_MAX_SEGMENT, 0);
	}
	e->poll = *poll_info(e->poll_id);
	if (list && !e->poll.multi)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("poll " INT64_FORMAT " is a single-choice poll", e->poll_id),
				 errhint("Pass one option_id, not an array.")));
	poll_check_open(&e->poll);
	if (e->retract)
	{
		if (!e->poll.allow_change)
			poll_refuse_change(&e->poll, "retracting a ballot is", 0);
		return;
	}
	e->n = poll_normalize_options(&e->poll, options, e->n);
	e->options = palloc(e->n * sizeof(int32));
	memcpy(e->options, options, e->n * sizeof(int32));
}

/* Step 2: registers the element's segment, or refuses it (54000). */
static void
check_segment(Element *e, const void *arg)
{
	poll_check_segment(&e->poll, e->segment);
}

/* Step 3's error: a change where the poll does not allow one. */
static void
refuse_element_change(Element *e, const void *arg)
{
	poll_refuse_change(&e->poll, "changing a ballot is", 0);
}

static int
cmp_by_poll(const void *a, const void *b)
{
	const Element *x = *(Element *const *) a;
	const Element *y = *(Element *const *) b;

	if (x->poll_id != y->poll_id)
		return (x->poll_id > y->poll_id) - (x->poll_id < y->poll_id);
	return (x->ord > y->ord) - (x->ord < y->ord);
}

/* The order of groups, the same in every batch: poll, voter's bytes; then array order. */
static int
cmp_by_voter(const void *a, const void *b)
{
	const Element *x = *(Element *const *) a;
	const Element *y = *(Element *const *) b;
	int			xlen,
				ylen,
				c;

	if (x->poll_id != y->poll_id)
		return (x->poll_id > y->poll_id) - (x->poll_id < y->poll_id);
	xlen = VARSIZE_ANY_EXHDR(x->voter);
	ylen = VARSIZE_ANY_EXHDR(y->voter);
	c = memcmp(VARDATA_ANY(x->voter), VARDATA_ANY(y->voter), Min(xlen, ylen));
	if (c != 0)
		return c;
	if (xlen != ylen)
		return (xlen > ylen) - (xlen < ylen);
	return (x->ord > y->ord) - (x->ord < y->ord);
}

static bool
same_voter(const Element *x, const Element *y)
{
	return x->poll_id == y->poll_id &&
		VARSIZE_ANY_EXHDR(x->voter) == VARSIZE_ANY_EXHDR(y->voter) &&
		memcmp(VARDATA_ANY(x->voter), VARDATA_ANY(y->voter), VARSIZE_ANY_EXHDR(x->voter)) == 0;
}

/* The ballot a poll_sql_lock_ballot or poll_sql_delete_ballot row holds, copied. */
static void
ballot_from_row(Ballot *ballot)
{
	HeapTuple	row = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	ArrayType  *options = DatumGetArrayTypeP(SPI_getbinval(row, desc, 1, &isnull));
	Datum		segment = SPI_getbinval(row, desc, 2, &ballot->segment_null);

	ballot->exists = true;
	ballot->n = Min(ArrayGetNItems(ARR_NDIM(options), ARR_DIMS(options)), POLL_MAX_OPTIONS);
	memcpy(ballot->options, ARR_DATA_PTR(options), ballot->n * sizeof(int32));
	ballot->segment = ballot->segment_null ? (Datum) 0 : datumCopy(segment, false, -1);
	SPI_freetuptable(SPI_tuptable);
}

static void
ballot_args(Datum *args, char *nulls, const Element *e, const Ballot *ballot)
{
	args[0] = Int64GetDatum(e->poll_id);
	args[1] = PointerGetDatum(e->voter);
	args[2] = ballot->exists ? poll_options_datum(ballot->options, ballot->n) : (Datum) 0;
	args[3] = ballot->segment;
	nulls[0] = nulls[1] = ' ';
	nulls[2] = ballot->exists ? ' ' : 'n';
	nulls[3] = ballot->segment_null ? 'n' : ' ';
}

/*
 * Applies a group's elements, in array order, to the ballot in memory;
 * sets each element's outcome and, when changes is not NULL, writes the
 * change records of every cast, change and retraction.  Returns how many
 * elements moved the ballot.
 */
static int
apply_elements(Element **group, int k, Ballot *ballot, Relation changes)
{
	const PollInfo *poll = &group[0]->poll;
	int			moves = 0;

	for (int j = 0; j < k; j++)
	{
		Element    *e = group[j];
		bool		had = ballot->exists;
		bool		moved;

		e->sqlstate = e->message = NULL;
		if (e->retract)
		{
			e->result = had ? "retracted" : "none";
			moved = had;
		}
		else if (had && ballot->n == e->n &&
				 memcmp(ballot->options, e->options, e->n * sizeof(int32)) == 0)
		{
			e->result = "unchanged";
			moved = false;
		}
		else if (had && !poll->allow_change)
		{
			run_check(e, refuse_element_change, NULL, ERRCODE_UNIQUE_VIOLATION);
			continue;
		}
		else
		{
			e->result = had ? "changed" : "cast";
			moved = true;
		}

		if (moved && had && changes != NULL)
			poll_write_ballot_changes(changes, e->poll_id, ballot->options, ballot->n,
									  ballot->segment, ballot->segment_null, -1);
		if (moved && !e->retract)
		{
			ballot->n = e->n;
			memcpy(ballot->options, e->options, e->n * sizeof(int32));
			ballot->segment = e->segment ? PointerGetDatum(e->segment) : (Datum) 0;
			ballot->segment_null = (e->segment == NULL);
			if (changes != NULL)
				poll_write_ballot_changes(changes, e->poll_id, ballot->options, ballot->n,
										  ballot->segment, ballot->segment_null, 1);
		}
		if (moved)
		{
			ballot->exists = !e->retract;
			moves++;
		}
		e->nlive = ballot->exists ? ballot->n : 0;
		e->live = palloc(Max(e->nlive, 1) * sizeof(int32));
		memcpy(e->live, ballot->options, e->nlive * sizeof(int32));
	}
	return moves;
}

/* Applies the group again from the ballot it started from, writing its change records. */
static void
write_changes(Element **group, int k, const Ballot *start)
{
	Ballot		ballot = *start;
	Relation	changes = poll_open_changes();

	if (apply_elements(group, k, &ballot, changes) > 0)
		poll_note_change_written();
	table_close(changes, NoLock);
}

/*
 * Step 3 for one voter in one poll: reads (and locks) the ballot, applies
 * the elements, writes the ballot once and the change records.
 */
static void
apply_group(Element **group, int k)
{
	Element    *first = group[0];
	Datum		args[4];
	char		nulls[4];
	Ballot		none = {.exists = false, .segment_null = true};
	Ballot		ballot;
	bool		all_retract = true;

	for (int j = 0; j < k; j++)
		all_retract &= group[j]->retract;

	if (all_retract)
	{
		/* as retract_vote: one DELETE, which waits for a concurrent change */
		ballot_args(args, nulls, first, &none);
		poll_run(&poll_sql_delete_ballot, args, nulls, SPI_OK_DELETE_RETURNING);
		ballot = none;
		if (SPI_processed > 0)
			ballot_from_row(&ballot);
		write_changes(group, k, &ballot);
		return;
	}

	/* a new voter: insert the ballot the group leaves, as cast_vote does */
	ballot = none;
	apply_elements(group, k, &ballot, NULL);
	if (ballot.exists &&
		poll_insert_new_ballot(first->poll_id, PointerGetDatum(first->voter),
							   poll_options_datum(ballot.options, ballot.n),
							   ballot.segment, ballot.segment_null))
	{
		write_changes(group, k, &none);
		return;
	}

	/* the voter has a ballot, or one is being inserted: lock it, or wait */
	for (;;)
	{
		Ballot		old = none;
		int			moves;

		ballot_args(args, nulls, first, &none);
		poll_run(&poll_sql_lock_ballot, args, nulls, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ballot_from_row(&old);
		ballot = old;
		moves = apply_elements(group, k, &ballot, NULL);
		ballot_args(args, nulls, first, &ballot);
		if (!old.exists && ballot.exists)
		{
			poll_run(&poll_sql_insert_ballot, args, nulls, SPI_OK_INSERT);
			if (SPI_processed == 0)
			{
				/* inserted by another transaction meanwhile: lock that one */
				CHECK_FOR_INTERRUPTS();
				continue;
			}
		}
		else if (old.exists && !ballot.exists)
			poll_run(&poll_sql_delete_ballot, args, nulls, SPI_OK_DELETE_RETURNING);
		else if (old.exists && moves > 0)
			poll_run(&poll_sql_change_ballot, args, nulls, SPI_OK_UPDATE);
		write_changes(group, k, &old);
		return;
	}
}

/* The call's arrays; ERROR for a malformed call, the only whole-call errors. */
static int
batch_args(FunctionCallInfo fcinfo, BatchArgs *a)
{
	static const char *const names[] = {"poll_ids", "voters", "ballots"};
	ArrayType  *arrays[3];
	int			lengths[3];

	for (int i = 0; i < 3; i++)
	{
		if (PG_ARGISNULL(i))
			null_argument(names[i]);
		arrays[i] = PG_GETARG_ARRAYTYPE_P(i);
		if (ARR_NDIM(arrays[i]) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a one-dimensional array", names[i])));
		lengths[i] = ArrayGetNItems(ARR_NDIM(arrays[i]), ARR_DIMS(arrays[i]));
	}
	if (lengths[1] != lengths[0] || lengths[2] != lengths[0])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("poll_ids, voters and ballots must have the same length, not %d, %d and %d",
						lengths[0], lengths[1], lengths[2])));
	if (lengths[0] > POLL_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a batch may hold at most %d elements, not %d", POLL_MAX_BATCH, lengths[0]),
				 errhint("Split it into several calls.")));

	poll_array_elements(arrays[0], names[0], INT8OID, &a->poll_ids, &a->poll_id_nulls);
	poll_array_elements(arrays[1], names[1], TEXTOID, &a->voters, &a->voter_nulls);
	poll_array_elements(arrays[2], names[2], TEXTOID, &a->ballots, &a->ballot_nulls);
	a->segments = NULL;
	a->segment_nulls = NULL;
	if (!PG_ARGISNULL(3))
	{
		int			nseg = poll_array_elements(PG_GETARG_ARRAYTYPE_P(3), "segments", TEXTOID,
											   &a->segments, &a->segment_nulls);

		if (nseg != lengths[0])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("segments must be null or as long as voters, not %d and %d",
							nseg, lengths[0])));
	}
	return lengths[0];
}

static Datum
int4_array_datum(const int32 *values, int n)
{
	Datum		d[POLL_MAX_OPTIONS];

	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/* The element's row: ord, result, options, sqlstate, message. */
static void
put_outcome(ReturnSetInfo *rsinfo, const Element *e)
{
	Datum		values[5];
	bool		nulls[5];
	bool		failed = (e->sqlstate != NULL);

	values[0] = Int32GetDatum(e->ord);
	values[1] = failed ? (Datum) 0 : CStringGetTextDatum(e->result);
	values[2] = failed ? (Datum) 0 : int4_array_datum(e->live, e->nlive);
	values[3] = failed ? CStringGetTextDatum(e->sqlstate) : (Datum) 0;
	values[4] = failed ? CStringGetTextDatum(e->message) : (Datum) 0;
	nulls[0] = false;
	nulls[1] = nulls[2] = failed;
	nulls[3] = nulls[4] = !failed;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * poll.cast_vote_batch(poll_ids bigint[], voters text[], ballots text[],
 *                      segments text[] DEFAULT NULL)
 *   RETURNS TABLE(ord int, result text, options int[], sqlstate text, message text)
 */
Datum
poll_cast_vote_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BatchArgs	a;
	Element    *elements;
	Element   **order;
	int			n,
				m = 0;
	bool		any_segment = false;
	VoteSession s;

	n = batch_args(fcinfo, &a);
	InitMaterializedSRF(fcinfo, 0);
	if (n == 0)
		PG_RETURN_VOID();

	poll_vote_begin(&s, "poll.cast_vote_batch()");
	elements = palloc0(n * sizeof(Element));
	order = palloc(n * sizeof(Element *));

	/* step 1: the checks that need no ballot, in array order */
	for (int i = 0; i < n; i++)
	{
		Element    *e = &elements[i];

		e->ord = i + 1;
		if (run_check(e, check_element, &a, 0))
		{
			order[m++] = e;
			any_segment |= (e->segment != NULL);
		}
		CHECK_FOR_INTERRUPTS();
	}

	/* step 2: new segments, by poll (whose rows are locked in that order), then array order */
	if (any_segment)
	{
		int			kept = 0;

		qsort(order, m, sizeof(Element *), cmp_by_poll);
		for (int j = 0; j < m; j++)
			if (order[j]->segment == NULL ||
				run_check(order[j], check_segment, NULL, ERRCODE_PROGRAM_LIMIT_EXCEEDED))
				order[kept++] = order[j];
		m = kept;
	}

	/* step 3: one group per voter and poll, in the order every batch takes */
	qsort(order, m, sizeof(Element *), cmp_by_voter);
	for (int start = 0, end; start < m; start = end)
	{
		for (end = start + 1; end < m && same_voter(order[start], order[end]); end++)
			;
		apply_group(order + start, end - start);
		CHECK_FOR_INTERRUPTS();
	}

	for (int i = 0; i < n; i++)
		put_outcome(rsinfo, &elements[i]);
	poll_vote_end(&s);
	PG_RETURN_VOID();
}

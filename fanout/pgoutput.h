/*
 * pgoutput.h — decoding of the pgoutput logical replication protocol
 * (version 1, text tuples) and of poll.tally rows carried by it.
 * Pure functions over byte buffers: no I/O, no libpq, fuzzed and unit tested.
 */
#ifndef PGOUTPUT_H
#define PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGO_MAX_COLS	1664		/* MaxTupleAttributeNumber */
#define TALLY_MAX_VOTES	64

/* one column of a TupleData */
struct pgo_col {
	char		kind;		/* 'n' null, 'u' unchanged toast, 't' text */
	const char *data;		/* not NUL-terminated; points into the message */
	uint32_t	len;
};

struct pgo_att {
	const char *name;		/* NUL-terminated, points into the message */
	uint32_t	typoid;
	bool		key;
};

struct pgo_msg {
	char		type;		/* 'B','C','R','I','U','D','T','Y','O','M', or 0 for other */
	uint32_t	relid;
	uint64_t	lsn;		/* Begin: final lsn; Commit: commit lsn */
	uint64_t	end_lsn;	/* Commit: end lsn */
	int64_t		ts;			/* Begin/Commit: timestamp, PG epoch microseconds */
	const char *nspname, *relname;	/* Relation */
	int			natts;
	struct pgo_att *atts;	/* Relation: caller-provided, PGO_MAX_COLS entries */
	int			ncols;
	struct pgo_col *cols;	/* Insert/Update: the new tuple, caller-provided */
};

/*
 * Parses one pgoutput message (the payload of an XLogData 'w' message).
 * atts and cols must point to arrays of PGO_MAX_COLS entries.
 * Returns 0, or -1 when the message is malformed (truncated, bad tag,
 * missing string terminator, too many columns).
 */
int			pgo_parse(const unsigned char *buf, size_t len, struct pgo_msg *out);

/* where the columns of poll.tally sit in a relation's tuples */
struct pgo_relation {
	uint32_t	relid;
	bool		is_tally;
	int			natts;
	int			col_poll_id, col_version, col_status, col_ballots, col_votes;
	struct pgo_relation *next;
};

struct pgo_relcache {
	struct pgo_relation *head;
};

/* remembers a Relation message; is_tally when it is poll.tally with all columns */
void		pgo_relcache_put(struct pgo_relcache *rc, const struct pgo_msg *m);
const struct pgo_relation *pgo_relcache_get(const struct pgo_relcache *rc, uint32_t relid);
void		pgo_relcache_free(struct pgo_relcache *rc);

struct tally_row {
	int64_t		poll_id;
	int64_t		version;
	int			status;		/* 0 scheduled, 1 open, 2 closed */
	int64_t		ballots;
	bool		votes_unchanged;	/* 'u': keep the cached votes */
	int			n_votes;
	int64_t		votes[TALLY_MAX_VOTES];
};

/* decodes an Insert/Update new tuple of poll.tally; 0 or -1 when invalid */
int			tally_from_tuple(const struct pgo_relation *rel, const struct pgo_msg *m,
							 struct tally_row *row);

/* "{1,2,3}" -> votes; 0 or -1 (not an array of 0..max non-negative bigints) */
int			parse_votes(const char *s, size_t len, int64_t *votes, int max, int *n);

/* a non-negative decimal bigint of exactly len bytes; 0 or -1 */
int			parse_int64(const char *s, size_t len, int64_t *out);

/* a text[] in text output -> malloc'd strings (max elements); 0 or -1 */
int			parse_text_array(const char *s, int max, char ***labels, int *n);

/* "scheduled"/"open"/"closed" -> 0/1/2, else -1 */
int			parse_status(const char *s, size_t len);

#endif

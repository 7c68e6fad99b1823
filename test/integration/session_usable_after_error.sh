#!/usr/bin/env bash
# An error, a cancel or a deadlock inside any poll function leaves the session
# usable (SPEC "Errors"): one node-postgres connection, as an application's
# pool holds it, has cast_votes, cast_vote, retract_vote, close_poll and fold
# cut short by statement_timeout and by pg_cancel_backend while they wait for a
# lock, in and out of an explicit transaction, and deadlocked in cast_vote,
# retract_vote and close_poll; after each, its next statement runs (after
# ROLLBACK in a transaction, which undoes the transaction) and a new vote is
# cast.  (cast_votes deadlocking with cast_votes: the isolation spec
# cast_votes_deadlock_leaves_session_usable.)
. "$(dirname "$0")/../sql_clients/lib.sh"

sql_client session_usable_after_error
check_invariants

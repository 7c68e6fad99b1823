#!/usr/bin/env bash
# Whether a poll is open is decided by the statement's clock (SPEC
# "Functions"): transactions begun before a poll's closes_at get 55000 from
# cast_vote, cast_votes and retract_vote once it has passed, and one begun
# before a scheduled poll's opens_at casts, bulk-casts and retracts after it.
. "$(dirname "$0")/../sql_clients/lib.sh"

sql_client vote_uses_statement_clock
check_invariants

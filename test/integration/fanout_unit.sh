#!/usr/bin/env bash
# fanout_unit: the unit tests of poll-fanout's parsers (pgoutput messages
# and poll.tally tuples, client JSON, the JSON writer, HS256 tokens).
. "$(dirname "$0")/../fanout/lib.sh"
out=$(make -s -C "$POLL_ROOT/fanout" unit 2>&1) || { echo "$out" >&2; fail "unit tests failed"; }
echo "$out" | tail -1
echo "$out" | grep -q ", 0 failed" || fail "unit tests did not report their result"

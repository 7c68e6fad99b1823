#!/usr/bin/env bash
# fanout_coalescing: under a burst of folds a client gets at most one
# message per poll per throttle window, always the latest state, with
# strictly increasing versions; a vote and a close merged in one window
# come as one snapshot; a subscribe carrying the current version waits for
# the next change; the clock's status changes are pushed.  Run with the
# default 50 ms throttle and with 400 ms, where the vote and the close must
# have merged (they commit within 200 ms of the window's start).
. "$(dirname "$0")/../fanout/lib.sh"
need_node
for t in 50 400; do
	THROTTLE=$t start_daemon
	wait_healthy
	echo "--- throttle $t ms"
	node "$FANOUT_TESTS/coalesce.js" "$(BASE)" "$t" | tee "$WORK/coalesce-$t.out" ||
		fail "coalescing with throttle $t ms"
	[ "$t" != 400 ] || grep -q -- "-> one snapshot" "$WORK/coalesce-$t.out" ||
		fail "with a 400 ms throttle, the vote and the close were not merged into one snapshot"
	stop_daemon
done

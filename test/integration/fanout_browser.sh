#!/usr/bin/env bash
# fanout_browser: headless Chromium (Debian's chromium, driven by
# playwright-core) opens the demo page, a vote is cast through SQL and the
# page shows the new count — over WebSocket, SSE and polling, and again
# after the daemon restarts under the open page.  Screenshots
# are saved under $POLL_WORK/fanout_browser/.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
[ -x /usr/bin/chromium ] || fail "chromium is not installed (apt-get install chromium)"

poll=$(new_poll 'Browser test: best colour' Red Blue Green)
psql_q -c "SELECT poll.cast_vote($poll, 'early-' || i, 1 + i % 3) FROM generate_series(1, 7) i" >/dev/null
psql_q -c "SELECT poll.fold()" >/dev/null
start_daemon
wait_healthy
# browser.js restarts the daemon once (same port), and stops the one it started
argv=$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' "$FANOUT" --listen "127.0.0.1:$DAEMON_PORT")
DAEMON_PID=$DAEMON_PID DAEMON_ARGV=$argv timeout 120 node "$FANOUT_TESTS/browser.js" "$(BASE)" "$poll" "$WORK" ||
	fail "browser test"
ls "$WORK"/demo-page-websocket.png >/dev/null || fail "no screenshot"
echo "ok: the demo page follows votes (screenshots in $WORK)"

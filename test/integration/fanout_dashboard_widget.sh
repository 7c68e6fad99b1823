#!/usr/bin/env bash
# fanout_dashboard_widget: headless Chromium (Debian's, driven by
# playwright-core) checks the live dashboard (/dashboard?poll=ID) and the
# embeddable widget (/poll-widget.js) on a page of another origin: counts,
# chart and segments follow votes within two seconds, no horizontal scroll at
# 390 px, the widget votes with a click and with Tab and Enter under an
# anonymous voter, its theme applies, two widgets share one connection, and
# axe-core finds no serious or critical violation on either; the daemon
# restarts under an open dashboard, which reloads what it missed (see
# test/fanout/dashboard_widget.js).  Screenshots at 390 and 1280 px are kept
# in $POLL_WORK/fanout_dashboard_widget/.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
[ -x /usr/bin/chromium ] || fail "chromium is not installed (apt-get install chromium)"

poll=$(new_poll 'Widget test: best colour' Red Blue Green)
multi=$(psql_q -c "SELECT poll.create_poll('Widget multi: toppings', ARRAY['Cheese', 'Ham', 'Olives'], 'multi')")
later=$(psql_q -c "SELECT poll.create_poll('Widget later: opens tomorrow', ARRAY['Yes', 'No'], opens_at => now() + interval '1 day')")
psql_q -c "SELECT poll.cast_vote($poll, 'early-' || i, 1 + i % 3, CASE WHEN i % 2 = 0 THEN 'eu' END)
	FROM generate_series(1, 9) i" >/dev/null
psql_q -c "SELECT poll.fold()" >/dev/null
head -c 32 /dev/urandom | base64 >"$WORK/voter.secret"
start_daemon --anonymous-votes --voter-secret-file "$WORK/voter.secret"
wait_healthy
# dashboard_widget.js restarts the daemon once (same port), and stops the one it started
argv=$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' "$FANOUT" --listen "127.0.0.1:$DAEMON_PORT" \
	--anonymous-votes --voter-secret-file "$WORK/voter.secret")
DAEMON_PID=$DAEMON_PID DAEMON_ARGV=$argv timeout 180 node "$FANOUT_TESTS/dashboard_widget.js" "$(BASE)" "$poll" "$multi" "$later" "$WORK" ||
	fail "browser checks"
for f in dashboard-390 dashboard-1280 widget-390 widget-1280; do
	[ -s "$WORK/$f.png" ] || fail "no screenshot $f.png"
done
echo "ok: the dashboard and the widget (screenshots in $WORK)"

#!/usr/bin/env bash
# fanout_ws_frames: RFC 6455 at the frame level — unmasked client frames,
# control frames over 125 bytes and 1-byte close payloads are answered with
# a close frame carrying 1002 (lws 4.1 accepts the first, drops TCP on the
# second, echoes the third); valid frames near those limits are served.
. "$(dirname "$0")/../fanout/lib.sh"
need_node
start_daemon
wait_healthy
node "$FANOUT_TESTS/wsframes.js" "$DAEMON_PORT" || fail "frames"
kill -0 "$DAEMON_PID" || fail "poll-fanout died"
[ "$(http_code "$(BASE)/healthz")" = 200 ] || fail "/healthz after bad frames"
echo "ok: bad frames closed with 1002"

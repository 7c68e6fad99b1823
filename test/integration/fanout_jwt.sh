#!/usr/bin/env bash
# fanout_jwt: with --jwt-secret-file every subscription needs an HS256
# token granting the poll; expired, wrong-key, alg:none and tampered
# tokens are refused on every path (auth message, ?token=, Bearer, HTTP, SSE).
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Secret ballot' Yes No)
other=$(new_poll 'Other ballot' Yes No)
secret="s3cret-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/secret"
start_daemon --jwt-secret-file "$WORK/secret"
wait_healthy
node "$FANOUT_TESTS/jwt.js" "$(BASE)" "$secret" "$poll" "$other" || fail "token checks"
[ "$(http_code "$(BASE)/healthz")" = 200 ] || fail "/healthz must not need a token"
echo "ok: tokens enforced"

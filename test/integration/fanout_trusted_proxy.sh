#!/usr/bin/env bash
# fanout_trusted_proxy: --trusted-proxy.  With --trusted-proxy 127.0.0.1 (a
# balancer on our address) the per-address limits (POST /voters, votes over a
# WebSocket whose upgrade carried the header) key on the rightmost
# X-Forwarded-For entry that is not a trusted proxy, request by request on
# one keep-alive connection; a client's own entries to the left change
# nothing.  Without the flag, or when the peer is not a trusted proxy, the
# header is ignored: a spoofed one does not escape the limits.  Bad values
# stop the daemon at start.  (The parsing is unit-tested: fanout_unit.)
. "$(dirname "$0")/../fanout/lib.sh"
need_node

for bad in junk 10.0.0.1/33 10.1.0.0/8 '' 1.2.3.4:80; do
	"$FANOUT" --trusted-proxy "$bad" >/dev/null 2>&1 && fail "--trusted-proxy '$bad' must not start"
done
out=$("$FANOUT" --trusted-proxy 127.0.0.1/8 2>&1) && fail "--trusted-proxy 127.0.0.1/8 must not start"
[[ "$out" == *'bits set past the prefix'* ]] || fail "--trusted-proxy 127.0.0.1/8 must say why it is refused: $out"

poll=$(new_poll 'Behind a proxy' Yes No)
printf 'voter-secret-%s\n' "$(date +%s%N)" >"$WORK/voters"
secret="jwt-secret-$(date +%s%N)"
printf '%s\n' "$secret" >"$WORK/jwt"
flags=(--jwt-secret-file "$WORK/jwt" --anonymous-votes --voter-secret-file "$WORK/voters" --vote-rate 1)

run() {	# run MODE [flags]: a daemon of its own, the checks, stopped
	local mode=$1
	shift
	start_daemon "${flags[@]}" "$@"
	wait_healthy
	wait_votes_ready
	node "$FANOUT_TESTS/trusted_proxy.js" "$(BASE)" "$secret" "$poll" "$mode" ||
		fail "$mode: $*"
	stop_daemon
}
run trusted --trusted-proxy 10.0.0.0/8 --trusted-proxy 127.0.0.1 --trusted-proxy ::1
run ignored
run untrusted --trusted-proxy 127.0.0.2 --trusted-proxy 10.0.0.0/8
echo "ok: --trusted-proxy"

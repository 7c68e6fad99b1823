#!/usr/bin/env bash
# fanout_cors: OPTIONS preflights are answered (methods GET, POST, DELETE;
# headers Authorization, Content-Type) and every response carries the CORS
# headers for the --allow-origin list (default any origin).
. "$(dirname "$0")/../fanout/lib.sh"
need_node

poll=$(new_poll 'Cors' Yes No)
hdr() {	# hdr FILE NAME: the header's value, lowercase name match
	awk -v n="$(echo "$2" | tr A-Z a-z)" 'BEGIN{FS=": "} tolower($1)==n {sub(/\r$/,"",$2); print $2}' "$1"
}
preflight() {	# preflight ORIGIN PATH -> headers in $WORK/h
	curl -s -o /dev/null -D "$WORK/h" -w '%{http_code}' -X OPTIONS "$(BASE)$2" -H "Origin: $1" \
		-H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type'
}

start_daemon
wait_healthy
code=$(preflight https://a.example "/polls/$poll/vote")
[[ "$code" =~ ^20[04]$ ]] || fail "preflight: HTTP $code"
[ "$(hdr "$WORK/h" access-control-allow-origin)" = "*" ] || fail "preflight: allow-origin $(cat "$WORK/h")"
hdr "$WORK/h" access-control-allow-methods | grep -q 'GET, POST, DELETE' || fail "preflight: methods $(cat "$WORK/h")"
hdr "$WORK/h" access-control-allow-headers | grep -qi 'Authorization, Content-Type' || fail "preflight: headers $(cat "$WORK/h")"
for path in "/polls/$poll" /polls/987654321 /healthz /metrics /no/such /poll-client.js; do
	curl -s -o /dev/null -D "$WORK/h" -H 'Origin: https://a.example' "$(BASE)$path"
	[ "$(hdr "$WORK/h" access-control-allow-origin)" = "*" ] || fail "GET $path: no CORS header: $(cat "$WORK/h")"
done
echo "ok: preflight and CORS headers, any origin"
stop_daemon

start_daemon --allow-origin https://a.example --allow-origin https://b.example
wait_healthy
curl -s -o /dev/null -D "$WORK/h" -H 'Origin: https://b.example' "$(BASE)/polls/$poll"
[ "$(hdr "$WORK/h" access-control-allow-origin)" = https://b.example ] || fail "listed origin: $(cat "$WORK/h")"
hdr "$WORK/h" vary | grep -q Origin || fail "listed origin: no Vary: Origin"
curl -s -o /dev/null -D "$WORK/h" -H 'Origin: https://evil.example' "$(BASE)/polls/$poll"
[ -z "$(hdr "$WORK/h" access-control-allow-origin)" ] || fail "an unlisted origin is allowed: $(cat "$WORK/h")"
code=$(preflight https://a.example "/polls/$poll")
[[ "$code" =~ ^20[04]$ ]] && [ "$(hdr "$WORK/h" access-control-allow-origin)" = https://a.example ] ||
	fail "preflight from a listed origin: $code $(cat "$WORK/h")"
out=$("$FANOUT" --allow-origin '' 2>&1) && fail "--allow-origin '' exited 0"
echo "ok: --allow-origin lists the origins ($out)"

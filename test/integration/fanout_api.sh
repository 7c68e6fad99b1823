#!/usr/bin/env bash
# fanout_api: the HTTP API of poll-fanout (SPEC "Endpoints").
# - POST /polls and POST /polls/ID/close: an admin token creates and closes,
#   other tokens (and none) cannot, without --jwt-secret-file they answer 403;
#   bad arguments get 400 naming the field;
# - GET /polls/ID/series: the sums of its votes equal poll.results after a
#   fold, at every width; more than 10 000 buckets is 400;
# - GET /polls/ID/segments equals poll.results_by_segment as poll_reader sees
#   it (a segment under poll.segment_min_ballots is not shown apart, although
#   the daemon's role is a superuser);
# - GET /polls/ID/ballots.csv (admin): parsed back by csv-parse, voters with
#   commas, quotes and line breaks come back exactly; a large export streams
#   to a slow client without the daemon's memory growing by its size, while
#   snapshots are served;
# - GET /polls/ID: ETag, 304 to a matching If-None-Match, 200 once it changed;
# - the preflight answer.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

secret=api-secret-$$
printf '%s' "$secret" >"$WORK/secret"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
jwt() {
	local h p
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	p=$(printf '%s' "$1" | b64url)
	printf '%s.%s.%s' "$h" "$p" "$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)"
}
exp=$(($(date +%s) + 600))
ADMIN=$(jwt "{\"polls\":\"*\",\"admin\":true,\"exp\":$exp}")
READER=$(jwt "{\"polls\":\"*\",\"exp\":$exp}")
NOTADMIN=$(jwt "{\"polls\":\"*\",\"admin\":false,\"exp\":$exp}")

# req METHOD PATH TOKEN [BODY] -> "CODE" ; body in $WORK/out, headers in $WORK/hdr
req() {
	local auth=()
	[ -n "$3" ] && auth=(-H "Authorization: Bearer $3")
	rm -f "$WORK/out"
	curl -s -o "$WORK/out" -D "$WORK/hdr" -w '%{http_code}' -X "$1" "${auth[@]}" \
		-H 'Content-Type: application/json' ${4:+--data-binary "$4"} "$(BASE)$2"
}
expect() {	# expect CODE PATTERN WHAT... (after req)
	local code=$1 pat=$2
	shift 2
	[ "$got" = "$code" ] && grep -q -- "$pat" "$WORK/out" ||
		fail "$*: expected $code with $pat, got $got $(cat "$WORK/out")"
}
hdr() { awk -v n="$1" 'BEGIN{FS=": "} tolower($1)==n {sub(/\r$/,"",$2); print $2}' "$WORK/hdr"; }

# ---- without --jwt-secret-file the admin endpoints answer 403 ----
start_daemon
wait_healthy
got=$(req POST /polls "" '{"title":"t","options":["a","b"]}')
expect 403 forbidden "POST /polls without --jwt-secret-file"
got=$(req GET /polls/1/ballots.csv "")
expect 403 forbidden "GET ballots.csv without --jwt-secret-file"
stop_daemon
echo "ok: without tokens the admin endpoints answer 403"

# ---- create and close ----
psql_q -c "ALTER DATABASE $PGDATABASE SET poll.segment_min_ballots = 3" >/dev/null
trap 'rc=$?; set +e; psql_q -c "ALTER DATABASE $PGDATABASE RESET poll.segment_min_ballots" >/dev/null 2>&1; (exit $rc); cleanup' EXIT
start_daemon --jwt-secret-file "$WORK/secret"
wait_healthy
body='{"title":"API poll","options":["Red","Blue, \"dark\"","Green"],"metadata":{"by":"api"}}'
got=$(req POST /polls "" "$body"); expect 401 unauthorized "POST /polls without a token"
got=$(req POST /polls "$READER" "$body"); expect 403 forbidden "POST /polls with a reader's token"
got=$(req POST /polls "$NOTADMIN" "$body"); expect 403 forbidden "POST /polls with admin:false"
got=$(req POST /polls "$ADMIN" "$body"); expect 201 '"type":"snapshot"' "POST /polls with an admin token"
poll=$(node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1])); console.log(m.poll)' "$WORK/out")
grep -q '"label":"Blue, \\"dark\\""' "$WORK/out" || fail "the snapshot does not carry the labels: $(cat "$WORK/out")"
grep -q '"kind":"single","max_choices":1,' "$WORK/out" || fail "the snapshot does not say the poll's kind: $(cat "$WORK/out")"
[ "$(psql_q -c "SELECT title || '|' || (metadata->>'by') || '|' || n_options FROM poll.poll WHERE poll_id = $poll")" = "API poll|api|3" ] ||
	fail "poll $poll is not the one asked for"
got=$(req POST /polls "$ADMIN" '{"title":"Multi","options":["a","b","c"],"kind":"multi","max_choices":2,"allow_change":false,"closes_at":"2099-01-01T00:00:00Z"}')
expect 201 '"status":"open"' "POST /polls of a multi poll"
grep -q '"kind":"multi","max_choices":2,' "$WORK/out" || fail "the multi poll's snapshot does not say its kind: $(cat "$WORK/out")"
mpoll=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).poll)' "$WORK/out")
got=$(req GET "/polls/$mpoll" "$READER" "")
expect 200 '"kind":"multi","max_choices":2,' "GET /polls/$mpoll (the snapshot query of snapshots.c)"
[ "$(psql_q -c "SELECT kind || max_choices || allow_change || (closes_at = '2099-01-01Z') FROM poll.poll WHERE poll_id = $mpoll")" = multi2falsetrue ] ||
	fail "the multi poll's arguments were not all taken"
for case in 'options|{"title":"x","options":["only one"]}' \
	'kind|{"title":"x","options":["a","b"],"kind":"triple"}' \
	'opens_at|{"title":"x","options":["a","b"],"opens_at":"not a time"}' \
	'max_choices|{"title":"x","options":["a","b"],"max_choices":"two"}' \
	'colour|{"title":"x","options":["a","b"],"colour":"red"}' \
	'title|{"options":["a","b"]}'; do
	field=${case%%|*}
	got=$(req POST /polls "$ADMIN" "${case#*|}")
	expect 400 "\"message\":\"$field: " "POST /polls with a bad $field"
done
got=$(req POST /polls "$ADMIN" 'not json'); expect 400 bad_request "POST /polls with a body that is not JSON"
echo "ok: an admin token creates polls (201 and the snapshot), others get 401/403, bad arguments 400 naming the field"
got=$(req POST "/polls/$mpoll/close" "$READER"); expect 403 forbidden "close with a reader's token"
got=$(req POST "/polls/$mpoll/close" ""); expect 401 unauthorized "close without a token"
got=$(req POST "/polls/$mpoll/close" "$ADMIN"); expect 200 '"status":"closed"' "close with an admin token"
[ "$(psql_q -c "SELECT status FROM poll.poll_summary WHERE poll_id = $mpoll")" = closed ] || fail "poll $mpoll is not closed"
got=$(req POST "/polls/$mpoll/close" "$ADMIN"); expect 200 '"status":"closed"' "closing again (idempotent)"
got=$(req POST /polls/987654321/close "$ADMIN"); expect 404 not_found "closing an unknown poll"
echo "ok: an admin token closes polls, others cannot"

# ---- votes, with voters that need quoting, in segments ----
psql_q -c "SELECT poll.cast_vote($poll, 'v' || i, 1 + i % 3, CASE WHEN i % 3 = 0 THEN 'eu' WHEN i % 5 = 0 THEN 'us' END)
	FROM generate_series(1, 40) i" >/dev/null
psql_q -c "SELECT poll.cast_vote($poll, 'tiny-' || i, 2, 'tiny') FROM generate_series(1, 2) i" >/dev/null
psql_q -c "SELECT poll.cast_vote($poll, E'Smith, \"Jo\"\nsecond line', 3, 'seg, \"quoted\"')" >/dev/null
psql_q -c "SELECT poll.cast_vote($poll, E'Smith, \"Jo\"\nsecond line ' || i, 1, 'seg, \"quoted\"') FROM generate_series(1, 3) i" >/dev/null
psql_q -c "SELECT poll.cast_vote($poll, 'ünïcødé ☃', 1)" >/dev/null
psql_q -c "SELECT poll.fold()" >/dev/null

# ---- series ----
for w in 1m 5m 15m 1h 1d; do
	got=$(req GET "/polls/$poll/series?width=$w" "$READER"); expect 200 '"type" *: *"series"' "series width $w"
	node -e '
		const m = JSON.parse(require("fs").readFileSync(process.argv[1]));
		const sums = m.options.map((_, i) => m.buckets.reduce((a, b) => a + b.votes[i], 0));
		const last = m.buckets[m.buckets.length - 1].cumulative;
		console.log(m.options.map((o, i) => o + "|" + sums[i] + "|" + last[i]).join("\n"));' "$WORK/out" >"$WORK/series.$w" ||
		fail "series $w: not understood: $(head -c 300 "$WORK/out")"
	psql_q -c "SELECT option_id || '|' || votes || '|' || votes FROM poll.results WHERE poll_id = $poll ORDER BY option_id" >"$WORK/results"
	diff "$WORK/results" "$WORK/series.$w" >/dev/null || fail "series $w: sums (option|sum|last cumulative) differ from poll.results:
$(diff "$WORK/results" "$WORK/series.$w")"
done
since=$(date -u -d '-2 hours' +%Y-%m-%dT%H:%M:00Z)
got=$(req GET "/polls/$poll/series?width=1m&since=$since" "$READER"); expect 200 '"buckets"' "series since two hours ago"
n=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).buckets.length)' "$WORK/out")
[ "$n" -ge 120 ] && [ "$n" -le 122 ] || fail "series since $since at 1m: $n buckets"
got=$(req GET "/polls/$poll/series?width=1m&since=2020-01-01T00:00:00Z" "$READER"); expect 400 'more than 10000' "a series of over 10 000 buckets"
got=$(req GET "/polls/$poll/series?width=7m" "$READER"); expect 400 'width: ' "a series of an unknown width"
got=$(req GET "/polls/$poll/series?since=yesterday-ish" "$READER"); expect 400 'since or until: ' "a series since a bad time"
got=$(req GET "/polls/987654321/series" "$READER"); expect 404 not_found "the series of an unknown poll"
got=$(req GET "/polls/$poll/series" ""); expect 401 unauthorized "a series without a token"
OTHER=$(jwt "{\"polls\":[$mpoll],\"exp\":$exp}")
got=$(req GET "/polls/$poll/series" "$OTHER"); expect 401 unauthorized "a series with a token for another poll"
echo "ok: series at 1m, 5m, 15m, 1h and 1d sum to poll.results; the 10 000-bucket limit, bad widths and times, read rights"

# ---- segments, as poll_reader sees them ----
got=$(req GET "/polls/$poll/segments" "$READER"); expect 200 '"type" *: *"segments"' "segments"
node -e '
	const m = JSON.parse(require("fs").readFileSync(process.argv[1]));
	for (const s of m.segments) s.votes.forEach((v, i) => { if (v) console.log((s.segment === null ? "" : s.segment) + "|" + (i + 1) + "|" + v); });' \
	"$WORK/out" | sort >"$WORK/segments.api"
psql_q -c "SET ROLE poll_reader; SELECT coalesce(segment, '') || '|' || option_id || '|' || votes
	FROM poll.results_by_segment WHERE poll_id = $poll" | sort >"$WORK/segments.view"
diff "$WORK/segments.view" "$WORK/segments.api" >/dev/null || fail "segments differ from poll.results_by_segment as poll_reader:
$(diff "$WORK/segments.view" "$WORK/segments.api")"
grep -q '^tiny|' "$WORK/segments.api" && fail "a segment of 2 ballots (poll.segment_min_ballots 3) is shown apart"
[ "$(psql_q -c "SELECT count(*) FROM poll.results_by_segment WHERE poll_id = $poll AND segment = 'tiny'")" -gt 0 ] ||
	fail "the superuser should see segment tiny (the test proves nothing otherwise)"
got=$(req GET "/polls/987654321/segments" "$READER"); expect 404 not_found "the segments of an unknown poll"
got=$(req GET "/polls/$poll/segments" "$OTHER"); expect 401 unauthorized "segments with a token for another poll"
echo "ok: segments equal poll.results_by_segment as poll_reader sees it (small segments merged), read rights"

# ---- ballots.csv ----
got=$(req GET "/polls/$poll/ballots.csv" "$READER"); expect 403 forbidden "ballots.csv with a reader's token"
got=$(req GET "/polls/$poll/ballots.csv" ""); expect 401 unauthorized "ballots.csv without a token"
got=$(req GET "/polls/987654321/ballots.csv" "$ADMIN"); expect 404 not_found "ballots.csv of an unknown poll"
got=$(req GET "/polls/$poll/ballots.csv" "$ADMIN")
[ "$got" = 200 ] || fail "ballots.csv: HTTP $got"
hdr content-type | grep -q '^text/csv' || fail "ballots.csv: content-type $(hdr content-type)"
node "$FANOUT_TESTS/csv_rows.js" <"$WORK/out" >"$WORK/csv.json" || fail "csv-parse refused the export: $(head -c 400 "$WORK/out")"
node -e '
	const rows = JSON.parse(require("fs").readFileSync(process.argv[1]));
	console.log(JSON.stringify(rows[0]));
	for (const r of rows.slice(1)) console.log(JSON.stringify([r[0], r[1], r[2] === "" ? null : r[2]]));' \
	"$WORK/csv.json" | sort >"$WORK/csv.rows"
psql_q -c "SELECT json_build_array(voter, array_to_string(options, ';'), segment) FROM poll.ballot WHERE poll_id = $poll" \
	>"$WORK/ballots.raw"
node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) if (l) console.log(JSON.stringify(JSON.parse(l)))' \
	"$WORK/ballots.raw" >"$WORK/ballots.json"
{ echo '["voter","options","segment","cast_at"]'; cat "$WORK/ballots.json"; } | sort >"$WORK/ballots.rows"
diff "$WORK/ballots.rows" "$WORK/csv.rows" >/dev/null || fail "the CSV parsed back differs from poll.ballot:
$(diff "$WORK/ballots.rows" "$WORK/csv.rows" | head -20)"
grep -q 'Smith, \\"Jo\\"\\nsecond line' "$WORK/csv.rows" || fail "the voter with a comma, quotes and a line break is missing"
node -e '
	const rows = JSON.parse(require("fs").readFileSync(process.argv[1]));
	const bad = rows.slice(1).filter(r => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(r[3]));
	if (bad.length) { console.error(JSON.stringify(bad[0])); process.exit(1); }' "$WORK/csv.json" ||
	fail "cast_at is not an ISO 8601 UTC time"
grep -q $'\r$' "$WORK/out" || fail "ballots.csv: records do not end with CRLF"
echo "ok: ballots.csv parsed back by csv-parse equals poll.ballot (commas, quotes, line breaks, UTF-8), admin only"

# ---- a large export streams: flow-controlled, and snapshots go on meanwhile ----
big=$(new_poll 'Big export' Yes No)
psql_q -c "SELECT poll.cast_votes($big, array_agg('voter-with-a-longish-name-' || i), array_agg(1 + i % 2))
	FROM generate_series(1, 200000) i" >/dev/null
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status"; }
rss0=$(rss)
# under the sanitizers ASan's allocator keeps freed chunks (quarantine, size classes): more slack
limit=$([ -n "${SANITIZED:-}" ] && echo 10240 || echo 4096)
curl -s --limit-rate 1500K -H "Authorization: Bearer $ADMIN" "$(BASE)/polls/$big/ballots.csv" -o "$WORK/big.csv" &
curl_pid=$!
PIDS+=($curl_pid)
sleep 1
max=0
for i in $(seq 1 8); do
	t0=$(date +%s%N)
	got=$(req GET "/polls/$poll" "$READER")
	[ "$got" = 200 ] || fail "GET /polls/$poll during the export: $got"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ $ms -gt $max ] && max=$ms
	r=$(rss)
	[ $((r - rss0)) -lt $limit ] || fail "the daemon grew by $((r - rss0)) KiB during the export (flow control?)"
	sleep 0.3
done
[ $max -lt 2000 ] || fail "a snapshot took $max ms while the export streamed (the export takes ~8 s)"
wait $curl_pid || fail "the export of 200 000 ballots failed"
size=$(stat -c %s "$WORK/big.csv")
lines=$(node "$FANOUT_TESTS/csv_rows.js" <"$WORK/big.csv" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).length))')
[ "$lines" = 200001 ] || fail "the large export has $lines records, not 200 001"
echo "ok: 200 000 ballots ($((size / 1024)) KiB) streamed to a slow client; the daemon grew by less than $((limit / 1024)) MiB" \
	"(at most $(( ($(rss) - rss0) )) KiB); snapshots answered meanwhile within $max ms"

# ---- ETag and 304 ----
got=$(req GET "/polls/$poll" "$READER")
etag=$(hdr etag)
[ "$got" = 200 ] && [[ "$etag" =~ ^\"[0-9]+\"$ ]] || fail "GET /polls/$poll: $got, ETag '$etag'"
[ "$(hdr cache-control)" = no-cache ] || fail "GET /polls/$poll: Cache-Control $(hdr cache-control)"
rm -f "$WORK/out"	# curl writes no file for an empty body
code=$(curl -s -o "$WORK/out" -D "$WORK/hdr" -w '%{http_code}' -H "Authorization: Bearer $READER" -H "If-None-Match: $etag" "$(BASE)/polls/$poll")
[ "$code" = 304 ] && [ ! -s "$WORK/out" ] || fail "If-None-Match $etag: $code $(cat "$WORK/out")"
[ "$(hdr etag)" = "$etag" ] || fail "the 304 does not carry the ETag"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $READER" -H "If-None-Match: W/$etag" "$(BASE)/polls/$poll")
[ "$code" = 304 ] || fail "a weak If-None-Match W/$etag: $code"
psql_q -c "SELECT poll.cast_vote($poll, 'etag-voter', 1)" >/dev/null
psql_q -c "SELECT poll.fold()" >/dev/null
for _ in $(seq 1 50); do
	code=$(curl -s -o "$WORK/out" -D "$WORK/hdr" -w '%{http_code}' -H "Authorization: Bearer $READER" -H "If-None-Match: $etag" "$(BASE)/polls/$poll")
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] && [ "$(hdr etag)" != "$etag" ] || fail "after a change If-None-Match $etag still gets $code"
echo "ok: GET /polls/ID has ETag \"<version>\" and Cache-Control: no-cache; 304 (no body) to a matching If-None-Match, 200 once it changed"

# ---- the preflight ----
code=$(curl -s -o /dev/null -D "$WORK/hdr" -w '%{http_code}' -X OPTIONS -H 'Origin: https://a.example' \
	-H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type' "$(BASE)/polls")
[ "$code" = 204 ] || fail "preflight: HTTP $code"
hdr access-control-allow-methods | grep -q 'GET, POST, DELETE' || fail "preflight: methods $(cat "$WORK/hdr")"
hdr access-control-allow-headers | grep -q 'Authorization, Content-Type' || fail "preflight: headers $(cat "$WORK/hdr")"
[ "$(hdr access-control-allow-origin)" = '*' ] || fail "preflight: origin $(cat "$WORK/hdr")"
got=$(req GET "/polls/$poll" "$READER")
hdr access-control-expose-headers | grep -q ETag || fail "the ETag is not exposed to cross-origin scripts"
echo "ok: the preflight of POST /polls allows GET, POST, DELETE with Authorization and Content-Type; ETag exposed"

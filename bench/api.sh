#!/usr/bin/env bash
# api.sh — benchmarks of the HTTP API (issue 12), against the cluster in PG*
# (the extension installed) and a poll-fanout it starts:
#   - GET /polls/ID/series?width=1h of a poll with 10 000 000 ballots over 30
#     days: latency p50 / p99 (wrk, one connection).  The series reads only
#     poll.rollup, so the 30 days of rollups that 10 million ballots leave
#     (minutes for the last 7 days, hours, days) are written directly: a fold
#     writes rollups at the time it runs, so no amount of voting now could
#     spread them over 30 days;
#   - GET /polls/ID with a matching If-None-Match (304) against the same
#     request without it (200 and the body), side by side in alternating
#     rounds of wrk, the poll followed by one WebSocket client (cached);
#   - the size of /poll-widget.js, gzipped.
# Prints one Markdown table row per figure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
FANOUT=${FANOUT_BIN:-$root/fanout/poll-fanout}
PORT=${BENCH_PORT:-18790}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/deps.sh)" >&2; exit 1; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

poll=$(q "SELECT poll.create_poll('series bench', ARRAY['a','b','c','d'], opens_at => now() - interval '30 days')")
# 10 000 000 ballots over 720 hours: per hour and option a share of ~3 472 ballots, with a daily wave
q "WITH h AS (SELECT date_bin('1 hour', now() - interval '30 days', '2000-01-01Z') + i * interval '1 hour' AS b, i
              FROM generate_series(0, 719) i),
        v AS (SELECT h.b, o, (10000000 / 720 / 4 * (1 + 0.5 * sin(h.i * pi() / 12) * (o - 2.5) / 1.5))::bigint AS n
              FROM h, generate_series(1, 4) o)
   INSERT INTO poll.rollup (grain, poll_id, option_id, bucket, votes)
   SELECT 'hour', $poll, o, b, n FROM v
   UNION ALL SELECT 'day', $poll, o, date_bin('1 day', b, '2000-01-01Z'), sum(n) FROM v GROUP BY 3, 4
   UNION ALL SELECT 'minute', $poll, o, b + m * interval '1 minute', n / 60 + CASE WHEN m < n % 60 THEN 1 ELSE 0 END
             FROM v, generate_series(0, 59) m WHERE b > now() - interval '7 days'"
ballots=$(q "SELECT sum(votes) FROM poll.rollup WHERE grain = 'day' AND poll_id = $poll")
q "ANALYZE poll.rollup"

"$FANOUT" --listen "127.0.0.1:$PORT" >"/tmp/bench-api-$$.log" 2>&1 &
daemon=$!
node -e '
const WS = require(process.argv[1] + "/test/fanout/node_modules/ws");
const ws = new WS("ws://127.0.0.1:" + process.argv[2] + "/ws");
ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", poll: Number(process.argv[3]) })));
ws.on("error", () => {});
setTimeout(() => process.exit(0), 600000);' "$root" "$PORT" "$poll" &
follower=$!
trap 'kill $daemon $follower 2>/dev/null; q "DELETE FROM poll.rollup WHERE poll_id = $poll" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
sleep 1
base=http://127.0.0.1:$PORT

url="$base/polls/$poll/series?width=1h"
curl -s "$url" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s);
  if (m.buckets.length < 720) { console.error("series: " + m.buckets.length + " buckets"); process.exit(1); }})'
# wrk prints 812.00us, 8.10ms or 1.02s: in ms
lat=$(wrk -t1 -c1 -d${SECS}s --latency "$url" | awk '
	function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
	$1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } END { printf "%.1f %.1f", p50, p99 }')
p50=${lat% *} p99=${lat#* }
echo "| \`GET /polls/ID/series?width=1h\`, $ballots ballots over 30 days (721 buckets x 4 options), one client: p50 / p99 | $p50 / $p99 ms | | | p50 ≤ 20 ms | $(awk -v a="$p50" 'BEGIN { print (a <= 20 ? "yes" : "no") }') |"

etag=$(curl -s -D - -o /dev/null "$base/polls/$poll" | awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$base/polls/$poll")" = 304 ] || { echo "no 304" >&2; exit 1; }
ours=() theirs=()
for _ in $(seq 1 "$ROUNDS"); do
	ours+=("$(wrk -t2 -c50 -d${SECS}s -H "If-None-Match: $etag" "$base/polls/$poll" | awk '/Requests\/sec/ { printf "%d", $2 }')")
	theirs+=("$(wrk -t2 -c50 -d${SECS}s "$base/polls/$poll" | awk '/Requests\/sec/ { printf "%d", $2 }')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
o=$(median "${ours[@]}") t=$(median "${theirs[@]}")
echo "| \`GET /polls/ID\` with a matching \`If-None-Match\` (304), wrk -t2 -c50, median of $ROUNDS rounds of ${SECS} s (${ours[*]}), vs without (200: ${theirs[*]}) | $o req/s | $t req/s | $(awk -v a="$o" -v b="$t" 'BEGIN { printf "%.2f", a / b }')× | ≥ 50 000 req/s | $([ "$o" -ge 50000 ] && echo yes || echo no) |"

gz=$(curl -s "$base/poll-widget.js" | gzip -9 | wc -c)
raw=$(curl -s "$base/poll-widget.js" | wc -c)
echo "| \`/poll-widget.js\` (poll-client.js and the widget, unminified: $raw bytes), gzip -9 | $((gz / 1024)).$(( (gz % 1024) * 10 / 1024 )) KiB | | | ≤ 15 KiB | $([ "$gz" -le 15360 ] && echo yes || echo no) |"

#!/usr/bin/env bash
# votes.sh OUTDIR — votes through poll-fanout (issue 11, "Performance"), with
# bench/voteload.c holding the WebSocket connections, against poll.cast_vote
# through pgbench in the same run.
#
#   throughput: 1 000 connections, each its own voter (an HS256 token with
#               sub/vote claims, --jwt-secret-file), voting again as soon as
#               its last vote is answered; acknowledged votes/s, rounds
#               alternated with pgbench -c 16 running poll.cast_vote
#   latency:    a paced 2 000 votes/s over 1 000 subscribed connections:
#               vote -> `voted` p50 and p99, vote -> the pushed tally seen by
#               the other subscribers p99
#   memory:     the daemon's VmRSS during the runs
#
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE pointing at a running cluster with the
# extension, its worker and wal_level=logical (bench/run.sh's private cluster).
# QUICK=1: one round of 5 s; otherwise three rounds of 10 s.
#
# Prints only markdown table rows: | benchmark | ours | baseline | ratio | target | met |
# Raw data goes to OUTDIR, the observations drawn from the figures to
# OUTDIR/observations.md.
set -euo pipefail

out=${1:?usage: votes.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 3>&1 1>>"$out/votes.log" 2>&1		# stdout is for the table rows only
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
QUICK=${QUICK:-0}
: "${PGHOST:?} ${PGPORT:?} ${PGUSER:?} ${PGDATABASE:?}"
conninfo="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"

if [ "$QUICK" = 1 ]; then rounds=1; secs=5; else rounds=3; secs=10; fi
clients=${VOTE_CLIENTS:-1000}
rate=2000
# the daemon closes a connection past 20 messages/s, votes included: each
# connection votes at most 19 times a second, and each voter may too
conn_rate=19
vote_rate=20

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
log() { echo "$(date -u +%T) $*"; }

gcc -O2 -g -Wall -Wextra -Werror "$root/bench/voteload.c" -lcrypto -o "$out/voteload"
make -s -C "$root/fanout" >/dev/null || [ -x "$root/fanout/poll-fanout" ]
daemon_bin="$root/fanout/poll-fanout"

pids=()
stop_pid() {
	local p=$1 i
	kill "$p" 2>/dev/null || return 0
	for i in $(seq 1 30); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
}
cleanup() { local p; for p in "${pids[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT

free_port() {
	local p
	for p in $(shuf -i 32000-39999 -n 200); do
		if ! ss -Htan "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "votes.sh: no free port" >&2; exit 1
}

(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$out/jwt-secret")
srv_port=$(free_port)
"$daemon_bin" --db "$conninfo" --listen "127.0.0.1:$srv_port" --jwt-secret-file "$out/jwt-secret" \
	--vote-rate "$vote_rate" >"$out/fanout.log" 2>&1 &
srv_pid=$!; pids+=("$srv_pid")
for _ in $(seq 1 150); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$srv_port/healthz" || true)" = 200 ] && break
	sleep 0.1
done
rss_start=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status")
load0=$(cut -d' ' -f1-3 /proc/loadavg)

tp_poll=$(q "SELECT poll.create_poll('Vote throughput', ARRAY['a', 'b', 'c', 'd'])")
base_poll=$(q "SELECT poll.create_poll('cast_vote baseline', ARRAY['a', 'b', 'c', 'd'])")
{
	echo '\set v random(1, 1000000000000000)'
	echo '\set o random(1, 4)'
	echo "SELECT poll.cast_vote($base_poll, 'v' || :v, :o::int);"
} >"$out/baseline.pgbench"
log "fanout: commit $(git -C "$root" log -1 --format=%h -- fanout 2>/dev/null || echo '?'); clients=$clients rounds=$rounds secs=$secs"

run_ours() {	# round
	"$out/voteload" throughput --port "$srv_port" --poll "$tp_poll" --clients "$clients" \
		--secret-file "$out/jwt-secret" --seconds "$secs" --conn-rate "$conn_rate" --pid "$srv_pid" \
		--run "tp$1" --raw "$out/lat.tp.$1.ms" >"$out/tp.$1.txt" 2>>"$out/voteload.err" ||
		{ echo "votes.sh: voteload failed in round $1" >&2; exit 1; }
	log "ours $1: $(tr '\n' ' ' <"$out/tp.$1.txt")"
}
run_baseline() {	# round
	(cd "$out" && "$PGBIN/pgbench" -n -M prepared -c 16 -j 2 -T "$secs" -f "$out/baseline.pgbench" \
		>"$out/baseline.$1.out" 2>&1)
	log "baseline $1: $(awk '/^tps/ {print $3}' "$out/baseline.$1.out") votes/s"
}
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then run_ours "$r"; run_baseline "$r"; else run_baseline "$r"; run_ours "$r"; fi
done

# group commit: votes per committed batch over the throughput rounds (the daemon's histogram)
batch_mean=$(curl -s "http://127.0.0.1:$srv_port/metrics" |
	awk '$1 == "poll_fanout_vote_batch_size_sum" {s = $2} $1 == "poll_fanout_vote_batch_size_count" {c = $2}
		 END {if (c > 0) printf "%.0f (%d batches)", s / c, c; else print "-"}')

# every acknowledged first vote of a voter is one ballot of the throughput poll
casts=$(cat "$out"/tp.*.txt | sed -n 's/^casts_total=\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
ballots=$(q "SELECT ballots FROM poll.poll_summary WHERE poll_id = $tp_poll")

# ---- latency at a paced 2 000 votes/s ----
lat_poll=$(q "SELECT poll.create_poll('Vote latency', ARRAY['probe', 'a', 'b', 'c'])")
"$out/voteload" paced --port "$srv_port" --poll "$lat_poll" --clients "$clients" --secret-file "$out/jwt-secret" \
	--seconds "$secs" --rate "$rate" --pid "$srv_pid" --run paced \
	--raw "$out/lat.paced.ms" --push-raw "$out/lat.push.ms" >"$out/paced.txt" 2>>"$out/voteload.err" ||
	{ echo "votes.sh: voteload paced failed" >&2; exit 1; }
log "paced: $(tr '\n' ' ' <"$out/paced.txt")"
daemon_alive=$(kill -0 "$srv_pid" 2>/dev/null && echo yes || echo no)
stop_pid "$srv_pid"

# ---- report ----
val() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" "$1" | head -1; }
median() { sort -n | awk '{a[NR] = $1} END {if (NR == 0) print "-1"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
met() { awk -v x="$1" -v y="$2" "BEGIN {print (x >= 0 && x $3 y) ? \"yes\" : \"no\"}"; }
fmt() { awk -v x="$1" 'BEGIN {s = sprintf("%.0f", x); n = length(s); o = ""; for (i = 1; i <= n; i++) {o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o " "} print o}'; }
ms() { awk -v x="$1" 'BEGIN {if (x < 0) print "not reached"; else printf "%.1f ms", x}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

ours=$(for r in $(seq 1 "$rounds"); do val "$out/tp.$r.txt" acked_per_s; done | median)
base=$(for r in $(seq 1 "$rounds"); do awk '/^tps/ {print $3}' "$out/baseline.$r.out"; done | median)
ratio=$(for r in $(seq 1 "$rounds"); do
	awk -v a="$(val "$out/tp.$r.txt" acked_per_s)" -v b="$(awk '/^tps/ {print $3}' "$out/baseline.$r.out")" \
		'BEGIN {if (b > 0) printf "%.3f\n", a / b}'
done | median)
ratio=$(awk -v r="$ratio" 'BEGIN {printf "%.2f", r}')
errs=$(for r in $(seq 1 "$rounds"); do val "$out/tp.$r.txt" errors; done | awk '{s += $1} END {print s + 0}')
errcodes=$(for r in $(seq 1 "$rounds"); do sed -n 's/^error_codes: *//p' "$out/tp.$r.txt"; done | tr ' ' '\n' |
	awk -F= '$1 != "" && $1 != "other_errors" && $2 > 0 {n[$1] += $2} END {for (c in n) printf "%s%s %d", (k++ ? ", " : ""), c, n[c]}')
unans=$(for r in $(seq 1 "$rounds"); do val "$out/tp.$r.txt" unanswered; done | awk '{s += $1} END {print s + 0}')
tp_p50=$(for r in $(seq 1 "$rounds"); do val "$out/tp.$r.txt" voted_p50_ms; done | median)
tp_p99=$(for r in $(seq 1 "$rounds"); do val "$out/tp.$r.txt" voted_p99_ms; done | median)
offered=$(for r in $(seq 1 "$rounds"); do val "$out/tp.$r.txt" offered_per_s; done | median)
p50=$(val "$out/paced.txt" voted_p50_ms); p99=$(val "$out/paced.txt" voted_p99_ms)
push99=$(val "$out/paced.txt" push_p99_ms); push50=$(val "$out/paced.txt" push_p50_ms)
achieved=$(val "$out/paced.txt" acked_per_s)
rss_peak=$(for f in "$out"/tp.*.txt "$out/paced.txt"; do val "$f" server_rss_peak_kb; done | sort -n | tail -1)
label="$(fmt "$clients") connections"

echo "| votes through poll-fanout: $label, each its own voter, voting again on each \`voted\` (≤ $conn_rate/s each: the 20 messages/s limit), acknowledged votes/s (median of $rounds × $secs s; errors $errs${errcodes:+ ($errcodes)}, unanswered $unans), vs \`poll.cast_vote\` through pgbench, 16 clients | $(fmt "$ours") votes/s | $(fmt "$base") votes/s | ${ratio}× | ≥ 5× | $(met "$ratio" 5 '>=') |" >&3
echo "| votes: vote → \`voted\` p50 / p99 in the throughput runs; votes per committed batch (mean $batch_mean) | $(ms "$tp_p50") / $(ms "$tp_p99") | | | context | |" >&3
echo "| votes: vote → \`voted\` p50 at a paced $(fmt "$rate") votes/s ($(fmt "$achieved") acknowledged/s), $label, all subscribed | $(ms "$p50") | | | ≤ 5 ms | $(met "$p50" 5 '<=') |" >&3
echo "| votes: vote → \`voted\` p99, same run | $(ms "$p99") | | | ≤ 25 ms | $(met "$p99" 25 '<=') |" >&3
echo "| votes: vote → pushed tally seen by another subscriber p99 (p50 $(ms "$push50"); $(val "$out/paced.txt" probes) probes × $(fmt $((clients - 1))) subscribers, $(val "$out/paced.txt" push_missing) not seen within 1 s) | $(ms "$push99") | | | ≤ 100 ms | $(met "$push99" 100 '<=') |" >&3
echo "| votes: daemon RSS during the vote runs (peak; $(mib "$rss_start") before; daemon alive after: $daemon_alive) | $(mib "$rss_peak") | | | context | |" >&3

offer_cap=$((clients * conn_rate))
want=$(awk -v b="$base" 'BEGIN {printf "%.0f", 5 * b}')
if awk -v o="$offered" -v c="$offer_cap" 'BEGIN {exit !(o < 0.95 * c)}'; then
	bound="below that cap: each connection waited for its acknowledgement (p50 $(ms "$tp_p50"))"
else
	bound="at that cap (acknowledgement p50 $(ms "$tp_p50"))"
fi
beyond=""
[ "$want" -gt "$offer_cap" ] && beyond=", more than $(fmt "$clients") connections may offer under the message limit, whatever the daemon does"
{
	echo "- Votes, throughput: a connection may send 20 messages/s, votes included (SPEC, \"Limits\"), so the load keeps"
	echo "  each of the $(fmt "$clients") connections under $conn_rate votes/s: together at most $(fmt "$offer_cap") votes/s. They offered"
	echo "  $(fmt "$offered") votes/s, $bound, and $(fmt "$ours") were acknowledged."
	echo "  The ≥ 5× target against pgbench's $(fmt "$base") votes/s asks for $(fmt "$want") votes/s$beyond."
	echo "- Every acknowledged first vote is a ballot: $casts \`cast\` answers, $ballots ballots in the throughput poll."
	echo "- Load average at the start and end of the vote runs: $load0; $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)."
} >"$out/observations.md"

#!/usr/bin/env bash
# run.sh — make bench: measures poll against its baselines, side by side, in one run,
# on a private PostgreSQL 15 cluster with durable settings (fsync, synchronous_commit on).
# Writes bench/RESULTS.md and bench/latency.png; raw logs go to bench/out/.
#
#   make bench            full run (about 15 minutes)
#   make bench QUICK=1    short rounds and 1 million stored ballots (under 3 minutes)
#   POLL_BENCH_PUSH=0     leaves out the push and capacity benchmarks (bench/push.sh)
#   POLL_BENCH_WEBHOOKS=0 leaves out the webhooks benchmark (bench/webhooks.sh)
#
# Our path and its baseline alternate round by round, so that the noise of a shared
# machine falls on both; the ratio is the median of the per-round ratios.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PGBIN
QUICK=${QUICK:-0}
out="$root/bench/out"
port=${POLL_BENCH_PORT:-5720}
rm -rf "$out"
mkdir -p "$out"
chmod 755 "$out"
# the server writes and reads the bulk benchmark's CSV files here
[ "$(id -u)" = 0 ] && chown postgres: "$out"

if [ "$QUICK" = 1 ]; then
	rounds=2; secs=5; warm=2; bulk_batches=10; big=1000000; fresh_samples=200; keepup_secs=5
else
	rounds=7; secs=10; warm=5; bulk_batches=40; big=10000000; fresh_samples=1000; keepup_secs=20
fi

make -s >/dev/null && make -s install >/dev/null
gcc -O2 -Wall -Wextra -Werror -I/usr/include/postgresql bench/freshness.c -lpq -o "$out/freshness"

cluster="$out/cluster"
cleanup() { scripts/cluster.sh stop "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT
scripts/cluster.sh start "$cluster" "$port" "shared_buffers='1GB'" "max_wal_size='8GB'" \
	"checkpoint_timeout='30min'" "max_connections=300" "poll.database='postgres'"
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

q "CREATE EXTENSION poll"
hot=$(q "SELECT poll.create_poll('Hot', ARRAY['a', 'b', 'c', 'd'])")
# the baselines have the same primary key as poll.ballot, collation included
q "CREATE TABLE plain_ballot (poll_id bigint, voter text COLLATE \"C\", option_id int, PRIMARY KEY (poll_id, voter))"
q "CREATE TABLE naive_ballot (poll_id bigint, voter text COLLATE \"C\", option_id int, PRIMARY KEY (poll_id, voter));
   CREATE TABLE naive_tally (poll_id bigint, option_id int, votes bigint, PRIMARY KEY (poll_id, option_id));
   INSERT INTO naive_tally SELECT $hot, o, 0 FROM generate_series(1, 4) o;
   CREATE FUNCTION naive_count() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
	   UPDATE naive_tally SET votes = votes + 1 WHERE poll_id = NEW.poll_id AND option_id = NEW.option_id;
	   RETURN NEW;
   END \$\$;
   CREATE TRIGGER naive_count AFTER INSERT ON naive_ballot FOR EACH ROW EXECUTE FUNCTION naive_count();"

# ---- 1. ingest: one hot poll, 16 clients, fresh voters ----
vote_script() {	# path poll
	echo '\set v random(1, 1000000000000000)'
	echo '\set o random(1, 4)'
	case $1 in
	ours) echo "SELECT poll.cast_vote($2, 'v' || :v, :o::int);" ;;
	plain) echo "INSERT INTO plain_ballot VALUES ($2, 'v' || :v, :o);" ;;
	naive) echo "INSERT INTO naive_ballot VALUES ($2, 'v' || :v, :o);" ;;
	esac
}
for path in ours plain naive; do
	vote_script $path "$hot" >"$out/$path.pgbench"
done
pgb() {	# name seconds clients extra-args...
	local name=$1 s=$2 c=$3
	shift 3
	(cd "$out" && "$PGBIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$s" -l --log-prefix="lat.$name" "$@" \
		>"$out/$name.out" 2>&1)
	awk '/^tps/ {print $3}' "$out/$name.out"
}
echo "ingest: warm-up"
for path in ours plain naive; do
	pgb warm "$warm" 16 -f "$out/$path.pgbench" >/dev/null
done
rm -f "$out"/lat.warm*
# each round runs the three paths in a rotated order, so none always goes first
declare -A tps
: >"$out/ingest.tsv"
paths=(ours plain naive)
for r in $(seq 1 "$rounds"); do
	for i in 0 1 2; do
		path=${paths[$(((i + r) % 3))]}
		tps[$path]=$(pgb "$path.$r" "$secs" 16 -f "$out/$path.pgbench")
	done
	printf '%s\t%s\t%s\t%s\n' "$r" "${tps[ours]}" "${tps[plain]}" "${tps[naive]}" | tee -a "$out/ingest.tsv"
done
for path in ours plain naive; do
	cat "$out"/lat."$path".* | awk '{print $3 / 1000}' | sort -n >"$out/lat_$path.ms"
done

# ---- 2. bulk: cast_votes of 10 000 fresh voters vs COPY of the same rows ----
bulk=$(q "SELECT poll.create_poll('Bulk', ARRAY['a', 'b', 'c', 'd'])")
q "CREATE TABLE copy_ballot (poll_id bigint, voter text COLLATE \"C\", option_id int, PRIMARY KEY (poll_id, voter));
   CREATE TABLE batch (b int PRIMARY KEY, voters text[], options int[]);
   INSERT INTO batch SELECT b, array_agg('b' || b || '-' || i), array_agg(1 + (i * 7 + b) % 4)
	 FROM generate_series(1, $bulk_batches) b, generate_series(1, 10000) i GROUP BY b;"
for b in $(seq 1 "$bulk_batches"); do
	q "COPY (SELECT $bulk, v, o FROM batch, unnest(voters, options) AS u(v, o) WHERE b = $b) TO '$out/batch.$b.csv' (FORMAT csv)"
done
: >"$out/bulk.tsv"
# two sessions at once (one per core), each taking every other batch; wall-clock time
now_ms() { date +%s%3N; }
bulk_run() {	# ours|copy rep: prints elapsed ms
	local t0 t1
	t0=$(now_ms)
	for session in 0 1; do
		for b in $(seq $((1 + session)) 2 "$bulk_batches"); do
			if [ "$1" = ours ]; then
				echo "SELECT poll.cast_votes($bulk, voters, options) FROM batch WHERE b = $b \\g /dev/null"
			else
				echo "COPY copy_ballot FROM '$out/batch.$b.csv' (FORMAT csv);"
			fi
		done | psql -X -q -v ON_ERROR_STOP=1 >/dev/null &
	done
	wait
	t1=$(now_ms)
	echo $((t1 - t0))
}
ours_ms=$(bulk_run ours)
copy_ms=$(bulk_run copy)
printf '%s\t%s\t%s\n' "$((bulk_batches * 10000))" "$ours_ms" "$copy_ms" | tee -a "$out/bulk.tsv"
[ "$(q "SELECT count(*) FROM poll.ballot WHERE poll_id = $bulk")" = $((bulk_batches * 10000)) ] || { echo "bulk: ballots missing" >&2; exit 1; }

# ---- 3. read: poll.results for one poll with many ballots stored ----
echo "read: storing $big ballots"
bigp=$(q "SELECT poll.create_poll('Big', ARRAY['a', 'b', 'c', 'd'])")
for k in $(seq 0 $((big / 100000 - 1))); do
	q "SELECT poll.cast_votes($bigp, array_agg('r' || i), array_agg(1 + i % 4))
	     FROM generate_series($((k * 100000 + 1)), $(((k + 1) * 100000))) i" >/dev/null
done
q "SELECT poll.fold()" >/dev/null
q "VACUUM ANALYZE poll.change" && q "VACUUM ANALYZE poll.ballot"
echo "SELECT * FROM poll.results WHERE poll_id = $bigp;" >"$out/results.pgbench"
pgb results 5 1 -f "$out/results.pgbench" >/dev/null
cat "$out"/lat.results.* | awk '{print $3 / 1000}' | sort -n >"$out/lat_results.ms"
count_ms=$(for i in 1 2 3; do echo '\timing on'; echo "SELECT option_id, count(*) FROM poll.ballots WHERE poll_id = $bigp GROUP BY option_id \\g /dev/null"; echo '\timing off'; done |
	psql -X -q | awk '/^Time:/ {print $2}' | sort -n | sed -n 2p)
[ "$(q "SELECT sum(votes) FROM poll.results WHERE poll_id = $bigp")" = "$big" ] || { echo "read: wrong total" >&2; exit 1; }

# ---- 4. freshness: commit -> folded, under background load ----
fresh=$(q "SELECT poll.create_poll('Probe', ARRAY['a', 'b'])")
load=$(q "SELECT poll.create_poll('Load', ARRAY['a', 'b', 'c', 'd'])")
vote_script ours "$load" >"$out/load.pgbench"
worker=$(q "SELECT pid FROM poll.worker_status")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$worker/stat"; }
for rate in 1000 10000; do
	dur=$((fresh_samples * 5 / 1000 + 10))
	"$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -R "$rate" -T "$dur" -f "$out/load.pgbench" >"$out/load.$rate.out" 2>&1 &
	loadpid=$!
	sleep 2
	"$out/freshness" "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$fresh" "$fresh_samples" 5 |
		sort -n | awk '{print $1 / 1000}' >"$out/fresh_$rate.ms"
	wait $loadpid || true
	awk '/^tps/ {print "achieved rate: " $3}' "$out/load.$rate.out"
done

# the highest rate cast_vote reaches: does the worker keep up?
: >"$out/pending.txt"
t0=$(cpu_ticks)
"$PGBIN/pgbench" -n -M prepared -c 16 -j 2 -T "$keepup_secs" -f "$out/load.pgbench" >"$out/keepup.out" 2>&1 &
loadpid=$!
while kill -0 $loadpid 2>/dev/null; do
	q "SELECT pending FROM poll.worker_status" >>"$out/pending.txt" 2>/dev/null || true
	sleep 0.5
done
t1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
keepup_tps=$(awk '/^tps/ {print $3}' "$out/keepup.out")
worker_cpu=$(awk -v a="$t0" -v b="$t1" -v s="$keepup_secs" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / s * 100}')
max_pending=$(sort -n "$out/pending.txt" | tail -1)
sleep 1
final_pending=$(q "SELECT pending FROM poll.worker_status")

# ---- 5. push and capacity (bench/push.sh: poll-fanout against a LISTEN/NOTIFY push) ----
push_rows=""
if [ -x bench/push.sh ] && [ "${POLL_BENCH_PUSH:-1}" = 1 ]; then
	make -s -C fanout >/dev/null
	push_rows=$(QUICK=$QUICK bench/push.sh "$out/push" || echo "| push benchmark | failed: see bench/out/push | | | | no |")
fi

# ---- 6. webhooks (bench/webhooks.sh: 100 webhooks, closed latency, CPU with and without) ----
webhook_rows=""
if [ -x bench/webhooks.sh ] && [ "${POLL_BENCH_WEBHOOKS:-1}" = 1 ]; then
	webhook_rows=$(QUICK=$QUICK bench/webhooks.sh "$out/webhooks" || echo "| webhooks benchmark | failed: see bench/out/webhooks | | | | no |")
fi

# ---- report ----
pct() { awk -v p="$2" '{a[NR] = $1} END {i = int(NR * p / 100); if (i < 1) i = 1; printf "%.2f", a[i]}' "$1"; }
median() { sort -n | awk -v f="$1" '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf f, m}'; }
median_ratio() { awk -F'\t' -v c="$1" -v d="$2" '{print $c / $d}' "$out/ingest.tsv" | median "%.2f"; }
median_col() { cut -f"$1" "$out/ingest.tsv" | median "%.0f"; }
met() { awk -v x="$1" -v y="$2" "BEGIN {print (x $3 y) ? \"yes\" : \"no\"}"; }

ours_tps=$(median_col 2); plain_tps=$(median_col 3); naive_tps=$(median_col 4)
r_plain=$(median_ratio 2 3); r_naive=$(median_ratio 2 4)
bulk_n=$(awk -F'\t' '{n += $1} END {print n}' "$out/bulk.tsv")
bulk_rate=$(awk -F'\t' '{n += $1; t += $2} END {printf "%.0f", n / t * 1000}' "$out/bulk.tsv")
copy_rate=$(awk -F'\t' '{n += $1; t += $3} END {printf "%.0f", n / t * 1000}' "$out/bulk.tsv")
r_bulk=$(awk -v a="$bulk_rate" -v b="$copy_rate" 'BEGIN {printf "%.2f", a / b}')
res_p50=$(pct "$out/lat_results.ms" 50); res_p99=$(pct "$out/lat_results.ms" 99)
r_read=$(awk -v a="$count_ms" -v b="$res_p50" 'BEGIN {printf "%.0f", a / b}')
f1_50=$(pct "$out/fresh_1000.ms" 50); f1_99=$(pct "$out/fresh_1000.ms" 99)
f10_50=$(pct "$out/fresh_10000.ms" 50); f10_99=$(pct "$out/fresh_10000.ms" 99)

{
	echo "# poll benchmark results"
	echo
	echo "Produced by \`make bench$([ "$QUICK" = 1 ] && echo ' QUICK=1')\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
	echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB,"
	echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync and synchronous_commit on, shared_buffers 1GB."
	echo "Our path and its baseline alternate in $rounds rounds of $secs s; a ratio is the median of the per-round ratios."
	echo
	echo "| benchmark | ours | baseline | ratio | target | met |"
	echo "|---|---|---|---|---|---|"
	echo "| ingest: \`cast_vote\`, 1 hot poll, 16 clients, fresh voters, vs plain INSERT of the same row (same PK) | $ours_tps votes/s | $plain_tps rows/s | ${r_plain}× | ≥ 0.9× | $(met "$r_plain" 0.9 '>=') |"
	echo "| ingest: \`cast_vote\` vs naive counter-row trigger (\`UPDATE tally SET votes = votes + 1\`) | $ours_tps votes/s | $naive_tps votes/s | ${r_naive}× | context (the 4× target is retired, see below) | |"
	echo "| ingest latency p50 / p99, \`cast_vote\` vs plain INSERT | $(pct "$out/lat_ours.ms" 50) / $(pct "$out/lat_ours.ms" 99) ms | $(pct "$out/lat_plain.ms" 50) / $(pct "$out/lat_plain.ms" 99) ms | | context | |"
	echo "| bulk: \`cast_votes\` of 10 000 fresh voters per call, 2 sessions, $bulk_n votes, vs COPY of the same rows | $bulk_rate votes/s | $copy_rate rows/s | ${r_bulk}× | ≥ 0.85× | $(met "$r_bulk" 0.85 '>=') |"
	echo "| read: \`poll.results\` for one poll with $big ballots (p50; p99 $res_p99 ms) vs \`count(*) ... GROUP BY\` over its ballots | $res_p50 ms | $count_ms ms | ${r_read}× faster | ≥ 1000× and < 1 ms | $(awk -v r="$r_read" -v m="$res_p50" 'BEGIN {print (r >= 1000 && m < 1) ? "yes" : "no"}') |"
	echo "| freshness: commit → folded, p50 at 1 000 votes/s | $f1_50 ms | | | ≤ 10 ms | $(met "$f1_50" 10 '<=') |"
	echo "| freshness: commit → folded, p99 at 1 000 votes/s | $f1_99 ms | | | ≤ 50 ms | $(met "$f1_99" 50 '<=') |"
	echo "| freshness: commit → folded, p50 / p99 at 10 000 votes/s offered ($(awk '/^tps/ {printf "%.0f", $3}' "$out/load.10000.out") reached) | $f10_50 / $f10_99 ms | | | context | |"
	echo "| worker keeps up at the highest rate (16 clients, $keepup_tps votes/s): largest pending, pending 1 s after | $max_pending / $final_pending changes | | | bounded | $(met "$final_pending" 1000 '<') |"
	echo "| worker CPU at that rate | $worker_cpu % of one core | | | context | |"
	if [ -n "$push_rows" ]; then
		echo "$push_rows"
	else
		echo
		echo "Not measured: push and capacity (bench/push.sh was left out)."
	fi
	[ -z "$webhook_rows" ] || echo "$webhook_rows"
	echo
	echo "Observations, from the figures above:"
	echo "- Two targets of earlier versions are retired (issue 9), not missed. \"4× the naive counter row\": on this machine that row"
	echo "  reaches $(awk -v n="$naive_tps" -v p="$plain_tps" 'BEGIN {printf "%.2f", n / p}')× the plain INSERT's throughput, so 4× would need \`cast_vote\` at $(awk -v n="$naive_tps" -v p="$plain_tps" 'BEGIN {printf "%.1f", 4 * n / p}')× a plain INSERT of the"
	echo "  very row it must insert; the ratio to that INSERT measures the vote path's cost, and the naive row stays as context."
	echo "  \"bulk ≥ 200 000 votes/s\" was an absolute rate that says more about the machine than the code; the ratio to COPY of"
	echo "  the same rows, measured side by side, replaces it."
	echo "- Per round (ours, plain, naive votes/s): $(awk -F'\t' '{printf "%s(%.0f, %.0f, %.0f)", (NR > 1 ? "; " : ""), $2, $3, $4}' "$out/ingest.tsv")."
	if [ -n "$push_rows" ]; then
		cat "$out/push/observations.md" 2>/dev/null || true
	fi
	echo
	echo "![latency distributions](latency.png)"
} >bench/RESULTS.md

if command -v gnuplot >/dev/null 2>&1; then
	for f in ours plain naive results fresh_1000 fresh_10000; do
		src="$out/lat_$f.ms"; [ -f "$src" ] || src="$out/$f.ms"
		awk '{a[NR] = $1} END {for (i = 1; i <= NR; i += (NR > 2000 ? int(NR / 2000) : 1)) print a[i], i / NR}' "$src" >"$out/cdf_$f.dat"
	done
	# push: CDFs over every (probe, client) pair, as a fraction of all pairs, so
	# that probes never received (the baseline's backlog) keep a curve below 1
	push_plot=""
	push_txt() { local b; b=$(basename "$1" .ms); echo "$(dirname "$1")/push.${b#lat.}.txt"; }
	push_cdf() {	# name raw-files...: writes cdf_push_NAME.dat
		local name=$1 total f
		shift
		total=$(for f in "$@"; do sed -n 's/.* samples=\([0-9]*\) missing=\([0-9]*\).*/\1 \2/p' "$(push_txt "$f")"; done |
			awk '{t += $1 + $2} END {print t + 0}')
		cat "$@" | sort -n | awk -v t="$total" '{a[NR] = $1}
			END {if (t == 0) t = NR; step = NR > 2000 ? int(NR / 2000) : 1; for (i = 1; i <= NR; i += step) print a[i], i / t}' \
			>"$out/cdf_push_$name.dat"
	}
	push_clients() { sed -n 's/^clients=\([0-9]*\).*/\1/p' "$out/push/push.$1.txt" | head -1; }
	if [ -n "$push_rows" ] && ls "$out"/push/lat.ours.*.ms >/dev/null 2>&1; then
		push_cdf ours "$out"/push/lat.ours.*.ms
		push_cdf warm "$out"/push/lat.warm.ms
		push_cdf baseline "$out"/push/lat.baseline.*.ms
		push_plot=1
	fi
	gnuplot <<EOF
set terminal pngcairo size $([ -n "$push_plot" ] && echo 1600 || echo 1100),500 font "sans,10"
set output "$root/bench/latency.png"
set multiplot layout 1,$([ -n "$push_plot" ] && echo 3 || echo 2) title "poll: latency distributions (make bench$([ "$QUICK" = 1 ] && echo ' QUICK=1'), $(date -u +%Y-%m-%d))"
set logscale x
set xlabel "ms (log scale)"
set ylabel "fraction of requests at or below"
set key bottom right
set grid
set title "ingest, 16 clients, one hot poll"
plot "$out/cdf_ours.dat" with lines lw 2 title "cast\\\\_vote", \
     "$out/cdf_plain.dat" with lines lw 2 title "plain INSERT", \
     "$out/cdf_naive.dat" with lines lw 2 title "naive counter row"
set title "freshness (commit to folded) and reads"
plot "$out/cdf_fresh_1000.dat" with lines lw 2 title "freshness at 1 000 votes/s", \
     "$out/cdf_fresh_10000.dat" with lines lw 2 title "freshness at 10 000 votes/s", \
     "$out/cdf_results.dat" with lines lw 2 title "poll.results, $big ballots"
$([ -n "$push_plot" ] && cat <<PUSH
set title "push: commit to WebSocket receipt, 2 000 votes/s"
set key right center
plot "$out/cdf_push_warm.dat" with lines lw 2 title "poll-fanout, $(push_clients warm) clients", \\
     "$out/cdf_push_ours.dat" with lines lw 2 title "poll-fanout, $(push_clients ours.1) clients", \\
     "$out/cdf_push_baseline.dat" with lines lw 2 title "LISTEN/NOTIFY, $(push_clients baseline.1) clients"
PUSH
)
unset multiplot
EOF
fi
cat bench/RESULTS.md

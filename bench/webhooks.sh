#!/usr/bin/env bash
# webhooks.sh OUTDIR — the webhooks benchmark of poll-fanout (issue 13):
#   - 100 webhooks on 100 polls (one each, events opened, closed, tally) with
#     votes streaming to all of them: tally deliveries/s (at most one per poll
#     per webhook per 5 s by design), then every poll closed, 20 ms apart,
#     while votes keep coming: close_poll's commit -> the receiver's receipt
#     of closed (after the poll's last votes are folded), p50/p99 (target
#     p99 <= 1 s);
#   - the daemon's CPU and RSS with and without --webhooks under the same push
#     load (pushload: WebSocket clients on a hot poll, probes) plus those
#     votes (target: webhooks add <= 10 % CPU).
#
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE pointing at a running cluster with the
# extension, its worker and wal_level=logical (bench/run.sh's private cluster).
# QUICK=1: 500 clients, 10 s runs, one run each; otherwise 2 000 clients, 20 s
# runs, two runs each, alternated.
#
# Prints only markdown table rows: | benchmark | ours | baseline | ratio | target | met |
# Raw data goes to OUTDIR.
set -euo pipefail

out=${1:?usage: webhooks.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 3>&1 1>>"$out/webhooks.log" 2>&1		# stdout is for the table rows only
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
QUICK=${QUICK:-0}
: "${PGHOST:?} ${PGPORT:?} ${PGUSER:?} ${PGDATABASE:?}"
conninfo="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
if [ "$QUICK" = 1 ]; then
	clients=500; secs=10; runs=1
else
	clients=2000; secs=20; runs=2
fi
npolls=100
rate=500		# votes/s over the 100 polls

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
log() { echo "$(date -u +%T) $*"; }

make -s -C "$root/fanout" >/dev/null || [ -x "$root/fanout/poll-fanout" ]
daemon_bin="$root/fanout/poll-fanout"
gcc -O2 -g -Wall -Wextra -Werror -I/usr/include/postgresql "$root/bench/pushload.c" -lpq -lcrypto -lpthread \
	-o "$out/pushload"

pids=()
stop_pid() {
	local p=$1 i
	kill "$p" 2>/dev/null || return 0
	for i in $(seq 1 30); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
}
hooks=""
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	[ -z "$hooks" ] || q "SELECT count(poll.remove_webhook(w)) FROM unnest('{$hooks}'::bigint[]) w" >/dev/null 2>&1 || true
}
trap cleanup EXIT
free_port() {
	local p
	for p in $(shuf -i 32000-39999 -n 200); do
		if ! ss -Htan "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "webhooks.sh: no free port" >&2; exit 1
}
wait_http() {
	local i
	for i in $(seq 1 150); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
		sleep 0.1
	done
	echo "webhooks.sh: $1 not ready" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# ---- the receiver, the polls and their webhooks ----
rport=$(free_port)
python3 "$root/test/fanout/webhook_receiver.py" --port "$rport" --out "$out/received.jsonl" --secret bench \
	>"$out/receiver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do grep -q listening "$out/receiver.log" && break; sleep 0.1; done
polls=$(q "SELECT string_agg(poll.create_poll('hooked ' || i, ARRAY['a', 'b', 'c', 'd'])::text, ',')
	FROM generate_series(1, $npolls) i")
hooks=$(q "SELECT string_agg(poll.add_webhook('http://127.0.0.1:$rport/' || p, 'bench', '{opened,closed,tally}',
	ARRAY[p])::text, ',') FROM unnest('{$polls}'::bigint[]) p")
hot=$(q "SELECT poll.create_poll('webhooks bench push', ARRAY['probe', 'a', 'b', 'c'])")
{
	echo '\set v random(1, 1000000000000000)'
	echo "\\set p random(1, $npolls)"
	echo "SELECT poll.cast_vote(('{$polls}'::bigint[])[:p], 'v' || :v, 1 + (:v::bigint % 4)::int);"
} >"$out/votes.pgbench"
log "polls $polls; webhooks $hooks; hot $hot; receiver on $rport"

# one run: the daemon (with or without --webhooks), pushload's clients, the votes
run() {	# name [flags...]: prints "cpu_percent rss_kb deliveries"
	local name=$1 port pid lp vp t0 t1 r0 d0 d1
	shift
	port=$(free_port)
	"$daemon_bin" --db "$conninfo" --listen "127.0.0.1:$port" "$@" >"$out/fanout.$name.log" 2>&1 &
	pid=$!; pids+=("$pid")
	wait_http "http://127.0.0.1:$port/healthz"
	"$out/pushload" push --port "$port" --poll "$hot" --clients "$clients" --conninfo "$conninfo" \
		--seconds "$secs" --pid "$pid" --src-base 30 --drain-max 3 --settle 1 --raw "$out/lat.$name.ms" \
		>"$out/push.$name.txt" &
	lp=$!; pids+=("$lp")
	for _ in $(seq 1 300); do grep -q '^clients=' "$out/push.$name.txt" && break; sleep 0.1; done
	"$PGBIN/pgbench" -n -M prepared -c 4 -j 2 -R "$rate" -T $((secs + 3)) -f "$out/votes.pgbench" \
		>"$out/votes.$name.out" 2>&1 &
	vp=$!; pids+=("$vp")
	sleep 2
	t0=$(date +%s.%N); r0=$(cpu_ticks "$pid"); d0=$(wc -l <"$out/received.jsonl")
	sleep "$secs"
	t1=$(date +%s.%N); r1=$(cpu_ticks "$pid"); d1=$(wc -l <"$out/received.jsonl")
	rss=$(rss_kb "$pid")
	wait "$lp" || true
	wait "$vp" || true
	stop_pid "$pid"
	awk -v a="$r0" -v b="$r1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v rss="$rss" -v d="$((d1 - d0))" \
		'BEGIN {printf "%.1f %d %.1f\n", (b - a) / hz / (t1 - t0) * 100, rss, d / (t1 - t0)}' >"$out/run.$name.txt"
	log "$name: $(cat "$out/run.$name.txt"); $(tr '\n' ' ' <"$out/push.$name.txt")" >&2
	cat "$out/run.$name.txt"
}

: >"$out/without.txt"; : >"$out/with.txt"
for r in $(seq 1 "$runs"); do
	if [ $((r % 2)) = 1 ]; then order="without with"; else order="with without"; fi
	for which in $order; do
		if [ "$which" = with ]; then run "with.$r" --webhooks >>"$out/with.txt"
		else run "without.$r" >>"$out/without.txt"; fi
	done
done

# ---- closed: every poll closed, one transaction each; commit -> receipt ----
port=$(free_port)
"$daemon_bin" --db "$conninfo" --listen "127.0.0.1:$port" --webhooks >"$out/fanout.closed.log" 2>&1 &
pid=$!; pids+=("$pid")
wait_http "http://127.0.0.1:$port/healthz"
# votes keep streaming to the polls still open while they close
psql -X -q -c "DO \$\$
DECLARE ids bigint[] := '{$polls}'; n int := 0;
BEGIN
	WHILE clock_timestamp() < now() + interval '15 seconds' LOOP
		n := n + 1;
		BEGIN
			PERFORM poll.cast_vote(ids[1 + n % $npolls], 'late-' || n, 1 + n % 4);
		EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL;	-- closed meanwhile
		END;
		COMMIT;
		IF n % 5 = 0 THEN PERFORM pg_sleep(0.01); END IF;
	END LOOP;
END \$\$" >"$out/late_votes.log" 2>&1 &
vp=$!; pids+=("$vp")
sleep 2
q "CREATE TABLE IF NOT EXISTS public.bench_closed (poll_id bigint, at timestamptz); TRUNCATE public.bench_closed"
q "DO \$\$
DECLARE p bigint;
BEGIN
	FOREACH p IN ARRAY '{$polls}'::bigint[] LOOP
		PERFORM poll.close_poll(p);
		COMMIT;
		INSERT INTO public.bench_closed VALUES (p, clock_timestamp());
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END \$\$"
for _ in $(seq 1 100); do
	n=$(python3 -c "import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(json.loads(l)['body']).get('event') == 'closed'))" "$out/received.jsonl")
	[ "$n" -ge "$npolls" ] && break
	sleep 0.2
done
q "COPY (SELECT poll_id, extract(epoch FROM at) FROM public.bench_closed) TO STDOUT" >"$out/closed_at.tsv"
q "DROP TABLE public.bench_closed"
stop_pid "$vp"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'DO %late-%' AND pid <> pg_backend_pid()" >/dev/null
stop_pid "$pid"
python3 - "$out/received.jsonl" "$out/closed_at.tsv" >"$out/closed.txt" <<'PY'
import json, sys
closed = {}
for line in open(sys.argv[2]):
    p, at = line.split()
    closed[int(p)] = float(at)
lat = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    b = json.loads(r["body"])
    if b.get("event") == "closed" and b["poll"] in closed and r["status"] == 200:
        lat.append((r["at"] - closed.pop(b["poll"])) * 1000)
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else float("nan")
print("%d %.1f %.1f %.1f %d" % (len(lat), pct(0.5), pct(0.99), lat[-1] if lat else float("nan"), len(closed)))
PY
read -r n_closed c50 c99 cmax c_missing <"$out/closed.txt"
log "closed: $(cat "$out/closed.txt")"

# ---- rows ----
avg() { awk -v c="$1" '{s += $c; n++} END {if (n) printf "%.1f", s / n; else print "-"}' "$2"; }
cpu_with=$(avg 1 "$out/with.txt"); cpu_without=$(avg 1 "$out/without.txt")
rss_with=$(avg 2 "$out/with.txt"); rss_without=$(avg 2 "$out/without.txt")
dps=$(avg 3 "$out/with.txt")
ratio=$(awk -v a="$cpu_with" -v b="$cpu_without" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
met() { awk -v x="$1" -v y="$2" "BEGIN {print (x $3 y) ? \"yes\" : \"no\"}"; }
echo "| webhooks: tally deliveries/s, $npolls webhooks on $npolls polls, $rate votes/s over them ($npolls × one per 5 s = $((npolls / 5))/s at most, by design) | $dps /s | | | context | |" >&3
echo "| webhooks: close_poll commit → receiver's receipt of \`closed\`, p50 / p99 / max, $npolls polls closed 20 ms apart while votes stream ($n_closed received, $c_missing missing) | $c50 / $c99 / $cmax ms | | | p99 ≤ 1 000 ms | $( [ "$c_missing" = 0 ] && met "$c99" 1000 '<=' || echo no) |" >&3
echo "| webhooks: daemon CPU (% of one core), $clients WebSocket clients + $rate votes/s, with \`--webhooks\` vs without | $cpu_with % | $cpu_without % | ${ratio}× | ≤ 1.10× | $(met "$ratio" 1.10 '<=') |" >&3
pushlat() {	# with|without p50_ms|p99_ms: the median over the runs
	grep -ho "\b$2=[0-9.]*" "$out"/push."$1".*.txt | cut -d= -f2 | sort -n |
		awk '{a[NR] = $1} END {if (NR) printf "%.1f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; else print "-"}'
}
echo "| webhooks: push latency p50 / p99 (commit → WebSocket, pushload's probes; median of the runs), same runs, with \`--webhooks\` vs without | $(pushlat with p50_ms) / $(pushlat with p99_ms) ms | $(pushlat without p50_ms) / $(pushlat without p99_ms) ms | | context (a shared machine: runs alternate) | |" >&3
echo "| webhooks: daemon RSS, same runs, with vs without | $(awk -v a="$rss_with" 'BEGIN {printf "%.1f MiB", a / 1024}') | $(awk -v a="$rss_without" 'BEGIN {printf "%.1f MiB", a / 1024}') | | context | |" >&3

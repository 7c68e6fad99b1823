#!/usr/bin/env bash
# push.sh OUTDIR — push and capacity benchmarks of poll-fanout, against the
# LISTEN/NOTIFY baseline (bench/push_baseline.{c,sql}).
#
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE pointing at a running cluster with the
# extension, its worker and wal_level=logical (bench/run.sh's private cluster).
# QUICK=1: 2 000 clients and one round (under a minute); otherwise 10 000
# clients, three rounds of ours and the baseline alternated, and the idle
# capacity test (under 6 minutes).
#
# Prints only markdown table rows: | benchmark | ours | baseline | ratio | target | met |
# Raw data (every latency, each run's summary, logs) goes to OUTDIR, and the
# observations drawn from the figures to OUTDIR/observations.md.
set -euo pipefail

out=${1:?usage: push.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 3>&1 1>>"$out/push.log" 2>&1		# stdout is for the table rows only
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
QUICK=${QUICK:-0}
: "${PGHOST:?} ${PGPORT:?} ${PGUSER:?} ${PGDATABASE:?}"
conninfo="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"

if [ "$QUICK" = 1 ]; then
	clients=2000; rounds=1; secs=5; warm_clients=500; warm_secs=2; idle_cap=5000; drain=4
else
	clients=10000; rounds=3; secs=10; warm_clients=2000; warm_secs=3; idle_cap=50000; drain=6
fi
rate=2000
per_proc=19000	# connections per idle load process (each has RLIMIT_NOFILE too)

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
log() { echo "$(date -u +%T) $*"; }

# ---- build ----
make -s -C "$root/fanout" >/dev/null || [ -x "$root/fanout/poll-fanout" ]
daemon_bin="$root/fanout/poll-fanout"
cflags="-O2 -g -Wall -Wextra -Werror -I/usr/include/postgresql"
gcc $cflags "$root/bench/pushload.c" -lpq -lcrypto -lpthread -o "$out/pushload"
gcc $cflags "$root/bench/push_baseline.c" -lwebsockets -lpq -o "$out/push_baseline"
gcc $cflags "$root/bench/push_ceiling.c" -lcrypto -o "$out/push_ceiling"

# ---- what we start, we stop ----
pids=()
stop_pid() {	# pid: TERM, then KILL after 3 s
	local p=$1 i
	kill "$p" 2>/dev/null || return 0
	for i in $(seq 1 30); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
}
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	q "DROP TRIGGER IF EXISTS push_baseline_notify ON poll.tally" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
	local p
	for p in $(shuf -i 20000-31999 -n 200); do
		if ! ss -Htan "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "push.sh: no free port" >&2; exit 1
}
wait_http() {	# url: up to 15 s for a 200
	local i
	for i in $(seq 1 150); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
		sleep 0.1
	done
	echo "push.sh: $1 not ready" >&2; return 1
}
wait_port() {
	local i
	for i in $(seq 1 150); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	echo "push.sh: nothing listening on $1" >&2; return 1
}
srv_pid=; srv_port=
start_ours() {	# name [daemon flags...]
	local name=$1
	shift
	srv_port=$(free_port)
	"$daemon_bin" --db "$conninfo" --listen "127.0.0.1:$srv_port" "$@" >"$out/fanout.$name.log" 2>&1 &
	srv_pid=$!; pids+=("$srv_pid")
	wait_http "http://127.0.0.1:$srv_port/healthz"
}
start_baseline() {	# name
	psql -X -q -v ON_ERROR_STOP=1 -f "$root/bench/push_baseline.sql" 2>/dev/null
	srv_port=$(free_port)
	"$out/push_baseline" --db "$conninfo" --listen "$srv_port" >"$out/baseline.$1.log" 2>&1 &
	srv_pid=$!; pids+=("$srv_pid")
	wait_port "$srv_port"
}
start_ceiling() {	# name: the raw send loop, one tally-sized frame (150 bytes) to every client in turn
	srv_port=$(free_port)
	"$out/push_ceiling" --port "$srv_port" --bytes 150 >"$out/ceiling.$1.log" 2>&1 &
	srv_pid=$!; pids+=("$srv_pid")
	wait_port "$srv_port"
}
stop_server() {	# which
	stop_pid "$srv_pid"
	[ "$1" = baseline ] && q "DROP TRIGGER IF EXISTS push_baseline_notify ON poll.tally"
	return 0
}
src=10
bg_votes() { q "SELECT coalesce(sum(votes), 0) FROM poll.results WHERE poll_id = $hot AND option_id > 1"; }
run_push() {	# which name clients seconds [daemon flags...]
	local which=$1 name=$2 n=$3 s=$4 lp bgp v0 t0 i dr=$drain
	[ "$which" = ceiling ] && dr=1	# its frames carry no counts: no probe is ever seen
	shift 4
	"start_$which" "$name" "$@"
	# connect with no votes flowing, then 2 000 votes/s while the probes run
	"$out/pushload" push --port "$srv_port" --poll "$hot" --clients "$n" --conninfo "$conninfo" \
		--seconds "$s" --pid "$srv_pid" --src-base "$src" --drain-max "$dr" --settle 2 \
		--raw "$out/lat.$name.ms" >"$out/push.$name.txt" &
	lp=$!; pids+=("$lp")
	for i in $(seq 1 600); do
		grep -q '^clients=' "$out/push.$name.txt" && break
		kill -0 "$lp" 2>/dev/null || break
		sleep 0.1
	done
	v0=$(bg_votes); t0=$(date +%s.%N)
	(cd "$out" && exec "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -R "$rate" -T $((s + drain + 5)) \
		-f "$out/background.pgbench" >"$out/background.$name.out" 2>&1) &
	bgp=$!; pids+=("$bgp")
	wait "$lp" || { echo "push.sh: pushload failed in $name" >&2; exit 1; }
	awk -v v0="$v0" -v v1="$(bg_votes)" -v t0="$t0" -v t1="$(date +%s.%N)" \
		'BEGIN {printf "votes_per_s=%.0f\n", (v1 - v0) / (t1 - t0)}' >>"$out/push.$name.txt"
	stop_pid "$bgp"
	wait "$bgp" 2>/dev/null || true
	src=$((src + 1 + n / 20000))
	stop_server "$which"
	log "$name: loadavg $(cut -d" " -f1-3 /proc/loadavg): $(tr '\n' ' ' <"$out/push.$name.txt")"
}

# ---- the polls: option 1 of the hot poll receives only probe votes ----
hot=$(q "SELECT poll.create_poll('Push', ARRAY['probe', 'a', 'b', 'c'])")
idle_poll=$(q "SELECT poll.create_poll('Idle', ARRAY['a', 'b'])")
{
	echo '\set v random(1, 1000000000000000)'
	echo "SELECT poll.cast_vote($hot, 'v' || :v, (2 + :v::bigint % 3)::int);"
} >"$out/background.pgbench"
log "fanout: commit $(git -C "$root" log -1 --format=%h -- fanout 2>/dev/null || echo '?'), $(git -C "$root" status --porcelain -- fanout 2>/dev/null | wc -l) files changed since"
log "clients=$clients rounds=$rounds secs=$secs ulimit -n=$(ulimit -n) hard=$(ulimit -Hn) file-max=$(cat /proc/sys/fs/file-max)"

# ---- push: ours and the baseline alternated, after a warm-up ----
run_push ours warm "$warm_clients" "$warm_secs"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="ours baseline"; else order="baseline ours"; fi
	for which in $order; do
		run_push "$which" "$which.$r" "$clients" "$secs"
	done
done
# context: the same load with a 10 ms throttle window instead of the default 50 ms
run_push ours t10 "$clients" "$secs" --throttle 10
# the machine's ceiling: a raw send loop to the same clients, under the same vote load
run_push ceiling ceiling "$clients" "$secs"

# ---- capacity: idle subscribed connections held by one fresh daemon ----
start_ours idle
sleep 1
rss0=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status")
nproc_idle=$(( (idle_cap + per_proc - 1) / per_proc ))
idle_pids=()
for i in $(seq 1 "$nproc_idle"); do
	n=$per_proc
	[ "$i" = "$nproc_idle" ] && n=$((idle_cap - per_proc * (nproc_idle - 1)))
	"$out/pushload" idle --port "$srv_port" --poll "$idle_poll" --clients "$n" --pid "$srv_pid" \
		--src-base $((100 + 2 * i)) --hold-seconds 60 --handshake-timeout 3 >"$out/idle.$i.txt" 2>&1 &
	idle_pids+=("$!"); pids+=("$!")
done
for _ in $(seq 1 1200); do	# all report "held" (at most 120 s)
	done_n=$(cat "$out"/idle.*.txt 2>/dev/null | grep -c '^held=' || true)
	[ "$done_n" -ge "$nproc_idle" ] && break
	kill -0 "$srv_pid" 2>/dev/null || break
	sleep 0.1
done
sleep 1
rssN=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status" 2>/dev/null || echo 0)
held=$(cat "$out"/idle.*.txt | awk -F'[= ]' '/^held=/ {s += $2} END {print s + 0}')
for p in "${idle_pids[@]}"; do stop_pid "$p"; done
daemon_alive=$(kill -0 "$srv_pid" 2>/dev/null && echo yes || echo no)
stop_server ours
emfile=$(grep -c 'errno 24' "$out/fanout.idle.log" || true)
log "idle: cap=$idle_cap held=$held rss0=${rss0}kB rssN=${rssN}kB daemon_alive=$daemon_alive emfile_lines=$emfile"
cat "$out"/idle.*.txt

# ---- report ----
val() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" "$out/push.$1.txt" | head -1; }
median() { sort -n | awk '{a[NR] = $1} END {if (NR == 0) print "-1"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
med() {	# which key
	for r in $(seq 1 "$rounds"); do
		v=$(val "$1.$r" "$2")
		# a percentile that was never received counts as "slower than the drain"
		if [ "$v" = "-1.00" ] || [ -z "$v" ]; then v=999999; fi
		echo "$v"
	done | median
}
sum_key() { for r in $(seq 1 "$rounds"); do val "$1.$r" "$2"; done | awk '{s += $1} END {print s + 0}'; }
show_ms() { awk -v x="$1" -v d="$drain" 'BEGIN {if (x >= 999999) printf "> %d s (backlog)", d; else printf "%.1f ms", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a >= 999999 || b >= 999999 || b <= 0) print ""; else printf "%.2f×", a / b}'; }
met() { awk -v x="$1" -v y="$2" "BEGIN {print (x $3 y) ? \"yes\" : \"no\"}"; }
fmt() { awk -v x="$1" 'BEGIN {s = sprintf("%.0f", x); n = length(s); o = ""; for (i = 1; i <= n; i++) {o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o " "} print o}'; }

o50=$(med ours p50_ms); b50=$(med baseline p50_ms)
o99=$(med ours p99_ms); b99=$(med baseline p99_ms)
omax=$(med ours max_ms); bmax=$(med baseline max_ms)
omsg=$(med ours msgs_per_s); bmsg=$(med baseline msgs_per_s)
ocpu=$(med ours server_cpu_pct); bcpu=$(med baseline server_cpu_pct)
omiss=$(sum_key ours missing); bmiss=$(sum_key baseline missing)
osamp=$(sum_key ours samples); bsamp=$(sum_key baseline samples)
achieved=$(for r in $(seq 1 "$rounds"); do val "ours.$r" votes_per_s; val "baseline.$r" votes_per_s; done | median)
per_conn=$(awk -v a="$rss0" -v b="$rssN" -v n="$held" 'BEGIN {if (n > 0) printf "%.2f", (b - a) / n; else print -1}')
hardn=$(ulimit -Hn)
label="$(fmt "$clients") subscribed clients, $(fmt "$rate") votes/s offered ($(fmt "$achieved") reached), median of $rounds run(s) of $secs s"

echo "| push latency p50, commit → WebSocket receipt, $label, vs LISTEN/NOTIFY + lws forwarder | $(show_ms "$o50") | $(show_ms "$b50") | $(ratio "$o50" "$b50") | ≤ 20 ms | $(met "$o50" 20 '<=') |" >&3
echo "| push latency p99 (max: ours $(show_ms "$omax"), baseline $(show_ms "$bmax"); probes never received: ours $omiss of $((osamp + omiss)), baseline $bmiss of $((bsamp + bmiss))) | $(show_ms "$o99") | $(show_ms "$b99") | $(ratio "$o99" "$b99") | ≤ 100 ms | $(met "$o99" 100 '<=') |" >&3
echo "| push: messages delivered/s, all clients | $(fmt "$omsg") | $(fmt "$bmsg") | $(ratio "$omsg" "$bmsg") | context | |" >&3
echo "| push: server CPU during the run (% of one core) | $ocpu % | $bcpu % | $(ratio "$ocpu" "$bcpu") | context | |" >&3
one() { v=$(val "$1" "$2"); [ "$v" = "-1.00" ] && v=999999; show_ms "$v"; }
cmsg=$(val ceiling msgs_per_s)
echo "| push: messages delivered/s to $(fmt "$clients") clients under the same vote load (ours is asked for up to $(fmt $((clients * 20)))/s: one per client per 50 ms window), vs the machine's ceiling: a raw send loop of a 150-byte frame to every client in turn (bench/push_ceiling.c: no JSON, no coalescing, no Postgres) | $(fmt "$omsg") | $(fmt "$cmsg") | $(ratio "$omsg" "$cmsg") | context | |" >&3
echo "| push: the lowest mean wait any design that sends each client its own message can reach here: $(fmt "$clients") clients / (2 × the raw loop's $(fmt "$cmsg") messages/s) | $(awk -v n="$clients" -v c="$cmsg" 'BEGIN {if (c > 0) printf "%.1f ms", n / (2 * c) * 1000; else print "-"}') | | | context | |" >&3
echo "| push latency p50 / p99, same load, ours with \`--throttle 10\` (one run) | $(one t10 p50_ms) / $(one t10 p99_ms) | | | context | |" >&3
echo "| push latency p50 / p99, same load, ours with $(fmt "$warm_clients") clients (the warm-up run, $warm_secs s) | $(one warm p50_ms) / $(one warm p99_ms) | | | context | |" >&3
echo "| daemon RSS per idle subscribed connection ((VmRSS with $(fmt "$held") − with 0) / $(fmt "$held"); $(awk -v a="$rss0" 'BEGIN {printf "%.1f", a / 1024}') → $(awk -v a="$rssN" 'BEGIN {printf "%.1f", a / 1024}') MiB) | $per_conn KiB | | | ≤ 8 KiB | $(met "$per_conn" 8 '<=') |" >&3
echo "| idle subscribed connections held by one daemon (attempted $(fmt "$idle_cap"); RLIMIT_NOFILE hard limit $hardn, fs.file-max $(cat /proc/sys/fs/file-max); daemon alive after: $daemon_alive, $emfile \"accept: errno 24\" log lines) | $(fmt "$held") | | | context | |" >&3

# ---- observations, computed from the figures ----
ccpu=$(val ceiling server_cpu_pct)
us_msg() { awk -v c="$1" -v m="$2" 'BEGIN {if (m > 0) printf "%.1f", c * 10000 / m; else print "-"}'; }
{
	echo "- Push, p50: with the default 50 ms throttle window a client gets at most 20 messages/s, so under a steady"
	echo "  vote stream a change waits for its client's next message, half a window (25 ms) on average, however few"
	echo "  the clients; fold and decoding come on top. With $(fmt "$warm_clients") clients the daemon keeps up and p50 was $(one warm p50_ms)."
	echo "- Push at $(fmt "$clients") clients: the daemon is asked for up to $(fmt $((clients * 20))) messages/s. A raw send loop"
	echo "  (bench/push_ceiling.c) delivered $(fmt "$cmsg")/s to the same clients under the same vote load, using $(us_msg "$ccpu" "$cmsg") µs of CPU"
	echo "  per message; poll-fanout delivered $(fmt "$omsg")/s at $(us_msg "$ocpu" "$omsg") µs per message."
	echo "  No design that sends each client its own message can give a client one more"
	bound=$(awk -v n="$clients" -v c="$cmsg" 'BEGIN {if (c > 0) printf "%.1f", n / c * 500; else print 0}')
	echo "  often than every $(awk -v b="$bound" 'BEGIN {printf "%.0f", 2 * b}') ms here, which bounds the mean wait below by half that, $bound ms$(awk -v b="$bound" -v n="$(fmt "$clients")" \
		'BEGIN {if (b > 20) printf ": a 20 ms p50 at %s clients is beyond this 2-core machine, which also runs Postgres, the vote load and the clients", n}')."
} >"$out/observations.md"

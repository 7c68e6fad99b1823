#!/usr/bin/env bash
# push.sh OUTDIR — push and capacity benchmarks of poll-fanout (issue 10's targets),
# side by side with the machine's raw send loop (bench/push_ceiling.c) and, as
# context, a LISTEN/NOTIFY forwarder (bench/push_baseline.{c,sql}).
#
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE pointing at a running cluster with the
# extension, its worker and wal_level=logical (bench/run.sh's private cluster).
# Every run uses the same client (pushload) and, but for the low-rate one, the same
# background vote load (2 000 votes/s on the hot poll). Each round runs ours and
# the raw loop back to back (which goes first alternates), the LISTEN/NOTIFY
# baseline and the low-rate path; while the raw loop runs, a second poll-fanout
# with 10 clients and no throttle measures commit -> receipt (D) on a poll of its
# own. A ratio is the median of the per-round ratios.
# QUICK=1: one round of 5 s (about 3 minutes); otherwise three rounds of 10 s
# and the idle capacity test up to 50 000 connections (about 10 minutes).
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
	rounds=1; secs=5; warm_clients=2000; warm_secs=3; idle_cap=5000; drain=4
else
	rounds=3; secs=10; warm_clients=2000; warm_secs=3; idle_cap=50000; drain=6
fi
clients=10000
rate=2000			# background votes/s on the hot poll
throttle=50			# the daemon's default window (ms)
low_clients=100; low_interval=200	# the low-rate path: 5 votes/s (the probes alone)
d_clients=10		# D: commit -> receipt with a few clients and no throttle, beside the raw loop
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
# D, beside the raw loop: a second daemon, --throttle 0, d_clients clients on the D poll
d_pid=; d_lp=
start_dprobe() {	# name seconds
	local port
	port=$(free_port)
	"$daemon_bin" --db "$conninfo" --listen "127.0.0.1:$port" --throttle 0 >"$out/fanout.$1.log" 2>&1 &
	d_pid=$!; pids+=("$d_pid")
	wait_http "http://127.0.0.1:$port/healthz"
	echo "$port" >"$out/$1.port"
}
run_dprobe() {	# name seconds: once the main clients are connected
	"$out/pushload" push --port "$(cat "$out/$1.port")" --poll "$dpoll" --clients "$d_clients" --conninfo "$conninfo" \
		--seconds "$2" --pid "$d_pid" --src-base 250 --drain-max 3 --settle 2 \
		--raw "$out/lat.$1.ms" >"$out/push.$1.txt" &
	d_lp=$!; pids+=("$d_lp")
}
stop_dprobe() {	# name
	wait "$d_lp" || { echo "push.sh: pushload failed in $1" >&2; exit 1; }
	stop_pid "$d_pid"
	log "$1: $(tr '\n' ' ' <"$out/push.$1.txt")"
}
src=10
bg_votes() { q "SELECT coalesce(sum(votes), 0) FROM poll.results WHERE poll_id = $hot AND option_id > 1"; }
run_push() {	# which name clients seconds votes/s probe-interval-ms [daemon flags...]
	local which=$1 name=$2 n=$3 s=$4 r=$5 iv=$6 lp bgp= v0 t0 i dr=$drain
	[ "$which" = ceiling ] && dr=1	# its frames carry no counts: no probe is ever seen
	shift 6
	[ "$which" = ceiling ] && start_dprobe "d.${name#ceiling.}" "$s"
	"start_$which" "$name" "$@"
	# connect with no votes flowing, then the vote load while the probes run
	"$out/pushload" push --port "$srv_port" --poll "$hot" --clients "$n" --conninfo "$conninfo" \
		--seconds "$s" --interval-ms "$iv" --pid "$srv_pid" --src-base "$src" --drain-max "$dr" --settle 2 \
		--raw "$out/lat.$name.ms" >"$out/push.$name.txt" &
	lp=$!; pids+=("$lp")
	for i in $(seq 1 600); do
		grep -q '^clients=' "$out/push.$name.txt" && break
		kill -0 "$lp" 2>/dev/null || break
		sleep 0.1
	done
	[ "$which" = ceiling ] && run_dprobe "d.${name#ceiling.}" "$s"
	v0=$(bg_votes); t0=$(date +%s.%N)
	if [ "$r" -gt 0 ]; then
		(cd "$out" && exec "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -R "$r" -T $((s + drain + 5)) \
			-f "$out/background.pgbench" >"$out/background.$name.out" 2>&1) &
		bgp=$!; pids+=("$bgp")
	fi
	wait "$lp" || { echo "push.sh: pushload failed in $name" >&2; exit 1; }
	[ "$which" = ceiling ] && stop_dprobe "d.${name#ceiling.}"
	awk -v v0="$v0" -v v1="$(bg_votes)" -v t0="$t0" -v t1="$(date +%s.%N)" \
		'BEGIN {printf "votes_per_s=%.0f\n", (v1 - v0) / (t1 - t0)}' >>"$out/push.$name.txt"
	if [ -n "$bgp" ]; then
		stop_pid "$bgp"
		wait "$bgp" 2>/dev/null || true
	fi
	src=$((src + 1 + n / 20000))
	stop_server "$which"
	log "$name: loadavg $(cut -d" " -f1-3 /proc/loadavg): $(tr '\n' ' ' <"$out/push.$name.txt")"
}

# ---- the polls: option 1 of the hot poll receives only probe votes ----
hot=$(q "SELECT poll.create_poll('Push', ARRAY['probe', 'a', 'b', 'c'])")
idle_poll=$(q "SELECT poll.create_poll('Idle', ARRAY['a', 'b'])")
dpoll=$(q "SELECT poll.create_poll('D', ARRAY['probe', 'a'])")
{
	echo '\set v random(1, 1000000000000000)'
	echo "SELECT poll.cast_vote($hot, 'v' || :v, (2 + :v::bigint % 3)::int);"
} >"$out/background.pgbench"
log "fanout: commit $(git -C "$root" log -1 --format=%h -- fanout 2>/dev/null || echo '?'), $(git -C "$root" status --porcelain -- fanout 2>/dev/null | wc -l) files changed since"
log "clients=$clients rounds=$rounds secs=$secs ulimit -n=$(ulimit -n) hard=$(ulimit -Hn) file-max=$(cat /proc/sys/fs/file-max)"

# ---- push: per round, ours and the raw loop back to back, the baseline, D, the low-rate path ----
run_push ours warm "$warm_clients" "$warm_secs" "$rate" 100
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="ours ceiling baseline"; else order="baseline ceiling ours"; fi
	for which in $order; do
		run_push "$which" "$which.$r" "$clients" "$secs" "$rate" 100
	done
	run_push ours "low.$r" "$low_clients" "$secs" 0 "$low_interval"
done
# context: the same load with a 10 ms throttle window instead of the default 50 ms
run_push ours t10 "$clients" "$secs" "$rate" 100 --throttle 10

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
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-1"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
pval() {	# name key: a percentile never received counts as "slower than the drain"
	local v
	v=$(val "$1" "$2")
	if [ "$v" = "-1.00" ] || [ -z "$v" ]; then v=999999; fi
	echo "$v"
}
med() { for r in $(seq 1 "$rounds"); do pval "$1.$r" "$2"; done | median; }
sum_key() { for r in $(seq 1 "$rounds"); do val "$1.$r" "$2"; done | awk '{s += $1} END {print s + 0}'; }
show_ms() { awk -v x="$1" -v d="$drain" 'BEGIN {if (x >= 999999) printf "> %d s (backlog)", d; else printf "%.1f ms", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a >= 999999 || b >= 999999 || b <= 0) print ""; else printf "%.2f×", a / b}'; }
met() { awk -v x="$1" -v y="$2" "BEGIN {print (x != \"\" && x + 0 $3 y) ? \"yes\" : \"no\"}"; }
fmt() { awk -v x="$1" 'BEGIN {s = sprintf("%.0f", x); n = length(s); o = ""; for (i = 1; i <= n; i++) {o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o " "} print o}'; }
us_msg() { awk -v c="$1" -v m="$2" 'BEGIN {if (m > 0) printf "%.2f", c * 10000 / m; else print -1}'; }	# CPU % of a core, msgs/s -> µs per message

# per round: the target ratios, each from the runs of that round
cap=$((clients * 1000 / throttle))	# the most messages/s the throttle lets ours send
: >"$out/rounds.tsv"
for r in $(seq 1 "$rounds"); do
	om=$(val "ours.$r" msgs_per_s); cm=$(val "ceiling.$r" msgs_per_s)
	ocpu=$(us_msg "$(val "ours.$r" server_cpu_pct)" "$om"); ccpu=$(us_msg "$(val "ceiling.$r" server_cpu_pct)" "$cm")
	o50=$(pval "ours.$r" p50_ms); d50=$(pval "d.$r" p50_ms)
	awk -v r="$r" -v om="$om" -v cm="$cm" -v cap="$cap" -v oc="$ocpu" -v cc="$ccpu" -v o50="$o50" -v d50="$d50" \
		-v cw="$(val "ceiling.$r" wait_ms)" -v ow="$(val "ours.$r" wait_ms)" -v cp="$(val "ceiling.$r" period_ms)" \
		-v op="$(val "ours.$r" period_ms)" -v n="$clients" -v t="$throttle" 'BEGIN {
		ref = cm < cap ? cm : cap          # what the raw loop delivers, up to what the throttle allows ours
		wait = cw < t / 2 ? t / 2 : cw     # the raw loop'"'"'s mean wait for a client'"'"'s next message, at least half a window
		floor = d50 + wait
		printf "%d\t%.0f\t%.0f\t%.4f\t%.2f\t%.2f\t%.4f\t%.2f\t%.2f\t%.2f\t%.4f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\n",
			r, om, cm, om / ref, oc, cc, oc / cc, o50, d50, floor, o50 / floor, n / (2 * cm) * 1000, op, ow, cp, cw
	}' >>"$out/rounds.tsv"
done
col() { cut -f"$1" "$out/rounds.tsv" | median; }
r_msgs=$(col 4); r_cpu=$(col 7); r_p50=$(col 11)
o_msgs=$(col 2); c_msgs=$(col 3); o_cpu=$(col 5); c_cpu=$(col 6)
o50=$(col 8); d50=$(col 9); floor=$(col 10); old_floor=$(col 12)
o_period=$(col 13); o_wait=$(col 14); c_period=$(col 15); c_wait=$(col 16)
low50=$(med low p50_ms); low99=$(med low p99_ms)
b50=$(med baseline p50_ms); o99=$(med ours p99_ms); b99=$(med baseline p99_ms)
omax=$(med ours max_ms); bmax=$(med baseline max_ms)
bmsg=$(med baseline msgs_per_s)
ocpup=$(med ours server_cpu_pct); bcpup=$(med baseline server_cpu_pct); ccpup=$(med ceiling server_cpu_pct)
omiss=$(sum_key ours missing); bmiss=$(sum_key baseline missing)
osamp=$(sum_key ours samples); bsamp=$(sum_key baseline samples)
achieved=$(for r in $(seq 1 "$rounds"); do val "ours.$r" votes_per_s; val "ceiling.$r" votes_per_s; done | median)
per_conn=$(awk -v a="$rss0" -v b="$rssN" -v n="$held" 'BEGIN {if (n > 0) printf "%.2f", (b - a) / n; else print -1}')
hardn=$(ulimit -Hn)
pr() { awk -v x="$1" 'BEGIN {printf "%.2f×", x}'; }
load="$(fmt "$clients") subscribed WebSocket clients, $(fmt "$rate") votes/s offered ($(fmt "$achieved") reached), median of $rounds round(s) of $secs s"
one() { show_ms "$(pval "$1" "$2")"; }
{
	echo "| push, issue 10: messages/s delivered to $load, vs the raw send loop (bench/push_ceiling.c) to the same clients under the same load, in the same round; the reference is capped at the $(fmt "$cap")/s the ${throttle} ms throttle allows ours | $(fmt "$o_msgs") | $(fmt "$c_msgs") | $(pr "$r_msgs") | ≥ 0.85× | $(met "$r_msgs" 0.85 '>=') |"
	echo "| push, issue 10: server CPU per message delivered (µs: CPU time of the server process / messages received, same runs) | $o_cpu µs | $c_cpu µs | $(pr "$r_cpu") | ≤ 1.2× | $(met "$r_cpu" 1.2 '<=') |"
	echo "| push, issue 10: latency p50, commit → WebSocket receipt, same runs, vs the floor D + W: D = $(show_ms "$d50"), commit → receipt at $d_clients clients with \`--throttle 0\`, measured beside the raw loop; W = $(show_ms "$c_wait"), the raw loop's mean wait for a client's next message (at least half the ${throttle} ms window) | $(show_ms "$o50") | $(show_ms "$floor") | $(pr "$r_p50") | ≤ 1.3× | $(met "$r_p50" 1.3 '<=') |"
	echo "| push, issue 10: low-rate path, commit → WebSocket receipt p50 at 5 votes/s (the probes alone), $low_clients clients (p99 $(show_ms "$low99")) | $(show_ms "$low50") | | | ≤ 3 ms | $(met "$low50" 3 '<=') |"
	echo "| push, issue 10: daemon RSS per idle subscribed connection ((VmRSS with $(fmt "$held") − with 0) / $(fmt "$held"); $(awk -v a="$rss0" 'BEGIN {printf "%.1f", a / 1024}') → $(awk -v a="$rssN" 'BEGIN {printf "%.1f", a / 1024}') MiB) | $per_conn KiB | | | ≤ 4 KiB | $(met "$per_conn" 4 '<=') |"
	echo "| push: interval between one client's messages, mean / mean wait for the next one (Σ P² / 2 Σ P), ours vs the raw loop, same runs | $(awk -v a="$o_period" -v b="$o_wait" 'BEGIN {printf "%.1f / %.1f ms", a, b}') | $(awk -v a="$c_period" -v b="$c_wait" 'BEGIN {printf "%.1f / %.1f ms", a, b}') | | context | |"
	old_r=$(awk -v a="$o50" -v b="$old_floor" 'BEGIN {if (b > 0) printf "%.2f", a / b}')
	echo "| push, issue 10 as written: latency p50 vs the floor as the issue defines it, $(fmt "$clients") / (2 × the raw loop's messages/s), without D (the raw loop itself, with the same D and its own W, is at $(ratio "$floor" "$old_floor") of it) | $(show_ms "$o50") | $(show_ms "$old_floor") | $(ratio "$o50" "$old_floor") | ≤ 1.3× | $(met "$old_r" 1.3 '<=') |"
	echo "| push latency p50, same runs, vs LISTEN/NOTIFY + lws forwarder (the ≤ 20 ms target of an earlier issue, replaced) | $(show_ms "$o50") | $(show_ms "$b50") | $(ratio "$o50" "$b50") | context | |"
	echo "| push latency p99 (max: ours $(show_ms "$omax"), baseline $(show_ms "$bmax"); probes never received: ours $omiss of $((osamp + omiss)), baseline $bmiss of $((bsamp + bmiss)); the ≤ 100 ms target of an earlier issue, replaced) | $(show_ms "$o99") | $(show_ms "$b99") | $(ratio "$o99" "$b99") | context | |"
	echo "| push: messages delivered/s, ours vs LISTEN/NOTIFY (which sends every change to every client) | $(fmt "$o_msgs") | $(fmt "$bmsg") | $(ratio "$o_msgs" "$bmsg") | context | |"
	echo "| push: server CPU during the runs (% of one core), ours vs LISTEN/NOTIFY; the raw loop: $ccpup % | $ocpup % | $bcpup % | | context | |"
	echo "| push latency p50 / p99, same load, ours with \`--throttle 10\` (one run) | $(one t10 p50_ms) / $(one t10 p99_ms) | | | context | |"
	echo "| push latency p50 / p99, same load, ours with $(fmt "$warm_clients") clients (the warm-up run, $warm_secs s) | $(one warm p50_ms) / $(one warm p99_ms) | | | context | |"
	echo "| idle subscribed connections held by one daemon (attempted $(fmt "$idle_cap"); RLIMIT_NOFILE hard limit $hardn, fs.file-max $(cat /proc/sys/fs/file-max); daemon alive after: $daemon_alive, $emfile \"accept: errno 24\" log lines) | $(fmt "$held") | | | context | |"
} >&3

# ---- observations, computed from the figures ----
{
	echo "- Push, issue 10: its targets (messages/s ≥ 0.85× the raw loop, CPU per message ≤ 1.2× the raw loop's, p50 ≤ 1.3× the floor,"
	echo "  low-rate p50 ≤ 3 ms, ≤ 4 KiB per idle connection) replace the push targets of an earlier issue (p50 ≤ 20 ms and p99 ≤ 100 ms"
	echo "  at 10 000 clients), whose latencies stay above as context. Per round (messages/s ours, raw loop; ratio | CPU µs per message ours,"
	echo "  raw; ratio | p50 ours, D, floor; ratio): $(awk -F'\t' '{printf "%s(%s, %s; %.2f | %s, %s; %.2f | %s, %s, %s ms; %.2f)", (NR > 1 ? "; " : ""), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}' "$out/rounds.tsv")."
	echo "- The floor of p50 is what a daemon as fast as the raw loop would reach: a probe's vote reaches any fan-out daemon only after"
	echo "  the fold worker and the replication stream (D, measured beside the raw loop, so on a machine as loaded: $(show_ms "$d50")), and then"
	echo "  waits for its client's next message (W: from the intervals between one client's messages from the raw loop, $(show_ms "$c_wait");"
	echo "  with a steady period it is half the period, $(awk -v n="$clients" -v c="$c_msgs" 'BEGIN {printf "%.1f", n / c * 500}') ms here, and"
	echo "  it is longer when the intervals vary, as they do on a shared machine; a daemon that keeps the SPEC's ${throttle} ms window waits at least"
	echo "  half of it). Issue 10 first defined the floor as half the mean period alone ($(show_ms "$old_floor")), which leaves out D and the"
	echo "  variation: ours kept a client's intervals at $(show_ms "$o_period") on average with a mean wait of $(show_ms "$o_wait"), the raw loop at"
	echo "  $(show_ms "$c_period") and $(show_ms "$c_wait")."
	echo "- The raw loop (bench/push_ceiling.c) leaves a full socket out of its round until EPOLLOUT says it has room, and sleeps"
	echo "  while every socket is full: its CPU per message is the cost of the messages it delivers. (It used to retry full sockets in a"
	echo "  busy loop, which charged the retries to its messages and flattered ours.) It ran at $ccpup % of a core, ours at $ocpup %."
	echo "- The messages/s reference is the raw loop's rate, capped at $(fmt "$cap")/s: the throttle lets ours send each client at most one"
	echo "  message per ${throttle} ms window, and only when its poll changed."
} >"$out/observations.md"

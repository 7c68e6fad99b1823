# haproxy_lib.sh — deploy/haproxy.cfg in front of numbered daemons, for
# test/integration/haproxy_*.sh (sourced after lib.sh).

declare -a PORT PID
# fanout N [flags]: starts (or restarts, on its old port) daemon N
fanout() {
	local n=$1
	shift
	DAEMON_PORT_WANTED=${PORT[$n]:-} start_daemon "$@"
	PORT[$n]=$DAEMON_PORT
	PID[$n]=$DAEMON_PID
	wait_healthy 20
}

# haproxy_start NAME LISTEN STATS SERVER1 SERVER2 SERVER3: the shipped config, our addresses
haproxy_start() {
	POLL_LB_LISTEN=$2 POLL_LB_STATS=$3 POLL_FANOUT_1=$4 POLL_FANOUT_2=$5 POLL_FANOUT_3=$6 \
		POLL_LB_IDLE_TIMEOUT=${IDLE:-30}s haproxy -db -f "$POLL_ROOT/deploy/haproxy.cfg" >"$WORK/$1.log" 2>&1 &
	PIDS+=($!)
	eval "HAPROXY_PID_$1=$!"
}

# lb_up STATS: the servers HAProxy's health checks (/healthz) have UP, e.g. "fanout1 fanout3"
lb_up() {
	curl -s "http://$1/stats;csv" | awk -F, '$1 == "poll_fanout" && $2 != "BACKEND" && $18 == "UP" { printf "%s ", $2 }' | sed 's/ $//'
}
wait_lb_up() {	# STATS "fanout1 fanout2 fanout3" [seconds]
	for _ in $(seq 1 $(( ${3:-10} * 10 ))); do
		[ "$(lb_up "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "HAProxy has '$(lb_up "$1")' up, not '$2'"
}

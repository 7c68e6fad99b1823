#!/usr/bin/env bash
# cluster.sh — a private PostgreSQL 15 cluster for make run, the tests and the benchmarks.
#
#   cluster.sh start DIR PORT [SETTING=VALUE ...]   initdb when DIR has no cluster, then start
#   cluster.sh stop DIR                              fast shutdown, if running
#   cluster.sh kill DIR                              kill -9 of the postmaster (crash tests)
#
# Listens on 127.0.0.1:PORT only, trust auth for local TCP (the cluster is private),
# wal_level=logical and shared_preload_libraries=poll.  PostgreSQL refuses to run as
# root: as root, the cluster runs as the postgres system user and DIR is given to it.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:?usage: cluster.sh start|stop|kill DIR [PORT] [SETTING=VALUE ...]}
dir=${2:?usage: cluster.sh start|stop|kill DIR [PORT]}
data="$dir/data"

case "$cmd" in
start)
	port=${3:?cluster.sh start DIR PORT}
	shift 3
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	if [ ! -f "$data/PG_VERSION" ]; then
		as_pg "$PGBIN/initdb" -D "$data" -U postgres --auth=trust --no-instructions -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
		{
			echo "listen_addresses = '127.0.0.1'"
			echo "port = $port"
			echo "unix_socket_directories = ''"
			echo "shared_preload_libraries = 'poll'"
			echo "wal_level = logical"
			echo "max_wal_senders = 20"
			echo "max_replication_slots = 20"
			echo "max_connections = 200"
			echo "logging_collector = off"
			echo "log_line_prefix = '%m [%p] %q%a '"
			for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
		} | as_pg tee -a "$data/postgresql.conf" >/dev/null
	fi
	if as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		exit 0
	fi
	as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
	;;
stop)
	if [ -f "$data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
	fi
	;;
kill)
	pid=$(head -1 "$data/postmaster.pid")
	children=$(pgrep -P "$pid" || true)
	kill -9 "$pid"
	# the children notice their postmaster's death and exit; a restart
	# must wait for them, or it finds the old shared memory still in use
	for p in $pid $children; do
		for _ in $(seq 1 200); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
	done
	;;
*)
	echo "cluster.sh: unknown command $cmd" >&2
	exit 2
	;;
esac

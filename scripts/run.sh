#!/usr/bin/env bash
# run.sh — make run / make stop.
#
#   start: builds and installs the extension and poll-fanout, starts a private
#          PostgreSQL 15 cluster under .run/ (or uses PGCONNINFO), creates the
#          extension and a demo poll, starts poll-fanout on 127.0.0.1:8080, and
#          prints how to watch and vote.
#   stop:  stops what start started (by pid), nothing else.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run="$root/.run"
pg_port=${POLL_PG_PORT:-5544}
listen=${POLL_LISTEN:-127.0.0.1:8080}

stop() {
	if [ -f "$run/fanout.pid" ]; then
		pid=$(cat "$run/fanout.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
		rm -f "$run/fanout.pid"
		echo "poll-fanout stopped"
	fi
	if [ -f "$run/pg/data/postmaster.pid" ]; then
		scripts/cluster.sh stop "$run/pg"
		echo "PostgreSQL stopped"
	fi
}

start() {
	make -s >/dev/null
	make -s install >/dev/null
	if [ -f fanout/Makefile ]; then
		make -s -C fanout >/dev/null
		make -s -C fanout install >/dev/null
	fi
	mkdir -p "$run"
	chmod 755 "$run"

	if [ -n "${PGCONNINFO:-}" ]; then
		conninfo=$PGCONNINFO
		echo "using the server at: $conninfo"
		echo "(it needs shared_preload_libraries = 'poll' and wal_level = logical for the worker and poll-fanout)"
	else
		scripts/cluster.sh start "$run/pg" "$pg_port"
		conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
		echo "PostgreSQL 15 is running on 127.0.0.1:$pg_port (data in .run/pg)"
	fi

	psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS poll" >/dev/null
	# poll-fanout connects as poll_fanout, with least privilege (deploy/poll_fanout_role.sql)
	if [ -n "${PGCONNINFO:-}" ]; then
		fanout_db=${POLL_FANOUT_DB:-$PGCONNINFO}
		[ -n "${POLL_FANOUT_DB:-}" ] ||
			echo "(poll-fanout uses PGCONNINFO's role; POLL_FANOUT_DB='... user=poll_fanout' picks the role of deploy/poll_fanout_role.sql)"
	else
		psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -f deploy/poll_fanout_role.sql >/dev/null
		fanout_db="host=127.0.0.1 port=$pg_port user=poll_fanout dbname=postgres"
	fi
	poll=$(psql "$conninfo" -X -qAt -v ON_ERROR_STOP=1 -c "
		SELECT coalesce(
			(SELECT poll_id FROM poll.poll WHERE metadata->>'demo' = 'true' AND closed_at IS NULL
			  ORDER BY poll_id DESC LIMIT 1),
			poll.create_poll('Which colour should the new logo be?',
							 ARRAY['Red', 'Blue', 'Green', 'Yellow'], metadata => '{\"demo\": true}'))")

	if command -v poll-fanout >/dev/null 2>&1; then
		if [ -f "$run/fanout.pid" ] && kill -0 "$(cat "$run/fanout.pid")" 2>/dev/null; then
			echo "poll-fanout is already running (pid $(cat "$run/fanout.pid"))"
		else
			nohup poll-fanout --db "$fanout_db" --listen "$listen" >"$run/fanout.log" 2>&1 &
			echo $! >"$run/fanout.pid"
			for _ in $(seq 1 50); do
				curl -fs "http://$listen/healthz" >/dev/null 2>&1 && break
				sleep 0.1
			done
			echo "poll-fanout is running on http://$listen (pid $(cat "$run/fanout.pid"), log .run/fanout.log)"
		fi
		echo
		echo "  demo page:    http://$listen/?poll=$poll"
	else
		echo "poll-fanout is not built yet: results are in SQL only"
	fi
	echo "  cast a vote:  psql \"$conninfo\" -c \"SELECT poll.cast_vote($poll, 'voter-' || md5(random()::text), 2)\""
	echo "  results:      psql \"$conninfo\" -c \"SELECT * FROM poll.results WHERE poll_id = $poll\""
	echo "  stop:         make stop"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: run.sh start|stop" >&2; exit 2 ;;
esac

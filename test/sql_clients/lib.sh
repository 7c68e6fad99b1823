# lib.sh — sourced by the integration tests that drive poll through real
# client drivers (test/sql_clients/*.js: node-postgres, postgres.js) or that
# need SQLSTATEs from psql; common.sh's helpers come with it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

SQL_CLIENTS="$POLL_ROOT/test/sql_clients"

# the drivers, installed from package-lock.json once
need_sql_clients() {
	command -v node >/dev/null || fail "node is not installed"
	if [ ! -d "$SQL_CLIENTS/node_modules/pg" ] || [ ! -d "$SQL_CLIENTS/node_modules/postgres" ]; then
		(cd "$SQL_CLIENTS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
			fail "npm ci in test/sql_clients failed"
	fi
}

# sql_client NAME [ARGS...]: runs test/sql_clients/NAME.js, which exits 1 on a failed check
sql_client() {
	need_sql_clients
	timeout 120 node "$SQL_CLIENTS/$1.js" "${@:2}" || fail "$1.js failed"
}

# sql_error SQL: runs SQL (as $PGUSER, in one transaction that is then rolled
# back, so that nothing it does stays); prints "ok", or the first error as
# psql's verbose report ("ERROR:  SQLSTATE: message", DETAIL, ...)
sql_error() {
	if psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose 2>&1 >/dev/null <<<"BEGIN; $1; ROLLBACK;"; then
		echo ok
	fi
}

# sqlstate SQL: as sql_error, but only the SQLSTATE (or "ok")
sqlstate() {
	sql_error "$1" | sed -n -e 's/^ok$/ok/p' -e 's/^.*\(ERROR\|FATAL\):  \([0-9A-Z]\{5\}\):.*/\2/p' | head -1
}

# expect_sqlstate STATE WHAT SQL: sqlstate SQL is STATE
expect_sqlstate() {
	local got
	got=$(sqlstate "$3")
	[ "$got" = "$1" ] || fail "$2: expected $1, got ${got:-no SQLSTATE} for: $3"
}

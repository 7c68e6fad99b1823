#!/usr/bin/env bash
# run.sh — make test: builds and installs the extension and the daemon, then runs
# every suite against real PostgreSQL 15 clusters: pg_regress (sql/, expected/),
# isolation specs (test/isolation/), integration tests (test/integration/*.sh).
# Prints one line per test and ends with "N passed, N failed"; exits 1 on any failure.
#
#   POLL_TESTS=pattern make test     runs only the integration tests matching pattern
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PGBIN
PGXS_DIR=$(dirname "$("$PGBIN/pg_config" --pgxs)")/../..
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

passed=0
failed=0
failures=()
record() {	# name rc
	if [ "$2" = 0 ]; then
		passed=$((passed + 1)); printf 'ok     %s\n' "$1"
	else
		failed=$((failed + 1)); failures+=("$1"); printf 'FAILED %s\n' "$1"
	fi
}

work=$(mktemp -d /tmp/poll-test.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
echo "work directory: $work"

# ---- build and install ----
if ! { make -s >"$work/build.log" 2>&1 && make -s install >>"$work/build.log" 2>&1; }; then
	cat "$work/build.log"
	record build 1
	echo "$passed passed, $failed failed"
	exit 1
fi
if [ -f fanout/Makefile ]; then
	if ! { make -s -C fanout >>"$work/build.log" 2>&1 && make -s -C fanout install >>"$work/build.log" 2>&1; }; then
		cat "$work/build.log"
		record build-fanout 1
	fi
fi

# ---- pg_regress and isolation, each in a temporary instance ----
cp -r sql expected test/invariants.sql test/poll.conf "$work/" && mkdir -p "$work/isolation" && cp -r test/isolation/specs test/isolation/expected "$work/isolation/"
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"

count_suite() {	# suite-name output-file expected-count
	local seen=0
	while read -r line; do
		name=$(sed -E 's/^[ ]*(test )?([^ ]+).*/\2/' <<<"$line")
		if grep -q '\.\.\. ok' <<<"$line"; then record "$1/$name" 0; else record "$1/$name" 1; fi
		seen=$((seen + 1))
	done < <(grep -E '\.\.\. (ok|FAILED|failed)' "$2")
	# a runner that stopped early (a missing expected file, a crash) must
	# not pass by reporting fewer tests
	if [ "$seen" != "$3" ]; then
		record "$1/incomplete-run" 1
		echo "    $1: $seen of $3 tests reported; the end of $2:"
		tail -15 "$2" | sed 's/^/    /'
	fi
}

regress_tests="setup $(cd sql && ls *.sql | sed 's/\.sql$//' | grep -vx setup | sort)"
(cd "$work" && as_pg "$PGXS_DIR/src/test/regress/pg_regress" \
	--temp-instance="$work/regress-instance" --temp-config="$work/poll.conf" \
	--inputdir="$work" --outputdir="$work/regress" --bindir="$PGBIN" \
	--dbname=contrib_regression $regress_tests >"$work/regress.out" 2>&1)
count_suite regress "$work/regress.out" "$(wc -w <<<"$regress_tests")"
[ -f "$work/regress/regression.diffs" ] && head -100 "$work/regress/regression.diffs"

iso_tests=$(cd test/isolation/specs && ls *.spec | sed 's/\.spec$//' | sort)
as_pg "$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
	--temp-instance="$work/isolation-instance" --temp-config="$work/poll.conf" \
	--inputdir="$work/isolation" --outputdir="$work/isolation-out" --bindir="$PGBIN" \
	--dbname=isolation_regression $iso_tests >"$work/isolation.out" 2>&1
count_suite isolation "$work/isolation.out" "$(wc -w <<<"$iso_tests")"
[ -f "$work/isolation-out/regression.diffs" ] && head -100 "$work/isolation-out/regression.diffs"

# ---- integration: one cluster with the worker, shared by the scripts ----
export POLL_ROOT="$root" POLL_WORK="$work" POLL_CLUSTER_DIR="$work/cluster"
export PGHOST=127.0.0.1 PGPORT=${POLL_TEST_PORT:-5710} PGUSER=postgres PGDATABASE=postgres
# run_script SUITE SCRIPT: one integration script, recorded as SUITE/name
# (unless POLL_TESTS leaves it out); every script leaves the cluster
# running, and it is restarted if one did not
run_script() {
	local name rc
	name=$(basename "$2" .sh)
	[[ -n "${POLL_TESTS:-}" && ! "$name" =~ ${POLL_TESTS} ]] && return 0
	timeout 600 "$2" >"$work/$1-$name.log" 2>&1
	rc=$?
	record "$1/$name" $rc
	[ $rc != 0 ] && tail -30 "$work/$1-$name.log" | sed 's/^/    /'
	scripts/cluster.sh start "$POLL_CLUSTER_DIR" "$PGPORT" >/dev/null 2>&1
	return 0
}
if scripts/cluster.sh start "$POLL_CLUSTER_DIR" "$PGPORT" "poll.database='postgres'" &&
	psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION poll" >/dev/null; then
	for t in test/integration/*.sh; do
		[ -x "$t" ] && run_script integration "$t"
	done
	# ---- poll-fanout again, built with AddressSanitizer and UBSan ----
	# Every test that starts the daemon, against fanout/poll-fanout-asan; a
	# sanitizer report in a daemon log fails the test (test/fanout/lib.sh).
	# ASan's quarantine keeps freed memory, which the slow-client test would
	# count as growth: keep it small.
	if make -s -C fanout asan >"$work/asan-build.log" 2>&1; then
		for t in test/integration/fanout_*.sh; do
			grep -q start_daemon "$t" || continue
			SANITIZED=1 FANOUT_BIN="$root/fanout/poll-fanout-asan" \
				ASAN_OPTIONS=quarantine_size_mb=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
				run_script sanitizers "$t"
		done
	else
		record sanitizers-build 1
		tail -20 "$work/asan-build.log"
	fi
else
	record integration-cluster 1
fi
scripts/cluster.sh stop "$POLL_CLUSTER_DIR"

[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

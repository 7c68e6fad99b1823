#!/usr/bin/env bash
# fanout_fuzz: each libFuzzer target (pgoutput parser, client JSON parser
# and writer, token verifier) runs FUZZ_SECONDS (default 10) under ASan and
# UBSan without a finding.  Longer: make -C fanout fuzz-run FUZZ_SECONDS=600
. "$(dirname "$0")/../fanout/lib.sh"
command -v clang >/dev/null || fail "clang is not installed (apt-get install clang)"
make -s -C "$POLL_ROOT/fanout" fuzz >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "fuzz targets do not build"; }
for t in fuzz_pgoutput fuzz_protocol fuzz_auth; do
	mkdir -p "$WORK/corpus/$t"
	if ! (cd "$POLL_ROOT/fanout" && "./$t" -max_total_time="${FUZZ_SECONDS:-10}" -max_len=8192 \
			-print_final_stats=1 -artifact_prefix="$WORK/$t-" "$WORK/corpus/$t" "tests/corpus/$t") \
			>"$WORK/$t.log" 2>&1; then
		tail -40 "$WORK/$t.log" >&2
		fail "$t found a crash (artifacts: $WORK/$t-*)"
	fi
	runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$WORK/$t.log")
	[ "${runs:-0}" -gt 1000 ] || fail "$t ran only ${runs:-0} inputs"
	echo "ok: $t: $runs inputs, no finding"
done

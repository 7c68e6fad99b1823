#!/usr/bin/env bash
# prometheus_rules: deploy/prometheus/poll-fanout.rules.yml passes `promtool
# check rules`, its alerts fire as poll-fanout.rules.test.yml expects
# (`promtool test rules`), and every poll_fanout_* name the rules use is in
# the /metrics of a live daemon (--webhooks, --anonymous-votes: every metric
# the daemon has), so that no rule watches a metric that does not exist.
. "$(dirname "$0")/../fanout/lib.sh"
command -v promtool >/dev/null || fail "promtool is not installed (scripts/deps.sh lists prometheus)"

rules="$POLL_ROOT/deploy/prometheus/poll-fanout.rules.yml"
promtool check rules "$rules" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; fail "promtool check rules"; }
(cd "$POLL_ROOT/deploy/prometheus" && promtool test rules poll-fanout.rules.test.yml) >"$WORK/test.log" 2>&1 ||
	{ cat "$WORK/test.log" >&2; fail "promtool test rules"; }
echo "ok: $(grep -c 'alert:' "$rules") alerts pass promtool check rules and promtool test rules"

printf 'voter-secret-%s\n' "$(date +%s%N)" >"$WORK/voters"
start_daemon --webhooks --anonymous-votes --voter-secret-file "$WORK/voters"
wait_healthy
wait_votes_ready
curl -s "$(BASE)/metrics" >"$WORK/metrics"
has() { grep -Eq "^$1(\{| )" "$WORK/metrics"; }
has poll_fanout_no_such_metric && fail "test bug: has() finds a metric that does not exist"
names=$(grep -v '^\s*#' "$rules" | grep -o 'poll_fanout_[a-z_]*' | sort -u)
[ "$(wc -w <<<"$names")" -ge 10 ] || fail "test bug: only $(wc -w <<<"$names") metric names found in the rules"
for m in $names; do
	has "$m" || fail "the rules use $m, which the daemon's /metrics does not have"
done
echo "ok: the $(wc -w <<<"$names") poll_fanout_* metrics the rules use are in a live daemon's /metrics"

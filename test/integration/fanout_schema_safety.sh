#!/usr/bin/env bash
# fanout_schema_safety: the daemon's SQL resolves no name in a schema users can
# write to.  A public.array_agg(text) beats pg_catalog's polymorphic
# array_agg(anynonarray) for an unqualified call and would run under the
# daemon's role; the snapshot must come out untouched by it.
. "$(dirname "$0")/../fanout/lib.sh"
need_node

drop_evil() {
	psql_q -c "DROP AGGREGATE IF EXISTS public.array_agg(text);
	           DROP FUNCTION IF EXISTS public.fanout_evil(text[], text)" >/dev/null 2>&1 || true
}
# the aggregate must not outlive this test, whatever happens
trap 'rc=$?; set +e; drop_evil; (exit $rc); cleanup' EXIT
drop_evil
poll=$(new_poll 'Schema' Red Blue)
psql_q -c "CREATE FUNCTION public.fanout_evil(text[], text) RETURNS text[] LANGUAGE sql
             AS \$\$ SELECT pg_catalog.array_append(\$1, \$2 OPERATOR(pg_catalog.||) ' (pwned)') \$\$;
           CREATE AGGREGATE public.array_agg(text) (sfunc = public.fanout_evil, stype = text[], initcond = '{}')"
# the trap works: an unqualified call in the default search_path picks it
psql_q -c "SELECT array_agg(label ORDER BY option_id) FROM poll.option WHERE poll_id = $poll" | grep -q pwned ||
	fail "the test's aggregate is not picked by an unqualified array_agg"

start_daemon
wait_healthy
body=$(curl -s "$(BASE)/polls/$poll")
echo "$body" | grep -q '"label":"Red"' || fail "snapshot: $body"
! echo "$body" | grep -q pwned || fail "the snapshot query ran public.array_agg: $body"
echo "ok: the snapshot query resolves nothing in public"

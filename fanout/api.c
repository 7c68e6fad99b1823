/*
 * api.c — the HTTP API beyond snapshots: POST /polls and POST
 * /polls/ID/close (admin tokens), GET /polls/ID/series and
 * /polls/ID/segments (the read rights of snapshots), GET
 * /polls/ID/ballots.csv (admin; csv.c streams it).  What each endpoint
 * asks of Postgres and how its answer reads; the queries run on the API's
 * own connection (queries.c), and http.c writes the answers.
 *
 * Every statement names its functions, operators and types with their
 * schema (the connection's search_path is pg_catalog, pg_temp as well).
 * /segments runs as poll_reader (SET LOCAL ROLE, in the statement's own
 * transaction): poll.results_by_segment hides small segments from every
 * role but poll_admin, and the daemon's role is usually more privileged
 * than the readers it serves.  The daemon's role must therefore be a member
 * of poll_reader (a superuser is); if it is not, /segments answers 503 and
 * the log says why, rather than show what poll_reader may not see.
 *
 * Calls sessions.c (tokens), csv.c, messages.c, queries.c, polls.c
 * (nothing), protocol.c and loop.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fanout.h"

#define MAX_BUCKETS		10000

enum api_route { ROUTE_NONE, ROUTE_CREATE, ROUTE_CLOSE };

static const char *const close_sql =
"SELECT poll.close_poll($1::pg_catalog.int8)";

/*
 * poll.series as JSON.  The number of buckets is computed first, from the
 * same alignment poll.series uses (UTC, from 2000-01-01): beyond
 * MAX_BUCKETS the series is not computed at all (the CASE reaches its
 * subquery only below the limit).  $1 poll, $2 width, $3 since, $4 until
 * (NULL: the poll's opening, now), $5 the width's name.
 */
static const char *const series_sql =
"SELECT w.n, CASE WHEN w.n OPERATOR(pg_catalog.<=) " "10000" " THEN"
" pg_catalog.json_build_object('type', 'series', 'poll', w.poll_id, 'width', $5::pg_catalog.text,"
"  'options', (SELECT pg_catalog.json_agg(g.i ORDER BY g.i)"
"              FROM pg_catalog.generate_series(1, w.n_options) g(i)),"
"  'buckets', COALESCE((SELECT pg_catalog.json_agg(pg_catalog.json_build_object("
"     't', pg_catalog.to_char(b.bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
"     'votes', b.votes, 'cumulative', b.cumulative) ORDER BY b.bucket)"
"   FROM (SELECT r.bucket, pg_catalog.array_agg(r.votes ORDER BY r.option_id) AS votes,"
"                pg_catalog.array_agg(r.cumulative ORDER BY r.option_id) AS cumulative"
"           FROM poll.series(w.poll_id, w.width, w.since, w.until) r GROUP BY r.bucket) b),"
"   '[]'::pg_catalog.json))"
" END"
" FROM (SELECT x.poll_id, x.n_options, x.width, x.since, x.until,"
"        pg_catalog.floor(pg_catalog.date_part('epoch',"
"          pg_catalog.date_bin(x.width, x.until, x.origin) OPERATOR(pg_catalog.-)"
"          pg_catalog.date_bin(x.width, x.since, x.origin)) OPERATOR(pg_catalog./)"
"          pg_catalog.date_part('epoch', x.width)) OPERATOR(pg_catalog.+) 1 AS n"
"        FROM (SELECT p.poll_id, p.n_options, $2::pg_catalog.interval AS width,"
"                COALESCE($3::pg_catalog.timestamptz, p.opens_at) AS since,"
"                COALESCE($4::pg_catalog.timestamptz, pg_catalog.now()) AS until,"
"                '2000-01-01 00:00:00+00'::pg_catalog.timestamptz AS origin"
"                FROM poll.poll p WHERE p.poll_id OPERATOR(pg_catalog.=) $1::pg_catalog.int8) x) w";

/*
 * poll.results_by_segment as poll_reader sees it, as JSON: per segment
 * (NULL first) the votes of every option in option order (0 where the view
 * has no row).  Two statements in one implicit transaction: the role
 * switch holds until its end.  The id is a validated integer, printed.
 */
static const char *const segments_sql =
"SELECT pg_catalog.set_config('role', 'poll_reader', true);"
" WITH r AS (SELECT COALESCE(s.segment, '') AS seg, s.option_id, s.votes"
"              FROM poll.results_by_segment s WHERE s.poll_id OPERATOR(pg_catalog.=) %lld),"
"  o AS (SELECT t.option_id FROM poll.results t WHERE t.poll_id OPERATOR(pg_catalog.=) %lld),"
"  g AS (SELECT DISTINCT r.seg FROM r)"
" SELECT pg_catalog.json_build_object('type', 'segments', 'poll', ps.poll_id, 'segments',"
"   COALESCE((SELECT pg_catalog.json_agg(pg_catalog.json_build_object("
"       'segment', NULLIF(x.seg, ''), 'votes', x.votes) ORDER BY x.seg)"
"     FROM (SELECT g.seg, pg_catalog.array_agg(COALESCE(r.votes, 0) ORDER BY o.option_id) AS votes"
"             FROM g CROSS JOIN o"
"             LEFT JOIN r ON r.seg OPERATOR(pg_catalog.=) g.seg AND r.option_id OPERATOR(pg_catalog.=) o.option_id"
"            GROUP BY g.seg) x), '[]'::pg_catalog.json))"
" FROM poll.poll_summary ps WHERE ps.poll_id OPERATOR(pg_catalog.=) %lld";

static int	on_snapshot(struct apireq *r, PGresult *res);

/* ---- answers ---- */

static void
set_body(struct apireq *r, int status, const char *body, size_t len)
{
	free(r->body);
	r->body = malloc(len + 1);
	r->body_len = r->body ? len : 0;
	if (r->body)
		memcpy(r->body, body, len);
	r->status = status;
	r->done = true;
}

static void
set_error(struct apireq *r, int status, const char *code, const char *msg)
{
	char		buf[1024];
	size_t		n = render_error(buf, sizeof(buf), code, msg, r->poll > 0 ? r->poll : -1);

	set_body(r, status, buf, n);
}

/* an answer without a query: s's request, done at once */
static int
answer_now(struct session *s, int status, const char *code, const char *msg, int64_t poll)
{
	struct apireq *r = q_new(NULL, 0, NULL);

	if (!r)
		return -1;
	r->poll = poll;
	set_error(r, status, code, msg);
	r->s = s;
	s->req = r;
	s->kind = SESS_API;
	lws_callback_on_writable(s->wsi);
	return 0;
}

/*
 * An SQL error as an answer: unknown poll 404; bad input 400 with the
 * field it concerns (when the message names one) and Postgres's message;
 * anything else (Postgres away, the role lacking a grant) 503, with the
 * details in the log only.
 */
static void
sql_error(struct apireq *r, PGresult *res, const char *const *fields)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char		buf[600];

	if (!state || !msg)
	{
		set_error(r, 503, "unavailable", "postgres is away");
		return;
	}
	if (strcmp(state, "P0002") == 0)
	{
		set_error(r, 404, "not_found", "no such poll");
		return;
	}
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
		strcmp(state, "42809") == 0 || strcmp(state, "55000") == 0)
	{
		const char *field = NULL;

		/* a value that does not parse: the message quotes it */
		for (int i = 0; i < r->n_params && !field; i++)
		{
			char		quoted[200];

			snprintf(quoted, sizeof(quoted), "\"%s\"", r->params[i] ? r->params[i] : "");
			if (r->param_names[i][0] && r->params[i] && *r->params[i] && strstr(msg, quoted))
				field = r->param_names[i];
		}
		for (int i = 0; fields && fields[i] && !field; i++)
			if (strstr(msg, fields[i]))
				field = fields[i];
		snprintf(buf, sizeof(buf), "%s%s%s", field ? field : "", field ? ": " : "", msg);
		set_error(r, 400, "bad_request", buf);
		return;
	}
	if (strcmp(state, "42501") == 0)
	{
		/* deploy/poll_fanout_role.sql leaves the admin API out: poll_admin grants it */
		logmsg("http: the daemon's role may not do this (%s): the admin endpoints need"
			   " GRANT poll_admin TO <its role>", msg);
		set_error(r, 503, "unavailable", "the daemon's role may not do this (see the daemon's log)");
		return;
	}
	logmsg("postgres: API query failed: %s %s", state, msg);
	set_error(r, 503, "unavailable", "the query failed (see the daemon's log)");
}

/* ---- POST /polls ---- */

static const char *const create_fields[] = {
	"title", "options", "kind", "max_choices", "opens_at", "closes_at", "allow_change",
	"metadata", NULL
};

static int
on_created(struct apireq *r, PGresult *res)
{
	char		id[24];
	const char *params[1] = {id};

	if (!res)
		return 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		sql_error(r, res, create_fields);
		return 0;
	}
	(void) parse_int64(PQgetvalue(res, 0, 0), (size_t) PQgetlength(res, 0, 0), &r->poll);
	snprintf(id, sizeof(id), "{%lld}", (long long) r->poll);
	q_set(r, snapshot_sql, 1, params);
	r->status = 201;
	r->on_result = on_snapshot;
	return 1;
}

/*
 * The body's fields become create_poll's arguments by name (named
 * notation: the ones not given keep their defaults).  Each is checked for
 * its JSON type here; values go as text parameters, cast in SQL.
 */
static int
create_poll(struct fanout *f, struct session *s)
{
	json_error_t jerr;
	json_t	   *body = json_loadb(s->reqbody ? s->reqbody : "", s->reqbody_len,
								  JSON_REJECT_DUPLICATES, &jerr);
	char		sql[1024] = "SELECT poll.create_poll(";
	const char *params[8];
	char	   *owned[8] = {0};
	char		names[8][16] = {{0}};
	int			n = 0;
	const char *key;
	json_t	   *v;
	char		why[300];
	struct apireq *r;

	(void) f;
	if (!json_is_object(body))
	{
		json_decref(body);
		return answer_now(s, 400, "bad_request", "the body must be a JSON object of create_poll's arguments", -1);
	}
	why[0] = '\0';
	json_object_foreach(body, key, v)
	{
		const char *cast = NULL;
		char	   *text = NULL;

		if (strcmp(key, "title") == 0 || strcmp(key, "kind") == 0)
		{
			cast = "pg_catalog.text";
			if (json_is_string(v))
				text = strdup(json_string_value(v));
		}
		else if (strcmp(key, "opens_at") == 0 || strcmp(key, "closes_at") == 0)
		{
			cast = "pg_catalog.timestamptz";
			if (json_is_string(v))
				text = strdup(json_string_value(v));
		}
		else if (strcmp(key, "max_choices") == 0)
		{
			cast = "pg_catalog.int4";
			if (json_is_integer(v) && json_integer_value(v) >= -2147483647 &&
				json_integer_value(v) <= 2147483647)
			{
				text = malloc(24);
				if (text)
					snprintf(text, 24, "%lld", (long long) json_integer_value(v));
			}
		}
		else if (strcmp(key, "allow_change") == 0)
		{
			cast = "pg_catalog.bool";
			if (json_is_boolean(v))
				text = strdup(json_is_true(v) ? "true" : "false");
		}
		else if (strcmp(key, "metadata") == 0)
		{
			cast = "pg_catalog.jsonb";
			if (json_is_object(v))
				text = json_dumps(v, JSON_COMPACT);
		}
		else if (strcmp(key, "options") == 0)
		{
			size_t		i;
			json_t	   *e;
			bool		ok = json_is_array(v);

			json_array_foreach(v, i, e)
				ok = ok && json_is_string(e);
			cast = "options";	/* see below */
			if (ok)
				text = json_dumps(v, JSON_COMPACT);
		}
		else
		{
			snprintf(why, sizeof(why), "%.64s: create_poll has no such argument", key);
			break;
		}
		if (json_is_null(v) && strcmp(key, "title") != 0 && strcmp(key, "options") != 0)
			continue;			/* null: the argument's default */
		if (!text)
		{
			snprintf(why, sizeof(why), "%s: must be %s", key,
					 strcmp(cast, "options") == 0 ? "an array of strings" :
					 strcmp(cast, "pg_catalog.int4") == 0 ? "an integer" :
					 strcmp(cast, "pg_catalog.bool") == 0 ? "true or false" :
					 strcmp(cast, "pg_catalog.jsonb") == 0 ? "a JSON object" : "a string");
			break;
		}
		owned[n] = text;
		params[n] = text;
		snprintf(names[n], sizeof(names[n]), "%s", key);
		n++;
		if (strcmp(cast, "options") == 0)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
					 "%soptions => ARRAY(SELECT e.v FROM pg_catalog.jsonb_array_elements_text($%d::pg_catalog.jsonb)"
					 " WITH ORDINALITY e(v, i) ORDER BY e.i)", n > 1 ? ", " : "", n);
		else
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), "%s%s => $%d::%s",
					 n > 1 ? ", " : "", key, n, cast);
	}
	if (!why[0] && !json_object_get(body, "title"))
		snprintf(why, sizeof(why), "title: required");
	if (!why[0] && !json_object_get(body, "options"))
		snprintf(why, sizeof(why), "options: required");
	json_decref(body);
	if (why[0])
	{
		for (int i = 0; i < n; i++)
			free(owned[i]);
		return answer_now(s, 400, "bad_request", why, -1);
	}
	strcat(sql, ")");
	r = q_new(sql, n, params);
	for (int i = 0; i < n; i++)
		free(owned[i]);
	if (!r)
		return -1;
	memcpy(r->param_names, names, sizeof(names));
	r->on_result = on_created;
	s->kind = SESS_API;
	q_submit(s->f, s, r);
	return 0;
}

/* ---- POST /polls/ID/close, and the snapshot both answer with ---- */

static int
on_snapshot(struct apireq *r, PGresult *res)
{
	struct poll p;
	struct tally_row row;
	char	  **labels = NULL;
	int			n_labels = 0;
	char	   *out;
	size_t		len;

	if (!res)
		return 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		sql_error(r, res, NULL);
		return 0;
	}
	if (PQntuples(res) != 1)
	{
		set_error(r, 404, "not_found", "no such poll");
		return 0;
	}
	memset(&p, 0, sizeof(p));
	memset(&row, 0, sizeof(row));
	if (parse_int64(PQgetvalue(res, 0, 0), (size_t) PQgetlength(res, 0, 0), &p.id) < 0 ||
		parse_int64(PQgetvalue(res, 0, 2), (size_t) PQgetlength(res, 0, 2), &p.version) < 0 ||
		(row.status = parse_status(PQgetvalue(res, 0, 3), (size_t) PQgetlength(res, 0, 3))) < 0 ||
		parse_int64(PQgetvalue(res, 0, 4), (size_t) PQgetlength(res, 0, 4), &p.ballots) < 0 ||
		parse_votes(PQgetvalue(res, 0, 5), (size_t) PQgetlength(res, 0, 5), p.votes,
					MAX_OPTIONS, &p.n_votes) < 0 ||
		parse_text_array(PQgetvalue(res, 0, 6), MAX_OPTIONS, &labels, &n_labels) < 0 ||
		!(out = malloc(SCRATCH_SIZE)))
	{
		for (int i = 0; i < n_labels; i++)
			free(labels[i]);
		free(labels);
		set_error(r, 503, "unavailable", "the poll's snapshot is not understood");
		return 0;
	}
	p.status = (enum poll_status) row.status;
	p.title = PQgetvalue(res, 0, 1);
	p.multi = strcmp(PQgetvalue(res, 0, 7), "multi") == 0;
	p.max_choices = atoi(PQgetvalue(res, 0, 8));
	p.labels = labels;
	p.n_options = n_labels;
	p.state = POLL_READY;
	len = render_snapshot_json(&p, out, SCRATCH_SIZE);
	for (int i = 0; i < n_labels; i++)
		free(labels[i]);
	free(labels);
	free(r->body);
	r->body = out;
	r->body_len = len;
	if (!r->status)
		r->status = 200;
	r->done = true;
	return 0;
}

static int
on_closed(struct apireq *r, PGresult *res)
{
	char		id[24];
	const char *params[1] = {id};

	if (!res)
		return 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		sql_error(r, res, NULL);
		return 0;
	}
	snprintf(id, sizeof(id), "{%lld}", (long long) r->poll);
	q_set(r, snapshot_sql, 1, params);
	r->on_result = on_snapshot;
	return 1;
}

static int
close_poll(struct fanout *f, struct session *s, int64_t id)
{
	char		buf[24];
	const char *params[1] = {buf};
	struct apireq *r;

	snprintf(buf, sizeof(buf), "%lld", (long long) id);
	r = q_new(close_sql, 1, params);
	if (!r)
		return -1;
	r->poll = id;
	r->on_result = on_closed;
	s->kind = SESS_API;
	q_submit(f, s, r);
	return 0;
}

/* ---- GET /polls/ID/series ---- */

static const char *const series_fields[] = {"since", "until", "width", NULL};

static int
on_series(struct apireq *r, PGresult *res)
{
	double		n;
	char		msg[160];

	if (!res)
		return 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* a time that does not parse: Postgres's message quotes it */
		if (state && (strcmp(state, "22007") == 0 || strcmp(state, "22008") == 0))
		{
			snprintf(msg, sizeof(msg), "since or until: %s",
					 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
			set_error(r, 400, "bad_request", msg);
		}
		else
			sql_error(r, res, series_fields);
		return 0;
	}
	if (PQntuples(res) != 1)
	{
		set_error(r, 404, "not_found", "no such poll");
		return 0;
	}
	n = strtod(PQgetvalue(res, 0, 0), NULL);
	if (n > MAX_BUCKETS)
	{
		snprintf(msg, sizeof(msg), "width: the range holds %.0f buckets of %s, more than %d",
				 n, r->width, MAX_BUCKETS);
		set_error(r, 400, "bad_request", msg);
		return 0;
	}
	set_body(r, 200, PQgetvalue(res, 0, 1), (size_t) PQgetlength(res, 0, 1));
	return 0;
}

static const struct
{
	const char *name;
	const char *interval;
}			widths[] = {
	{"1m", "1 minute"}, {"5m", "5 minutes"}, {"15m", "15 minutes"}, {"1h", "1 hour"}, {"1d", "1 day"}
};

static int
series(struct fanout *f, struct lws *wsi, struct session *s, int64_t id)
{
	char		wbuf[32], since[96], until[96], idbuf[24];
	const char *w = "1 minute";
	const char *width;
	const char *params[5];
	struct apireq *r;

	/* lws_get_urlarg_by_name() returns the value, past "name=" in the buffer */
	if ((width = lws_get_urlarg_by_name(wsi, "width=", wbuf, sizeof(wbuf))) != NULL)
	{
		w = NULL;
		for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++)
			if (strcmp(width, widths[i].name) == 0)
				w = widths[i].interval;
		if (!w)
			return answer_now(s, 400, "bad_request", "width: must be 1m, 5m, 15m, 1h or 1d", id);
	}
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long) id);
	params[0] = idbuf;
	params[1] = w;
	params[2] = lws_get_urlarg_by_name(wsi, "since=", since, sizeof(since));
	params[3] = lws_get_urlarg_by_name(wsi, "until=", until, sizeof(until));
	params[4] = w;
	if ((params[2] && !*params[2]) || (params[3] && !*params[3]))
		return answer_now(s, 400, "bad_request", "since and until: ISO 8601 times when given", id);
	r = q_new(series_sql, 5, params);
	if (!r)
		return -1;
	r->poll = id;
	snprintf(r->width, sizeof(r->width), "%s", w);
	r->on_result = on_series;
	s->kind = SESS_API;
	q_submit(f, s, r);
	return 0;
}

/* ---- GET /polls/ID/segments ---- */

static int
on_segments(struct apireq *r, PGresult *res)
{
	if (!res)
		return 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state && strcmp(state, "42501") == 0)
		{
			logmsg("http: /segments needs the daemon's role to be a member of poll_reader"
				   " (GRANT poll_reader TO <role>): %s", PQresultErrorMessage(res));
			set_error(r, 503, "unavailable", "the daemon cannot read as poll_reader");
			return 0;
		}
		sql_error(r, res, NULL);
		return 0;
	}
	if (PQntuples(res) != 1)
	{
		set_error(r, 404, "not_found", "no such poll");
		return 0;
	}
	set_body(r, 200, PQgetvalue(res, 0, 0), (size_t) PQgetlength(res, 0, 0));
	return 0;
}

static int
segments(struct fanout *f, struct session *s, int64_t id)
{
	char		sql[4096];
	struct apireq *r;

	snprintf(sql, sizeof(sql), segments_sql, (long long) id, (long long) id, (long long) id);
	r = q_new(sql, 0, NULL);
	if (!r)
		return -1;
	r->simple = true;
	r->poll = id;
	r->on_result = on_segments;
	s->kind = SESS_API;
	q_submit(f, s, r);
	return 0;
}

/* ---- routing ---- */

/* "/polls/42/what": 42 and "what" ("" for "/polls/42"); -1: not a poll path or a bad id */
static int
poll_path(const char *path, int64_t *id, const char **rest)
{
	const char *p = path + 7;
	const char *slash;

	if (strncmp(path, "/polls/", 7) != 0)
		return -1;
	slash = strchr(p, '/');
	*rest = slash ? slash + 1 : "";
	if (parse_int64(p, slash ? (size_t) (slash - p) : strlen(p), id) < 0 || *id <= 0)
		return -1;
	return 0;
}

/* the admin endpoints' check: 0 when the request carries an admin token */
static int
check_admin(struct fanout *f, struct lws *wsi, struct session *s, int64_t id)
{
	int			a;

	if (!f->jwt)
		return answer_now(s, 403, "forbidden",
						  "the admin endpoints need tokens (--jwt-secret-file)", id) < 0 ? -1 : 1;
	a = session_auth_from_request(f, s, wsi);
	if (a <= 0)
	{
		grant_free(&s->grant);
		f->m.rejected_inputs++;
		return answer_now(s, 401, "unauthorized", "an admin token is required", id) < 0 ? -1 : 1;
	}
	if (!grant_admin(&s->grant, (int64_t) time(NULL)))
	{
		grant_free(&s->grant);
		f->m.rejected_inputs++;
		return answer_now(s, 403, "forbidden", "the token is not an admin token", id) < 0 ? -1 : 1;
	}
	grant_free(&s->grant);
	return 0;
}

bool
api_wants_body(const struct session *s)
{
	return s->api_route != ROUTE_NONE;
}

/*
 * A request for the API: 1 when path is none of its endpoints (http.c
 * goes on), else 0 (answered, or an answer is on its way) or -1.
 */
int
api_request(struct fanout *f, struct lws *wsi, struct session *s, const char *path, bool post)
{
	int64_t		id = 0;
	const char *rest = "";
	int			a;

	if (post && strcmp(path, "/polls") == 0)
	{
		if ((a = check_admin(f, wsi, s, -1)) != 0)
			return a < 0 ? -1 : 0;
		s->api_route = ROUTE_CREATE;
		s->kind = SESS_API;
		return 0;				/* the body comes (http.c calls api_body_complete) */
	}
	if (poll_path(path, &id, &rest) < 0)
		return 1;
	if (post)
	{
		if (strcmp(rest, "close") != 0)
			return 1;
		if ((a = check_admin(f, wsi, s, id)) != 0)
			return a < 0 ? -1 : 0;
		s->api_route = ROUTE_CLOSE;
		s->api_poll = id;
		s->kind = SESS_API;
		return 0;
	}
	if (strcmp(rest, "series") == 0 || strcmp(rest, "segments") == 0)
	{
		bool		ok = session_auth_from_request(f, s, wsi) >= 0 && session_may_see(f, s, id);

		grant_free(&s->grant);
		if (!ok)
		{
			f->m.rejected_inputs++;
			return answer_now(s, 401, "unauthorized", "no valid token grants this poll", id);
		}
		return rest[1] == 'e' && rest[2] == 'r' ? series(f, wsi, s, id) : segments(f, s, id);
	}
	if (strcmp(rest, "ballots.csv") == 0)
	{
		if ((a = check_admin(f, wsi, s, id)) != 0)
			return a < 0 ? -1 : 0;
		if (!csv_start(f, s, id))
			return answer_now(s, 503, "unavailable", "too many exports running", id);
		s->kind = SESS_CSV;
		return 0;
	}
	return 1;
}

/* the body of a POST is in (s->reqbody): its query goes */
int
api_body_complete(struct fanout *f, struct session *s)
{
	int			route = s->api_route;

	s->api_route = ROUTE_NONE;
	if (route == ROUTE_CREATE)
		return create_poll(f, s);
	if (route == ROUTE_CLOSE)
		return close_poll(f, s, s->api_poll);
	return 0;
}

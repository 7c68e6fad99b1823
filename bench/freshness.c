/*
 * freshness.c — measures the time from a vote's commit until its fold is
 * visible in poll.tally, the state browsers are sent.
 *
 *   freshness CONNINFO POLL_ID SAMPLES INTERVAL_MS
 *
 * Each sample casts one vote for option 1 of POLL_ID (a poll of its own,
 * so the expected count is known), takes the time when the commit is
 * acknowledged, then reads poll.tally every 250 us until votes[1] reaches
 * the new count (a pause between reads, so that the probe does not take a
 * core from the worker it measures on a two-core machine).
 * Prints one latency in microseconds per line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static PGresult *
exec_checked(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "freshness: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	return res;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	long		expected;
	int			samples;
	int			interval_ms;
	char		voter[64];
	const char *params[2];

	if (argc != 5)
	{
		fprintf(stderr, "usage: freshness CONNINFO POLL_ID SAMPLES INTERVAL_MS\n");
		return 2;
	}
	samples = atoi(argv[3]);
	interval_ms = atoi(argv[4]);
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "freshness: %s", PQerrorMessage(conn));
		return 1;
	}
	params[0] = argv[2];
	res = exec_checked(conn, "SELECT votes FROM poll.results WHERE poll_id = $1 AND option_id = 1", 1, params);
	expected = atol(PQgetvalue(res, 0, 0));
	PQclear(res);

	for (int i = 0; i < samples; i++)
	{
		double		t0;
		double		t1;

		snprintf(voter, sizeof(voter), "probe-%d-%d", (int) getpid(), i);
		params[1] = voter;
		PQclear(exec_checked(conn, "SELECT poll.cast_vote($1::bigint, $2, 1)", 2, params));
		t0 = now_us();
		expected++;
		for (;;)
		{
			long		folded;

			res = exec_checked(conn, "SELECT votes[1] FROM poll.tally WHERE poll_id = $1", 1, params);
			folded = atol(PQgetvalue(res, 0, 0));
			PQclear(res);
			if (folded >= expected)
				break;
			usleep(250);
			if (now_us() - t0 > 10e6)
			{
				fprintf(stderr, "freshness: vote not folded after 10 s\n");
				return 1;
			}
		}
		t1 = now_us();
		printf("%.0f\n", t1 - t0);
		usleep(interval_ms * 1000);
	}
	PQfinish(conn);
	return 0;
}

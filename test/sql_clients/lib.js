// lib.js — shared code of the tests that drive poll through real client
// drivers: connections (node-postgres, configured from libpq's PG*
// environment like any application), SQLSTATE assertions, waiting for a
// session to block, and the test's exit status.
'use strict';

const { Client } = require('pg');

function fail(message) {
	throw new Error(message);
}

function check(condition, message) {
	if (!condition)
		fail(message);
}

// A node-postgres connection named in pg_stat_activity; .pid is its backend.
// A connection the server drops is reported by the query that needed it,
// not as an uncaught 'error' event.
async function connect(name) {
	const client = new Client({ application_name: name });
	client.on('error', (e) => { client.lost = e; });
	await client.connect();
	client.pid = await value(client, 'SELECT pg_backend_pid()');
	return client;
}

// The first column of the first row (undefined when there is none).
async function value(client, sql, params) {
	const r = await client.query({ text: sql, values: params, rowMode: 'array' });
	return r.rows.length ? r.rows[0][0] : undefined;
}

// Awaits a query that must fail with one of the SQLSTATEs; returns the error.
async function expectError(promise, codes, what) {
	codes = [].concat(codes);
	try {
		await promise;
	} catch (e) {
		check(codes.includes(e.code),
			`${what}: expected SQLSTATE ${codes.join(' or ')}, got ${e.code}: ${e.message}`);
		return e;
	}
	fail(`${what}: expected SQLSTATE ${codes.join(' or ')}, but it succeeded`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Waits until backend pid waits for a lock held by another session.
async function waitBlocked(ctl, pid, what, ms = 10000) {
	const deadline = Date.now() + ms;
	while (Date.now() < deadline) {
		if (await value(ctl, 'SELECT cardinality(pg_blocking_pids($1::int)) > 0', [pid]))
			return;
		await sleep(10);
	}
	fail(`${what}: backend ${pid} never blocked`);
}

// Runs the test; prints FAIL and exits 1 on the first failed check.
function main(test) {
	test().then(() => process.exit(0), (e) => {
		console.error(`FAIL: ${e.message}`);
		process.exit(1);
	});
}

module.exports = { fail, check, connect, value, expectError, sleep, waitBlocked, main };

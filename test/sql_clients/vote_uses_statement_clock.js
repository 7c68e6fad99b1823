// vote_uses_statement_clock.js — whether a poll is open is decided at the
// moment of the call, not when the transaction began (SPEC "Functions"):
// a transaction opened before closes_at cannot cast, bulk-cast or retract
// after it; one opened before a scheduled poll's opens_at can after it.
'use strict';

const { check, connect, value, expectError, sleep, main } = require('./lib');

// A transaction on a fresh connection, begun before the poll's column.
async function transactionAcross(p, column, name) {
	const c = await connect(name);
	await c.query('BEGIN');
	check(await value(c, `SELECT now() < ${column} FROM poll.poll WHERE poll_id = $1`, [p]),
		`${name}: the transaction did not begin before ${column}`);
	return c;
}

// Waits, inside the transaction, until the poll's column has passed.
async function passed(c, p, column) {
	for (;;) {
		if (await value(c, `SELECT clock_timestamp() > ${column} + interval '50 milliseconds' FROM poll.poll WHERE poll_id = $1`, [p]))
			return;
		await sleep(50);
	}
}

main(async () => {
	const ctl = await connect('clock ctl');
	const closing = await value(ctl,
		"SELECT poll.create_poll('Closing', ARRAY['a', 'b'], closes_at => clock_timestamp() + interval '2.5 seconds')");
	const opening = await value(ctl,
		"SELECT poll.create_poll('Opening', ARRAY['a', 'b'], opens_at => clock_timestamp() + interval '2.5 seconds')");
	await ctl.query("SELECT poll.cast_votes($1, ARRAY['held 1', 'held 2', 'held 3'], ARRAY[1, 1, 1])", [closing]);

	// each call after closes_at in its own transaction (its error aborts it),
	// after a vote in the same transaction that was cast before closes_at
	const afterClosing = {
		cast_vote: (c) => c.query("SELECT poll.cast_vote($1, 'late', 2)", [closing]),
		cast_votes: (c) => c.query("SELECT poll.cast_votes($1, ARRAY['late'], ARRAY[2])", [closing]),
		retract_vote: (c) => c.query("SELECT poll.retract_vote($1, 'held 1')", [closing]),
	};
	const closed = Object.entries(afterClosing).map(async ([name, call]) => {
		const c = await transactionAcross(closing, 'closes_at', `clock ${name}`);
		check(await value(c, 'SELECT poll.cast_vote($1, $2, 1)', [closing, `early ${name}`]) === 'cast',
			`${name}: the vote before closes_at was not cast`);
		await passed(c, closing, 'closes_at');
		await expectError(call(c), '55000', `${name} after closes_at in a transaction opened before it`);
		await c.query('ROLLBACK');
		await c.end();
	});

	// a transaction opened before opens_at votes after it
	const opened = (async () => {
		const c = await transactionAcross(opening, 'opens_at', 'clock opening');
		await passed(c, opening, 'opens_at');
		const what = 'after opens_at in a transaction opened before it';
		check(await value(c, "SELECT poll.cast_vote($1, 'v1', 1)", [opening]) === 'cast', `cast_vote ${what}`);
		check(await value(c, "SELECT poll.cast_votes($1, ARRAY['v2', 'v3'], ARRAY[2, 2])", [opening]) === '2',
			`cast_votes ${what}`);
		check(await value(c, "SELECT poll.retract_vote($1, 'v3')", [opening]) === true, `retract_vote ${what}`);
		await c.query('COMMIT');
		await c.end();
	})();

	await Promise.all([...closed, opened]);
	const ballots = async (p) => value(ctl, 'SELECT string_agg(voter, \',\' ORDER BY voter) FROM poll.ballot WHERE poll_id = $1', [p]);
	check(await ballots(closing) === 'held 1,held 2,held 3', `the closed poll's ballots changed: ${await ballots(closing)}`);
	check(await ballots(opening) === 'v1,v2', `the opened poll's ballots: ${await ballots(opening)}`);
	console.log('votes follow the statement\'s clock across closes_at and opens_at');
	await ctl.end();
});

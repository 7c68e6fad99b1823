// session_usable_after_error.js — an error, a cancel or a deadlock inside
// any poll function leaves the session usable: the next statement runs
// normally, in or out of an explicit transaction (SPEC "Errors").
//
// One connection, the victim, lives through every case, as a pooled
// connection serves one request after another: a case that poisons it
// fails there and then.  A second connection, the holder, holds what the
// victim's call needs (a ballot's row, a poll's row, poll.tally), so that
// the call waits, and is then cut short by statement_timeout or by
// pg_cancel_backend; or the two deadlock.
'use strict';

const { check, connect, value, expectError, waitBlocked, main } = require('./lib');

main(async () => {
	const ctl = await connect('usable ctl');
	const holder = await connect('usable holder');
	const victim = await connect('usable victim');
	// in a deadlock, the victim (the second to wait) is the one that checks
	await holder.query("SET deadlock_timeout = '20s'");
	await victim.query("SET deadlock_timeout = '100ms'");

	const newPoll = (title) =>
		value(ctl, "SELECT poll.create_poll($1, ARRAY['a', 'b', 'c'])", [title]);

	// What the holder takes, in its open transaction, and the victim's call
	// that then waits for it.  Every poll has a committed ballot of 'held'.
	const changeHeld = (p) => holder.query("SELECT poll.cast_vote($1, 'held', 2)", [p]);
	const functions = {
		// new voters and 'held', whose row the holder is changing: the
		// bulk insert waits for the holder
		cast_votes: {
			hold: changeHeld,
			call: (p, tag) => victim.query("SELECT poll.cast_votes($1, ARRAY[$2, 'fresh 2', 'held'], ARRAY[1, 1, 3])",
				[p, `fresh ${tag}`]),
		},
		cast_vote: {
			hold: changeHeld,
			call: (p) => victim.query("SELECT poll.cast_vote($1, 'held', 3)", [p]),
		},
		retract_vote: {
			hold: changeHeld,
			call: (p) => victim.query("SELECT poll.retract_vote($1, 'held')", [p]),
		},
		close_poll: {
			hold: (p) => holder.query('SELECT poll.close_poll($1)', [p]),
			call: (p) => victim.query('SELECT poll.close_poll($1)', [p]),
		},
		// a fold locks tally rows (the vote path never does)
		fold: {
			hold: () => holder.query('LOCK TABLE poll.tally IN EXCLUSIVE MODE'),
			call: () => victim.query('SELECT poll.fold()'),
		},
	};

	// cut short while it waits
	const interruptions = {
		statement_timeout: async (call) => {
			await victim.query("SET statement_timeout = '400ms'");
			try {
				return await expectError(call(), '57014', 'statement_timeout');
			} finally {
				await victim.query('RESET statement_timeout').catch(() => {});
			}
		},
		pg_cancel_backend: async (call) => {
			const cancelled = expectError(call(), '57014', 'pg_cancel_backend');
			await waitBlocked(ctl, victim.pid, 'pg_cancel_backend');
			await ctl.query('SELECT pg_cancel_backend($1)', [victim.pid]);
			return cancelled;
		},
	};

	// The session is usable: its next statement runs; in a transaction,
	// ROLLBACK works and undoes what the transaction did before the error.
	async function stillUsable(what, p, inTransaction) {
		if (inTransaction) {
			await victim.query('ROLLBACK').catch((e) => {
				throw new Error(`${what}: ROLLBACK after the error failed: ${e.code} ${e.message}`);
			});
			check(await value(victim, 'SELECT poll.ballot_of($1, $2) IS NULL', [p, `before ${what}`]),
				`${what}: ROLLBACK did not undo the transaction's vote`);
		}
		const one = await value(victim, 'SELECT 1').catch((e) => {
			throw new Error(`${what}: the next statement failed: ${e.code} ${e.message}`);
		});
		check(one === 1, `${what}: SELECT 1 returned ${one}`);
		check(!victim.lost, `${what}: the connection was lost: ${victim.lost}`);
	}

	let cases = 0;
	for (const [name, f] of Object.entries(functions)) {
		for (const [how, interrupt] of Object.entries(interruptions)) {
			for (const inTransaction of [false, true]) {
				const tag = `${name} ${how} ${inTransaction ? 'in' : 'out of'} a transaction`;
				const p = await newPoll(tag);
				await ctl.query("SELECT poll.cast_vote($1, 'held', 1)", [p]);
				if (inTransaction) {
					await victim.query('BEGIN');
					check(await value(victim, 'SELECT poll.cast_vote($1, $2, 1)', [p, `before ${tag}`]) === 'cast',
						`${tag}: the vote before the call was not cast`);
				}
				await holder.query('BEGIN');
				await f.hold(p);
				await interrupt(() => f.call(p, tag));
				await stillUsable(tag, p, inTransaction);
				await holder.query('ROLLBACK');
				check(await value(victim, 'SELECT poll.cast_vote($1, $2, 2)', [p, `after ${tag}`]) === 'cast',
					`${tag}: a new vote afterwards was not cast`);
				check(await value(ctl, "SELECT count(*) = 1 FROM poll.ballot WHERE poll_id = $1 AND voter <> 'held'", [p]),
					`${tag}: the interrupted call left a partial write`);
				cases++;
			}
		}
	}

	// No lock this time: statement_timeout cuts a big bulk call short while
	// it writes (500 000 new voters take this machine about a second)
	for (const inTransaction of [false, true]) {
		const tag = `cast_votes of 500 000 voters timed out ${inTransaction ? 'in' : 'out of'} a transaction`;
		const p = await newPoll(tag);
		if (inTransaction) {
			await victim.query('BEGIN');
			await victim.query('SELECT poll.cast_vote($1, $2, 1)', [p, `before ${tag}`]);
		}
		await interruptions.statement_timeout(() => victim.query(
			"SELECT poll.cast_votes($1, array_agg('v' || i), array_agg(1 + i % 3)) FROM generate_series(1, 500000) i", [p]));
		await stillUsable(tag, p, inTransaction);
		check(await value(victim, 'SELECT count(*) = 0 FROM poll.ballot WHERE poll_id = $1', [p]),
			`${tag}: the interrupted call left a partial write`);
		check(await value(victim, "SELECT poll.cast_vote($1, 'after', 2)", [p]) === 'cast',
			`${tag}: a new vote afterwards was not cast`);
		cases++;
	}

	// Deadlocks inside a transaction: the holder takes B then waits for A;
	// the victim takes A, then asks for B.  (cast_votes deadlocks, in and
	// out of a transaction, are in the isolation spec
	// cast_votes_deadlock_leaves_session_usable.)
	const deadlocks = {
		cast_vote: async () => {
			const p = await newPoll('deadlock cast_vote');
			await ctl.query("SELECT poll.cast_votes($1, ARRAY['a', 'b'], ARRAY[1, 1])", [p]);
			return [p, (who, voter) => who.query('SELECT poll.cast_vote($1, $2, 2)', [p, voter])];
		},
		retract_vote: async () => {
			const p = await newPoll('deadlock retract_vote');
			await ctl.query("SELECT poll.cast_votes($1, ARRAY['a', 'b'], ARRAY[1, 1])", [p]);
			return [p, (who, voter) => who.query('SELECT poll.retract_vote($1, $2)', [p, voter])];
		},
		close_poll: async () => {
			const p = await newPoll('deadlock close_poll a');
			const q = await newPoll('deadlock close_poll b');
			const polls = { a: p, b: q };
			return [p, (who, which) => who.query('SELECT poll.close_poll($1)', [polls[which]])];
		},
	};
	for (const [name, setup] of Object.entries(deadlocks)) {
		const tag = `deadlock in ${name}`;
		const [p, take] = await setup();
		await holder.query('BEGIN');
		await victim.query('BEGIN');
		await take(holder, 'b');
		await take(victim, 'a');
		const holderWaits = take(holder, 'a');
		await waitBlocked(ctl, holder.pid, tag);
		await expectError(take(victim, 'b'), '40P01', tag);
		await victim.query('ROLLBACK').catch((e) => {
			throw new Error(`${tag}: ROLLBACK after the deadlock failed: ${e.code} ${e.message}`);
		});
		await holderWaits;
		await holder.query('ROLLBACK');
		check(await value(victim, 'SELECT 1') === 1 && !victim.lost, `${tag}: the session is not usable`);
		const q = await newPoll(`after ${tag}`);
		check(await value(victim, "SELECT poll.cast_vote($1, 'after', 1)", [q]) === 'cast',
			`${tag}: a new vote afterwards was not cast (poll ${p})`);
		cases++;
	}

	console.log(`the session stayed usable through ${cases} interrupted calls`);
	await Promise.all([ctl.end(), holder.end(), victim.end()]);
});

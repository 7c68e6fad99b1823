// untyped_driver_parameters.js — drivers that send parameters untyped call
// poll.cast_vote($1, $2, $3) and poll.cast_vote($1, $2, $3, $4) without
// casts (SPEC "Functions"): node-postgres (npm pg) and postgres.js (npm
// postgres, both its unsafe() and its tagged templates), with the values an
// application passes: an option id for single and multi polls; for multi
// polls a JavaScript array (as each driver serializes it: node-postgres
// sends '{"1","3"}', postgres.js, told by the server that the parameter is
// text, sends '1,3'), '{1,3}' and '[1,3]'.  Results are cast, changed and
// unchanged as with typed calls, and errors keep their SQLSTATEs.
'use strict';

const postgres = require('postgres');
const { check, connect, value, expectError, main } = require('./lib');

main(async () => {
	const client = await connect('untyped node-postgres');
	const sql = postgres({ max: 1, onnotice: () => {}, connection: { application_name: 'untyped postgres.js' } });
	const single = await value(client, "SELECT poll.create_poll('Untyped single', ARRAY['a', 'b', 'c'])");
	const multi = await value(client, "SELECT poll.create_poll('Untyped multi', ARRAY['a', 'b', 'c'], 'multi')");

	// each driver: cast_vote with these parameters, its result
	const first = (rows) => Object.values(rows[0])[0];
	const drivers = {
		'node-postgres': (args) =>
			value(client, `SELECT poll.cast_vote(${args.map((_, i) => `$${i + 1}`).join(', ')})`, args),
		'postgres.js unsafe': async (args) =>
			first(await sql.unsafe(`SELECT poll.cast_vote(${args.map((_, i) => `$${i + 1}`).join(', ')})`, args)),
		'postgres.js template': async ([p, voter, ballot, segment]) => first(segment === undefined
			? await sql`SELECT poll.cast_vote(${p}, ${voter}, ${ballot})`
			: await sql`SELECT poll.cast_vote(${p}, ${voter}, ${ballot}, ${segment})`),
	};

	for (const [driver, castVote] of Object.entries(drivers)) {
		const v = (name) => `${driver} ${name}`;
		const votes = [
			[[single, v('s1'), 2], 'cast'],
			[[single, v('s1'), 2], 'unchanged'],
			[[single, v('s1'), 1], 'changed'],
			[[single, v('s2'), 3, 'eu'], 'cast'],
			[[multi, v('m1'), [1, 3]], 'cast'],
			[[multi, v('m1'), '[1,3]'], 'unchanged'],
			[[multi, v('m1'), '{3,1}'], 'unchanged'],
			[[multi, v('m1'), '{2}'], 'changed'],
			[[multi, v('m2'), 2], 'cast'],
			[[multi, v('m3'), [1, 2], 'eu'], 'cast'],
			[[multi, v('m4'), '[1, 3]', 'us'], 'cast'],
		];
		for (const [args, expected] of votes) {
			const got = await castVote(args).catch((e) => `${e.code} ${e.message}`);
			check(got === expected, `${driver}: cast_vote(${JSON.stringify(args)}) returned ${got}, not ${expected}`);
		}
		const ballots = await value(client,
			`SELECT string_agg(format('%s=%s%s', voter, options, coalesce('/' || segment, '')), ' ' ORDER BY voter)
			   FROM poll.ballot WHERE poll_id IN ($1, $2) AND voter LIKE $3`, [single, multi, `${driver} %`]);
		const want = ['m1={2}', 'm2={2}', 'm3={1,2}/eu', 'm4={1,3}/us', 's1={1}', 's2={3}/eu'].map(v).join(' ');
		check(ballots === want, `${driver}: ballots ${ballots}, expected ${want}`);

		// errors keep their SQLSTATEs through the untyped path.  A ballot that
		// is no list of numbers ('{x}') is malformed input, 22P02 as for a
		// typed '{x}'::int[]; the SPEC's 22023 for bad options is accepted too.
		const errors = [
			[[single, v('e1'), 99], '22023', 'an unknown option'],
			[[single, v('e2'), [1, 2]], '42809', 'an array ballot on a single poll'],
			[[single, v('e3'), '[2]'], '42809', 'a list ballot on a single poll'],
			[[multi, v('e4'), '{x}'], ['22P02', '22023'], 'a ballot that is no list of numbers'],
			[[multi, v('e5'), [1, 1]], '22023', 'an option twice'],
			[[multi, v('e6'), '[1,2,4]', 'eu'], '22023', 'an unknown option in a list'],
		];
		for (const [args, codes, what] of errors)
			await expectError(castVote(args), codes, `${driver}: ${what} (${JSON.stringify(args)})`);
		check(await value(client, 'SELECT count(*) = 0 FROM poll.ballot WHERE poll_id IN ($1, $2) AND voter LIKE $3',
			[single, multi, `${driver} e%`]), `${driver}: a refused vote wrote a ballot`);
	}
	console.log(`untyped cast_vote works through ${Object.keys(drivers).join(', ')}`);
	await client.end();
	await sql.end();
});

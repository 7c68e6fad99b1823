#!/usr/bin/env node
/*
 * votes_many.js BASE SECRET POLL MULTI N BAD — N WebSocket clients, each its
 * own voter, vote at once; BAD of them send a bad vote (an option the poll
 * lacks, or two options in a single poll).  Every good vote must be
 * answered voted (cast) with its ballot, every bad one bad_vote.  Prints
 * the expected counts of POLL and MULTI as "poll|option|votes" lines.
 */
"use strict";
const { open, assert, main } = require("./wsprobe");
const { token, wsVote } = require("./votelib");
const [base, secret, pollArg, multiArg, nArg, badArg] = process.argv.slice(2);
const poll = Number(pollArg), multi = Number(multiArg), n = Number(nArg), bad = Number(badArg);
const url = base.replace(/^http/, "ws") + "/ws";

main(async () => {
  const clients = await Promise.all(Array.from({ length: n }, (_, i) =>
    open(url + "?token=" + token(secret, { sub: "many-" + i, vote: "*" }))));
  const counts = { [poll]: [0, 0, 0], [multi]: [0, 0, 0] };
  const badEvery = Math.floor(n / bad);
  const plans = clients.map((c, i) => {
    if (i % badEvery === badEvery - 1 && i / badEvery < bad)
      return { c, msg: i % 2 ? { type: "vote", poll, option: 9, ref: "b" + i } :
                               { type: "vote", poll, options: [1, 2], ref: "b" + i }, bad: true };
    if (i % 3 === 0) {
      const opts = [1 + (i % 3), 1 + ((i + 1) % 3)].sort();
      opts.forEach(o => counts[multi][o - 1]++);
      return { c, msg: { type: "vote", poll: multi, options: opts, ref: "g" + i }, want: opts };
    }
    const o = 1 + (i * 7) % 3;
    counts[poll][o - 1]++;
    return { c, msg: { type: "vote", poll, option: o, ref: "g" + i }, want: [o] };
  });
  const t0 = Date.now();
  const answers = await Promise.all(plans.map(p => wsVote(p.c, p.msg, 20000)));
  const ms = Date.now() - t0;
  let good = 0, refused = 0;
  answers.forEach((a, i) => {
    const p = plans[i];
    if (p.bad) {
      assert(a.type === "error" && a.code === "bad_vote", `bad vote ${p.msg.ref}: ${JSON.stringify(a)}`);
      refused++;
    } else {
      assert(a.type === "voted" && a.result === "cast" && JSON.stringify(a.options) === JSON.stringify(p.want),
             `good vote ${p.msg.ref}: ${JSON.stringify(a)}`);
      good++;
    }
  });
  assert(refused === bad, `${refused} bad votes, expected ${bad}`);
  console.error(`ok: ${good} votes acknowledged and ${refused} refused in ${ms} ms`);
  for (const id of [poll, multi].sort((a, b) => a - b))
    counts[id].forEach((v, k) => console.log(`${id}|${k + 1}|${v}`));
  clients.forEach(c => c.close());
});

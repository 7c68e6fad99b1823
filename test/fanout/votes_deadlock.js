#!/usr/bin/env node
/*
 * votes_deadlock.js BASE SECRET POLL — the vote side of
 * fanout_votes_deadlock: votes of x and y (held by the test's lock, one on
 * each vote connection), then of dl-a and dl-b, which queue and go
 * together in the next batch; every vote must be acknowledged (the batch
 * the deadlock aborted is sent again).
 */
"use strict";
const { open, assert, sleep, main } = require("./wsprobe");
const { token, wsVote } = require("./votelib");
const [base, secret, pollArg] = process.argv.slice(2);
const poll = Number(pollArg);
const url = base.replace(/^http/, "ws") + "/ws";

main(async () => {
  const c = {};
  for (const v of ["x", "y", "dl-a", "dl-b"]) c[v] = await open(url + "?token=" + token(secret, { sub: v, vote: "*" }));
  const answers = [];
  for (const v of ["x", "y", "dl-a", "dl-b"]) {
    answers.push(wsVote(c[v], { type: "vote", poll, option: 2, ref: v }, 20000));
    await sleep(100);
  }
  for (const m of await Promise.all(answers))
    assert(m.type === "voted" && m.result === "changed", "after the deadlock: " + JSON.stringify(m));
  console.log("ok: the four votes acknowledged");
  Object.values(c).forEach(x => x.close());
});

#!/usr/bin/env node
/*
 * votes_queue.js BASE SECRET POLL — while Postgres holds every batch (the
 * test locks poll.ballot), 12 voters vote one after another on a daemon
 * with --vote-queue 5: two votes are in flight (one per vote connection),
 * five wait in the queue, and the last five are answered unavailable at
 * once; /healthz and a snapshot still answer at once; when the lock goes,
 * the seven are acknowledged.
 */
"use strict";
const http = require("http");
const { open, assert, sleep, main } = require("./wsprobe");
const { token, wsVote } = require("./votelib");
const [base, secret, pollArg] = process.argv.slice(2);
const poll = Number(pollArg);
const url = base.replace(/^http/, "ws") + "/ws";

function timedGet(path) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => http.get(base + path, res => {
    res.resume();
    res.on("end", () => resolve({ status: res.statusCode, ms: Date.now() - t0 }));
  }).on("error", reject));
}

main(async () => {
  const clients = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    open(url + "?token=" + token(secret, { sub: "queued-" + i, vote: "*" }))));
  const answers = [];
  for (let i = 0; i < 12; i++) {
    const sent = Date.now();
    answers.push(wsVote(clients[i], { type: "vote", poll, option: 1 + (i % 2), ref: "q" + i }, 15000)
      .then(m => ({ m, ms: Date.now() - sent })));
    await sleep(40);
  }
  /* the refused ones came back at once, while the others wait */
  const early = await Promise.all(answers.slice(7));
  for (const { m, ms } of early)
    assert(m.type === "error" && m.code === "unavailable" && ms < 1000,
           `a vote beyond the queue: ${JSON.stringify(m)} after ${ms} ms`);
  console.log("ok: 5 votes beyond a full queue answered unavailable at once");
  const h = await timedGet("/healthz"), s = await timedGet("/polls/" + poll);
  assert(h.ms < 1000 && s.status === 200 && s.ms < 1000, `/healthz ${h.ms} ms, snapshot ${s.status} ${s.ms} ms while batches wait`);
  console.log(`ok: /healthz in ${h.ms} ms and a snapshot in ${s.ms} ms while Postgres holds the batches`);
  const late = await Promise.all(answers.slice(0, 7));
  for (const { m, ms } of late)
    assert(m.type === "voted" && m.result === "cast" && ms > 1000, `a queued vote: ${JSON.stringify(m)} after ${ms} ms`);
  console.log("ok: the 2 votes in flight and the 5 queued acknowledged once the lock went");
  clients.forEach(c => c.close());
});

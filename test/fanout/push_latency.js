/*
 * push_latency.js — commit -> WebSocket latency of one subscribed client:
 * casts N votes on POLL with psql (the environment's PG* settings), one at
 * a time, and times each from psql's return (committed and folded) to the
 * tally that counts it.  Prints {"n":N,"max":ms,"p50":ms,"all":[...],
 * "max_from_psql_start":ms} (the last counts psql's own start-up too).
 *
 *   node push_latency.js BASE POLL N [PAUSE_MS]
 */
"use strict";
const WebSocket = require("ws");
const { execFileSync } = require("child_process");

const [base, poll, n, pause] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]),
  Number(process.argv[5] || 150)];
const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws");
let ballots = -1;
let waiter = null;
ws.on("message", (data) => {
  const m = JSON.parse(data);
  if (m.poll !== poll || (m.type !== "snapshot" && m.type !== "tally")) return;
  ballots = m.ballots;
  if (waiter && ballots >= waiter.want) { const w = waiter; waiter = null; w.resolve(Date.now()); }
});
const until = (want) => new Promise((resolve, reject) => {
  if (ballots >= want) return resolve(Date.now());
  waiter = { want, resolve };
  setTimeout(() => reject(new Error("no tally with " + want + " ballots within 3 s")), 3000);
});
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
ws.on("open", async () => {
  try {
    ws.send(JSON.stringify({ type: "subscribe", poll }));
    await until(0);
    const start = ballots, lat = [], upper = [];
    for (let i = 1; i <= n; i++) {
      const t0 = Date.now();
      execFileSync("psql", ["-X", "-qAt", "-c", `SELECT poll.cast_vote(${poll}, 'latency-${i}', 1)`,
        "-c", "SELECT poll.fold()"]);
      const t1 = Date.now();
      const t2 = await until(start + i);
      lat.push(Math.max(0, t2 - t1));
      upper.push(t2 - t0);
      await sleep(pause);
    }
    const sorted = [...lat].sort((a, b) => a - b);
    console.log(JSON.stringify({ n, max: sorted[sorted.length - 1], p50: sorted[Math.floor(n / 2)], all: lat,
      max_from_psql_start: Math.max(...upper) }));
    process.exit(0);
  } catch (e) { console.error(e.message); process.exit(1); }
});
ws.on("error", (e) => { console.error(e.message); process.exit(1); });

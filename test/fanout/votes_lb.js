/*
 * votes_lb.js — voters vote through a balancer while its daemons are killed
 * and restarted (test/integration/haproxy_votes.sh).
 *
 *   node votes_lb.js LB_URL POLL SECONDS OUT.json DAEMON_URL...
 *
 * Each voter takes an anonymous voter token from one daemon (round robin over
 * DAEMON_URL...), then votes through LB_URL, half of them over a WebSocket and
 * half over HTTP, one vote at a time, moving its ballot to another option each
 * time (1, 2, 3, 1, ...).  A vote answered "unavailable" (or 502/503/504 from
 * the balancer) or not answered at all (the connection dropped) is sent again,
 * with the same ref, until it is answered "voted".  Checks:
 *  - a vote sent once is answered "cast" (the voter's first) or "changed",
 *    never "unchanged" (the ballot holds the previous acknowledged option);
 *  - a vote sent again is answered "cast", "changed" or "unchanged" (its
 *    first sending was applied once, or not at all);
 *  - no other error.
 * Writes {voters: {sub: last acknowledged option}, votes, resent, ...} to OUT.
 */
"use strict";
const fs = require("fs");
const WebSocket = require("ws");
const { request } = require("./votelib");
const { sleep } = require("./wsprobe");

const [lb, pollArg, secondsArg, out, ...daemons] = process.argv.slice(2);
const poll = Number(pollArg), until = Date.now() + Number(secondsArg) * 1000;
const VOTERS = 12, ANSWER_MS = 4000, GIVE_UP = Date.now() + (Number(secondsArg) + 30) * 1000;
const stats = { votes: 0, resent: 0, resentAnswers: {}, unanswered: 0, unavailable: 0, wsReconnects: 0 };
const voters = {};

function check(cond, what) {
  if (!cond) { console.error("FAIL:", what); process.exit(1); }
}

/* a WebSocket voter's connection: reopened through the balancer when lost */
function wsChannel(token) {
  let ws = null, pending = null;
  function connect() {
    return new Promise(resolve => {
      const w = new WebSocket(lb.replace(/^http/, "ws") + "/ws?token=" + token);
      w.on("open", () => { ws = w; resolve(true); });
      w.on("error", () => resolve(false));
      w.on("message", data => {
        const m = JSON.parse(data);
        if (pending && (m.type === "voted" || m.type === "error") && m.ref === pending.ref) pending.done(m);
      });
      w.on("close", () => { if (ws === w) ws = null; if (pending) pending.done(null); });
    });
  }
  return async function send(msg) {	/* -> the answer, or null (no answer) */
    while (!ws) {
      if (!(await connect())) await sleep(100);
      else stats.wsReconnects++;
    }
    return new Promise(resolve => {
      const t = setTimeout(() => { pending = null; resolve(null); }, ANSWER_MS);
      pending = { ref: msg.ref, done: m => { clearTimeout(t); pending = null; resolve(m); } };
      ws.send(JSON.stringify(msg));
    });
  };
}

function httpChannel(token) {
  return async function send(msg) {
    try {
      const r = await Promise.race([
        request(lb, "POST", "/polls/" + poll + "/vote", { token, body: { option: msg.option, ref: msg.ref } }),
        sleep(ANSWER_MS).then(() => null),
      ]);
      if (!r || [502, 503, 504].includes(r.status) && !(r.json && r.json.type === "error"))
        return null;	/* the balancer's own answer: the daemon did not answer */
      check(r.json, "HTTP " + r.status + " without JSON: " + r.body);
      return r.json;
    } catch (e) {
      return null;	/* connection reset */
    }
  };
}

async function voter(i) {
  const got = await request(daemons[i % daemons.length], "POST", "/voters");
  check(got.status === 200 && got.json && got.json.token, "POST /voters: " + got.status + " " + got.body);
  const token = got.json.token;
  const sub = JSON.parse(Buffer.from(token.split(".")[1], "base64url")).sub;
  const send = i % 2 ? httpChannel(token) : wsChannel(token);
  let last = null;
  for (let seq = 0; Date.now() < until; seq++) {
    const option = seq % 3 + 1, ref = "v" + i + "-" + seq;
    for (let attempt = 0; ; attempt++) {
      check(Date.now() < GIVE_UP, "voter " + i + ": vote " + ref + " never acknowledged");
      const m = await send({ type: "vote", poll, option, ref });
      if (m === null || m.type === "error" && m.code === "unavailable") {
        stats[m === null ? "unanswered" : "unavailable"]++;
        stats.resent++;
        await sleep(50);
        continue;
      }
      check(m.type === "voted", "voter " + i + " " + ref + ": " + JSON.stringify(m));
      check(m.options.length === 1 && m.options[0] === option, "voted with other options: " + JSON.stringify(m));
      if (attempt === 0)
        check(m.result === (last === null ? "cast" : "changed"),
          "a vote sent once answered " + m.result + " (" + ref + ", ballot " + last + ")");
      else {
        check(["cast", "changed", "unchanged"].includes(m.result), "a resent vote: " + JSON.stringify(m));
        stats.resentAnswers[m.result] = (stats.resentAnswers[m.result] || 0) + 1;
      }
      break;
    }
    last = option;
    voters[sub] = option;
    stats.votes++;
    await sleep(20);
  }
}

(async () => {
  await Promise.all(Array.from({ length: VOTERS }, (_, i) => voter(i)));
  fs.writeFileSync(out, JSON.stringify({ voters, ...stats }));
  console.log(JSON.stringify(stats));
  process.exit(0);
})().catch(e => { console.error("FAIL:", e.stack || e.message); process.exit(1); });

#!/usr/bin/env node
/*
 * jwt.js BASE SECRET POLL OTHER_POLL — with --jwt-secret-file, only valid
 * HS256 tokens (right key, exp in the future, poll granted) subscribe.
 */
"use strict";
const crypto = require("crypto");
const http = require("http");
const { open, assert, main } = require("./wsprobe");
const [base, secret, pollArg, otherArg] = process.argv.slice(2);
const ws = base.replace(/^http/, "ws") + "/ws";
const poll = Number(pollArg), other = Number(otherArg);
const now = Math.floor(Date.now() / 1000);

const b64 = x => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
function token(claims, { key = secret, alg = "HS256", sign = true } = {}) {
  const head = b64({ alg, typ: "JWT" }) + "." + b64(claims);
  if (!sign) return head + ".";
  return head + "." + crypto.createHmac("sha256", key).update(head).digest("base64url");
}

const good = token({ polls: [poll], exp: now + 600 });
const star = token({ polls: "*", exp: now + 600 });
const refused = {
  "expired": token({ polls: [poll], exp: now - 10 }),
  "wrong key": token({ polls: [poll], exp: now + 600 }, { key: "not-the-secret" }),
  "alg none": token({ polls: [poll], exp: now + 600 }, { alg: "none", sign: false }),
  "alg none, HS256 signature": token({ polls: [poll], exp: now + 600 }, { alg: "none" }),
  "alg HS512": token({ polls: [poll], exp: now + 600 }, { alg: "HS512" }),
  "no exp": token({ polls: [poll] }),
  "polls not a list": token({ polls: poll, exp: now + 600 }),
  "garbage": "not.a.token",
  "tampered claims": good.split(".")[0] + "." + b64({ polls: "*", exp: now + 600 }) + "." + good.split(".")[2],
};

function get(path, headers) {
  return new Promise((resolve, reject) => {
    http.get(base + path, { headers: headers || {} }, res => {
      let body = ""; res.on("data", d => body += d);
      res.on("end", () => resolve({ status: res.statusCode, body }));
      if (path.endsWith("/events") && res.statusCode === 200) { res.destroy(); resolve({ status: 200, body: "" }); }
    }).on("error", reject);
  });
}

async function subscribeExpect(c, id, wantType, what) {
  c.send({ type: "subscribe", poll: id });
  const m = await c.next();
  assert(m.type === wantType && (wantType !== "error" || m.code === "unauthorized"),
         `${what}: expected ${wantType}, got ${JSON.stringify(m)}`);
  console.log(`ok: ${what} -> ${wantType === "error" ? "unauthorized" : wantType}`);
}

main(async () => {
  /* no token at all */
  let c = await open(ws);
  await subscribeExpect(c, poll, "error", "subscribe without a token");

  /* each bad token in an auth message is refused, and grants nothing */
  for (const [what, t] of Object.entries(refused)) {
    c.send({ type: "auth", token: t });
    const m = await c.next();
    assert(m.type === "error" && m.code === "unauthorized", `auth with ${what}: got ${JSON.stringify(m)}`);
    await subscribeExpect(c, poll, "error", `subscribe after auth with ${what} (${m.message})`);
    await new Promise(r => setTimeout(r, 120));   /* stay under the rate limit */
  }

  /* a good token in an auth message: its poll only */
  c.send({ type: "auth", token: good });
  await subscribeExpect(c, poll, "snapshot", "subscribe after auth with a valid token");
  await subscribeExpect(c, other, "error", "subscribe to a poll the token does not list");
  c.close();

  /* ?token= and Authorization: Bearer at the handshake */
  c = await open(ws + "?token=" + encodeURIComponent(star));
  await subscribeExpect(c, other, "snapshot", "?token= with polls \"*\"");
  c.close();
  c = await open(ws, { headers: { Authorization: "Bearer " + good } });
  await subscribeExpect(c, poll, "snapshot", "Authorization: Bearer");
  c.close();

  /* a bad token at the handshake is refused with 401 */
  for (const what of ["expired", "wrong key", "alg none"]) {
    let status = 0;
    try { await open(ws + "?token=" + encodeURIComponent(refused[what])); } catch (e) { status = e.status || -1; }
    assert(status === 401, `handshake with ${what} token: expected 401, got ${status}`);
    console.log(`ok: handshake with ${what} token -> 401`);
  }

  /* HTTP snapshot and SSE need a token too */
  let r = await get(`/polls/${poll}`);
  assert(r.status === 401 && /unauthorized/.test(r.body), "GET /polls without a token: " + r.status);
  r = await get(`/polls/${poll}?token=${refused["alg none"]}`);
  assert(r.status === 401, "GET /polls with alg none: " + r.status);
  r = await get(`/polls/${poll}`, { Authorization: "Bearer " + refused["expired"] });
  assert(r.status === 401, "GET /polls with an expired token: " + r.status);
  r = await get(`/polls/${poll}?token=${good}`);
  assert(r.status === 200 && JSON.parse(r.body).type === "snapshot", "GET /polls with a good token: " + r.status);
  r = await get(`/polls/${other}?token=${good}`);
  assert(r.status === 401, "GET another poll with a good token: " + r.status);
  r = await get(`/polls/${poll}/events`);
  assert(r.status === 401, "SSE without a token: " + r.status);
  r = await get(`/polls/${poll}/events`, { Authorization: "Bearer " + good });
  assert(r.status === 200, "SSE with a good token: " + r.status);
  console.log("ok: HTTP snapshot and SSE refuse missing, expired, alg none tokens and accept a good one");
});

/*
 * trusted_proxy.js — the per-address rate limits and X-Forwarded-For
 * (test/integration/fanout_trusted_proxy.sh).
 *
 *   node trusted_proxy.js BASE JWT_SECRET POLL trusted|ignored|untrusted
 *
 * trusted: the daemon runs with --trusted-proxy 127.0.0.1 (our address), so
 * the rightmost X-Forwarded-For entry is the client's address; ignored: the
 * header must change nothing (untrusted: the same, the peer not being a
 * trusted proxy).  POST /voters (burst 20 per address) and votes
 * over WebSockets (--vote-rate 1: 10 a second, burst 20, per address).
 * Voters are named after MODE: each run has its own daemon and its own voters.
 */
"use strict";
const http = require("http");
const { open, assert, main } = require("./wsprobe");
const { token, request } = require("./votelib");

const [base, secret, pollArg, mode] = process.argv.slice(2);
const poll = Number(pollArg), trusted = mode === "trusted";
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });	/* one connection, many requests */
const voters = xff => request(base, "POST", "/voters", { agent, headers: xff ? { "x-forwarded-for": xff } : {} });

main(async () => {
  /* POST /voters from 198.51.100.1 until refused */
  let ok = 0, r;
  for (let i = 0; i < 40; i++) {
    r = await voters("198.51.100.1");
    if (r.status !== 200) break;
    ok++;
  }
  assert(r.status === 429 && ok >= 19 && ok <= 30, `POST /voters from one address: ${ok} then ${r.status}`);
  /* another address on the same connection: its own bucket, or nothing changes */
  r = await voters("198.51.100.2");
  assert(r.status === (trusted ? 200 : 429), `POST /voters from another X-Forwarded-For: ${r.status}`);
  /* a client that writes its own header: the balancer appends the real address, which counts */
  r = await voters("198.51.100.3, 198.51.100.1");
  assert(r.status === 429, `a spoofed left entry escaped the limit: ${r.status}`);
  r = await voters("198.51.100.1, 127.0.0.1");	/* a trusted hop is skipped */
  assert(r.status === 429, `a trusted hop on the right: ${r.status}`);
  /* HAProxy adds a header line of its own after the client's: lines count as entries */
  r = await voters(["198.51.100.3", "198.51.100.1"]);
  assert(r.status === 429, `a spoofed header line escaped the limit: ${r.status}`);
  r = await voters(["198.51.100.1", "198.51.100.4"]);
  assert(r.status === (trusted ? 200 : 429), `two header lines, a new address on the right: ${r.status}`);
  r = await voters("");	/* no header: the peer's own address */
  assert(r.status === (trusted ? 200 : 429), `POST /voters without X-Forwarded-For: ${r.status}`);
  agent.destroy();
  console.log(`ok: POST /voters: ${ok} from 198.51.100.1, then the header ${trusted ? "chose the bucket" : "was ignored"}`);

  /* votes over WebSockets: 30 voters upgrade from .7, 5 from .8; all vote at once */
  const conns = [];
  for (let i = 0; i < 35; i++) {
    const xff = i < 30 ? "198.51.100.7" : "198.51.100.8";
    const c = await open(base.replace(/^http/, "ws") + "/ws?token=" +
      token(secret, { sub: mode + "-" + i, vote: "*", polls: "*" }), { headers: { "x-forwarded-for": xff } });
    conns.push(c);
  }
  /* the 30 at once, then (the daemon reads sockets in any order) the 5 */
  const vote = (c, i) => {
    c.send({ type: "vote", poll, option: 1 + i % 2, ref: "r" + i });
    return c.until(m => (m.type === "voted" || m.type === "error") && m.ref === "r" + i, 8000);
  };
  const answers = await Promise.all(conns.slice(0, 30).map(vote));
  answers.push(...await Promise.all(conns.slice(30).map((c, i) => vote(c, 30 + i))));
  answers.forEach(m => assert(m.type === "voted" || m.code === "rate_limited", "an answer: " + JSON.stringify(m)));
  const limited = a => a.filter(m => m.type === "error").length;
  const seven = limited(answers.slice(0, 30)), eight = limited(answers.slice(30));
  assert(seven >= 3, `30 votes at once from one address: ${seven} rate_limited (burst 20)`);
  if (trusted)
    assert(eight === 0, `5 votes from another X-Forwarded-For: ${eight} rate_limited`);
  else
    assert(eight >= 3, `the header opened a bucket of its own: ${eight} of 5 votes rate_limited`);
  conns.forEach(c => c.close());
  console.log(`ok: votes over WebSockets: ${seven} of 30 from .7 and ${eight} of 5 from .8 rate_limited`);
});

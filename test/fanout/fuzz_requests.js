#!/usr/bin/env node
/*
 * fuzz_requests.js — hostile HTTP and WebSocket traffic against poll-fanout.
 *
 *   node fuzz_requests.js --port P [--pid PID] --polls 1,2 [--seconds 30] [--seed S]
 *                         [--jwt-secret FILE] [--voter-secret FILE] [--concurrency 16] [--record FILE]
 *                         [--kinds http,ws,garbage]
 *   node fuzz_requests.js --port P [--pid PID] --replay FILE
 *
 * CONCURRENCY connections at a time, each playing a random plan from a
 * seeded PRNG (the seed is printed; the same seed replays the same plans,
 * though not their interleaving): HTTP requests with odd methods, versions,
 * paths, ids, queries, headers, tokens and bodies (Content-Length,
 * chunked, oversize, on GET), pipelined; WebSocket handshakes, valid and
 * broken, then frames masked and not, fragmented, with control frames in
 * between, oversize control frames, close frames of every payload size and
 * code, invalid UTF-8, binary, over 4 KiB, lying lengths, JSON messages of
 * every type with good and bad fields, floods; each delivered whole, in
 * random pieces, or a byte at a time (slowloris), and often cut off
 * mid-request or mid-frame, or reset.  With --jwt-secret the tokens include
 * validly signed ones with hostile claims.  Votes: vote and retract
 * messages good and hostile (odd options, refs of every length, a voter or
 * segment in the message, floods past the rates), POST, DELETE and GET on
 * /polls/ID/vote with hostile bodies, POST /voters; with --voter-secret
 * (the daemon's --voter-secret-file) they carry validly signed voter tokens
 * with hostile claims, so that votes reach Postgres.
 *
 * Every few seconds, and at the end, a probe checks the daemon: PID alive,
 * /healthz answers (any status: 503 is fine while the stream is not
 * ready), /metrics answers 200; at the end a legitimate WebSocket client
 * gets the snapshot of a real poll within 2 s, and GET /polls/ID a 200
 * snapshot.  On a failure the last plans of every connection go to
 * --record FILE (JSON lines); --replay FILE plays them one at a time,
 * probing after each, and names the first one after which the daemon is
 * dead, with its bytes.  Exit status 0 when the daemon survived.
 */
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const net = require("net");
const WebSocket = require("ws");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const port = Number(args.port);
const host = "127.0.0.1";
const daemonPid = args.pid ? Number(args.pid) : null;
const polls = (args.polls || "1").split(",").map(Number);
const seed = args.seed !== undefined ? Number(args.seed) >>> 0 : crypto.randomBytes(4).readUInt32LE(0);
const kinds = (args.kinds || "http,ws,garbage").split(",");	/* which plans */
const secret = args["jwt-secret"] ? fs.readFileSync(args["jwt-secret"], "utf8").replace(/\n$/, "") : null;
const voterSecret = args["voter-secret"] ? fs.readFileSync(args["voter-secret"], "utf8").replace(/\n$/, "") : null;
const sleep = ms => new Promise(r => setTimeout(r, ms));

/* ---- a seeded PRNG (mulberry32) ---- */
function Rng(s) {
  let a = s >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: n => Math.floor(next() * n),
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: p => next() < p,
    pick: arr => arr[Math.floor(next() * arr.length)],
    /* [weight, value-or-function] pairs */
    weighted: pairs => {
      let x = next() * pairs.reduce((n, p) => n + p[0], 0);
      for (const [w, v] of pairs) if ((x -= w) < 0) return typeof v === "function" ? v() : v;
      const v = pairs[pairs.length - 1][1];
      return typeof v === "function" ? v() : v;
    },
    bytes: n => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
    text: (n, alphabet) => Array.from({ length: n }, () => alphabet[Math.floor(next() * alphabet.length)]).join(""),
  };
  return r;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const b64url = buf => Buffer.from(buf).toString("base64").replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

/* ---- hostile values, as raw JSON text ---- */
function pollIdJson(r) {
  return r.weighted([
    [6, () => String(r.pick(polls))],
    [1, "987654321"], [1, "0"], [1, "-1"], [1, "1.5"], [1, "\"1\""], [1, "null"], [1, "true"],
    [1, "[]"], [1, "{}"], [1, "1e300"], [1, "-1e300"], [1, "1e999"], [1, "9007199254740993"],
    [1, "9223372036854775807"], [1, "9223372036854775808"], [1, "-9223372036854775808"],
    [1, "18446744073709551616"], [1, "-0"], [1, "0.0000001"], [1, () => "1" + "0".repeat(r.range(20, 400))],
  ]);
}
function stringJson(r) {
  return r.weighted([
    [4, () => JSON.stringify(r.text(r.range(0, 20), "abcxyz019 _-")) ],
    [1, () => JSON.stringify("x".repeat(r.range(60, 3900)))],
    [1, "\"\\u0000nul\""], [1, "\"\\ud800\""], [1, "\"\\udfff\\ud800\""], [1, "\"\\\\\\\"\""],
    [1, "\"ünïcödé ✓ 🗳\""], [1, "42"], [1, "null"], [1, "{}"], [1, "[1,2,3]"], [1, "1e999"],
  ]);
}
function numberJson(r) {
  return r.pick(["0", "1", "2", "3", "-1", "65", "1.5", "1e300", "-1e300", "1e999", "\"2\"", "null",
                 "9223372036854775807", "9223372036854775808", "4294967297", "[]", "{}", "NaN", "Infinity"]);
}
function jsonObject(fields) {
  return "{" + fields.map(([k, v]) => JSON.stringify(k) + ":" + v).join(",") + "}";
}

/* ---- tokens: garbage, forged, and (with the secret) validly signed hostile claims ---- */
function claimsJson(r) {
  const now = Math.floor(Date.now() / 1000);
  const fields = [];
  if (r.chance(0.9)) fields.push(["exp", r.weighted([
    [6, String(now + 3600)], [1, String(now - 10)], [1, "1e300"], [1, "-1e300"], [1, "1e999"], [1, "1e19"],
    [1, "9.3e18"], [1, "9223372036854775808"], [1, "1.5"], [1, "0"], [1, "\"soon\""], [1, "null"],
    [1, "true"], [1, "[]"], [1, "-0"], [1, String(now + 1)]])]);
  if (r.chance(0.2)) fields.push(["nbf", r.pick(["1e300", "-1e300", String(now + 3600), String(now - 5), "\"x\"", "1e999"])]);
  if (r.chance(0.9)) fields.push(["polls", r.weighted([
    [4, "\"*\""], [3, () => "[" + polls.join(",") + "]"], [1, "[]"], [1, "\"abc\""], [1, "{}"], [1, "123"],
    [1, "[1.5,-1,\"x\",null,1e300,[],{}]"], [1, "[9223372036854775808]"],
    [1, () => "[" + Array.from({ length: r.range(100, 600) }, (_, i) => i + 1).join(",") + "]"]])]);
  if (r.chance(0.4)) fields.push(["sub", stringJson(r)]);
  if (r.chance(0.3)) fields.push(["vote", r.pick(["\"*\"", "[" + polls.join(",") + "]", "[]", "\"x\"", "7"])]);
  if (r.chance(0.2)) fields.push(["seg", stringJson(r)]);
  if (r.chance(0.2)) fields.push(["admin", r.pick(["true", "false", "\"true\"", "1"])]);
  if (r.chance(0.1)) fields.push(["exp", String(now + 60)]);         /* a duplicate key */
  return jsonObject(fields);
}
function signJwt(headerJson, payloadJson, key) {
  const data = b64url(headerJson) + "." + b64url(payloadJson);
  const sig = key === null ? "" : b64url(crypto.createHmac("sha256", key).update(data).digest());
  return data + "." + sig;
}
function token(r) {
  const hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  return r.weighted([
    [2, () => r.text(r.range(0, 60), B64URL + "+/=.%~ ")],
    [1, ""], [1, "."], [1, ".."], [1, "a.b.c"], [1, "a.b.c.d"], [1, "Zm9v.YmFy"],
    [1, () => r.text(r.range(3000, 9000), B64URL + ".")],
    [2, () => signJwt(hs, claimsJson(r), "not the secret")],
    [1, () => signJwt("{\"alg\":\"none\"}", claimsJson(r), null)],
    [1, () => signJwt(r.pick(["{\"alg\":\"HS512\"}", "{}", "[]", "{\"alg\":1}", "null", "{\"alg\":\"HS256\""]),
                      claimsJson(r), secret || "k")],
    [1, () => signJwt(hs, r.pick(["[]", "null", "\"x\"", "{", "{\"exp\":1e300,\"polls\":\"*\"", "{}"]), secret || "k")],
    [1, () => signJwt(hs, claimsJson(r), secret || "k").slice(0, -r.range(1, 10))],
    [1, () => signJwt(hs, claimsJson(r), secret || "k") + r.pick(["=", "==", "!", "%00", ".x"])],
    [secret ? 8 : 0, () => signJwt(hs, claimsJson(r), secret)],
    [voterSecret ? 6 : 0, () => signJwt(hs, claimsJson(r), voterSecret)],
    [voterSecret ? 4 : 0, () => voterToken(r)],
  ]);
}
/* a voter token (the voter secret's, or the jwt secret's with sub and vote) with hostile sub and seg */
function voterToken(r) {
  const key = voterSecret && (!secret || r.chance(0.5)) ? voterSecret : secret;
  const claims = { exp: Math.floor(Date.now() / 1000) + 3600, vote: r.chance(0.8) ? "*" : polls.slice(0, 1) };
  claims.sub = r.weighted([[6, () => "fuzz-voter-" + r.range(0, 40)], [1, "x".repeat(256)], [1, "é".repeat(256)],
                           [1, "x".repeat(257)], [1, "a\u0000b"], [1, ""], [1, "'; DROP TABLE poll.ballot; --"],
                           [1, "{\"1\",\"2\"}"], [1, "\\\"\\"], [1, "🗳".repeat(200)]]);
  if (r.chance(0.4)) claims.seg = r.pick(["eu", "x".repeat(64), "x".repeat(65), "", "a,b", "{}", "\"", "seg-" + r.range(0, 3000)]);
  if (!key) return "none";
  return signJwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", JSON.stringify(claims), key);
}
/* a vote or retract message: mostly one Postgres takes, with hostile variations */
function voteMessage(r) {
  const fields = [["type", r.chance(0.8) ? "\"vote\"" : "\"retract\""],
                  ["poll", r.chance(0.85) ? String(r.pick(polls)) : pollIdJson(r)]];
  fields.push(...r.weighted([
    [8, () => [["option", String(r.range(1, 4))]]],
    [4, () => [["options", "[" + [...new Set(Array.from({ length: r.range(1, 4) }, () => r.range(1, 4)))].join(",") + "]"]]],
    [1, () => [["options", "[" + Array.from({ length: 64 }, (_, i) => i + 1).join(",") + "]"]]],
    [1, () => [["options", "[" + Array.from({ length: 65 }, (_, i) => i + 1).join(",") + "]"]]],
    [1, () => [["option", numberJson(r)]]],
    [1, () => [["options", r.pick(["[1,1]", "[0]", "[2147483648]", "[-2147483649]", "[1.0]", "[true]", "[[1]]"])]]],
    [1, () => [["option", "1"], ["options", "[1]"]]],
    [1, () => []],
  ]));
  if (r.chance(0.8)) fields.push(["ref", r.weighted([[6, () => JSON.stringify("r" + r.range(0, 1e6))],
    [1, () => JSON.stringify("é".repeat(64))], [1, () => JSON.stringify("x".repeat(65))], [1, () => stringJson(r)],
    [1, "\"\\u0000\""], [1, "1"], [1, "null"], [1, "\"\""]])]);
  if (r.chance(0.2)) fields.push([r.pick(["voter", "sub", "seg", "segment", "token"]), stringJson(r)]);
  return jsonObject(r.chance(0.1) ? fields.reverse() : fields);
}

/* ---- WebSocket messages of every type, good and bad fields ---- */
function wsMessage(r) {
  return r.weighted([
    [12, () => {
      const type = r.weighted([[3, "\"subscribe\""], [2, "\"unsubscribe\""], [2, "\"ping\""], [2, "\"auth\""],
                               [2, "\"vote\""], [2, "\"retract\""], [1, "\"frobnicate\""], [1, "\"\""],
                               [1, "42"], [1, "null"], [1, "\"SUBSCRIBE\""], [1, "[\"subscribe\"]"]]);
      const fields = [];
      if (r.chance(0.95)) fields.push(["type", type]);
      if (r.chance(0.85)) fields.push(["poll", pollIdJson(r)]);
      if (r.chance(0.3)) fields.push(["version", numberJson(r)]);
      if (r.chance(0.3)) fields.push(["id", r.chance(0.5) ? stringJson(r) : numberJson(r)]);
      if (r.chance(0.3)) fields.push(["token", r.chance(0.85) ? JSON.stringify(token(r)) : numberJson(r)]);
      if (r.chance(0.3)) fields.push(["option", numberJson(r)]);
      if (r.chance(0.2)) fields.push(["options", r.pick(["[1,3]", "[]", "[1,1,1]", "[\"a\"]", "3", "null",
                                                        "[" + "1,".repeat(800) + "1]", "[-1,1e300]"])]);
      if (r.chance(0.3)) fields.push(["ref", stringJson(r)]);
      if (r.chance(0.05)) fields.push(["type", "\"ping\""]);
      return jsonObject(r.chance(0.1) ? fields.reverse() : fields);
    }],
    [1, () => r.pick(["", " ", "{", "}", "[]", "null", "42", "\"x\"", "{not json", "{\"type\":\"ping\"}x",
                      "\ufeff{\"type\":\"ping\",\"id\":1}", "{\"type\":\"ping\",\"id\":1}{\"type\":\"ping\"}"])],
    [1, () => "[".repeat(r.range(10, 3000)) + "]".repeat(r.chance(0.5) ? 0 : r.range(10, 3000))],
    [1, () => "{\"type\":\"subscribe\",\"poll\":" + String(r.pick(polls)) + ",\"x\":" + "{\"a\":".repeat(r.range(10, 800)) + "1" + "}".repeat(r.range(0, 800)) + "}"],
  ]);
}

/* ---- WebSocket frames, with raw control over every bit ---- */
function frame(r, { fin = true, rsv = 0, op, payload = Buffer.alloc(0), mask = true, lenForm = "auto", lie = 0 }) {
  const len = payload.length + lie;
  let head;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | op;
  const m = mask ? 0x80 : 0;
  if (lenForm === "auto" && len < 126) head = Buffer.from([b0, m | len]);
  else if ((lenForm === "auto" && len < 65536) || lenForm === 16) {
    head = Buffer.from([b0, m | 126, (len >> 8) & 255, len & 255]);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(lenForm === "huge" ? 0x8000000000000000n + BigInt(len) : BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  const key = r.bytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([head, key, body]);
}
const closePayload = (r, n) => {
  const code = r.pick([0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1011, 1012,
                       1015, 1016, 2999, 3000, 4000, 4999, 5000, 65535]);
  if (n === 0) return Buffer.alloc(0);
  if (n === 1) return Buffer.from([r.int(256)]);
  const b = Buffer.alloc(n);
  b.writeUInt16BE(code, 0);
  const reason = r.chance(0.3) ? r.bytes(n - 2) : Buffer.from("x".repeat(n - 2));
  reason.copy(b, 2);
  return b;
};
const BAD_UTF8 = [Buffer.from([0xc3, 0x28]), Buffer.from([0xff]), Buffer.from([0xed, 0xa0, 0x80]),
                  Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xe2, 0x82]), Buffer.from([0xc0, 0xaf])];

/* a list of frames: mostly well formed JSON messages, with every kind of abuse mixed in */
function frames(r) {
  const out = [];
  const n = r.weighted([[6, () => r.range(1, 6)], [2, () => r.range(6, 40)], [1, () => r.range(40, 300)]]);
  const masked = () => r.chance(0.95);
  for (let i = 0; i < n; i++) {
    r.weighted([
      [20, () => out.push(frame(r, { op: 1, payload: Buffer.from(wsMessage(r)), mask: masked() }))],
      [8, () => out.push(frame(r, { op: 1, payload: Buffer.from(voteMessage(r)), mask: masked() }))],
      [1, () => out.push(frame(r, { op: 1, mask: masked(),
                                    payload: Buffer.from(JSON.stringify({ type: "auth", token: voterToken(r) })) }))],
      [1, () => { for (let j = r.range(20, 120); j > 0; j--) out.push(frame(r, { op: 1, payload: Buffer.from(voteMessage(r)) })); }],
      [3, () => {	/* fragmented, with control frames in between */
        const p = Buffer.from(wsMessage(r));
        const k = r.range(2, 6);
        for (let j = 0; j < k; j++) {
          const piece = p.subarray(Math.floor(j * p.length / k), Math.floor((j + 1) * p.length / k));
          out.push(frame(r, { op: j === 0 ? 1 : 0, fin: j === k - 1, payload: piece, mask: masked() }));
          if (r.chance(0.4)) out.push(frame(r, { op: r.pick([9, 10]), payload: r.bytes(r.range(0, 20)) }));
        }
      }],
      [2, () => out.push(frame(r, { op: 9, payload: r.bytes(r.pick([0, 1, 125, 126, 127, 200, 5000])), mask: masked() }))],
      [1, () => out.push(frame(r, { op: 10, payload: r.bytes(r.range(0, 130)) }))],
      [1, () => out.push(frame(r, { op: 9, fin: false, payload: r.bytes(3) }))],
      [2, () => out.push(frame(r, { op: 8, payload: closePayload(r, r.pick([0, 1, 2, 3, 20, 123, 125, 126])), mask: masked() }))],
      [1, () => out.push(frame(r, { op: 0, payload: Buffer.from("{\"type\":\"ping\"}") }))],
      [1, () => out.push(frame(r, { op: 1, fin: false, payload: Buffer.from("{\"type\":") }),
                         frame(r, { op: 1, payload: Buffer.from("\"ping\"}") }))],
      [1, () => out.push(frame(r, { op: 1, rsv: r.range(1, 7), payload: Buffer.from("{\"type\":\"ping\",\"id\":1}") }))],
      [1, () => out.push(frame(r, { op: r.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), payload: r.bytes(r.range(0, 10)) }))],
      [2, () => out.push(frame(r, { op: 1, payload: Buffer.concat([Buffer.from("{\"type\":\"ping\",\"id\":\""), r.pick(BAD_UTF8), Buffer.from("\"}")]) }))],
      [1, () => out.push(frame(r, { op: 2, payload: r.bytes(r.range(0, 200)) }))],
      [1, () => out.push(frame(r, { op: r.pick([1, 2]), payload: Buffer.alloc(r.pick([4096, 4097, 5000, 70000]), 0x20) }))],
      [1, () => out.push(frame(r, { op: 1, payload: Buffer.from("{\"type\":\"ping\"}"), lenForm: r.pick([16, 64]) }))],
      [1, () => out.push(frame(r, { op: 1, payload: Buffer.from("{\"type\":\"ping\"}"), lenForm: "huge" }))],
      [1, () => out.push(frame(r, { op: 1, payload: Buffer.from("{\"type\":\"ping\"}"), lie: r.pick([1, 100, 3000, 70000]) }))],
      [1, () => { for (let j = r.range(50, 400); j > 0; j--) out.push(frame(r, { op: 1, payload: Buffer.from("{\"type\":\"ping\",\"id\":" + j + "}") })); }],
      [1, () => { for (let j = r.range(50, 300); j > 0; j--) out.push(frame(r, { op: 9, payload: Buffer.alloc(0) })); }],
    ]);
  }
  return out;
}

/* ---- HTTP requests ---- */
function path(r) {
  const id = () => r.weighted([[8, () => String(r.pick(polls))], [1, "987654321"], [1, "0"], [1, "-1"],
    [1, "abc"], [1, ""], [1, "1e3"], [1, "0x10"], [1, "+1"], [1, "01"], [1, "%31"], [1, "1%00"],
    [1, "9223372036854775807"], [1, "9223372036854775808"], [1, "99999999999999999999"],
    [1, () => "9".repeat(r.range(20, 3000))], [1, " 1"], [1, "1;x"]]);
  const p = r.weighted([
    [8, () => "/polls/" + id()], [6, () => "/polls/" + id() + "/events"], [6, "/ws"], [3, "/healthz"],
    [3, "/metrics"], [2, "/"], [2, "/poll-client.js"], [1, "/index.html"], [2, () => "/polls/" + id() + "/vote"],
    [1, "/voters"], [1, "/polls"], [1, () => "/polls/" + id() + "/close"], [1, () => "/polls/" + id() + "/series"],
    [1, () => "/polls/" + id() + "/segments"], [1, () => "/polls/" + id() + "/ballots.csv"], [1, "/dashboard"],
    [1, "/poll-widget.js"], [1, "/../../etc/passwd"], [1, "/%2e%2e/%2e%2e/etc/passwd"], [1, "/polls/../healthz"],
    [1, "//polls//1"], [1, "/polls/1/events/x"], [1, "/%"], [1, "/%zz"], [1, "*"], [1, ""],
    [1, "http://x/polls/1"], [1, () => "/" + "a".repeat(r.range(1000, 20000))], [1, "/polls/1#frag"],
    [1, () => "/" + r.bytes(r.range(1, 30)).toString("latin1").replace(/[\r\n ]/g, "_")],
  ]);
  const q = r.weighted([
    [8, ""], [3, () => "?token=" + encodeURIComponent(token(r))], [1, () => "?token=" + token(r)],
    [1, "?token="], [1, "?token=%zz"], [1, "?token=a&token=b"], [1, "?&&&=&="], [1, () => "?poll=" + id()],
    [1, "?width=1m&since=garbage&until=2026-13-45T99:99:99Z"], [1, () => "?" + "x=y&".repeat(r.range(10, 2000))],
  ]);
  return p + q;
}

function chunked(r, body) {
  return r.weighted([
    [3, () => Buffer.concat([Buffer.from(body.length.toString(16) + "\r\n"), body, Buffer.from("\r\n0\r\n\r\n")])],
    [1, () => Buffer.from("zz\r\nabc\r\n0\r\n\r\n")],
    [1, () => Buffer.from("ffffffffffffffff\r\nabc\r\n")],
    [1, () => Buffer.from("-1\r\n\r\n")],
    [1, () => Buffer.concat([Buffer.from("5\r\n"), body.subarray(0, 2)])],
    [1, () => Buffer.from("1000\r\n" + "a".repeat(4096) + "\r\n1000\r\n" + "b".repeat(4096) + "\r\n0\r\n\r\n")],
  ]);
}

/* POST, DELETE or GET on /polls/ID/vote, or POST /voters: well formed, hostile within */
function voteRequest(r, eol) {
  const method = r.weighted([[6, "POST"], [2, "DELETE"], [2, "GET"], [1, "PUT"]]);
  const target = r.chance(0.15) ? "/voters" : "/polls/" + (r.chance(0.9) ? r.pick(polls) : r.pick(["0", "x", "987654321", "-1", "9".repeat(30)])) + "/vote";
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${host}:${port}`];
  if (r.chance(0.8)) lines.push("Authorization: Bearer " + (r.chance(0.7) ? voterToken(r) : token(r)));
  let body = null;
  if (method === "POST" && r.chance(0.9)) {
    body = Buffer.from(r.weighted([[5, () => voteMessage(r)], [1, "{}"], [1, "[]"], [1, "null"], [1, "{\"option\":"],
                                   [1, () => "{\"options\":[" + "1,".repeat(r.range(10, 1500)) + "1]}"],
                                   [1, () => r.bytes(r.range(1, 200)).toString("latin1")]]), "latin1");
    const lie = r.weighted([[8, 0], [1, 1], [1, -1]]);
    lines.push("Content-Length: " + Math.max(0, body.length + lie));
  }
  if (r.chance(0.1)) lines.push("Content-Length: 0");
  const head = Buffer.from(lines.join(eol) + eol + eol, "latin1");
  return body ? Buffer.concat([head, body]) : head;
}

function httpRequest(r, eol) {
  if (r.chance(0.25)) return voteRequest(r, eol);
  const method = r.weighted([[20, "GET"], [3, "POST"], [2, "OPTIONS"], [2, "DELETE"], [2, "PUT"], [2, "HEAD"],
    [1, "PATCH"], [1, "TRACE"], [1, "CONNECT"], [1, "get"], [1, "PRI"], [1, () => r.text(r.range(1, 12), "ABCXYZ-_!")],
    [1, () => "G".repeat(r.range(100, 5000))], [1, ""]]);
  const version = r.weighted([[20, "HTTP/1.1"], [3, "HTTP/1.0"], [1, "HTTP/2.0"], [1, "HTTP/0.9"], [1, "HTTP/1.1 x"],
    [1, "http/1.1"], [1, "HTTP/9.9"], [1, ""], [1, "HTTP/1.1\0"]]);
  const lines = [r.chance(0.97) ? `${method} ${path(r)} ${version}` : r.pick([`${method} ${path(r)}`, "GET  /  HTTP/1.1", " GET / HTTP/1.1", "GET\t/\tHTTP/1.1"])];
  if (r.chance(0.9)) lines.push("Host: " + r.pick([`${host}:${port}`, "x", "", "a".repeat(3000)]));
  if (r.chance(0.05)) lines.push("Host: second");
  let body = null;
  const bodyBytes = () => r.weighted([[6, () => Buffer.from(r.pick(["abcd", "{\"option\":2}", "{\"options\":[1,3]}", "x", "{}"]))],
    [2, () => Buffer.alloc(r.pick([4095, 4096, 4097, 5000, 70000, 300000]), 0x61)], [1, () => r.bytes(r.range(1, 300))]]);
  r.weighted([
    [8, () => {}],
    [8, () => { body = bodyBytes(); lines.push("Content-Length: " + body.length); }],
    [1, () => { body = bodyBytes(); lines.push("Content-Length: " + (body.length + r.pick([1, 10, 100000]))); }],
    [1, () => { body = bodyBytes(); lines.push("Content-Length: " + Math.max(0, body.length - r.range(1, 3))); }],
    [1, () => lines.push("Content-Length: " + r.pick(["-1", "abc", "99999999999999999999", "1e3", " 4", "4, 4", "0x10", "18446744073709551615"]))],
    [1, () => { body = Buffer.from("abcd"); lines.push("Content-Length: 4", "Content-Length: " + r.pick(["4", "5", "0"])); }],
    [3, () => { body = chunked(r, bodyBytes()); lines.push("Transfer-Encoding: " + r.pick(["chunked", "chunked", "Chunked", "gzip, chunked", "identity", "x"])); }],
    [1, () => { body = chunked(r, Buffer.from("abcd")); lines.push("Content-Length: 4", "Transfer-Encoding: chunked"); }],
  ]);
  const headerCount = r.weighted([[6, () => r.range(0, 3)], [2, () => r.range(3, 12)], [1, () => r.range(50, 300)]]);
  for (let i = 0; i < headerCount; i++) {
    lines.push(r.weighted([
      [3, () => "Authorization: " + r.pick(["Bearer ", "Bearer  ", "bearer ", "Basic ", "", "Bearer"]) + token(r)],
      [2, () => "Last-Event-ID: " + r.pick(["1", "0", "-5", "abc", "99999999999999999999", "1e300", "", " 3", "9223372036854775807"])],
      [1, () => "If-None-Match: " + r.pick(["\"1\"", "*", "W/\"2\"", "\"", "\"" + "9".repeat(50) + "\""])],
      [1, () => "Origin: " + r.pick(["http://evil.example", "null", "", "x".repeat(2000)])],
      [1, () => "Access-Control-Request-Method: " + r.pick(["POST", "GET", "DELETE", "BREW"])],
      [1, () => "Access-Control-Request-Headers: authorization, content-type"],
      [1, () => "Connection: " + r.pick(["keep-alive", "close", "Upgrade", "upgrade, keep-alive", ""])],
      [1, () => "Upgrade: " + r.pick(["websocket", "h2c", "x", ""])],
      [1, () => "Sec-WebSocket-Key: " + r.pick(["dGhlIHNhbXBsZSBub25jZQ==", "", "short", "x".repeat(200)])],
      [1, () => "Sec-WebSocket-Version: " + r.pick(["13", "8", "", "99999999999"])],
      [1, () => "Content-Type: " + r.pick(["application/json", "text/plain", "multipart/form-data; boundary=x", ""])],
      [1, () => "Accept: text/event-stream"],
      [1, () => "Cookie: session=" + "c".repeat(r.range(1, 5000))],
      [1, () => "X-Huge: " + "h".repeat(r.pick([1000, 4000, 8000, 16000, 70000]))],
      [1, () => r.pick(["NoColonHere", ": empty name", "X-Nul: a\0b", " folded: line", "\tcontinued", "X-Sp ace: 1",
                        "Bad\x7fName: v", "X-Utf8: \xff\xfe", "::::", "X: " + "\r".repeat(3)])],
    ]));
  }
  const head = Buffer.from(lines.join(eol) + eol + eol, "latin1");
  return body ? Buffer.concat([head, body]) : head;
}

function wsHandshake(r) {
  const key = b64url(r.bytes(16)) + "==";
  /* with tokens required, half the handshakes carry a good one, so that frames meet a session */
  const tokenPart = secret && r.chance(0.5) ? "?token=" + goodToken()
    : voterSecret && r.chance(0.4) ? "?token=" + voterToken(r)
    : secret || r.chance(0.2) ? "?token=" + encodeURIComponent(token(r)) : "";
  const valid = [`GET /ws${tokenPart} HTTP/1.1`, `Host: ${host}:${port}`, "Upgrade: websocket",
                 "Connection: Upgrade", `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}`,
                 "Sec-WebSocket-Version: 13"];
  if (r.chance(0.2)) valid.push("Authorization: Bearer " + token(r));
  if (r.chance(0.1)) valid.push("Sec-WebSocket-Protocol: " + r.pick(["chat", "lws-minimal", "x,y,z", ""]));
  if (r.chance(0.1)) valid.push("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits");
  if (r.chance(0.05)) valid.push("Origin: http://evil.example");
  if (r.chance(0.8)) return { ok: true, bytes: Buffer.from(valid.join("\r\n") + "\r\n\r\n") };
  const broken = valid.slice();
  r.weighted([
    [1, () => broken.splice(4, 1)],
    [1, () => { broken[4] = "Sec-WebSocket-Key: " + r.pick(["", "short", key.repeat(20), "!!!!"]); }],
    [1, () => { broken[5] = "Sec-WebSocket-Version: " + r.pick(["8", "0", "", "13, 8", "999999999999"]); }],
    [1, () => { broken[2] = "Upgrade: " + r.pick(["webSocket", "h2c", "", "websocket, x"]); }],
    [1, () => { broken[0] = r.pick(["POST /ws HTTP/1.1", "GET /ws HTTP/1.0", "GET /polls/1 HTTP/1.1", "GET /ws/x HTTP/1.1", "OPTIONS /ws HTTP/1.1"]); }],
    [1, () => broken.splice(3, 1)],
    [1, () => broken.push("Content-Length: 4")],
  ]);
  return { ok: false, bytes: Buffer.from(broken.join("\r\n") + "\r\n\r\n" + (broken.includes("Content-Length: 4") ? "abcd" : "")) };
}

/* ---- plans: what one connection writes, and how ---- */
/* steps: {w: Buffer} | {sleep: ms} | {await: "head"} | {end: 1} | {reset: 1} */
function deliver(r, bytes, steps) {
  r.weighted([
    [10, () => steps.push({ w: bytes })],
    [3, () => {	/* random pieces */
      let at = 0;
      while (at < bytes.length) {
        const n = Math.min(bytes.length - at, r.range(1, Math.max(1, Math.floor(bytes.length / 2))));
        steps.push({ w: bytes.subarray(at, at + n) });
        if (r.chance(0.5)) steps.push({ sleep: r.range(0, 30) });
        at += n;
      }
    }],
    [1, () => {	/* slowloris: a byte at a time, for at most ~40 bytes, then the rest */
      const n = Math.min(bytes.length, r.range(5, 40));
      for (let i = 0; i < n; i++) steps.push({ w: bytes.subarray(i, i + 1) }, { sleep: r.range(10, 60) });
      if (n < bytes.length) steps.push({ w: bytes.subarray(n) });
    }],
  ]);
}

function cut(r, steps) {
	/* abrupt ends: mid-request, mid-frame */
  const i = r.int(steps.length);
  const s = steps[i];
  steps.length = i;
  if (s.w && s.w.length > 1) steps.push({ w: s.w.subarray(0, r.range(1, s.w.length - 1)) });
  steps.push(r.pick([{ end: 1 }, { reset: 1 }, { sleep: r.range(0, 500) }]));
}

function plan(r) {
  const steps = [];
  const kind = r.weighted([[9, "http"], [8, "ws"], [1, "garbage"]].filter(([, k]) => kinds.includes(k)));
  let requests = 0;	/* HTTP requests, or WebSocket frames */
  if (kind === "http") {
    const eol = r.chance(0.95) ? "\r\n" : "\n";
    requests = r.weighted([[6, 1], [2, () => r.range(2, 5)], [1, () => r.range(6, 40)]]);
    deliver(r, Buffer.concat(Array.from({ length: requests }, () => httpRequest(r, eol))), steps);
  } else if (kind === "ws") {
    const hs = wsHandshake(r);
    if (r.chance(0.7)) { deliver(r, hs.bytes, steps); steps.push({ await: "head" }); }
    else steps.push({ w: hs.bytes });		/* frames right behind the handshake */
    const list = frames(r);
    requests = list.length;
    for (const f of list) {
      deliver(r, f, steps);
      if (r.chance(0.1)) steps.push({ sleep: r.range(0, 200) });
    }
  } else {
    deliver(r, r.weighted([
      [1, () => r.bytes(r.range(1, 3000))],
      [1, Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")],
      [1, () => Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), r.bytes(r.range(9, 300))])],
      [1, Buffer.from("16030100a5010000a10303", "hex")],	/* a TLS ClientHello's start */
      [1, () => Buffer.from("\r\n".repeat(r.range(1, 2000)))],
    ]), steps);
  }
  if (r.chance(0.2)) cut(r, steps);
  return { kind, steps, requests, linger: r.weighted([[6, () => r.range(0, 300)], [2, () => r.range(300, 1500)], [1, () => r.range(1500, 4000)]]),
           read: r.chance(0.9) };
}

/* ---- running a plan on one connection ---- */
const stats = { connections: 0, httpRequests: 0, wsHandshakes: 0, frames: 0, bytesOut: 0, bytesIn: 0, refused: 0, probes: 0 };

function run(p) {
  return new Promise(resolve => {
    const sock = net.connect({ host, port });
    const limit = setTimeout(() => sock.destroy(), 15000);
    let closed = false, head = false, got = Buffer.alloc(0), wake = null;
    const notify = () => { if (wake) { const w = wake; wake = null; w(); } };
    const until = (cond, ms) => new Promise(res => {
      const t = setTimeout(() => { wake = null; res(); }, ms);
      const check = () => { if (cond()) { clearTimeout(t); res(); } else wake = check; };
      check();
    });
    sock.setNoDelay(true);
    sock.on("data", d => {
      stats.bytesIn += d.length;
      if (!head) { got = Buffer.concat([got, d]).subarray(-8192); head = got.includes("\r\n\r\n"); }
      if (!p.read) sock.pause();
      notify();
    });
    sock.on("error", e => { if (e.code === "ECONNREFUSED") stats.refused++; });
    sock.on("close", () => { closed = true; notify(); });
    sock.on("connect", async () => {
      stats.connections++;
      for (const s of p.steps) {
        if (closed) break;
        if (s.w) { sock.write(s.w); stats.bytesOut += s.w.length; }
        else if (s.sleep) await sleep(s.sleep);
        else if (s.await) await until(() => head || closed, 2000);
        else if (s.end) sock.end();
        else if (s.reset) { sock.resetAndDestroy(); break; }
      }
      await until(() => closed, p.linger);
      sock.destroy();
    });
    sock.on("close", () => { clearTimeout(limit); resolve(); });
  });
}

/* ---- liveness ---- */
function httpGet(pathname, ms) {
  return new Promise(resolve => {
    const sock = net.connect({ host, port });
    let got = "";
    const t = setTimeout(() => { sock.destroy(); resolve({ error: `no answer within ${ms} ms` }); }, ms);
    sock.on("connect", () => sock.write(`GET ${pathname} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n` +
                                        (secret ? `Authorization: Bearer ${goodToken()}\r\n` : "") + "\r\n"));
    sock.on("data", d => { got += d.toString("latin1"); });
    sock.on("error", e => { clearTimeout(t); resolve({ error: e.code || e.message }); });
    sock.on("close", () => {
      clearTimeout(t);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      resolve(m ? { status: Number(m[1]), body: got.slice(got.indexOf("\r\n\r\n") + 4) } : { error: "no status line: " + JSON.stringify(got.slice(0, 100)) });
    });
  });
}
function goodToken() {
  return signJwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, polls: "*",
                                                                     sub: "fuzz-good-" + (goodTokens++ % 20), vote: "*" }), secret);
}
let goodTokens = 0;
function alive() {
  if (daemonPid === null) return true;
  try { process.kill(daemonPid, 0); return true; } catch (e) { return false; }
}
async function probe() {
  stats.probes++;
  if (!alive()) return `the daemon (pid ${daemonPid}) is dead`;
  const h = await httpGet("/healthz", 10000);
  if (h.error) return "/healthz: " + h.error;
  const m = await httpGet("/metrics", 10000);
  if (m.error) return "/metrics: " + m.error;
  if (m.status !== 200 || !m.body.includes("poll_fanout_clients")) return `/metrics: HTTP ${m.status}`;
  return alive() ? null : `the daemon (pid ${daemonPid}) is dead`;
}

/* a legitimate client still gets a real poll's snapshot within 2 s */
async function legitimate() {
  const poll = polls[0];
  const t0 = Date.now();
  const m = await new Promise(resolve => {
    const ws = new WebSocket(`ws://${host}:${port}/ws` + (secret ? "?token=" + goodToken() : ""));
    const t = setTimeout(() => { ws.terminate(); resolve({ error: "no snapshot within 2 s" }); }, 2000);
    ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", poll })));
    ws.on("message", d => { clearTimeout(t); ws.close(); resolve(JSON.parse(d)); });
    ws.on("error", e => { clearTimeout(t); resolve({ error: e.message }); });
  });
  if (m.error || m.type !== "snapshot" || m.poll !== poll) return `WebSocket subscribe to poll ${poll}: ${JSON.stringify(m)}`;
  const ms = Date.now() - t0;
  const h = await httpGet(`/polls/${poll}`, 2000);
  if (h.error || h.status !== 200 || !h.body.includes("\"type\":\"snapshot\"")) return `GET /polls/${poll}: ${JSON.stringify(h).slice(0, 300)}`;
  return { ms };
}

/* ---- the record of recent plans, and replaying it ---- */
const recent = [];	/* per connection slot: the last few plans */
function remember(slot, p, n) {
  const list = recent[slot] || (recent[slot] = []);
  list.push({ t: Date.now(), slot, n, kind: p.kind, linger: p.linger, read: p.read,
              steps: p.steps.map(s => s.w ? { w: s.w.toString("base64") } : s) });
  if (list.length > 4) list.shift();
}
function dumpRecent(why) {
  if (!args.record) return;
  const all = recent.flat().sort((a, b) => a.t - b.t);
  fs.writeFileSync(args.record, all.map(x => JSON.stringify(x)).join("\n") + "\n");
  console.error(`the last ${all.length} plans (of all connections, oldest first) are in ${args.record}; ` +
                `replay: node ${process.argv[1]} --port PORT --pid PID --replay ${args.record}  (${why})`);
}
const fromRecord = x => ({ kind: x.kind, linger: Math.min(x.linger, 500), read: x.read,
                           steps: x.steps.map(s => s.w ? { w: Buffer.from(s.w, "base64") } : s) });
function printable(p) {
  const bytes = Buffer.concat(p.steps.filter(s => s.w).map(s => s.w));
  const shown = bytes.subarray(0, 600).toString("latin1").replace(/[^\x20-\x7e]/g, c => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
  return `printf '${shown.replace(/'/g, "'\\''")}'` + (bytes.length > 600 ? ` # ... ${bytes.length} bytes in all` : "");
}

async function replay() {
  const plans = fs.readFileSync(args.replay, "utf8").trim().split("\n").map(l => fromRecord(JSON.parse(l)));
  for (let i = 0; i < plans.length; i++) {
    await run(plans[i]);
    await sleep(300);
    const err = await probe();
    if (err) {
      console.log(`plan ${i + 1} of ${plans.length} (${plans[i].kind}) was the last before: ${err}\nits bytes: ${printable(plans[i])}`);
      process.exit(1);
    }
  }
  console.log(`all ${plans.length} plans replayed one at a time: the daemon survived`);
}

async function fuzz() {
  const seconds = Number(args.seconds || 30);
  const concurrency = Number(args.concurrency || 16);
  console.log(`seed ${seed} (replay the same plans with --seed ${seed}), ${seconds} s, ${concurrency} connections at a time` +
              (secret ? ", signed tokens" : ""));
  const end = Date.now() + seconds * 1000;
  let failure = null, n = 0;
  const fail = why => { if (!failure) { failure = why; dumpRecent(why); } };
  const worker = async slot => {
    const r = Rng((seed ^ Math.imul(slot + 1, 0x9e3779b1)) >>> 0);
    while (Date.now() < end && !failure) {
      const p = plan(r);
      remember(slot, p, ++n);
      stats.httpRequests += p.kind === "http" ? p.requests : 0;
      stats.wsHandshakes += p.kind === "ws" ? 1 : 0;
      stats.frames += p.kind === "ws" ? p.requests : 0;
      const refused = stats.refused;
      await run(p);
      if (stats.refused > refused && !alive()) fail(`the daemon (pid ${daemonPid}) died`);
    }
  };
  const prober = async () => {
    while (Date.now() < end && !failure) {
      await sleep(3000);
      const err = await probe();
      if (err) fail(err);
    }
  };
  await Promise.all([...Array.from({ length: concurrency }, (_, i) => worker(i)), prober()]);
  if (!failure) { const err = await probe(); if (err) fail(err); }
  let legit = null;
  if (!failure) { legit = await legitimate(); if (typeof legit === "string") fail(legit); }
  const summary = `${stats.connections} connections: ${stats.httpRequests} HTTP requests, ${stats.wsHandshakes} WebSocket ` +
                  `handshakes with ${stats.frames} frames, ` +
                  `${(stats.bytesOut / 1e6).toFixed(1)} MB out, ${(stats.bytesIn / 1e6).toFixed(1)} MB in, ${stats.probes} probes`;
  if (failure) {
    console.error(`FAIL (seed ${seed}): ${failure}\nafter ${summary}`);
    process.exit(1);
  }
  const m = await httpGet("/metrics", 10000);
  const counters = (m.body || "").split("\n").filter(l => /^poll_fanout_(rejected_inputs|messages_sent|snapshots|votes_received|votes_acknowledged)_total /.test(l))
    .map(l => l.replace(/^poll_fanout_/, "")).join(", ");
  console.log(`ok: seed ${seed}: the daemon survived ${summary}; a legitimate client got its snapshot in ${legit.ms} ms; ${counters}`);
}

(args.replay ? replay() : fuzz()).catch(e => { console.error("FAIL: " + (e.stack || e)); process.exit(1); });

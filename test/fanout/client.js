#!/usr/bin/env node
/*
 * client.js — a recording poll-fanout client for the integration tests.
 *
 *   node client.js --kind ws|sse --base http://127.0.0.1:PORT --polls 1,2
 *                  --out STATEFILE [--log LOGFILE] [--pause-after-ms N]
 *
 * Subscribes (WebSocket, or one SSE stream per poll), applies messages by
 * version, reconnects with the last versions when the connection drops,
 * and keeps STATEFILE equal to its state as "poll|option|votes" lines (the
 * format of expected_results in lib.sh).  Protocol violations go to
 * stderr, one per line: a version going backwards, a repeated version on
 * one connection, a delta before a snapshot, malformed messages.
 * LOGFILE gets one line per message: ms-since-start kind poll version.
 */
"use strict";
const fs = require("fs");
const http = require("http");
const WebSocket = require("ws");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const polls = args.polls.split(",").map(Number);
const t0 = Date.now();
const state = {};            /* poll -> {version, status, ballots, options:[{id,votes}]} */
let log = args.log ? fs.openSync(args.log, "a") : null;
let writeTimer = null;
let backoff = 100;

function violation(text) { process.stderr.write(text + "\n"); }

function writeState() {
  if (writeTimer) return;
  writeTimer = setTimeout(() => {
    writeTimer = null;
    const lines = [];
    for (const p of Object.keys(state).map(Number).sort((a, b) => a - b))
      for (const o of state[p].options) lines.push(`${p}|${o.id}|${o.votes}`);
    fs.writeFileSync(args.out + ".tmp", lines.length ? lines.join("\n") + "\n" : "");
    fs.renameSync(args.out + ".tmp", args.out);
  }, 20);
}

/* conn: per-connection bookkeeping {seen: poll -> last version on this connection} */
function apply(conn, m) {
  if (log) fs.writeSync(log, `${Date.now() - t0} ${m.type} ${m.poll} ${m.version} ${JSON.stringify(m).length}\n`);
  if (m.type === "error" || m.type === "pong") return;
  if (typeof m.poll !== "number" || typeof m.version !== "number") return violation("malformed " + JSON.stringify(m));
  const seen = conn.seen[m.poll];
  if (seen !== undefined && m.version <= seen)
    violation(`poll ${m.poll}: version ${m.version} after ${seen} on one connection (${m.type})`);
  conn.seen[m.poll] = m.version;
  const s = state[m.poll];
  if (m.type !== "snapshot" && !conn.snapshot[m.poll])
    violation(`poll ${m.poll}: ${m.type} before any snapshot on this connection`);
  if (m.type === "snapshot") conn.snapshot[m.poll] = true;
  if (s && m.version < s.version)
    violation(`poll ${m.poll}: version went backwards, ${s.version} -> ${m.version}`);
  if (s && m.version <= s.version) return;
  if (m.type === "snapshot") {
    state[m.poll] = { version: m.version, status: m.status, ballots: m.ballots,
                      options: m.options.map(o => ({ id: o.id, votes: o.votes })) };
  } else if (m.type === "tally") {
    if (!s) return violation(`poll ${m.poll}: tally without state`);
    if (m.options.length !== s.options.length) violation(`poll ${m.poll}: tally has ${m.options.length} options, not ${s.options.length}`);
    s.version = m.version; s.ballots = m.ballots;
    for (const o of m.options) { const x = s.options.find(y => y.id === o.id); if (x) x.votes = o.votes; }
  } else if (m.type === "status") {
    if (!s) return violation(`poll ${m.poll}: status without state`);
    s.version = m.version; s.status = m.status;
  } else {
    return violation("unknown message type " + m.type);
  }
  writeState();
}

function reconnect(fn) {
  setTimeout(fn, backoff);
  backoff = Math.min(backoff * 2, 2000);
}

function connectWs() {
  const ws = new WebSocket(args.base.replace(/^http/, "ws") + "/ws");
  const conn = { seen: {}, snapshot: {} };
  ws.on("open", () => {
    backoff = 100;
    for (const p of polls) {
      const msg = { type: "subscribe", poll: p };
      if (state[p]) msg.version = state[p].version;
      ws.send(JSON.stringify(msg));
    }
    if (args["pause-after-ms"]) setTimeout(() => ws._socket.pause(), Number(args["pause-after-ms"]));
  });
  ws.on("message", data => {
    let m;
    try { m = JSON.parse(data); } catch (e) { return violation("not JSON: " + data); }
    /* a resubscription with our version may start with a tally: that is fine */
    for (const p of polls) if (state[p] && conn.seen[p] === undefined) conn.snapshot[p] = true;
    apply(conn, m);
  });
  ws.on("close", () => reconnect(connectWs));
  ws.on("error", () => {});
}

function connectSse(p) {
  const conn = { seen: {}, snapshot: {} };
  const req = http.get(`${args.base}/polls/${p}/events`, res => {
    if (res.statusCode !== 200) { res.resume(); return reconnect(() => connectSse(p)); }
    backoff = 100;
    let buf = "";
    res.setEncoding("utf8");
    res.on("data", chunk => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        let data = null, id = null;
        for (const line of ev.split("\n")) {
          if (line.startsWith("data: ")) data = line.slice(6);
          else if (line.startsWith("id: ")) id = Number(line.slice(4));
          else if (line.startsWith("event:")) violation("SSE event is named: " + line);
        }
        if (data === null) continue;
        let m;
        try { m = JSON.parse(data); } catch (e) { violation("SSE data not JSON: " + data); continue; }
        if (m.version !== undefined && id !== m.version) violation(`SSE id ${id} != version ${m.version}`);
        apply(conn, m);
      }
    });
    res.on("end", () => reconnect(() => connectSse(p)));
    res.on("error", () => {});
  });
  req.on("error", () => reconnect(() => connectSse(p)));
}

if (args.kind === "sse") polls.forEach(connectSse); else connectWs();
process.on("SIGTERM", () => process.exit(0));

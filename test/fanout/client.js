#!/usr/bin/env node
/*
 * client.js — a recording poll-fanout client for the integration tests,
 * driving the shipped browser client fanout/poll-client.js (not a copy).
 *
 *   node client.js --kind ws|sse|polling --base http://127.0.0.1:PORT --polls 1,2
 *                  --out STATEFILE [--log LOGFILE] [--pause-after-ms N] [--token JWT]
 *
 * PollClient subscribes (WebSocket, one EventSource per poll, or short
 * polling), applies messages by version and reconnects with its own backoff;
 * STATEFILE is kept equal to its state as "poll|option|votes" lines (the
 * format of expected_results in lib.sh).  The transports handed to it are
 * npm's ws and eventsource, wrapped to check every message as it arrives;
 * protocol violations go to stderr, one per line: a version going
 * backwards, a repeated version on one connection, a delta before a
 * snapshot, an SSE id that is not the version, malformed messages.
 * LOGFILE gets one line per message: ms-since-start type poll version length.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const WebSocket = require("ws");
const { EventSource } = require("eventsource");
const PollClient = require(path.join(__dirname, "../../fanout/poll-client.js"));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const polls = args.polls.split(",").map(Number);
const t0 = Date.now();
const log = args.log ? fs.openSync(args.log, "a") : null;
let client = null;
let writeTimer = null;

function violation(text) { process.stderr.write(text + "\n"); }

function writeState() {
  if (writeTimer) return;
  writeTimer = setTimeout(() => {
    writeTimer = null;
    const lines = [];
    for (const p of [...polls].sort((a, b) => a - b)) {
      const s = client.state(p);
      if (s) for (const o of s.options) lines.push(`${p}|${o.id}|${o.votes}`);
    }
    fs.writeFileSync(args.out + ".tmp", lines.length ? lines.join("\n") + "\n" : "");
    fs.renameSync(args.out + ".tmp", args.out);
  }, 20);
}

/*
 * One connection's view of the raw stream, before PollClient sees it.  A
 * connection that resumes (a resubscription or an SSE reconnection with the
 * client's versions) may start with a delta for a poll the client has.
 */
function newConnection() {
  const conn = { seen: {}, snapshot: {} };
  for (const p of polls) if (client.state(p)) conn.snapshot[p] = true;
  return conn;
}

function check(conn, text, sseId) {
  let m;
  try { m = JSON.parse(text); } catch (e) { return violation("not JSON: " + text); }
  if (log) fs.writeSync(log, `${Date.now() - t0} ${m.type} ${m.poll} ${m.version} ${text.length}\n`);
  if (m.type === "error" || m.type === "pong") return;
  if (typeof m.poll !== "number" || typeof m.version !== "number") return violation("malformed " + text);
  if (!["snapshot", "tally", "status"].includes(m.type)) return violation("unknown message type " + m.type);
  if (sseId !== undefined && sseId !== String(m.version)) violation(`SSE id ${sseId} != version ${m.version}`);
  const seen = conn.seen[m.poll];
  if (seen !== undefined && m.version <= seen)
    violation(`poll ${m.poll}: version ${m.version} after ${seen} on one connection (${m.type})`);
  conn.seen[m.poll] = m.version;
  if (m.type === "snapshot") conn.snapshot[m.poll] = true;
  else if (!conn.snapshot[m.poll]) violation(`poll ${m.poll}: ${m.type} before any snapshot on this connection`);
  const s = client.state(m.poll);
  if (s && m.version < s.version) violation(`poll ${m.poll}: version went backwards, ${s.version} -> ${m.version}`);
  if (s && m.type === "tally" && m.options.length !== s.options.length)
    violation(`poll ${m.poll}: tally has ${m.options.length} options, not ${s.options.length}`);
}

class CheckedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    let conn = null;
    this.on("open", () => {
      conn = newConnection();
      if (args["pause-after-ms"]) setTimeout(() => this._socket.pause(), Number(args["pause-after-ms"]));
    });
    /* registered before PollClient's onmessage, so it runs first */
    this.on("message", (data, isBinary) => {
      if (isBinary) return violation("binary message");
      check(conn, data.toString());
    });
    this.on("error", () => {});
  }
}

class CheckedEventSource extends EventSource {
  constructor(url) {
    super(url);
    let conn = null;
    this.addEventListener("open", () => { conn = newConnection(); });
    this.addEventListener("message", ev => check(conn, ev.data, ev.lastEventId));
  }
}

/* short polling has no connection: each answer only may not go backwards */
function checkedFetch(url, init) {
  return fetch(url, init).then(r => r.text().then(text => {
    const conn = newConnection();
    const m = JSON.parse(text);
    if (client.state(m.poll)) conn.seen[m.poll] = client.state(m.poll).version - 1;
    check(conn, text);
    return { json: () => Promise.resolve(m) };
  }));
}

const transport = { ws: "websocket", sse: "sse", polling: "polling" }[args.kind || "ws"];
if (!transport) throw new Error("--kind must be ws, sse or polling");
client = new PollClient({ base: args.base, transport, token: args.token,
                          WebSocket: CheckedWebSocket, EventSource: CheckedEventSource, fetch: checkedFetch });
for (const p of polls) client.subscribe(p, () => writeState());
process.on("SIGTERM", () => process.exit(0));

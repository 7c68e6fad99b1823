#!/usr/bin/env node
/*
 * browser.js BASE POLL OUTDIR — headless Chromium opens the demo page on a
 * phone-sized screen, a vote is cast through SQL, and the page must show
 * the new count: over WebSocket, then forced onto SSE and onto polling.
 * Screenshots go to OUTDIR.
 */
"use strict";
const { execFileSync, spawn } = require("child_process");
const fs = require("fs");
const path = require("path");
const { launch } = require("./chromium");

const [base, pollArg, outdir] = process.argv.slice(2);
const poll = Number(pollArg);
let voter = 0;
let restarted = null;     /* a daemon this script started: stopped on exit */

function sql(q) {
  return execFileSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();
}

async function votesShown(page, option) {
  return page.locator(`[data-option="${option}"] .votes`).textContent({ timeout: 10000 });
}

async function expectVotes(page, option, want, what) {
  const end = Date.now() + 10000;
  let got;
  while (Date.now() < end) {
    got = await votesShown(page, option);
    if (got === String(want)) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`${what}: option ${option} shows ${got}, expected ${want}`);
}

async function main() {
  const { context, close } = await launch(outdir, { deviceScaleFactor: 2, isMobile: true });
  const errors = [];
  try {
    for (const transport of ["websocket", "sse", "polling"]) {
      const page = await context.newPage();
      page.on("pageerror", e => errors.push(`${transport}: ${e.message}`));
      const url = `${base}/?poll=${poll}` + (transport === "websocket" ? "" : `&transport=${transport}`);
      await page.goto(url);
      await page.locator("#title").filter({ hasText: "Browser test" }).waitFor({ timeout: 10000 });
      const conn = await page.locator("#conn").textContent();
      if (!conn.includes(transport)) throw new Error(`${transport}: connection shows "${conn}"`);
      const before = Number(await votesShown(page, 2));
      const want = Number(sql(`SELECT votes FROM poll.results WHERE poll_id = ${poll} AND option_id = 2`));
      if (before !== want) throw new Error(`${transport}: page shows ${before} before the vote, poll.results ${want}`);
      sql(`SELECT poll.cast_vote(${poll}, 'browser-voter-${++voter}', 2)`);
      await expectVotes(page, 2, before + 1, transport);
      const ballots = await page.locator("#ballots").textContent();
      const wantBallots = sql(`SELECT ballots FROM poll.poll_summary WHERE poll_id = ${poll}`);
      if (ballots !== wantBallots) throw new Error(`${transport}: ballots show ${ballots}, poll_summary ${wantBallots}`);
      const shot = path.join(outdir, `demo-page-${transport}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`ok: ${transport}: the page went from ${before} to ${before + 1} votes (${shot})`);
      await page.close();
    }
    /* the daemon restarts under an open page: it reconnects and catches up */
    if (process.env.DAEMON_PID && process.env.DAEMON_ARGV) {
      const page = await context.newPage();
      page.on("pageerror", e => errors.push(`restart: ${e.message}`));
      await page.goto(`${base}/?poll=${poll}`);
      await page.locator("#conn").filter({ hasText: "live (websocket)" }).waitFor({ timeout: 10000 });
      const before = Number(await votesShown(page, 3));
      process.kill(Number(process.env.DAEMON_PID), "SIGTERM");
      await page.locator("#conn").filter({ hasText: "reconnecting" }).waitFor({ timeout: 10000 });
      sql(`SELECT poll.cast_vote(${poll}, 'while-daemon-down', 3)`);
      sql("SELECT poll.fold()");
      const argv = JSON.parse(process.env.DAEMON_ARGV);
      const log = fs.openSync(path.join(outdir, "daemon.restarted.log"), "a");
      restarted = spawn(argv[0], argv.slice(1), { stdio: ["ignore", log, log] });
      await expectVotes(page, 3, before + 1, "after a daemon restart");
      await page.locator("#conn").filter({ hasText: "live (websocket)" }).waitFor({ timeout: 10000 });
      await page.screenshot({ path: path.join(outdir, "demo-page-after-restart.png"), fullPage: true });
      console.log(`ok: the page reconnected after a daemon restart and shows ${before + 1}`);
      await page.close();
    }
    /* an unknown poll says so */
    const page = await context.newPage();
    await page.goto(`${base}/?poll=987654321`);
    await page.locator("#title").filter({ hasText: "Unknown poll" }).waitFor({ timeout: 10000 });
    console.log("ok: an unknown poll shows \"Unknown poll\"");
    if (errors.length) throw new Error("page errors: " + errors.join("; "));
  } finally {
    if (restarted) restarted.kill("SIGTERM");
    await close();
  }
}

main().then(() => process.exit(0), e => { console.error("FAIL:", e.message); process.exit(1); });

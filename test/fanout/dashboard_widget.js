#!/usr/bin/env node
/*
 * dashboard_widget.js BASE POLL MULTI SCHEDULED OUTDIR — headless Chromium
 * (Debian's) checks the dashboard and the embeddable widget against a
 * running daemon (with --anonymous-votes), POLL a single-choice poll, MULTI
 * a multi-choice one, SCHEDULED one that opens later.
 *
 * The dashboard: shows the poll's counts, a chart, the segments; follows a
 * vote cast through SQL within two seconds (counts and the chart's current
 * bucket); has no horizontal overflow at 390 px; axe-core finds no serious
 * or critical violation.
 * The widget: a page served from another origin (another port) embeds two
 * widgets with one <script>; they share one WebSocket; the theme's custom
 * properties apply inside the shadow root; a click votes (a ballot under an
 * anon: voter appears in poll.ballots, the bar moves, the choice is
 * marked); Tab and Enter vote without a mouse; a vote through SQL moves the
 * bars within two seconds; axe-core finds no serious or critical violation.
 * With DAEMON_PID and DAEMON_ARGV: the daemon restarts under an open
 * dashboard, which shows the connection down and its numbers dimmed, then
 * reloads what it missed (counts, the chart, a new segment).
 * Screenshots at phone and desktop widths go to OUTDIR.
 */
"use strict";
const { execFileSync, spawn } = require("child_process");
const fs = require("fs");
const http = require("http");
const path = require("path");
const { chromium } = require("playwright-core");

const [base, pollArg, multiArg, schedArg, outdir] = process.argv.slice(2);
const poll = Number(pollArg), multi = Number(multiArg), scheduled = Number(schedArg);
const AXE = require.resolve("axe-core/axe.min.js");
let restarted = null;     /* a daemon this script started: stopped on exit */

function sql(q) {
  return execFileSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();
}
function check(cond, what) {
  if (!cond) throw new Error(what);
  console.log("ok: " + what);
}
async function until(what, fn, ms = 2000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last === true) return console.log("ok: " + what);
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
    await new Promise(r => setTimeout(r, 50));
  }
}
function votes(id, option) {
  return Number(sql(`SELECT votes FROM poll.results WHERE poll_id = ${id} AND option_id = ${option}`));
}

async function axe(page, what) {
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = res.violations.filter(v => v.impact === "serious" || v.impact === "critical");
  for (const v of res.violations)
    console.log(`  axe ${what}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes)`);
  check(bad.length === 0, `axe-core: no serious or critical violations on ${what} (${res.violations.length} minor)`);
}

/* the host page, on another origin */
function hostPage() {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>A page that embeds polls</title>
<style>body { font: 16px Georgia, serif; margin: 1rem; background: #fafafa; }
.themed { --poll-accent: rgb(200, 0, 100); --poll-radius: 3px; --poll-font: Georgia, serif;
          --poll-bg: rgb(255, 248, 238); --poll-fg: rgb(42, 26, 10); }</style></head>
<body><main><h1>An article</h1><p>Text before the polls.</p>
<div id="w1" data-poll="${poll}" class="themed"></div>
<p>Text between them.</p>
<div id="w2" data-poll="${multi}" data-kind="multi"></div>
<div id="w3" data-poll="${scheduled}"></div>
<script src="${base}/poll-widget.js" async></script></main></body></html>`;
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === "/" ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    res.end(req.url === "/" ? html : "");
  });
  return new Promise(r => server.listen(0, "127.0.0.1", () => r(server)));
}

async function dashboard(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", e => errors.push(e.message));
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/dashboard?poll=${poll}`);
  await page.locator("#chart canvas").waitFor({ timeout: 10000 });
  await page.locator("#segments td, #segments th").first().waitFor({ timeout: 10000 });
  await until("the dashboard shows the poll's counts", async () => {
    const shown = await page.locator(`#options [data-option="1"] .votes`).textContent();
    return shown === String(votes(poll, 1)) || shown;
  }, 5000);
  const conn = await page.locator("#conn").textContent();
  check(/live/.test(conn), `the dashboard shows its connection: "${conn}"`);
  const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth,
                                              document.documentElement.clientWidth]);
  check(sw <= cw, `no horizontal scroll at 390 px (scrollWidth ${sw}, clientWidth ${cw})`);
  await page.screenshot({ path: path.join(outdir, "dashboard-390.png"), fullPage: true });

  /* a vote through SQL: counts and the chart's current bucket follow */
  const before = votes(poll, 2);
  sql(`SELECT poll.cast_vote(${poll}, 'dash-' || pg_catalog.clock_timestamp(), 2)`);
  const t0 = Date.now();
  await until("the dashboard's count follows a vote cast through SQL", async () => {
    const shown = await page.locator(`#options [data-option="2"] .votes`).textContent();
    return shown === String(before + 1) || shown;
  });
  await until("the chart's current bucket ends at the new count", async () => {
    const cum = await page.evaluate(() => {
      const s = window.pollDashboard && window.pollDashboard.series;
      return s ? s.cum[s.cum.length - 1][1] : null;
    });
    return cum === before + 1 || cum;
  }, Math.max(100, 2000 - (Date.now() - t0)));

  /* the width chosen on the page */
  await page.locator('.widths button[data-width="1h"]').click();
  await until("the hour width loads", async () =>
    (await page.locator("#chart").getAttribute("data-loaded")) === "1h");
  await page.locator('.widths button[data-width="1m"]').click();
  await until("the minute width loads again", async () =>
    (await page.locator("#chart").getAttribute("data-loaded")) === "1m");
  await axe(page, "the dashboard");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(outdir, "dashboard-1280.png"), fullPage: true });
  check(errors.length === 0, `no page errors on the dashboard ${errors.join("; ")}`);
  await page.close();
}

async function widget(context, host) {
  const page = await context.newPage();
  const errors = [];
  const sockets = [];
  page.on("pageerror", e => errors.push(e.message));
  page.on("websocket", ws => sockets.push(ws.url()));
  await page.setViewportSize({ width: 390, height: 844 });
  const origin = `http://127.0.0.1:${host.address().port}`;
  check(!base.startsWith(origin), `the host page's origin ${origin} is not the daemon's ${base}`);
  await page.goto(origin + "/");
  const w1 = page.locator("#w1");
  await w1.locator(".q").filter({ hasText: "Widget test" }).waitFor({ timeout: 10000 });
  await page.locator("#w2 .q").filter({ hasText: "Widget multi" }).waitFor({ timeout: 10000 });
  check(await page.evaluate(() => !!document.getElementById("w1").shadowRoot),
        "the widget renders into a shadow root");
  check(sockets.length === 1, `three widgets share one WebSocket (${sockets.length}: ${sockets.join(", ")})`);

  /* a scheduled poll says so, and takes no vote */
  const w3 = page.locator("#w3");
  await w3.locator(".st").filter({ hasText: "not open yet" }).waitFor({ timeout: 5000 });
  check((await w3.locator("li button").first().getAttribute("aria-disabled")) === "true",
        "a scheduled poll's widget says it is not open yet and its buttons are disabled");

  /* the theme: custom properties set by the page reach into the shadow root */
  const theme = await page.evaluate(() => {
    const root = document.getElementById("w1").shadowRoot;
    const box = getComputedStyle(root.querySelector(".poll"));
    return { fill: getComputedStyle(root.querySelector(".fill")).backgroundColor, bg: box.backgroundColor,
             fg: box.color, font: box.fontFamily, radius: box.borderTopLeftRadius };
  });
  check(theme.fill === "rgb(200, 0, 100)" && theme.bg === "rgb(255, 248, 238)" && theme.fg === "rgb(42, 26, 10)" &&
        /Georgia/.test(theme.font) && theme.radius === "3px", `the theme applies: ${JSON.stringify(theme)}`);
  const plain = await page.evaluate(() =>
    getComputedStyle(document.getElementById("w2").shadowRoot.querySelector(".fill")).backgroundColor);
  check(plain !== "rgb(200, 0, 100)", `an unthemed widget keeps its own accent (${plain})`);
  await page.screenshot({ path: path.join(outdir, "widget-390-before.png"), fullPage: true });

  /* a click votes */
  const before = votes(poll, 3);
  await w1.locator('li[data-option="3"] button').click();
  await until("a click casts a ballot under an anon: voter", async () =>
    Number(sql(`SELECT count(*) FROM poll.ballots WHERE poll_id = ${poll} AND voter LIKE 'anon:%' AND option_id = 3`)) === 1);
  await until("the clicked option shows the new count and is marked as the reader's", async () => {
    const cnt = await w1.locator('li[data-option="3"] .cnt').textContent();
    const pressed = await w1.locator('li[data-option="3"] button').getAttribute("aria-pressed");
    return (cnt.startsWith(String(before + 1) + " ") && pressed === "true") || [cnt, pressed];
  });

  /* the keyboard: Tab to the first option, Enter votes (a change) */
  await page.locator("h1").click();
  let focused = null;
  for (let i = 0; i < 10 && focused !== "1"; i++) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => {
      const a = document.activeElement;
      const inner = a && a.shadowRoot && a.shadowRoot.activeElement;
      return inner && inner.closest("li") ? inner.closest("li").getAttribute("data-option") : null;
    });
  }
  check(focused === "1", "Tab reaches the first option's button");
  await page.keyboard.press("Enter");
  await until("Enter changes the vote (poll.ballots)", async () =>
    Number(sql(`SELECT count(*) FROM poll.ballots WHERE poll_id = ${poll} AND voter LIKE 'anon:%' AND option_id = 1`)) === 1);
  await until("the widget marks the new choice", async () =>
    (await w1.locator('li[data-option="1"] button').getAttribute("aria-pressed")) === "true");

  /* a vote through SQL moves the bars within two seconds */
  const b2 = votes(poll, 2);
  sql(`SELECT poll.cast_vote(${poll}, 'sql-' || pg_catalog.clock_timestamp(), 2)`);
  await until("the widget's bars follow a vote cast through SQL", async () => {
    const cnt = await w1.locator('li[data-option="2"] .cnt').textContent();
    return cnt.startsWith(String(b2 + 1) + " ") || cnt;
  });
  const live = await page.evaluate(() =>
    document.getElementById("w1").shadowRoot.querySelector("[aria-live]").getAttribute("aria-live"));
  check(live === "polite", "counts are announced through a polite live region");

  /* the multi-choice widget: checkboxes and a submit */
  const w2 = page.locator("#w2");
  await w2.locator('li[data-option="1"] input').check();
  await w2.locator('li[data-option="3"] input').check();
  await w2.locator("button.submit").click();
  await until("the multi widget casts one ballot of two options", async () =>
    sql(`SELECT pg_catalog.string_agg(option_id::text, ',' ORDER BY option_id) FROM poll.ballots
         WHERE poll_id = ${multi} AND voter LIKE 'anon:%'`) === "1,3");

  /* closed: the widget says so within two seconds and takes no more votes */
  sql(`SELECT poll.close_poll(${multi})`);
  await until("closing the poll through SQL shows it closed in the widget", async () =>
    (await w2.locator(".st").textContent()).includes("closed") &&
    (await w2.locator("button.submit").isDisabled()) &&
    (await w2.locator('li[data-option="2"] input').isDisabled()));

  await page.waitForTimeout(400);
  await page.screenshot({ path: path.join(outdir, "widget-390.png"), fullPage: true });
  await axe(page, "the widget's host page");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: path.join(outdir, "widget-1280.png"), fullPage: true });

  /* a reload keeps the voter: the choice is marked again */
  await page.reload();
  await until("after a reload the reader's choice is marked again", async () =>
    (await w1.locator('li[data-option="1"] button').getAttribute("aria-pressed")) === "true", 10000);
  check(errors.length === 0, `no page errors on the host page ${errors.join("; ")}`);
  await page.close();
}

/* the daemon stops under an open dashboard; votes meanwhile; it comes back */
async function restart(context) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/dashboard?poll=${poll}`);
  await page.locator("#conn").filter({ hasText: "live" }).waitFor({ timeout: 10000 });
  await page.locator("#chart canvas").waitFor({ timeout: 10000 });
  const before = votes(poll, 3);
  process.kill(Number(process.env.DAEMON_PID), "SIGTERM");
  await page.locator("#conn").filter({ hasText: "reconnecting" }).waitFor({ timeout: 10000 });
  check((await page.locator("#app").getAttribute("class")) === "stale",
        "with the connection down the dashboard says so and dims its numbers");
  await page.screenshot({ path: path.join(outdir, "dashboard-390-disconnected.png"), fullPage: true });
  sql(`SELECT poll.cast_vote(${poll}, 'while-daemon-down', 3, 'late-segment')`);
  sql(`SELECT poll.cast_vote(${poll}, 'while-daemon-down-' || i, 3, 'late-segment') FROM generate_series(1, 4) i`);
  sql("SELECT poll.fold()");
  const argv = JSON.parse(process.env.DAEMON_ARGV);
  const log = fs.openSync(path.join(outdir, "daemon.restarted.log"), "a");
  restarted = spawn(argv[0], argv.slice(1), { stdio: ["ignore", log, log] });
  await until("after the daemon's restart the counts include the votes cast meanwhile", async () => {
    const shown = await page.locator(`#options [data-option="3"] .votes`).textContent();
    return shown === String(before + 5) || shown;
  }, 15000);
  await until("the chart was reloaded: its last bucket ends at the new count", async () => {
    const cum = await page.evaluate(() => {
      const s = window.pollDashboard && window.pollDashboard.series;
      return s ? s.cum[s.cum.length - 1][2] : null;
    });
    return cum === before + 5 || cum;
  }, 5000);
  await until("the segments were reloaded (a segment first seen while the daemon was down)", async () =>
    (await page.locator("#segments").textContent()).includes("late-segment"), 5000);
  check((await page.locator("#app").getAttribute("class")) === "", "live again: the numbers are no longer dimmed");
  await page.close();
}

async function main() {
  const userDataDir = fs.mkdtempSync(path.join(outdir, "chromium-profile-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 390, height: 844 },
  });
  const host = await hostPage();
  try {
    await dashboard(context);
    await widget(context, host);
    if (process.env.DAEMON_PID && process.env.DAEMON_ARGV) await restart(context);
  } finally {
    if (restarted) restarted.kill("SIGTERM");
    host.close();
    await context.close();
  }
}

main().then(() => process.exit(0), e => { console.error("FAIL: " + (e && e.stack || e)); process.exit(1); });

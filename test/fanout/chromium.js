/*
 * chromium.js — Debian's headless Chromium (/usr/bin/chromium) driven by
 * playwright-core, for the browser tests: a persistent profile (so that
 * localStorage lives across reloads) in a fresh directory under outdir,
 * removed by close().
 *
 *   const { context, close } = await launch(outdir, { isMobile: true });
 */
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

async function launch(outdir, options = {}) {
  const userDataDir = fs.mkdtempSync(path.join(outdir, "chromium-profile-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 390, height: 844 },
    ...options,
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

module.exports = { launch };

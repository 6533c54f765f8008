// Headless Chromium against one device: launching it with the device's certificate pinned,
// contexts that watch the console, named screenshots, and the checks every page gets.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const test = require("node:test");
const { chromium } = require("playwright-core");

const { canManageNetwork, startDevice, REPO } = require("./device");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = path.join(REPO, "target", "e2e-screenshots");

/// A laptop: the size of the documentation's screenshots.
const LAPTOP = { width: 1280, height: 800 };
/// A phone (iPhone 12-14 class).
const PHONE = { width: 390, height: 844 };

function launch(pin) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      // Chromium refuses to start its sandbox as root, and the suite runs as root (the
      // device needs it). The browser only ever opens the test device on loopback.
      "--no-sandbox",
      // Trust exactly this device's certificate (its public key), as the CLI pins it with
      // --cacert; certificate checks stay on for everything else.
      `--ignore-certificate-errors-spki-list=${pin}`,
    ],
  });
}

/// What the browser reported that a page of ours must never cause: a Content-Security-Policy
/// violation or a script error. Refused HTTP requests are not: the UI answers a refusal with
/// a 401/403/422 page on purpose, and Chromium notes each as "Failed to load resource" (a
/// broken asset is caught from the response instead).
function isProblem(msg) {
  const text = msg.text();
  if (/Content.Security.Policy/i.test(text)) return true;
  if (msg.type() !== "error") return false;
  return !/^Failed to load resource: the server responded with a status of \d+/.test(text);
}

class Env {
  constructor(device, browser) {
    this.device = device;
    this.browser = browser;
    this.problems = [];
  }

  /// A new browser context (its own cookies) whose console is watched. English unless
  /// `locale` says otherwise, so the texts the tests look for do not depend on the host.
  async context({ viewport = LAPTOP, locale = "en-US", phone = false } = {}) {
    const ctx = await this.browser.newContext({
      viewport,
      locale,
      deviceScaleFactor: 1, // keeps the screenshots small
      isMobile: phone,
      hasTouch: phone,
    });
    ctx.setDefaultTimeout(15_000);
    ctx.on("console", (msg) => {
      if (process.env.MAMORI_E2E_VERBOSE) {
        process.stderr.write(`[console ${msg.type()}] ${msg.location().url || ""}: ${msg.text()}\n`);
      }
      if (isProblem(msg)) {
        const where = msg.location().url || "";
        this.problems.push(`console ${msg.type()} at ${where}: ${msg.text()}`);
      }
    });
    ctx.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/assets/") && r.status() >= 400) {
        this.problems.push(`asset ${r.url()} answered ${r.status()}`);
      }
    });
    ctx.on("weberror", (e) => this.problems.push(`page error: ${e.error().stack || e.error()}`));
    return ctx;
  }

  /// A page in a new context.
  async page(opts) {
    const ctx = await this.context(opts);
    return ctx.newPage();
  }

  url(p) {
    return this.device.url(p);
  }

  /// Saves a full-page screenshot under target/e2e-screenshots/<name>.png, after checking
  /// that every form control on the page has an accessible name.
  async shot(page, name) {
    await assertLabelled(page);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  }

  /// Fails if the browser reported a CSP violation or a script error during the test.
  assertNoBrowserProblems() {
    assert.deepEqual(this.problems, [], "the browser reported problems");
  }
}

/// Every input, select and textarea a person can reach has a label: a <label for>, a wrapping
/// <label>, aria-label or aria-labelledby.
async function assertLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      // Not for people: hidden fields, and hints for password managers that are not rendered.
      .filter((el) => el.type !== "hidden" && el.getClientRects().length > 0)
      .filter((el) => {
        const byLabel = el.labels && [...el.labels].some((l) => l.textContent.trim() !== "");
        const byAria = (el.getAttribute("aria-label") || "").trim() !== "";
        const byRef = (el.getAttribute("aria-labelledby") || "")
          .split(/\s+/)
          .some((id) => id && document.getElementById(id)?.textContent.trim());
        return !(byLabel || byAria || byRef);
      })
      .map((el) => el.outerHTML.slice(0, 160)),
  );
  assert.deepEqual(unlabelled, [], `controls without a label on ${page.url()}`);
}

/// A test with its own fresh device and browser, both stopped afterwards whatever happens
/// (`options.device` goes to startDevice, the rest to node:test).
/// The device manages the network of a namespace of its own whenever this process may make
/// one (as root), as a gateway does: its navigation then has "Network", and so do the
/// screenshots the documentation shows. Without root it is a device that does not manage its
/// network; `options.device` decides otherwise.
/// The test fails if the browser reported a CSP violation or a script error, even if
/// everything else passed. On failure the daemon's last log lines are attached.
function e2e(name, fn, options = {}) {
  const { device: deviceOptions = { network: canManageNetwork() }, ...testOptions } = options;
  test(name, { timeout: 180_000, ...testOptions }, async () => {
    const device = await startDevice(deviceOptions);
    let browser;
    let env;
    try {
      browser = await launch(device.pin);
      env = new Env(device, browser);
      await fn(env);
      env.assertNoBrowserProblems();
    } catch (e) {
      if (env && env.problems.length && !/browser reported problems/.test(e.message)) {
        e.message += `\n\nthe browser also reported:\n${env.problems.join("\n")}`;
      }
      e.message += `\n\nmamorid's last lines:\n${device.log.slice(-40).join("\n")}`;
      throw e;
    } finally {
      if (browser) await browser.close().catch(() => {});
      await device.stop();
    }
  });
}

module.exports = { e2e, assertLabelled, LAPTOP, PHONE, SHOTS };

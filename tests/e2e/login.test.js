// First start, logging in, and the login form by keyboard alone.
"use strict";

const assert = require("node:assert/strict");

const { assertLabelled, e2e } = require("./lib/browser");
const {
  ADMIN_PASSWORD,
  arrivedAt,
  assertPath,
  heading,
  login,
  submitLogin,
} = require("./lib/flows");

e2e("first setup: the label password leads to /ui/setup, which explains a weak password while it is typed, and a good one opens the dashboard", async (env) => {
  const page = await env.page();
  await page.goto(env.url("/"));
  await arrivedAt(page, "/ui/login");
  assert.equal(await heading(page), "Log in");
  await env.shot(page, "login");

  await login(env, page, "admin", env.device.labelPassword, "/ui/setup");
  assert.equal(await heading(page), "Set your password");
  // Nothing else is reachable until the label password is replaced.
  await page.goto(env.url("/ui/users"));
  await arrivedAt(page, "/ui/setup");

  // The explanation appears while typing, before anything is submitted, and names the rule.
  await page.fill("#current", env.device.labelPassword);
  await page.locator("#new").pressSequentially("password", { delay: 20 });
  const feedback = page.locator("#new-feedback");
  await feedback.filter({ hasText: /This password .+\./ }).waitFor();
  assert.match(await feedback.textContent(), /shorter than \d+ characters/, "names the length rule");
  assert.match((await feedback.getAttribute("class")) || "", /\bbad\b/);
  assert.equal(await page.getAttribute("#new", "aria-invalid"), "true");
  // Long enough but a keyboard pattern: the explanation changes with the text.
  await page.locator("#new").pressSequentially("qwertyuiop", { delay: 20 });
  await feedback.filter({ hasText: /pattern|common/i }).waitFor();
  assertPath(page, "/ui/setup");
  await env.shot(page, "setup");

  // A good password is said to be good while typing, too.
  await page.fill("#new", "");
  await page.locator("#new").pressSequentially(ADMIN_PASSWORD, { delay: 5 });
  await feedback.filter({ hasText: "This password meets the rules." }).waitFor();

  await page.fill("#new", ADMIN_PASSWORD);
  await page.fill("#confirm", ADMIN_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click("#setup-submit")]);
  await arrivedAt(page, "/ui/");
  assert.equal(await heading(page), "Dashboard");
  for (const id of ["model", "serial", "firmware", "uptime", "time"]) {
    const v = (await page.textContent(`#${id}`)).trim();
    assert.notEqual(v, "", `dashboard shows the ${id}`);
  }
  assert.match(await page.textContent("#uptime"), /\d+ d \d+ h \d+ min/);
  assert.match(await page.textContent("#time"), /\d{4}-\d\d-\d\d/);
  const banner = page.locator('[data-notice="mfa_not_enrolled"]');
  assert.equal(await banner.count(), 1, "the 'MFA not enrolled' banner is shown");
  assert.match(await banner.textContent(), /no second factor/);
  assert.equal(await banner.locator("a").getAttribute("href"), "/ui/account/mfa");
  await env.shot(page, "dashboard");

  // The label password works only once.
  const other = await env.page();
  await submitLogin(env, other, "admin", env.device.labelPassword);
  assertPath(other, "/ui/login");
  assert.equal(await other.locator("#form-error").count(), 1);
});

e2e("login: a wrong password shows a clear error next to the form and opens no session", async (env) => {
  const page = await env.page();
  await page.goto(env.url("/ui/login"));
  await submitLogin(env, page, "admin", "not-the-label-password");
  assertPath(page, "/ui/login");
  const error = page.locator("#form-error");
  assert.equal(await error.count(), 1, "an error is shown");
  assert.equal(await error.getAttribute("role"), "alert");
  const text = (await error.textContent()).trim();
  assert.match(text, /username or password/i, `the error says what failed: ${text}`);
  // It sits in the login card, just above the form, and the username is kept for a retry.
  const placed = await page.evaluate(() => {
    const e = document.getElementById("form-error");
    const f = document.getElementById("login-form");
    return e.parentElement === f.parentElement && e.nextElementSibling === f;
  });
  assert.ok(placed, "the error is right above the login form");
  assert.equal(await page.inputValue("#username"), "admin");
  assert.equal(await page.inputValue("#password"), "", "the password is not echoed back");

  // No session: the dashboard still sends the browser to the login page.
  const cookies = await page.context().cookies();
  assert.ok(!cookies.some((c) => c.name === "__Host-mamori-session"), "no session cookie");
  await page.goto(env.url("/ui/"));
  await arrivedAt(page, "/ui/login");
});

/// Presses Tab until the element with `id` has the focus (at most 30 times).
async function tabUntil(page, id) {
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press("Tab");
    if ((await page.evaluate(() => document.activeElement && document.activeElement.id)) === id) return;
  }
  assert.fail(`Tab never reached #${id}`);
}

e2e("keyboard: the login form is completed with Tab and Enter alone, and every control on it has a label", async (env) => {
  const page = await env.page();
  await page.goto(env.url("/ui/login"));
  const focused = () => page.evaluate(() => document.activeElement && document.activeElement.id);
  // The username field has the focus when the page opens.
  assert.equal(await focused(), "username");
  await page.keyboard.type("admin");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "password");
  await page.keyboard.type(env.device.labelPassword);
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "login-submit");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  await arrivedAt(page, "/ui/setup");

  // The setup form, too: Tab from the top of the page reaches its fields in order, and
  // Enter in the last one submits it.
  await tabUntil(page, "current");
  await page.keyboard.type(env.device.labelPassword);
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "new");
  await page.keyboard.type(ADMIN_PASSWORD);
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "confirm");
  await page.keyboard.type(ADMIN_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  await arrivedAt(page, "/ui/");

  // On the dashboard the first Tab stop is the skip link, and it leads to the content.
  await page.keyboard.press("Tab");
  assert.match(await page.evaluate(() => document.activeElement.className), /\bskip\b/);
  await page.keyboard.press("Enter");
  assert.equal(await focused(), "main");

  // Labels: the pages of this test (every named screenshot checks its own page as well).
  await assertLabelled(page);
  for (const p of ["/ui/login", "/ui/security"]) {
    const fresh = await env.page();
    await fresh.goto(env.url(p));
    await assertLabelled(fresh);
  }
});

// The audit log page: an administrator finds a failed login by filtering the log.
"use strict";

const assert = require("node:assert/strict");

const { e2e } = require("./lib/browser");
const { arrivedAt, heading, setUpAdmin, submitLogin } = require("./lib/flows");

e2e("audit log: after a failed login, the administrator opens the audit log from the menu, filters by 'Login failed' and sees the record", async (env) => {
  // Someone fails to log in, from another browser.
  const intruder = await env.page();
  await submitLogin(env, intruder, "mallory", "Wrong-Guess-Hammer-71");
  await arrivedAt(intruder, "/ui/login");

  const admin = await env.page();
  await setUpAdmin(env, admin);
  await Promise.all([admin.waitForNavigation(), admin.click('nav a[href="/ui/audit"]')]);
  await arrivedAt(admin, "/ui/audit");
  assert.equal(await heading(admin), "Audit log");
  assert.equal(await admin.getAttribute('nav a[href="/ui/audit"]', "aria-current"), "page");
  // Unfiltered, the newest records include the administrator's own login.
  assert.ok((await admin.locator('tr[data-event="login_succeeded"]').count()) >= 1);

  await admin.selectOption("#f-event", "login_failed");
  await Promise.all([admin.waitForNavigation(), admin.click("#filter-submit")]);
  await arrivedAt(admin, "/ui/audit");
  assert.equal(new URL(admin.url()).searchParams.get("event"), "login_failed");
  assert.equal(await admin.inputValue("#f-event"), "login_failed", "the filter is kept");

  const rows = admin.locator("#audit-records tbody tr");
  assert.equal(await rows.count(), 1, "only the failed login is listed");
  const row = rows.first();
  assert.equal(await row.getAttribute("data-event"), "login_failed");
  assert.equal((await row.locator("td.event").textContent()).trim(), "Login failed");
  assert.equal((await row.locator("td.actor").textContent()).trim(), "mallory");
  assert.equal((await row.locator("td.outcome").textContent()).trim(), "Failure");
  assert.match(await row.locator("td.details").textContent(), /wrong_password/);
  assert.equal(
    await admin.getAttribute("#export", "href"),
    "/ui/audit/export?event=login_failed",
    "the export takes the same filter",
  );
  assert.match(await admin.textContent("#log-percent"), /^\d+ %$/);
  await env.shot(admin, "audit");
});

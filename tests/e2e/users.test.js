// User administration: creating a user (behind re-authentication), the one-time password,
// the new user's first login, and changing, disabling and deleting them.
"use strict";

const assert = require("node:assert/strict");

const { e2e } = require("./lib/browser");
const {
  arrivedAt,
  assertPath,
  confirmPassword,
  heading,
  login,
  setPassword,
  setUpAdmin,
  submitLogin,
} = require("./lib/flows");

const OPERATOR_PASSWORD = "Copper-Meadow-41-drift";

/// The row of `name` on the users page.
function row(page, name) {
  return page.locator(`tr[data-user="${name}"]`);
}

/// Clicks a button that asks "are you sure?" and accepts.
async function clickConfirmed(page, locator) {
  page.once("dialog", (d) => d.accept());
  await Promise.all([page.waitForNavigation(), locator.click()]);
}

e2e("users: creating an operator asks for the password and then continues by itself, shows the one-time password once; the operator must set a password; the admin changes the role, disables and deletes the user", async (env) => {
  const admin = await env.page();
  await setUpAdmin(env, admin);
  await Promise.all([admin.waitForNavigation(), admin.click('nav a[href="/ui/users"]')]);
  await arrivedAt(admin, "/ui/users");
  assert.equal(await row(admin, "admin").count(), 1);
  await env.shot(admin, "users");

  await admin.fill("#new-username", "olivia");
  await admin.selectOption("#new-role", "operator");
  await Promise.all([admin.waitForNavigation(), admin.click("#create-user")]);
  // Interrupted: the prompt keeps what the form held.
  assert.equal(await heading(admin), "Confirm it's you");
  assert.equal(await admin.inputValue('#reauth-form input[name="action"]'), "/ui/users");
  assert.equal(await admin.inputValue('#reauth-form input[name="keep.username"]'), "olivia");
  await confirmPassword(admin);
  // The "continue" page sends the kept form by itself.
  await admin.locator("#one-time-password").waitFor();
  assertPath(admin, "/ui/users");
  assert.equal((await admin.textContent("#secret-user")).trim(), "olivia");
  const oneTime = (await admin.textContent("#one-time-password")).trim();
  assert.ok(oneTime.length >= 12, `a one-time password is shown: ${oneTime}`);
  await env.shot(admin, "user-created");

  // Shown once: the list does not show it, and neither does going back to it.
  await Promise.all([admin.waitForNavigation(), admin.click("#secret-done")]);
  await arrivedAt(admin, "/ui/users");
  assert.ok(!(await admin.content()).includes(oneTime));
  assert.equal(await row(admin, "olivia").locator("select").inputValue(), "operator");
  assert.match(await row(admin, "olivia").locator(".user-must-change").textContent(), /Yes/);

  // The operator, in a browser of their own: the one-time password leads to setup only.
  const op = await env.page();
  await login(env, op, "olivia", oneTime, "/ui/setup");
  await op.goto(env.url("/ui/"));
  await arrivedAt(op, "/ui/setup");
  await setPassword(op, oneTime, OPERATOR_PASSWORD);
  assert.equal(await heading(op), "Dashboard");
  assert.equal((await op.textContent("#current-user")).trim(), "olivia");
  assert.equal(await op.locator('nav a[href="/ui/users"]').count(), 0, "an operator has no users page");
  await op.goto(env.url("/ui/users"));
  assert.match(await op.textContent("#error-message"), /.+/, "and is refused it");

  // Role change (the confirmation from creating the user still holds: no prompt).
  await admin.reload();
  await admin.selectOption('#u-role-olivia', "viewer");
  await Promise.all([admin.waitForNavigation(), row(admin, "olivia").locator(".save-user").click()]);
  await arrivedAt(admin, "/ui/users");
  assert.match(await admin.textContent("#notice"), /changed/);
  assert.equal(await row(admin, "olivia").locator("select").inputValue(), "viewer");
  // Changing a user ends their sessions.
  await op.goto(env.url("/ui/"));
  await arrivedAt(op, "/ui/login");

  // Disable: the row says so and the user can no longer log in.
  await admin.check("#u-disabled-olivia");
  await Promise.all([admin.waitForNavigation(), row(admin, "olivia").locator(".save-user").click()]);
  await arrivedAt(admin, "/ui/users");
  assert.match(await row(admin, "olivia").locator(".user-state").textContent(), /Disabled/);
  await submitLogin(env, op, "olivia", OPERATOR_PASSWORD);
  assertPath(op, "/ui/login");
  assert.equal(await op.locator("#form-error").count(), 1);

  // Delete, after the browser's "are you sure?".
  await clickConfirmed(admin, row(admin, "olivia").locator(".delete-user"));
  await arrivedAt(admin, "/ui/users");
  assert.match(await admin.textContent("#notice"), /deleted/);
  assert.equal(await row(admin, "olivia").count(), 0);
  assert.equal(await row(admin, "admin").count(), 1);
});

// Steps many tests share, done the way a person does them: through the pages' own forms.
"use strict";

const assert = require("node:assert/strict");

const { ADMIN_PASSWORD } = require("./device");

/// The path of the page the browser shows.
function pathOf(page) {
  return new URL(page.url()).pathname;
}

/// Waits until the browser shows `path` (redirects followed), then for the page to be ready.
async function arrivedAt(page, path) {
  await page.waitForURL((u) => u.pathname === path);
  await page.waitForLoadState("load");
}

/// Submits the login form. Does not wait for where it leads; callers say where they expect.
async function submitLogin(env, page, username, password) {
  if (pathOf(page) !== "/ui/login") await page.goto(env.url("/ui/login"));
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("#login-submit")]);
}

/// Logs in with a password and expects to land on `expect` (a path).
async function login(env, page, username, password, expect = "/ui/") {
  await submitLogin(env, page, username, password);
  await arrivedAt(page, expect);
}

/// On /ui/setup: replaces the current (label or one-time) password.
async function setPassword(page, current, fresh) {
  await page.fill("#current", current);
  await page.fill("#new", fresh);
  await page.fill("#confirm", fresh);
  await Promise.all([page.waitForNavigation(), page.click("#setup-submit")]);
  await arrivedAt(page, "/ui/");
}

/// First start of a device: admin logs in with the label password and sets
/// ADMIN_PASSWORD. Ends on the dashboard.
async function setUpAdmin(env, page) {
  await login(env, page, "admin", env.device.labelPassword, "/ui/setup");
  await setPassword(page, env.device.labelPassword, ADMIN_PASSWORD);
}

async function logout(page) {
  await Promise.all([page.waitForNavigation(), page.click("#logout")]);
  await arrivedAt(page, "/ui/login");
}

/// On the re-authentication prompt: confirms with the password (and a code if given).
async function confirmPassword(page, password = ADMIN_PASSWORD, code) {
  await page.fill("#reauth-password", password);
  if (code) await page.fill("#reauth-code", code);
  await Promise.all([page.waitForNavigation(), page.click("#reauth-submit")]);
}

/// The session cookie of a context.
async function sessionCookie(context) {
  const all = await context.cookies();
  return all.find((c) => c.name === "__Host-mamori-session");
}

/// The main heading's text.
async function heading(page) {
  return (await page.textContent("h1")).trim();
}

function assertPath(page, path) {
  assert.equal(pathOf(page), path, `expected to be on ${path}, got ${page.url()}`);
}

module.exports = {
  ADMIN_PASSWORD,
  arrivedAt,
  assertPath,
  confirmPassword,
  heading,
  login,
  logout,
  pathOf,
  sessionCookie,
  setPassword,
  setUpAdmin,
  submitLogin,
};

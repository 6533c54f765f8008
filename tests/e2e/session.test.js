// Moving around as an administrator, and logging out for good.
"use strict";

const assert = require("node:assert/strict");

const { e2e } = require("./lib/browser");
const { arrivedAt, heading, logout, sessionCookie, setUpAdmin } = require("./lib/flows");

e2e("navigation: an administrator reaches the dashboard, users, management access and account pages from the menu", async (env) => {
  const page = await env.page();
  await setUpAdmin(env, page);
  for (const [href, title, shot] of [
    ["/ui/access", "Management access", "access"],
    ["/ui/account", "My account", "account"],
    ["/ui/users", "Users", null],
    ["/ui/", "Dashboard", null],
  ]) {
    await Promise.all([page.waitForNavigation(), page.click(`nav a[href="${href}"]`)]);
    await arrivedAt(page, href);
    assert.equal(await heading(page), title);
    assert.equal(await page.getAttribute(`nav a[href="${href}"]`, "aria-current"), "page");
    if (shot) await env.shot(page, shot);
  }
});

/// A page in a new browser context that holds a copy of `cookie`.
async function withCookie(env, cookie) {
  const ctx = await env.context();
  await ctx.addCookies([
    { name: cookie.name, value: cookie.value, url: env.url("/"), secure: true, httpOnly: true, sameSite: "Strict" },
  ]);
  return ctx.newPage();
}

e2e("logout: afterwards the old session cookie no longer opens /ui/, not even replayed in a new browser", async (env) => {
  const page = await env.page();
  await setUpAdmin(env, page);
  const old = await sessionCookie(page.context());
  assert.ok(old, "logged in: a session cookie is set");
  assert.ok(old.httpOnly && old.secure && old.sameSite === "Strict", "the cookie is HttpOnly, Secure, SameSite=Strict");

  // The replay works while the session lives (so the check below is not vacuous).
  const before = await withCookie(env, old);
  await before.goto(env.url("/ui/"));
  await arrivedAt(before, "/ui/");
  assert.equal(await heading(before), "Dashboard");

  await logout(page);
  assert.equal(await sessionCookie(page.context()), undefined, "the browser dropped the cookie");
  await page.goto(env.url("/ui/"));
  await arrivedAt(page, "/ui/login");

  // Someone who kept a copy of the cookie gets nowhere with it.
  const replay = await withCookie(env, old);
  await replay.goto(env.url("/ui/"));
  await arrivedAt(replay, "/ui/login");
  assert.equal(await heading(replay), "Log in");
  await replay.goto(env.url("/ui/account"));
  await arrivedAt(replay, "/ui/login");
});

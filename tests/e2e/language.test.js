// Japanese and English: the switch on every page, the remembered choice, the browser's
// preference, and the security information page readable before login in both.
"use strict";

const assert = require("node:assert/strict");

const { e2e } = require("./lib/browser");
const { ADMIN_PASSWORD, arrivedAt, heading, login, setPassword } = require("./lib/flows");

/// Clicks the language switch and waits for the page to come back in the other language.
async function switchLanguage(page, to) {
  await Promise.all([page.waitForNavigation(), page.click("#switch-language")]);
  await page.waitForFunction((l) => document.documentElement.lang === l, to);
}

e2e("language: the security information is readable in English and Japanese without login; switching to Japanese on the login page holds across pages until switched back", async (env) => {
  const page = await env.page();

  // Before any login, in English (the browser's preference here).
  await page.goto(env.url("/ui/security"));
  await arrivedAt(page, "/ui/security");
  assert.equal(await heading(page), "Security information");
  const enText = await page.textContent("main");
  for (const topic of ["First setup", "Password rules", "lockout", "Second factor", "Sessions", "Management access"]) {
    assert.ok(enText.includes(topic), `the security information covers ${topic}`);
  }
  assert.equal(await page.locator("#current-user").count(), 0, "nobody is logged in");
  await env.shot(page, "security");

  await page.goto(env.url("/ui/login"));
  assert.equal(await page.getAttribute("html", "lang"), "en");
  assert.equal(await page.textContent("#switch-language"), "日本語");
  await switchLanguage(page, "ja");
  await arrivedAt(page, "/ui/login");
  const title = await page.title();
  assert.ok(title.includes("機器管理") && title.includes("ログイン"), `Japanese title: ${title}`);
  assert.equal(await heading(page), "ログイン");
  assert.equal((await page.textContent('label[for="username"]')).trim(), "ユーザー名");
  assert.equal((await page.textContent('label[for="password"]')).trim(), "パスワード");
  assert.equal(await page.textContent("#switch-language"), "English");
  await env.shot(page, "login-ja");

  // The choice is remembered: the security page is now Japanese too.
  await page.click("footer a[href='/ui/security']");
  await arrivedAt(page, "/ui/security");
  assert.equal(await page.getAttribute("html", "lang"), "ja");
  assert.equal(await heading(page), "セキュリティ情報");
  for (const topic of ["初期設定", "パスワードの規則", "二要素認証", "セッション", "管理アクセス"]) {
    assert.ok((await page.textContent("main")).includes(topic), `…and in Japanese: ${topic}`);
  }
  await env.shot(page, "security-ja");

  // Through login, setup (with its live explanation) and the dashboard.
  await login(env, page, "admin", env.device.labelPassword, "/ui/setup");
  assert.equal(await heading(page), "パスワードの設定");
  await page.fill("#current", env.device.labelPassword);
  await page.locator("#new").pressSequentially("password", { delay: 20 });
  await page.locator("#new-feedback").filter({ hasText: "このパスワードは使えません" }).waitFor();
  await page.fill("#new", "");
  await setPassword(page, env.device.labelPassword, ADMIN_PASSWORD);
  assert.equal(await heading(page), "ダッシュボード");
  assert.equal((await page.textContent("#device-h")).trim(), "機器");
  assert.match(await page.textContent("#uptime"), /\d+ 日 \d+ 時間 \d+ 分/);
  assert.match(await page.textContent('[data-notice="mfa_not_enrolled"]'), /二要素認証が設定されていません/);
  assert.equal((await page.textContent("#logout")).trim(), "ログアウト");
  await env.shot(page, "dashboard-ja");

  // And back: the switch returns to the same page, in English.
  await switchLanguage(page, "en");
  await arrivedAt(page, "/ui/");
  assert.equal(await heading(page), "Dashboard");
  await page.goto(env.url("/ui/security"));
  assert.equal(await heading(page), "Security information");
});

e2e("language: a browser that prefers Japanese gets Japanese pages without choosing", async (env) => {
  const page = await env.page({ locale: "ja-JP" });
  await page.goto(env.url("/ui/login"));
  assert.equal(await page.getAttribute("html", "lang"), "ja");
  assert.equal(await heading(page), "ログイン");
  await page.goto(env.url("/ui/security"));
  assert.equal(await heading(page), "セキュリティ情報");
});

// The pages on a phone: everything fits the width, nothing scrolls sideways.
"use strict";

const assert = require("node:assert/strict");

const { e2e, PHONE } = require("./lib/browser");
const { arrivedAt, heading, setUpAdmin } = require("./lib/flows");

/// Fails if the page is wider than the screen (the whole page would scroll sideways).
async function assertNoHorizontalScroll(page) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  assert.ok(
    scrollWidth <= innerWidth,
    `${page.url()} is ${scrollWidth} px wide on a ${innerWidth} px screen`,
  );
}

e2e("phone (390×844): the login page and the dashboard fit the screen without horizontal scrolling", async (env) => {
  const page = await env.page({ viewport: PHONE, phone: true });
  await page.goto(env.url("/ui/login"));
  assert.equal(await page.evaluate(() => window.innerWidth), PHONE.width);
  await assertNoHorizontalScroll(page);
  // The form uses the width: the fields are not squeezed.
  assert.ok((await page.locator("#username").boundingBox()).width >= 250);
  await env.shot(page, "login-phone");

  await setUpAdmin(env, page);
  assert.equal(await heading(page), "Dashboard");
  await assertNoHorizontalScroll(page);
  await env.shot(page, "dashboard-phone");

  // The other pages of the menu fit too (tables scroll inside their own box).
  for (const p of ["/ui/users", "/ui/access", "/ui/audit", "/ui/account", "/ui/account/mfa", "/ui/security"]) {
    await page.goto(env.url(p));
    await arrivedAt(page, p);
    await assertNoHorizontalScroll(page);
  }
});

// Second factors: an authenticator app (TOTP) and a security key (WebAuthn, through
// Chromium's virtual authenticator).
"use strict";

const assert = require("node:assert/strict");

const { e2e } = require("./lib/browser");
const { Authenticator, parseOtpauth } = require("./lib/totp");
const {
  ADMIN_PASSWORD,
  arrivedAt,
  assertPath,
  confirmPassword,
  heading,
  login,
  logout,
  setUpAdmin,
} = require("./lib/flows");

e2e("TOTP: enrolling shows the key as text and as a QR code, a correct code confirms it and shows recovery codes; the next login asks for a code, refuses a wrong one and accepts the right one", async (env) => {
  const page = await env.page();
  await setUpAdmin(env, page);

  // The dashboard's banner leads to the second-factor page.
  await Promise.all([page.waitForNavigation(), page.click('[data-notice="mfa_not_enrolled"] a')]);
  await arrivedAt(page, "/ui/account/mfa");
  assert.match(await page.textContent("#totp-status"), /No authenticator app/);
  await env.shot(page, "mfa");

  // Enrolling is a security change: the device asks for the password first, then carries on.
  await Promise.all([page.waitForNavigation(), page.click("#totp-enroll")]);
  assert.equal(await page.locator("#reauth-form").count(), 1, "re-authentication is asked for");
  await confirmPassword(page);
  await page.locator("#totp-secret").waitFor();
  assert.equal(await heading(page), "Set up an authenticator app");

  const secretText = (await page.textContent("#totp-secret")).trim();
  const uri = await page.getAttribute("#totp-uri", "href");
  const params = parseOtpauth(uri);
  assert.equal(secretText.replace(/\s/g, ""), params.secret, "the key as text is the key in the link");
  assert.equal(params.issuer, "mamori");
  // The QR code is drawn in the page (no image request) and is labelled for screen readers.
  const qr = page.locator("svg#totp-qr");
  assert.equal(await qr.count(), 1, "a QR code is shown");
  assert.equal(await qr.getAttribute("role"), "img");
  assert.ok((await qr.getAttribute("aria-label")).length > 0);
  assert.ok((await qr.boundingBox()).width >= 150, "the QR code is large enough to scan");
  await env.shot(page, "totp-enroll");

  // Codes follow what the link says (the device uses SHA-256; an app that assumed SHA-1
  // would fail here, which is why the page says so).
  const app = new Authenticator(params);
  await page.fill("#totp-code", await app.nextCode());
  await Promise.all([page.waitForNavigation(), page.click("#totp-verify")]);
  const codes = (await page.locator("#recovery-codes li").allTextContents()).map((c) => c.trim());
  assert.equal(codes.length, 10, "ten recovery codes are shown");
  assert.equal(new Set(codes).size, 10, "the codes differ");
  await env.shot(page, "recovery-codes");
  await Promise.all([page.waitForNavigation(), page.click("#codes-done")]);
  await arrivedAt(page, "/ui/account/mfa");
  assert.match(await page.textContent("#totp-status"), /is set up/);
  assert.equal((await page.textContent("#codes-left")).trim(), "10");
  // The codes are not shown again.
  for (const c of codes) assert.ok(!(await page.content()).includes(c));

  await logout(page);
  await login(env, page, "admin", ADMIN_PASSWORD, "/ui/login/verify");
  assert.equal(await heading(page), "Second factor");
  assert.equal(await page.locator("#use-key").count(), 0, "no security key is offered");
  await env.shot(page, "verify-totp");

  await page.fill("#code", app.wrongCode());
  await Promise.all([page.waitForNavigation(), page.click("#verify-submit")]);
  assertPath(page, "/ui/login/verify");
  assert.equal(await page.locator("#form-error").count(), 1, "a wrong code is refused with a message");
  assert.ok(!(await page.context().cookies()).some((c) => c.name === "__Host-mamori-session"));

  await page.fill("#code", await app.nextCode());
  await Promise.all([page.waitForNavigation(), page.click("#verify-submit")]);
  await arrivedAt(page, "/ui/");
  assert.equal(await heading(page), "Dashboard");
  assert.equal(await page.locator('[data-notice="mfa_not_enrolled"]').count(), 0);
});

/// Chromium's virtual authenticator: a USB security key with user verification.
async function addVirtualKey(cdp) {
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "usb",
      hasResidentKey: false,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  return authenticatorId;
}

/// Clicks a button that starts a WebAuthn ceremony and waits for the form to be sent; fails
/// with the page's message if the ceremony fails instead.
async function ceremony(page, button) {
  const nav = page.waitForNavigation({ timeout: 30_000 });
  const error = page.locator("[data-webauthn-error]:visible");
  await page.click(button);
  const failed = error.waitFor({ timeout: 30_000 }).then(async () => error.textContent());
  const outcome = await Promise.race([nav.then(() => null), failed]);
  if (outcome !== null) assert.fail(`the WebAuthn ceremony failed: ${outcome}`);
  nav.catch(() => {});
  failed.catch(() => {});
}

e2e("WebAuthn: a security key is registered after a fresh re-authentication, then logs in; without the key the login fails with a message", async (env) => {
  const page = await env.page();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const key = await addVirtualKey(cdp);

  await setUpAdmin(env, page);
  await page.goto(env.url("/ui/account/mfa"));
  assert.match(await page.textContent("#no-keys"), /No security keys/);
  // The registration form appears only after a fresh re-authentication.
  assert.equal(await page.locator("#key-form").count(), 0);
  await Promise.all([page.waitForNavigation(), page.click("#key-add")]);
  await arrivedAt(page, "/ui/reauth");
  await env.shot(page, "reauth");
  await confirmPassword(page);
  await arrivedAt(page, "/ui/account/mfa");
  assert.equal(await page.locator("#key-form").count(), 1, "the registration form is there now");

  await page.fill("#key-name", "Desk key");
  await ceremony(page, "#key-register");
  // The first second factor comes with recovery codes.
  const recovery = (await page.locator("#recovery-codes li").allTextContents()).map((c) => c.trim());
  assert.equal(recovery.length, 10);
  await Promise.all([page.waitForNavigation(), page.click("#codes-done")]);
  await arrivedAt(page, "/ui/account/mfa");
  assert.deepEqual(
    (await page.locator("td.key-name").allTextContents()).map((s) => s.trim()),
    ["Desk key"],
  );
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId: key });
  assert.equal(credentials.length, 1, "the virtual key holds one credential");

  await logout(page);
  await login(env, page, "admin", ADMIN_PASSWORD, "/ui/login/verify");
  assert.equal(await page.locator("#use-key").count(), 1, "the security key is offered");
  // The code field stays: a recovery code replaces a lost key.
  assert.equal(await page.locator("#code").count(), 1, "a recovery code can be used instead");
  await env.shot(page, "verify-key");
  await ceremony(page, "#use-key");
  await arrivedAt(page, "/ui/");
  assert.equal(await heading(page), "Dashboard");
  await page.goto(env.url("/ui/account/mfa"));
  assert.notEqual((await page.textContent("td.key-name + td + td")).trim(), "never", "last use is recorded");

  // Without the key: the registered key is unplugged and another one, never registered
  // here, is present. The browser refuses at once and the page says what to do. (With no
  // key at all the browser would wait out the ceremony's 5-minute timeout; a person would
  // cancel its dialog, which headless Chromium does not have.)
  await logout(page);
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: key });
  await addVirtualKey(cdp);
  await login(env, page, "admin", ADMIN_PASSWORD, "/ui/login/verify");
  await page.click("#use-key");
  const failed = page.locator("[data-webauthn-error]");
  await failed.waitFor({ state: "visible" });
  assert.match(await failed.textContent(), /security key did not answer/);
  assertPath(page, "/ui/login/verify");
  assert.ok(!(await page.context().cookies()).some((c) => c.name === "__Host-mamori-session"));
  // The way out the message names still works: a recovery code.
  await page.fill("#code", recovery[0]);
  await Promise.all([page.waitForNavigation(), page.click("#verify-submit")]);
  await arrivedAt(page, "/ui/");
});

// The network configuration pages: the administrator opens Network, adds a port forward in the
// editor, checks it, commits it (the password prompt, then the commit continues by itself),
// sees the change waiting for confirmation with its countdown, confirms it, and finds it in
// the history and the diff; then the same pages in Japanese, and a refused check whose
// problems are named in Japanese. The screenshots of these pages, in both languages, are the
// documentation's (docs/en/ui.md, docs/ja/ui.md). The device manages the network of a namespace of its own (never
// the host's interfaces), so this test needs root; without it, it is skipped and says why.
"use strict";

const assert = require("node:assert/strict");

const { e2e } = require("./lib/browser");
const { canManageNetwork } = require("./lib/device");
const { arrivedAt, confirmPassword, heading, setUpAdmin } = require("./lib/flows");

/// Clicks the language switch and waits for the page to come back in the other language.
async function switchLanguage(page, to) {
  await Promise.all([page.waitForNavigation(), page.click("#switch-language")]);
  await page.waitForFunction((l) => document.documentElement.lang === l, to);
  await page.waitForLoadState("load");
}

const skip = canManageNetwork()
  ? false
  : "a device that manages its network runs in a network namespace of its own, which needs root";

e2e(
  "network: edit, check, commit with the password, the pending banner and countdown, confirm, then history and diff",
  async (env) => {
    const page = await env.page();
    await setUpAdmin(env, page);
    await Promise.all([page.waitForNavigation(), page.click('nav a[href="/ui/config"]')]);
    await arrivedAt(page, "/ui/config");
    assert.equal(await heading(page), "Network configuration");
    assert.equal(await page.getAttribute('nav a[href="/ui/config"]', "aria-current"), "page");
    assert.equal(await page.locator('#interfaces tr[data-interface="lan0"]').count(), 1);
    assert.equal(await page.locator('#interfaces tr[data-interface="mgmt0"]').count(), 1);
    assert.equal((await page.textContent("#running-id")).trim(), "1");
    await env.shot(page, "config");

    // The editor: add a port forward to the configuration in the textarea.
    await Promise.all([page.waitForNavigation(), page.click("#tab-edit")]);
    await arrivedAt(page, "/ui/config/edit");
    const cfg = JSON.parse(await page.inputValue("#config"));
    cfg.nat.port_forwards.push({
      from_zone: "lan",
      proto: "tcp",
      external_ports: 8080,
      internal_address: "192.168.77.10",
      comment: "camera",
    });
    await page.fill("#config", JSON.stringify(cfg, null, 2));
    await page.fill("#comment", "forward 8080 to the camera");
    assert.equal(await page.inputValue("#confirm-minutes"), "3", "the UI's default window");

    // Check: the difference, nothing changed.
    await Promise.all([page.waitForNavigation(), page.click("#check-submit")]);
    await arrivedAt(page, "/ui/config/check");
    assert.equal(await page.getAttribute("#result", "data-result"), "check-ok");
    assert.match(await page.textContent("#result-diff .add >> nth=0"), /^\+/);
    assert.match(await page.textContent("#result-diff"), /"comment": "camera"/);
    assert.equal(await page.inputValue("#comment"), "forward 8080 to the camera", "the form is kept");
    await env.shot(page, "config-check");

    // Commit: the password prompt, then the commit continues by itself.
    await Promise.all([page.waitForNavigation(), page.click("#commit-submit")]);
    assert.equal(await heading(page), "Confirm it's you");
    assert.equal(await page.inputValue('#reauth-form input[name="action"]'), "/ui/config/commit");
    await confirmPassword(page);
    await page.waitForURL((u) => u.pathname === "/ui/config" && u.search === "?done=committed");
    await page.waitForLoadState("load");

    // Waiting for confirmation: who, the deadline, the countdown, the button.
    await page.locator("#pending").waitFor();
    assert.match(await page.textContent("#pending-text"), /Revision 2, committed by admin/);
    assert.match(await page.textContent("#pending-deadline"), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    const first = (await page.textContent("#pending-remaining")).trim();
    assert.match(first, /^[0-3]:\d\d$/);
    await page.waitForFunction(
      (was) => document.getElementById("pending-remaining").textContent.trim() !== was,
      first,
    );
    assert.equal((await page.textContent("#running-id")).trim(), "2");
    assert.match(await page.textContent("#forwards"), /192\.168\.77\.10/);
    await env.shot(page, "config-pending");

    // The same banner in Japanese, then back.
    await switchLanguage(page, "ja");
    await page.locator("#pending").waitFor();
    assert.match(await page.textContent("#pending-text"), /admin が確定したリビジョン 2 を試験的に適用しています/);
    assert.equal((await page.textContent("#confirm-submit")).trim(), "承認してこの変更を維持する");
    await env.shot(page, "config-pending-ja");
    await switchLanguage(page, "en");

    await Promise.all([page.waitForNavigation(), page.click("#confirm-submit")]);
    await arrivedAt(page, "/ui/config");
    assert.match(await page.textContent("#notice"), /confirmed/);
    assert.equal(await page.locator("#pending").count(), 0);

    // History: revision 2 with its comment; the default pair is the newest change.
    await Promise.all([page.waitForNavigation(), page.click("#tab-history")]);
    await arrivedAt(page, "/ui/config/history");
    const row = page.locator('#history tr[data-revision="2"]');
    assert.match(await row.locator("td.comment").textContent(), /forward 8080 to the camera/);
    assert.equal(await row.locator("td.actor").textContent(), "admin");
    assert.equal(await page.isChecked("#to-2"), true);
    assert.equal(await page.isChecked("#from-1"), true);
    await env.shot(page, "config-history");

    await Promise.all([page.waitForNavigation(), page.click("#compare-submit")]);
    await arrivedAt(page, "/ui/config/diff");
    const url = new URL(page.url());
    assert.equal(url.searchParams.get("from"), "1");
    assert.equal(url.searchParams.get("to"), "2");
    const added = await page.locator("#diff .add").allTextContents();
    assert.ok(added.some((l) => l.includes('"internal_address": "192.168.77.10"')), added.join("\n"));
    await env.shot(page, "config-diff");

    // The same pages in Japanese: the diff, the history, the running configuration.
    await switchLanguage(page, "ja");
    assert.equal(await heading(page), "ネットワーク設定");
    assert.equal((await page.textContent('nav a[href="/ui/config"]')).trim(), "ネットワーク");
    await env.shot(page, "config-diff-ja");
    await Promise.all([page.waitForNavigation(), page.click("#tab-history")]);
    await arrivedAt(page, "/ui/config/history");
    assert.equal(await page.isChecked("#to-2"), true);
    await env.shot(page, "config-history-ja");
    await Promise.all([page.waitForNavigation(), page.click("#tab-running")]);
    await arrivedAt(page, "/ui/config");
    assert.equal((await page.textContent("#running-id")).trim(), "2");
    await env.shot(page, "config-ja");

    // The editor in Japanese, with a candidate the checks refuse: every problem is named in
    // Japanese with its JSON pointer (the API's English is not on the page).
    await Promise.all([page.waitForNavigation(), page.click("#tab-edit")]);
    await arrivedAt(page, "/ui/config/edit");
    const bad = JSON.parse(await page.inputValue("#config"));
    bad.nat.port_forwards.push({
      from_zone: "lan",
      proto: "tcp",
      external_ports: 8443,
      internal_address: "10.99.0.5",
      comment: "nas",
    });
    bad.firewall.rules.push({ from: "dmz", to: "self", proto: "tcp", ports: [22], action: "accept" });
    await page.fill("#config", JSON.stringify(bad, null, 2));
    await Promise.all([page.waitForNavigation(), page.click("#check-submit")]);
    await arrivedAt(page, "/ui/config/check");
    assert.equal(await page.getAttribute("#result", "data-result"), "check-refused");
    assert.match(await page.textContent("#result-message"), /^この設定は拒否されます/);
    const problems = await page.locator("#problems li").allTextContents();
    assert.equal(problems.length, 2, problems.join("\n"));
    // In the order of the configuration's checks: the rules before NAT.
    assert.match(problems[0], /^\/firewall\/rules\/\d+\/from\s+ゾーン dmz は定義されていません。$/);
    assert.match(problems[1], /^\/nat\/port_forwards\/1\/internal_address\s+ポートフォワーディングの転送先アドレスが、どの LAN のサブネットにも含まれていません。$/);
    assert.doesNotMatch(await page.textContent("#result"), /port forward to nowhere|no zone dmz/);
    await env.shot(page, "config-check-ja");
  },
  { device: { network: true }, skip },
);

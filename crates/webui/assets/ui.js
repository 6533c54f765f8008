// Management UI: the only script. Pages work without it except for security keys
// (WebAuthn needs the browser API), the live password explanation and the running countdown
// of a confirm window. Loaded from our own origin; the Content-Security-Policy forbids inline
// script. Text is only ever set with textContent, never as HTML.
"use strict";

(function () {
  function b64uToBuf(s) {
    const pad = "=".repeat((4 - (s.length % 4)) % 4);
    const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64u(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function post(url, form, extra) {
    const body = new URLSearchParams();
    body.set("csrf", form.querySelector("input[name=csrf]").value);
    for (const [k, v] of Object.entries(extra || {})) body.set(k, v);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
    });
  }

  // --- Security keys (WebAuthn) -------------------------------------------------------
  async function webauthn(form) {
    const mode = form.dataset.webauthn; // "get" (login, re-auth) or "create" (register)
    const error = form.querySelector("[data-webauthn-error]");
    if (error) error.hidden = true;
    const extra = {};
    const nameInput = form.querySelector("input[name=name]");
    if (nameInput) {
      if (!nameInput.reportValidity()) return;
      extra.name = nameInput.value;
    }
    const pw = form.querySelector("input[type=password]");
    if (pw && !pw.reportValidity()) return;
    try {
      const resp = await post(form.dataset.challenge, form, extra);
      if (!resp.ok) throw new Error("challenge refused");
      const options = await resp.json();
      const pk = options.publicKey;
      pk.challenge = b64uToBuf(pk.challenge);
      let field, value;
      if (mode === "create") {
        pk.user.id = b64uToBuf(pk.user.id);
        (pk.excludeCredentials || []).forEach((c) => (c.id = b64uToBuf(c.id)));
        const cred = await navigator.credentials.create({ publicKey: pk });
        field = "credential";
        value = {
          id: cred.id,
          rawId: bufToB64u(cred.rawId),
          type: cred.type,
          response: {
            attestationObject: bufToB64u(cred.response.attestationObject),
            clientDataJSON: bufToB64u(cred.response.clientDataJSON),
            transports: cred.response.getTransports ? cred.response.getTransports() : [],
          },
          extensions: cred.getClientExtensionResults(),
        };
      } else {
        (pk.allowCredentials || []).forEach((c) => (c.id = b64uToBuf(c.id)));
        const cred = await navigator.credentials.get({ publicKey: pk });
        field = "assertion";
        value = {
          id: cred.id,
          rawId: bufToB64u(cred.rawId),
          type: cred.type,
          response: {
            authenticatorData: bufToB64u(cred.response.authenticatorData),
            clientDataJSON: bufToB64u(cred.response.clientDataJSON),
            signature: bufToB64u(cred.response.signature),
            userHandle: cred.response.userHandle ? bufToB64u(cred.response.userHandle) : null,
          },
          extensions: cred.getClientExtensionResults(),
        };
      }
      form.querySelector("input[name=" + field + "]").value = JSON.stringify(value);
      form.submit();
    } catch (e) {
      if (error) {
        error.textContent = form.dataset.failed || "Security key failed.";
        error.hidden = false;
      }
    }
  }

  // --- Live password explanation ------------------------------------------------------
  function passwordCheck(input) {
    const out = document.getElementById(input.id + "-feedback");
    let timer = null;
    let seq = 0;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      if (!input.value) {
        out.textContent = "";
        out.className = "feedback";
        return;
      }
      timer = setTimeout(async () => {
        const mine = ++seq;
        out.textContent = input.dataset.checking || "";
        out.className = "feedback";
        try {
          const resp = await post(input.dataset.check, input.form, { password: input.value });
          const r = await resp.json();
          if (mine !== seq) return;
          out.textContent = r.message;
          out.className = "feedback " + (r.ok ? "good" : "bad");
          input.setAttribute("aria-invalid", r.ok ? "false" : "true");
        } catch (e) {
          out.textContent = "";
        }
      }, 350);
    });
  }

  function sameAs(input) {
    const other = document.getElementById(input.dataset.sameAs);
    const out = document.getElementById(input.id + "-feedback");
    const check = () => {
      const bad = input.value && input.value !== other.value;
      input.setCustomValidity(bad ? input.dataset.mismatch : "");
      if (out) {
        out.textContent = bad ? input.dataset.mismatch : "";
        out.className = "feedback" + (bad ? " bad" : "");
      }
    };
    input.addEventListener("input", check);
    other.addEventListener("input", check);
  }

  // --- Confirm window countdown ---------------------------------------------------------
  // Counts down the seconds the page was rendered with. It only shows time: confirming is
  // the author's own click on the Confirm button (see crates/webui/src/pages/config).
  function countdown(el) {
    const end = Date.now() + Number(el.dataset.countdown) * 1000;
    const pad = (n) => String(n).padStart(2, "0");
    const tick = () => {
      const left = Math.max(0, Math.round((end - Date.now()) / 1000));
      if (left === 0) {
        el.textContent = el.dataset.expired || "0:00";
        el.classList.add("over");
        return;
      }
      const h = Math.floor(left / 3600);
      const m = Math.floor((left % 3600) / 60);
      const s = left % 60;
      el.textContent = h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
      setTimeout(tick, 500);
    };
    tick();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-webauthn] [data-webauthn-start]").forEach((b) => {
      if (!window.PublicKeyCredential) {
        b.disabled = true;
        return;
      }
      b.addEventListener("click", () => webauthn(b.form));
    });
    document.querySelectorAll("input[data-check]").forEach(passwordCheck);
    document.querySelectorAll("input[data-same-as]").forEach(sameAs);
    document.querySelectorAll("[data-confirm]").forEach((el) => {
      el.addEventListener("click", (ev) => {
        if (!window.confirm(el.dataset.confirm)) ev.preventDefault();
      });
    });
    document.querySelectorAll("[data-countdown]").forEach(countdown);
    document.querySelectorAll("form[data-autosubmit]").forEach((f) => f.submit());
  });
})();

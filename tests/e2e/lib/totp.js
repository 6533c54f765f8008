// RFC 6238 TOTP codes, computed the way an authenticator app would from the enrolment link
// the device shows (otpauth://totp/...?secret=&algorithm=&digits=&period=).
"use strict";

const crypto = require("node:crypto");

function base32Decode(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const clean = s.toUpperCase().replace(/[\s=-]/g, "");
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/// The parameters of an otpauth URI, with the RFC 6238 defaults for what it leaves out.
function parseOtpauth(uri) {
  const u = new URL(uri);
  if (u.protocol !== "otpauth:" || u.host !== "totp") throw new Error(`not a TOTP link: ${uri}`);
  const q = u.searchParams;
  return {
    secret: q.get("secret"),
    algorithm: (q.get("algorithm") || "SHA1").toUpperCase(),
    digits: Number(q.get("digits") || 6),
    period: Number(q.get("period") || 30),
    issuer: q.get("issuer"),
  };
}

/// The code for time step `step` (RFC 4226 dynamic truncation over HMAC of the step).
function codeAt(params, step) {
  const hash = { SHA1: "sha1", SHA256: "sha256", SHA512: "sha512" }[params.algorithm];
  if (!hash) throw new Error(`unknown TOTP algorithm ${params.algorithm}`);
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac(hash, base32Decode(params.secret)).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** params.digits).padStart(params.digits, "0");
}

function currentStep(params, now = Date.now()) {
  return Math.floor(now / 1000 / params.period);
}

/// An app that, like a person, never types the same code twice: each code is for a later
/// time step than the one before (the device refuses a replayed step). The device accepts
/// the previous, current and next step; this uses the current one, else the next one (a step
/// boundary passing meanwhile keeps either inside the window), else waits for a new step.
class Authenticator {
  constructor(params) {
    this.params = params;
    this.lastStep = -1;
  }

  async nextCode() {
    for (;;) {
      const now = currentStep(this.params);
      const step = [now, now + 1].find((s) => s > this.lastStep);
      if (step !== undefined) {
        this.lastStep = step;
        return codeAt(this.params, step);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /// A code that no step near now produces.
  wrongCode() {
    const now = currentStep(this.params);
    const near = new Set([-2, -1, 0, 1, 2].map((d) => codeAt(this.params, now + d)));
    for (let n = 0; ; n++) {
      const c = String(n * 7919 % 10 ** this.params.digits).padStart(this.params.digits, "0");
      if (!near.has(c)) return c;
    }
  }
}

module.exports = { base32Decode, parseOtpauth, codeAt, Authenticator };

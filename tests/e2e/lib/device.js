// A real mamorid for one test: a fresh state directory, a free loopback port, the label
// password it prints once, and the pin of the certificate it serves. Mirrors
// tests/common/mod.rs, so the browser suite and the Rust suites start devices the same way.
"use strict";

const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");

const REPO = path.resolve(__dirname, "..", "..", "..");
const BIN_DIR = path.resolve(REPO, process.env.MAMORI_BIN_DIR || "target/debug");

/// The password the suite sets after the label password (passes the password rules).
const ADMIN_PASSWORD = "Fjord-Lantern-58-quiet";

// Devices still running, so that an interrupted run (Ctrl-C, a crash) leaves no daemon behind.
const live = new Set();
function killAllNow() {
  for (const d of live) {
    try {
      process.kill(-d.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
process.on("exit", killAllNow);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    killAllNow();
    process.exit(130);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// The value Chromium's --ignore-certificate-errors-spki-list takes for a PEM certificate:
/// base64 of the SHA-256 of its SubjectPublicKeyInfo. Also checks that the certificate names
/// "localhost", the host the suite browses (the WebAuthn relying party id).
function spkiPin(certPath) {
  const cert = new crypto.X509Certificate(fs.readFileSync(certPath));
  const san = cert.subjectAltName || "";
  if (!san.split(/,\s*/).includes("DNS:localhost")) {
    throw new Error(`device certificate has no SAN DNS:localhost (SAN: ${san || "none"})`);
  }
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(spki).digest("base64");
}

class Device {
  constructor(dir, port) {
    this.dir = dir;
    this.state = path.join(dir, "state");
    this.port = port;
    this.labelPassword = null;
    this.log = []; // the daemon's last lines, shown when a test fails
    this.child = null;
    this.exited = null;
  }

  get pid() {
    return this.child.pid;
  }

  get certPath() {
    return path.join(this.state, "tls", "device-cert.pem");
  }

  /// The origin the browser uses: the name "localhost", which the certificate and the
  /// WebAuthn relying party id both carry (127.0.0.1 would fail both).
  get origin() {
    return `https://localhost:${this.port}`;
  }

  url(p) {
    return this.origin + p;
  }

  get pin() {
    return spkiPin(this.certPath);
  }

  keepLine(prefix, line) {
    this.log.push(`${prefix} ${line}`);
    if (this.log.length > 200) this.log.shift();
    if (process.env.MAMORI_E2E_VERBOSE) process.stderr.write(`${prefix} ${line}\n`);
  }

  async spawn() {
    const bin = path.join(BIN_DIR, "mamorid");
    if (!fs.existsSync(bin)) {
      throw new Error(`${bin} not found: run cargo build --workspace --bins (scripts/e2e does)`);
    }
    const child = spawn(
      bin,
      ["--state-dir", this.state, "--listen", `127.0.0.1:${this.port}`],
      {
        // Its own process group, so that stopping reaches the privileged parent and the
        // management process alike.
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
      },
    );
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) => child.once("exit", (code, sig) => resolve({ code, sig })));
    this.exited.then(() => live.delete(this));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /^initial admin password: (\S+)$/.exec(line);
      if (m) this.labelPassword = m[1];
      this.keepLine("[mamorid]", m ? "initial admin password: <seen>" : line);
    });
    readline.createInterface({ input: child.stderr }).on("line", (l) => this.keepLine("[mamorid!]", l));

    let gone = null;
    this.exited.then((s) => (gone = s));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (gone) throw new Error(`mamorid exited during start: ${JSON.stringify(gone)}\n${this.log.join("\n")}`);
      if (fs.existsSync(this.certPath) && (await canConnect(this.port))) break;
      if (Date.now() > deadline) throw new Error(`mamorid did not start within 30 s\n${this.log.join("\n")}`);
      await sleep(50);
    }
    // The label line comes before the listener on a first start; allow for the pipe's lag.
    const until = Date.now() + 2000;
    while (!this.labelPassword && Date.now() < until) await sleep(20);
    if (!this.labelPassword) throw new Error("mamorid did not print its label password");
  }

  /// SIGTERM to the daemon, then SIGKILL to its whole process group if it lingers (and in
  /// any case, so no management process outlives the test). Removes the state directory.
  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(this.pid, "SIGTERM");
      } catch {
        // already gone
      }
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(r, 10_000)));
      await Promise.race([this.exited, timeout]);
      clearTimeout(timer);
    }
    if (this.child) {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        // the group is empty: good
      }
      await this.exited;
      live.delete(this);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/// Starts a fresh device in a new temporary state directory.
async function startDevice() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mamori-e2e-"));
  // The management user (_mamori) must be able to traverse to the state directory.
  fs.chmodSync(dir, 0o755);
  const d = new Device(dir, await freePort());
  try {
    await d.spawn();
  } catch (e) {
    await d.stop().catch(() => {});
    throw e;
  }
  return d;
}

module.exports = { startDevice, spkiPin, ADMIN_PASSWORD, REPO };

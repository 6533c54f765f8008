// A real mamorid for one test: a fresh state directory, a free loopback port, the label
// password it prints once, and the pin of the certificate it serves. Mirrors
// tests/common/mod.rs, so the browser suite and the Rust suites start devices the same way.
"use strict";

const { spawn, spawnSync } = require("node:child_process");
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
    if (d.netns) d.netns.remove();
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

function canConnect(port, host = "127.0.0.1") {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
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

// --- A device that manages the network of its own namespace --------------------------------
// `mamorid --factory-network` applies a firewall, addresses and routes to the interfaces it is
// given: on the host that would be the host's own. Such a device runs in a network namespace
// (as tests/common/mod.rs does it for the Rust suites): `lan0` (lan, 192.168.77.1/24; one end
// of a veth pair inside the namespace, standing in for a dummy interface)
// and a veth pair whose namespace end is `mgmt0` (mgmt), the device listening on mgmt0's
// address. The browser still opens https://localhost:PORT (the name the certificate and the
// WebAuthn relying party carry): a TCP relay in this process on 127.0.0.1:PORT connects each
// browser connection to the device from the host's end of the veth, so the device sees it
// arrive on mgmt0, from the management zone.

let netnsCount = 0;

function ip(args) {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr || r.error}`);
  return r.stdout;
}

class Netns {
  constructor() {
    const n = netnsCount++;
    this.name = `me${process.pid}-${n}`;
    this.hostIf = `meh${process.pid}${n}`.slice(0, 15);
    ip(["netns", "add", this.name]);
    try {
      this.exec(["ip", "link", "set", "lo", "up"]);
      ip(["link", "add", this.hostIf, "type", "veth", "peer", "name", "mgmt0", "netns", this.name]);
      // A free /30 in 10.201.0.0/16 (10.200.0.0/16 is the Rust suites').
      let base = null;
      for (let i = 0; i < 16384; i++) {
        const k = (process.pid * 64 + n + i) % 16384;
        const cand = [10, 201, (k * 4) >> 8, (k * 4) & 255];
        const prefix = `${cand.join(".")}/30`;
        if (ip(["-4", "-o", "addr", "show", "to", prefix]).trim() === "") {
          base = cand;
          break;
        }
      }
      if (!base) throw new Error("no free /30 in 10.201.0.0/16");
      this.hostIp = [...base.slice(0, 3), base[3] + 1].join(".");
      this.deviceIp = [...base.slice(0, 3), base[3] + 2].join(".");
      // No IPv6 link-local address on the host's end: its duplicate-address detection would
      // finish a second or two after the link comes up, and Chromium aborts the requests in
      // flight when the host's addresses change (net::ERR_NETWORK_CHANGED).
      ip(["link", "set", "dev", this.hostIf, "addrgenmode", "none"]);
      ip(["addr", "add", `${this.hostIp}/30`, "dev", this.hostIf]);
      ip(["link", "set", this.hostIf, "up"]);
      this.exec(["ip", "addr", "add", `${this.deviceIp}/30`, "dev", "mgmt0"]);
      this.exec(["ip", "link", "set", "mgmt0", "up"]);
      // A veth pair inside the namespace stands in for a dummy interface (kernels without
      // the dummy driver exist); its peer only keeps lan0 up.
      this.exec(["ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan0-peer"]);
      this.exec(["ip", "link", "set", "lan0-peer", "up"]);
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  exec(args) {
    return ip(["netns", "exec", this.name, ...args]);
  }

  /// The factory configuration for a device listening on `port`.
  factory(port) {
    return {
      interfaces: [
        { name: "lan0", role: "lan", addresses: ["192.168.77.1/24"] },
        { name: "mgmt0", role: "mgmt", addresses: [`${this.deviceIp}/30`] },
      ],
      firewall: {
        zones: [
          { name: "lan", interfaces: ["lan0"] },
          { name: "mgmt", interfaces: ["mgmt0"] },
        ],
      },
      management: { port, zones: ["lan", "mgmt"], sources: ["0.0.0.0/0", "::/0"] },
    };
  }

  remove() {
    spawnSync("ip", ["link", "del", this.hostIf]);
    spawnSync("ip", ["netns", "delete", this.name]);
  }
}

/// Relays 127.0.0.1:port to the device in the namespace, from the veth's host end.
function relay(port, ns) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: ns.deviceIp, port, localAddress: ns.hostIp });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () =>
      resolve({
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

class Device {
  constructor(dir, port, netns = null) {
    this.dir = dir;
    this.state = path.join(dir, "state");
    this.port = port;
    this.netns = netns;
    this.relay = null;
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
    let command = bin;
    let args = ["--state-dir", this.state, "--listen", `127.0.0.1:${this.port}`];
    if (this.netns) {
      const factory = path.join(this.dir, "factory-network.json");
      fs.writeFileSync(factory, JSON.stringify(this.netns.factory(this.port), null, 2));
      fs.chmodSync(factory, 0o644);
      command = "ip";
      args = [
        "netns", "exec", this.netns.name, bin,
        "--state-dir", this.state,
        "--listen", `${this.netns.deviceIp}:${this.port}`,
        "--factory-network", factory,
      ];
    }
    const child = spawn(
      command,
      args,
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
      const host = this.netns ? this.netns.deviceIp : "127.0.0.1";
      if (fs.existsSync(this.certPath) && (await canConnect(this.port, host))) break;
      if (Date.now() > deadline) throw new Error(`mamorid did not start within 30 s\n${this.log.join("\n")}`);
      await sleep(50);
    }
    // The label line comes before the listener on a first start; allow for the pipe's lag.
    const until = Date.now() + 2000;
    while (!this.labelPassword && Date.now() < until) await sleep(20);
    if (!this.labelPassword) throw new Error("mamorid did not print its label password");
    if (this.netns) this.relay = await relay(this.port, this.netns);
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
    if (this.relay) await this.relay.close();
    if (this.netns) this.netns.remove();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/// Starts a fresh device in a new temporary state directory. With `{ network: true }` it
/// manages the network of a namespace of its own (needs root; see Netns above).
async function startDevice({ network = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mamori-e2e-"));
  // The management user (_mamori) must be able to traverse to the state directory.
  fs.chmodSync(dir, 0o755);
  let ns = null;
  if (network) {
    try {
      ns = new Netns();
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
  const d = new Device(dir, await freePort(), ns);
  try {
    await d.spawn();
  } catch (e) {
    await d.stop().catch(() => {});
    throw e;
  }
  return d;
}

/// Whether this process may make network namespaces (a device that manages its network).
const canManageNetwork = () => process.getuid && process.getuid() === 0;

module.exports = { startDevice, spkiPin, canManageNetwork, ADMIN_PASSWORD, REPO };

// A real `herald serve` with the admin listener on, Debian's Chromium, and WebSocket clients
// speaking docs/protocol.md: what the console test drives.

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const APP_ID = 1234567890;
export const SECRET = 'fa94dd0f974cf2e293728a526b028271';
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The binary to test: HERALD_BIN, else target/debug/herald, else target/release/herald. */
export function heraldBinary() {
  const hint = 'Build it first with `cargo build -p herald-server` at the repository root (or set HERALD_BIN).';
  if (process.env.HERALD_BIN) {
    if (!existsSync(process.env.HERALD_BIN)) throw new Error(`HERALD_BIN=${process.env.HERALD_BIN} does not exist. ${hint}`);
    return process.env.HERALD_BIN;
  }
  const candidates = ['target/debug/herald', 'target/release/herald'].map((p) => join(repoRoot, p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no herald binary at ${candidates.join(' or ')}. ${hint}`);
  return found;
}

/** A port nothing listens on right now (bound, then released for the server to take). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * Polls `probe` until it returns something truthy. The deadline is a hang guard that turns
 * "never" into a failure naming what was awaited, not a claim about speed.
 */
export async function waitUntil(what, probe, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts `herald serve` with one app and the admin listener; `adminToken: false` leaves
 * `admin.token` unset (the console off). `close()` ends it.
 */
export async function startHerald({ adminToken = randomBytes(24).toString('hex') } = {}) {
  const bin = heraldBinary();
  const dir = mkdtempSync(join(tmpdir(), 'herald-console-'));
  const port = await freePort();
  const adminPort = await freePort();
  const config = join(dir, 'herald.toml');
  writeFileSync(
    config,
    [
      `listen = "127.0.0.1:${port}"`,
      `data_dir = "${dir}"`,
      'log = "warn"',
      '',
      '[admin]',
      `listen = "127.0.0.1:${adminPort}"`,
      adminToken ? `token = "${adminToken}"` : '',
      '',
      '[[apps]]',
      `app_id = ${APP_ID}`,
      `server_secret = "${SECRET}"`,
      '[apps.limits]',
      'broadcast_per_second = 100',
      '',
    ].join('\n'),
  );
  const child = spawn(bin, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const keep = (chunk) => log.push(chunk.toString());
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const server = {
    bin,
    adminToken,
    apiUrl: `http://127.0.0.1:${port}/`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    log: () => log.join(''),
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
    /** A Token04 from `herald token new`. */
    token(userId) {
      const args = ['token', 'new', '--app-id', String(APP_ID), '--user-id', userId, '--secret', SECRET, '--ttl', '3600'];
      return execFileSync(bin, args, { encoding: 'utf8' }).trim();
    },
    /** One signed server-API call: md5(AppId + SignatureNonce + ServerSecret + Timestamp). */
    async api(action, body) {
      const nonce = randomBytes(8).toString('hex');
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = createHash('md5').update(`${APP_ID}${nonce}${SECRET}${timestamp}`).digest('hex');
      const query = `Action=${action}&AppId=${APP_ID}&SignatureNonce=${nonce}&Timestamp=${timestamp}&Signature=${signature}&SignatureVersion=2.0`;
      const res = await fetch(`${this.apiUrl}?${query}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      return res.json();
    },
  };
  try {
    await waitUntil('herald to answer /healthz and the admin listener', async () => {
      if (child.exitCode !== null) throw new Error(`herald exited at start:\n${server.log()}`);
      try {
        const health = await fetch(`${server.apiUrl}healthz`);
        const status = await fetch(`${server.adminUrl}/console/api/status`);
        return health.ok && status.ok;
      } catch {
        return false;
      }
    });
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}

/** A logged-in WebSocket client; `frames` collects what the server sends after login_ok. */
export async function connectClient(server, userId, deviceId) {
  const ws = new WebSocket(server.wsUrl);
  const frames = [];
  let loggedIn;
  const ready = new Promise((resolveReady, reject) => {
    loggedIn = { resolve: resolveReady, reject };
  });
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.t === 'login_ok') loggedIn.resolve();
    else if (frame.t === 'error') loggedIn.reject(new Error(`login of ${userId} refused: ${JSON.stringify(frame)}`));
    else frames.push(frame);
  });
  ws.on('error', (e) => loggedIn.reject(e));
  ws.on('close', (code) => loggedIn.reject(new Error(`socket of ${userId} closed with ${code} before login_ok`)));
  await new Promise((r, reject) => {
    ws.once('open', r);
    ws.once('error', reject);
  });
  const login = {
    t: 'login',
    id: 1,
    app_id: APP_ID,
    user_id: userId,
    token: server.token(userId),
    sdk_version: '2.18.0',
    platform: 'test',
    device_id: deviceId,
  };
  ws.send(JSON.stringify(login));
  await Promise.race([ready, new Promise((_, reject) => setTimeout(() => reject(new Error(`no login_ok for ${userId}`)), 20_000))]);
  return { ws, frames, close: () => ws.terminate() };
}

/** Debian's Chromium through playwright-core, with a fresh profile; never downloads a browser. */
export function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: \`apt-get install -y chromium\` (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

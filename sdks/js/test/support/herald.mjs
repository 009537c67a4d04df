// A real Herald server for the tests: finds the binary, writes a config, starts `herald serve`
// on a free port, signs server-API calls, and stops or restarts the process.

import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const sdkRoot = resolve(here, '../..');
export const repoRoot = resolve(sdkRoot, '../..');

export const APP_ID = 1234567890;
export const SECRET = 'fa94dd0f974cf2e293728a526b028271';

/** The binary the same CI run built: HERALD_BIN, else target/debug, else target/release. */
export function heraldBinary() {
  const hint = 'Run `cargo build -p herald-server` at the repository root first (or set HERALD_BIN).';
  if (process.env.HERALD_BIN) {
    if (!existsSync(process.env.HERALD_BIN)) throw new Error(`HERALD_BIN=${process.env.HERALD_BIN} does not exist. ${hint}`);
    return process.env.HERALD_BIN;
  }
  const candidates = [join(repoRoot, 'target/debug/herald'), join(repoRoot, 'target/release/herald')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no Herald binary: looked at ${candidates.join(' and ')}. ${hint}`);
  return found;
}

/** A port nothing listens on right now (bound and released; the server binds it next). */
export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns something truthy; a hang guard, not a timing claim: the
 * deadline only turns "never" into a failure that says what was awaited.
 */
export async function waitUntil(what, probe, { timeoutMs = 20_000, everyMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function configToml({ port, dataDir, apps, gateway }) {
  const lines = [`listen = "127.0.0.1:${port}"`, `data_dir = "${dataDir}"`, 'log = "warn"', '', '[gateway]'];
  for (const [k, v] of Object.entries({ heartbeat_interval_ms: 1000, heartbeat_timeout_ms: 5000, ...gateway })) {
    lines.push(`${k} = ${v}`);
  }
  // Any free port for the admin listener: tests run several servers at once.
  lines.push('', '[admin]', 'listen = "127.0.0.1:0"');
  for (const app of apps) {
    lines.push('', '[[apps]]', `app_id = ${app.appId}`, `server_secret = "${app.secret}"`);
    lines.push('[apps.limits]', 'broadcast_per_second = 1000', 'broadcast_per_day = 100000');
    if (app.webhook) lines.push('[apps.push.webhook]', `url = "${app.webhook}"`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Starts `herald serve`. `apps` defaults to one app (APP_ID, SECRET); `gateway` overrides the
 * `[gateway]` table. The returned handle can `stop()` (SIGTERM), `kill()` (SIGKILL) and
 * `start()` again on the same port and data directory.
 */
export async function startHerald({ apps = [{ appId: APP_ID, secret: SECRET }], gateway = {} } = {}) {
  const bin = heraldBinary();
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-js-'));
  const port = await freePort();
  const configFile = join(dataDir, 'herald.toml');
  writeFileSync(configFile, configToml({ port, dataDir, apps, gateway }));
  const server = {
    bin,
    port,
    dataDir,
    httpUrl: `http://127.0.0.1:${port}/`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    apps,
    child: undefined,
    log: [],
    async start() {
      const child = spawn(bin, ['serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      const keep = (chunk) => {
        this.log.push(chunk.toString());
        if (this.log.length > 200) this.log.shift();
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let exited = false;
      child.on('exit', () => (exited = true));
      await waitUntil(`herald to answer /healthz on port ${port}`, async () => {
        if (exited) throw new Error(`herald exited at start:\n${this.log.join('')}`);
        try {
          const res = await fetch(`${this.httpUrl}healthz`);
          return res.ok && (await res.text()).trim() === 'ok';
        } catch {
          return false;
        }
      });
    },
    /** Ends the process and waits for it; `signal` SIGKILL simulates a crash. */
    async stop(signal = 'SIGTERM') {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
      await exited;
    },
    kill() {
      return this.stop('SIGKILL');
    },
    async close() {
      await this.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
    token(userId, { ttl = 3600, appId = apps[0].appId, secret = apps[0].secret } = {}) {
      return execFileSync(bin, ['token', 'new', '--app-id', String(appId), '--user-id', userId, '--secret', secret, '--ttl', String(ttl)], {
        encoding: 'utf8',
      }).trim();
    },
    /** One signed server-API call, signed here as ZIM signs: md5(AppId + Nonce + Secret + Timestamp). */
    async api(action, body, { appId = apps[0].appId, secret = apps[0].secret, query = '' } = {}) {
      const nonce = randomBytes(8).toString('hex');
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = createHash('md5').update(`${appId}${nonce}${secret}${timestamp}`).digest('hex');
      const url =
        `${this.httpUrl}?Action=${action}&AppId=${appId}&SignatureNonce=${nonce}&Timestamp=${timestamp}` +
        `&Signature=${signature}&SignatureVersion=2.0${query}`;
      const res = await fetch(url, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      return res.json();
    },
    /** SendMessageToAllUsers; resolves to the message ID (the answer's RequestId). */
    async broadcast(fields = {}, opts = {}) {
      const body = {
        FromUserId: 'admin',
        MessageType: 1,
        Priority: 1,
        MessageBody: { Message: 'hello', ExtendedData: '' },
        PushType: 0,
        ...fields,
      };
      const answer = await this.api('SendMessageToAllUsers', body, opts);
      if (answer.Code !== 0) throw new Error(`SendMessageToAllUsers answered ${JSON.stringify(answer)}`);
      return answer.RequestId;
    },
    async register(userId, opts = {}) {
      const answer = await this.api('UserRegister', { UserInfo: [{ UserId: userId }] }, opts);
      if (answer.Code !== 0) throw new Error(`UserRegister answered ${JSON.stringify(answer)}`);
    },
  };
  await server.start();
  return server;
}

// Prints what the SDK costs: the bundle's size, in Chromium the time from login() to Connected
// and from the API call to broadcastMessageReceived (median of 20 each), and the memory of 1,000
// logged-in instances in one Node process. A program that prints numbers; no test asserts them.
//
//   cd sdks/js && npm run build && HERALD_BIN=../../target/release/herald npm run bench
//
// Without HERALD_BIN it takes target/release/herald, else target/debug/herald. All load goes to
// a server it starts on 127.0.0.1.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import WebSocket from 'ws';
import * as Herald from '../dist/herald.mjs';
import { launchChromium, serveSdk } from '../test/support/browser.mjs';
import { APP_ID, SECRET, repoRoot, sdkRoot, startHerald, waitUntil } from '../test/support/herald.mjs';

const ROUNDS = 20;
const INSTANCES = 1000;

if (!process.env.HERALD_BIN) {
  // The release build is what the numbers are for; the debug one is the fallback.
  const built = ['target/release/herald', 'target/debug/herald'].map((p) => join(repoRoot, p)).find((p) => existsSync(p));
  if (built) process.env.HERALD_BIN = built;
}
if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc (npm run bench does) so the memory numbers are taken after a collection');
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const fmt = (ms) => `${ms.toFixed(1)} ms`;
const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

function bundleSize() {
  const file = readFileSync(join(sdkRoot, 'dist/herald.global.js'));
  return { minified: file.length, gzipped: gzipSync(file, { level: 9 }).length };
}

async function browserTimes(server) {
  const site = await serveSdk();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`${site.url}examples/web/index.html`);
    const token = server.token('bench-web');
    const logins = [];
    for (let i = 0; i < ROUNDS; i++) {
      logins.push(
        await page.evaluate(
          async ({ url, appID, token }) => {
            const zim = Herald.create({ appID, servers: [url] });
            const connected = new Promise((resolve) =>
              zim.on('connectionStateChanged', (_z, { state }) => state === 2 && resolve(performance.now())),
            );
            const start = performance.now();
            await zim.login('bench-web', { token });
            const ms = (await connected) - start;
            zim.destroy();
            return ms;
          },
          { url: server.wsUrl, appID: APP_ID, token },
        ),
      );
    }
    // One session for the broadcasts; the page stamps each arrival with the wall clock, which
    // it shares with this process.
    await page.evaluate(
      async ({ url, appID, token }) => {
        window.arrivals = {};
        const zim = Herald.create({ appID, servers: [url] });
        zim.on('broadcastMessageReceived', (_z, { message }) => {
          window.arrivals[message.messageID] = performance.timeOrigin + performance.now();
        });
        await zim.login('bench-web', { token });
      },
      { url: server.wsUrl, appID: APP_ID, token },
    );
    const deliveries = [];
    for (let i = 0; i < ROUNDS; i++) {
      const sentAt = performance.timeOrigin + performance.now();
      const id = await server.broadcast({ MessageBody: { Message: `bench ${i}`, ExtendedData: '' } });
      const arrived = await page.waitForFunction((id) => window.arrivals[id], id, { timeout: 10_000 });
      deliveries.push((await arrived.jsonValue()) - sentAt);
    }
    return { login: median(logins), broadcast: median(deliveries) };
  } finally {
    await browser.close();
    await site.close();
  }
}

async function nodeMemory(server) {
  // Tokens first, a few `herald token new` at a time; then a fresh Node process measures, so
  // nothing this process did (Chromium's driver, spawning) is in its baseline.
  const run = promisify(execFile);
  const tokens = new Array(INSTANCES);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < INSTANCES) {
        const i = next++;
        const { stdout } = await run(server.bin, ['token', 'new', '--app-id', String(APP_ID), '--user-id', `u${i}`, '--secret', SECRET, '--ttl', '3600']);
        tokens[i] = stdout.trim();
      }
    }),
  );
  const file = join(mkdtempSync(join(tmpdir(), 'herald-bench-')), 'tokens.json');
  writeFileSync(file, JSON.stringify(tokens));
  const { stdout } = await run(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--memory-child', file, server.wsUrl], {
    timeout: 120_000,
  });
  return JSON.parse(stdout);
}

/** The child: baseline after the imports, then INSTANCES logged-in instances, after a collection each. */
async function memoryChild(file, url) {
  const tokens = JSON.parse(readFileSync(file, 'utf8'));
  globalThis.gc();
  const before = process.memoryUsage();
  const instances = [];
  for (let i = 0; i < tokens.length; i += 50) {
    await Promise.all(
      tokens.slice(i, i + 50).map(async (token, j) => {
        const zim = Herald.create({ appID: APP_ID, servers: [url], WebSocket });
        instances.push(zim);
        await zim.login(`u${i + j}`, { token });
      }),
    );
  }
  await waitUntil('every instance connected', () => instances.every((z) => z.state === Herald.ZIMConnectionState.Connected), {
    timeoutMs: 60_000,
  });
  globalThis.gc();
  const after = process.memoryUsage();
  process.stdout.write(JSON.stringify({ heap: after.heapUsed - before.heapUsed, rss: after.rss - before.rss }));
  process.exit(0);
}

if (process.argv[2] === '--memory-child') await memoryChild(process.argv[3], process.argv[4]);

const server = await startHerald({ gateway: { heartbeat_interval_ms: 30000, heartbeat_timeout_ms: 90000 } });
try {
  await server.register('admin');
  const size = bundleSize();
  const times = await browserTimes(server);
  const memory = await nodeMemory(server);
  console.log(`herald binary:            ${server.bin}`);
  console.log(`herald.global.js:         ${size.minified} bytes minified, ${size.gzipped} bytes gzipped`);
  console.log(`Chromium login→Connected: ${fmt(times.login)} (median of ${ROUNDS})`);
  console.log(`Chromium API→broadcast:   ${fmt(times.broadcast)} (median of ${ROUNDS}, SendMessageToAllUsers call to broadcastMessageReceived)`);
  console.log(
    `Node, ${INSTANCES} logged-in instances: heap +${mib(memory.heap)} (${(memory.heap / INSTANCES / 1024).toFixed(1)} KiB each), ` +
      `RSS +${mib(memory.rss)} (${(memory.rss / INSTANCES / 1024).toFixed(1)} KiB each, ws sockets included)`,
  );
} finally {
  await server.close();
}
process.exit(0);

// In real Chromium: the example page logs in with dist/herald.global.js, shows a broadcast sent
// through the signed API, shows Reconnecting while the server restarts, then the next broadcast.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { APP_ID, startHerald } from '../support/herald.mjs';
import { launchChromium, serveSdk } from '../support/browser.mjs';

let server;
let site;
let browser;

before(async () => {
  server = await startHerald();
  await server.register('admin');
  site = await serveSdk();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await server?.close();
});

test('the example page logs in, lists broadcasts, and rides out a server restart', { timeout: 110_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));

  await page.goto(`${site.url}examples/web/index.html?server=${encodeURIComponent(server.wsUrl)}&app=${APP_ID}`);
  const globals = await page.evaluate(() => ({
    create: typeof Herald.create,
    states: Herald.ZIMConnectionState,
    events: Herald.ZIMConnectionEvent,
  }));
  assert.deepEqual(globals, {
    create: 'function',
    states: { Disconnected: 0, Connecting: 1, Connected: 2, Reconnecting: 3 },
    events: { Success: 0, ActiveLogin: 1, LoginTimeout: 2, LoginInterrupted: 3, KickedOut: 4, TokenExpired: 5, Unregistered: 6 },
  });

  await page.getByTestId('user-id').fill('web-alice');
  await page.getByTestId('token').fill(server.token('web-alice'));
  await page.getByTestId('login').click();
  const state = page.getByTestId('state');
  await state.filter({ hasText: 'Connected' }).waitFor({ timeout: 20_000 });

  const first = await server.broadcast({ MessageBody: { Message: 'hello, browser', ExtendedData: '' } });
  const firstItem = page.locator(`[data-testid="message"][data-message-id="${first}"]`);
  await firstItem.waitFor({ timeout: 20_000 });
  assert.equal(await firstItem.getByTestId('message-text').textContent(), 'hello, browser');

  // SIGTERM: the server closes every session with 4000 and exits; then it comes back.
  await server.stop();
  await page.locator('[data-testid="state-entry"][data-state="3"]').first().waitFor({ timeout: 20_000 });
  await server.start();
  await page.waitForFunction(() => document.querySelector('[data-testid="state"]').dataset.state === '2', null, {
    timeout: 60_000,
  });
  const history = await page.getByTestId('state-entry').evaluateAll((items) => items.map((i) => i.dataset.state).reverse());
  assert.deepEqual(history, ['1', '2', '3', '2']);

  const second = await server.broadcast({ MessageBody: { Message: 'after the restart', ExtendedData: 'x' } });
  const secondItem = page.locator(`[data-testid="message"][data-message-id="${second}"]`);
  await secondItem.waitFor({ timeout: 20_000 });
  assert.equal(await secondItem.getByTestId('message-text').textContent(), 'after the restart  (x)');
  assert.equal(await page.getByTestId('message').count(), 2, 'each broadcast once');
  assert.equal(await page.getByTestId('error').textContent(), '');

  if (process.env.HERALD_SCREENSHOT) await page.screenshot({ path: process.env.HERALD_SCREENSHOT });
  assert.deepEqual(problems, []);
});

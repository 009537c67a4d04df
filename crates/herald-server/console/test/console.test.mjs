// The operator console in real Chromium against a real `herald serve`: sign-in refused and
// accepted, the live online count, a broadcast sent through the form and its confirmation
// reaching WebSocket clients and the broadcast list, a user look-up, the page of a server whose
// console is off, and sign-out.
//
// HERALD_SCREENSHOT=1 also writes the overview to docs/img/console-overview.png.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { APP_ID, connectClient, launchChromium, repoRoot, startHerald, waitUntil } from './support.mjs';

const CLIENTS = 3;
const GUARD = { timeout: 20_000 }; // hang guards only

let server;
let browser;
let page;
const clients = [];
const problems = [];

before(async () => {
  server = await startHerald();
  const registered = await server.api('UserRegister', { UserInfo: [{ UserId: 'admin', UserName: 'Operations' }] });
  assert.equal(registered.Code, 0, JSON.stringify(registered));
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1200, height: 720 } });
  page.on('pageerror', (e) => problems.push(e.message));
});

after(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  if (server && process.exitCode) console.error(`herald's log:\n${server.log()}`);
  await server?.close();
});

const signInForm = () => page.getByTestId('sign-in');
const tab = (name) => page.locator('#tabs').getByRole('button', { name, exact: true });
const onlineSessions = () => page.locator(`[data-testid="online-sessions"][data-app-id="${APP_ID}"]`);

test('a wrong token is refused', async () => {
  await page.goto(`${server.adminUrl}/console`);
  await signInForm().getByLabel('Admin token').fill('not-the-token');
  await signInForm().getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('sign-in-error').filter({ hasText: 'sign-in refused' }).waitFor(GUARD);
  assert.equal(await page.locator('#tabs').isHidden(), true);
  assert.deepEqual(await page.context().cookies(), [], 'a refused sign-in sets no cookie');
});

test('the admin token signs in and shows the overview', async () => {
  await signInForm().getByLabel('Admin token').fill(server.adminToken);
  await signInForm().getByRole('button', { name: 'Sign in' }).click();
  await onlineSessions().waitFor(GUARD);
  assert.equal(await onlineSessions().count(), 1, 'one number per app');
  assert.equal(await signInForm().isHidden(), true);
});

test('a change of state without the CSRF header is refused', async () => {
  // The page's cookie, but not the page's script: no X-CSRF-Token.
  const res = await page.request.post(`${server.adminUrl}/console/api/apps/${APP_ID}/broadcasts`, {
    data: { FromUserId: 'admin', MessageType: 1, MessageBody: { Message: 'forged' } },
  });
  assert.equal(res.status(), 403);
});

test(`${CLIENTS} WebSocket clients show as ${CLIENTS} online sessions`, async () => {
  for (let i = 1; i <= CLIENTS; i++) clients.push(await connectClient(server, `u${i}`, `d${i}`));
  await page.waitForFunction(
    ({ appId, n }) => document.querySelector(`[data-testid="online-sessions"][data-app-id="${appId}"]`)?.textContent === String(n),
    { appId: APP_ID, n: CLIENTS },
    GUARD,
  );
  assert.equal(await page.getByTestId('online-users').textContent(), String(CLIENTS));
});

let messageId;

test('a broadcast sent through the form and its confirmation reaches every client', async () => {
  await tab('Send').click();
  const form = page.getByTestId('broadcast-form');
  await form.getByLabel('From user').fill('admin');
  await form.getByLabel('Text', { exact: true }).fill('Maintenance tonight at 02:00 <b>UTC</b>');
  await form.getByLabel('Extended data').fill('{"severity":"info"}');
  const expected = {
    FromUserId: 'admin',
    MessageType: 1,
    MessageBody: { Message: 'Maintenance tonight at 02:00 <b>UTC</b>', ExtendedData: '{"severity":"info"}' },
    PushType: 0,
  };
  assert.deepEqual(JSON.parse(await page.getByTestId('broadcast-preview').textContent()), expected, 'the preview is the body');

  await form.getByRole('button', { name: 'Review…' }).click();
  const reach = page.getByTestId('broadcast-reach');
  await reach.waitFor(GUARD);
  assert.match(await reach.textContent(), new RegExp(`will reach ${CLIENTS} online sessions of app ${APP_ID}`));
  for (const c of clients) assert.equal(c.frames.length, 0, 'nothing is sent before the confirmation');

  await page.getByTestId('broadcast-confirm').click();
  await page.getByTestId('broadcast-result').waitFor(GUARD);
  assert.equal(await page.getByTestId('result-code').textContent(), '0');
  assert.equal(await page.getByTestId('result-message').textContent(), 'success');
  messageId = await page.locator('#result-request').textContent();
  assert.match(messageId, /^\d+$/);

  for (const c of clients) {
    const frame = await waitUntil('the broadcast on every client', () => c.frames.find((f) => f.t === 'bcast'));
    assert.equal(frame.msg.messageID, messageId);
    assert.equal(frame.msg.senderUserID, 'admin');
    assert.equal(frame.msg.message, expected.MessageBody.Message);
    assert.equal(frame.msg.extendedData, expected.MessageBody.ExtendedData);
  }
});

test('the broadcast list shows it, and its report opens', async () => {
  await tab('Broadcasts').click();
  const row = page.getByTestId('broadcast-list').locator(`[data-message-id="${messageId}"]`);
  await row.waitFor(GUARD);
  assert.equal(await row.getByTestId('broadcast-text').textContent(), 'Maintenance tonight at 02:00 <b>UTC</b>');
  await row.click();
  const report = page.getByTestId('broadcast-report');
  await report.waitFor(GUARD);
  assert.equal(await page.locator('#report-id').textContent(), messageId);
  assert.equal(await report.getByTestId('report-message').textContent(), 'Maintenance tonight at 02:00 <b>UTC</b>');
  assert.equal(await page.locator('#report-fields b').count(), 0, 'data is text, never markup');
});

test('a user look-up shows the profile and the online state', async () => {
  await tab('Users').click();
  const form = page.getByTestId('user-form');
  await form.getByLabel('User ID').fill('u1');
  await form.getByRole('button', { name: 'Look up' }).click();
  await page.getByTestId('user-result').waitFor(GUARD);
  assert.equal(await page.getByTestId('user-online').textContent(), 'yes');
});

test('the overview counts the broadcast', async () => {
  await tab('Overview').click();
  const today = page.locator(`[data-testid="broadcasts-today"][data-app-id="${APP_ID}"]`);
  await page.waitForFunction((el) => el?.textContent === '1 / 100', await today.elementHandle(), GUARD);
  if (process.env.HERALD_SCREENSHOT) {
    // Just the page's content, no empty viewport below it.
    const bottom = await page.evaluate(() => Math.ceil(document.querySelector('main').getBoundingClientRect().bottom));
    await page.setViewportSize({ width: 1200, height: bottom });
    await page.screenshot({ path: join(repoRoot, 'docs/img/console-overview.png') });
  }
});

test('without admin.token the page says the console is off', async () => {
  const off = await startHerald({ adminToken: false });
  try {
    const offPage = await browser.newPage();
    offPage.on('pageerror', (e) => problems.push(e.message));
    await offPage.goto(`${off.adminUrl}/console`);
    await offPage.getByRole('heading', { name: 'The console is off' }).waitFor(GUARD);
    assert.match(await offPage.locator('#off').textContent(), /admin\.token/);
    assert.equal(await offPage.getByTestId('sign-in').isHidden(), true);
    await offPage.close();
  } finally {
    await off.close();
  }
});

test('sign-out ends the session', async () => {
  await page.getByTestId('sign-out').click();
  await signInForm().waitFor(GUARD);
  const res = await page.request.get(`${server.adminUrl}/console/api/overview`);
  assert.equal(res.status(), 401, 'the old cookie no longer opens the API');
  assert.deepEqual(problems, [], 'no script errors on the page');
});

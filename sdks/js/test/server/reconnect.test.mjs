// Against a real Herald that dies and comes back on the same port: reconnects (2 → 3 → 2), the
// next broadcast, `since` on the re-login, and sessions whose tokens end with them.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import * as Herald from '../../dist/herald.mjs';
import { record } from '../support/fake.mjs';
import { APP_ID, startHerald, waitUntil } from '../support/herald.mjs';

const { ZIMConnectionState: S, ZIMConnectionEvent: E } = Herald;
let server;
const instances = [];

before(async () => {
  server = await startHerald();
  await server.register('admin');
});

after(async () => {
  instances.forEach((zim) => zim.destroy());
  await server?.close();
});

/** The `ws` WebSocket, recording what the SDK sends so the test can read its login frames. */
function spyingWebSocket(sent) {
  return class extends WebSocket {
    send(data, ...rest) {
      sent.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  };
}

function client(options = {}) {
  const sent = [];
  const zim = Herald.create({
    appID: APP_ID,
    servers: [server.wsUrl],
    WebSocket: spyingWebSocket(sent),
    // Small waits keep the test short; the backoff itself is unit-tested.
    reconnect: { initialDelayMs: 200, maxDelayMs: 1000 },
    ...options,
  });
  instances.push(zim);
  return { zim, rec: record(zim), sent };
}

const received = (rec, messageID) =>
  rec.until(`message ${messageID}`, () => rec.messages.find((m) => m.messageID === messageID), 30_000);

test('tokenWillExpire comes at once for a token shorter than 30 s, and renewToken extends it', async () => {
  const { zim, rec } = client();
  const shortToken = server.token('gina', { ttl: 20 });
  await zim.login('gina', { token: shortToken });
  const [, warning] = await rec.until('tokenWillExpire', () => rec.events.find(([k]) => k === 'tokenWillExpire'), 20_000);
  assert.ok(warning.second > 0 && warning.second <= 20, `second = ${warning.second}`);
  const longToken = server.token('gina', { ttl: 3600 });
  const renewed = await zim.renewToken(longToken);
  assert.equal(renewed.token, longToken);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(renewed.tokenExpire > now + 3000, `tokenExpire ${renewed.tokenExpire} is about an hour away`);
  // A token too short to renew with is refused with the server's code and reason.
  await assert.rejects(zim.renewToken(server.token('gina', { ttl: 10 })), { code: 6000108, message: /30 s/ });
});

test('kill -9 and restart: 2 → 3 → 2, the next broadcast arrives, expired tokens end with their session', async () => {
  const steady = client();
  await steady.zim.login('henry', { token: server.token('henry') });
  // Two sessions whose tokens run out before the restart: one renews in time, one does not.
  const renewing = client();
  const expiring = client();
  const ttl = 6;
  await renewing.zim.login('ivy', { token: server.token('ivy', { ttl }) });
  await expiring.zim.login('jack', { token: server.token('jack', { ttl }) });
  const shortExpiry = Math.floor(Date.now() / 1000) + ttl;
  await renewing.zim.renewToken(server.token('ivy', { ttl: 3600 }));

  const before = await server.broadcast({ MessageBody: { Message: 'before the restart', ExtendedData: '' } });
  await received(steady.rec, before);
  // Wait (bounded) for the short tokens to lapse, so the re-logins after the restart tell them apart.
  await waitUntil('the short tokens to expire', () => Date.now() / 1000 > shortExpiry + 1, { timeoutMs: 30_000 });

  await server.kill();
  await steady.rec.state(S.Reconnecting, E.LoginInterrupted, 30_000);
  await server.start();
  await steady.rec.state(S.Connected, E.Success, 60_000);

  assert.deepEqual(steady.rec.states, [
    [S.Connecting, E.ActiveLogin],
    [S.Connected, E.Success],
    [S.Reconnecting, E.LoginInterrupted],
    [S.Connected, E.Success],
  ]);

  // The re-login carried `since`: the newest broadcast this instance delivered.
  const logins = steady.sent.filter((f) => f.t === 'login');
  assert.equal(logins[0].since, undefined);
  assert.equal(logins.at(-1).since, before);

  // The renewed session logged in again with its newest token; the expired one ends with its
  // token (Disconnected/TokenExpired) and stays down. Both settle before the next broadcast,
  // which a session still reconnecting would miss (this server has no recovery yet).
  await renewing.rec.until('the renewed session back', () => renewing.zim.state === S.Connected && renewing.rec.states.length >= 4, 60_000);
  await expiring.rec.state(S.Disconnected, E.TokenExpired, 60_000);
  const [, data] = expiring.rec.events.filter(([k]) => k === 'state').at(-1);
  assert.equal(data.extendedData.code, 6000106, JSON.stringify(data.extendedData));
  assert.equal(expiring.zim.state, S.Disconnected);

  const afterID = await server.broadcast({ MessageBody: { Message: 'after the restart', ExtendedData: '' } });
  const message = await received(steady.rec, afterID);
  assert.equal(message.message, 'after the restart');
  assert.equal(steady.rec.messages.filter((m) => m.messageID === before).length, 1, 'delivered once');
  await received(renewing.rec, afterID);
  assert.equal(expiring.rec.messages.some((m) => m.messageID === afterID), false);
  const expiringLogins = expiring.sent.filter((f) => f.t === 'login').length;
  assert.ok(expiringLogins <= 2, 'no retry loop with the expired token');
});

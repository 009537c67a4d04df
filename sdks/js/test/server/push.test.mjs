// logout removes the push binding, checked through what the server does with bindings: a
// PushType 2 broadcast pushes to every offline user that still has one, through a webhook the
// test stands up, and QueryBroadcastReport counts the devices it targeted.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import * as Herald from '../../dist/herald.mjs';
import { record } from '../support/fake.mjs';
import { freePort, startHerald, waitUntil } from '../support/herald.mjs';

const { ZIMConnectionState: S, ZIMConnectionEvent: E } = Herald;
// An app of its own, so no other test's bindings are counted.
const app = { appId: 777001, secret: 'b1a4c2d3e4f5a6b7c8d9e0f1a2b3c4d5' };
let server;
let webhook;
const pushes = [];

before(async () => {
  const port = await freePort();
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      pushes.push(JSON.parse(body));
      res.writeHead(200).end('{}');
    });
  });
  await new Promise((r) => webhook.listen(port, '127.0.0.1', r));
  server = await startHerald({ apps: [{ ...app, webhook: `http://127.0.0.1:${port}/offline-push` }] });
  await server.register('admin');
});

after(async () => {
  await server?.close();
  webhook?.close();
});

async function online(userIds) {
  const query = userIds.map((u) => `&UserId[]=${encodeURIComponent(u)}`).join('');
  const answer = await server.api('QueryUserOnlineState', undefined, { query });
  assert.equal(answer.Code, 0, JSON.stringify(answer));
  return Object.fromEntries(answer.Result.map((r) => [r.UserId, r.Status]));
}

test('logout removes the push binding; a client that only goes away keeps it', async () => {
  const make = () => Herald.create({ appID: app.appId, servers: [server.wsUrl], WebSocket });
  const leaving = make();
  const staying = make();
  const rec = record(leaving);
  await leaving.login('kate', { token: server.token('kate') });
  await staying.login('liam', { token: server.token('liam') });
  await leaving.setPushID('push-of-kate', 'webhook');
  await staying.setPushID('push-of-liam', 'webhook');

  await leaving.logout();
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.Success]);
  staying.destroy(); // the app is killed: no logout, so the binding stays
  leaving.destroy();
  await waitUntil('both users offline', async () => {
    const states = await online(['kate', 'liam']);
    return states.kate === 'Offline' && states.liam === 'Offline';
  });

  // PushType 2: offline users with a binding get a push, online users nothing.
  const messageId = await server.broadcast({ MessageBody: { Message: 'are you there?', ExtendedData: '' }, PushType: 2 });
  const report = await waitUntil('the push job to finish', async () => {
    const answer = await server.api('QueryBroadcastReport', { MessageId: messageId });
    return answer.OfflinePush?.State === 'done' && answer;
  });
  assert.equal(report.OfflinePush.Targeted, 1, JSON.stringify(report));
  assert.equal(report.OfflinePush.Sent, 1, JSON.stringify(report));
  const forThis = pushes.filter((p) => p.message_id === messageId);
  assert.deepEqual(forThis.map((p) => [p.user_id, p.push_id]), [['liam', 'push-of-liam']]);
  assert.equal(forThis[0].device_id, staying.deviceID);
});

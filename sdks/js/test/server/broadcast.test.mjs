// Against a real Herald: login with `herald token new` tokens, broadcasts through the signed
// server API, every ZIMMessage field, version gating, refusals, and several sessions of one user.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import * as Herald from '../../dist/herald.mjs';
import { record } from '../support/fake.mjs';
import { APP_ID, startHerald } from '../support/herald.mjs';

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

function client(options = {}) {
  const zim = Herald.create({ appID: APP_ID, servers: [server.wsUrl], WebSocket, ...options });
  instances.push(zim);
  return { zim, rec: record(zim) };
}

async function loggedIn(userID, options) {
  const c = client(options);
  await c.zim.login(userID, { token: server.token(userID) });
  return c;
}

/** Waits until `rec` has the message with this ID and returns it. */
function received(rec, messageID) {
  return rec.until(`message ${messageID}`, () => rec.messages.find((m) => m.messageID === messageID), 20_000);
}

test('a text broadcast arrives with every ZIMMessage field', async () => {
  const { zim, rec } = client();
  await zim.login('alice', { token: server.token('alice'), userName: 'Alice' });
  assert.deepEqual(rec.states, [[S.Connecting, E.ActiveLogin], [S.Connected, E.Success]]);

  const sentAt = Date.now();
  const messageID = await server.broadcast({ MessageBody: { Message: 'hello, everyone', ExtendedData: '{"k":"v"}' } });
  const message = await received(rec, messageID);
  assert.deepEqual(message, {
    messageID,
    senderUserID: 'admin',
    timestamp: message.timestamp,
    type: 1,
    message: 'hello, everyone',
    extendedData: '{"k":"v"}',
    subType: 0,
    isBroadcastMessage: true,
    isServerMessage: true,
  });
  assert.match(messageID, /^\d+$/);
  // The server's accept time, on this machine's clock: between the call and its arrival.
  assert.ok(message.timestamp >= sentAt - 1000 && message.timestamp <= Date.now() + 1000, `timestamp ${message.timestamp}`);
  assert.equal(rec.messages.length, 1);
});

test('a custom message (200 with SubMsgType) and a media message (11) arrive intact', async () => {
  const { rec } = await loggedIn('carol');
  const customID = await server.broadcast({
    MessageType: 200,
    SubMsgType: 17,
    MessageBody: { Message: 'custom payload ✓ with "quotes" and \\ backslash', ExtendedData: 'ext' },
  });
  const image = JSON.stringify({ fileDownloadUrl: 'https://cdn.example.com/a.png', width: 640, height: 480, name: 'a ✓.png' });
  const imageID = await server.broadcast({ MessageType: 11, MessageBody: { Message: image, ExtendedData: '' } });
  const custom = await received(rec, customID);
  assert.equal(custom.type, 200);
  assert.equal(custom.subType, 17);
  assert.equal(custom.message, 'custom payload ✓ with "quotes" and \\ backslash');
  assert.equal(custom.extendedData, 'ext');
  const media = await received(rec, imageID);
  assert.equal(media.type, 11);
  assert.equal(media.subType, 0);
  assert.equal(media.message, image, 'the Message JSON string exactly as the API received it');
  assert.deepEqual(JSON.parse(media.message), JSON.parse(image));
});

test('SDK-version gating: 2.9.0 gets no broadcast while 2.10.0 does', async () => {
  const old = await loggedIn('old-sdk', { sdkVersion: '2.9.0' });
  const current = await loggedIn('new-sdk', { sdkVersion: '2.10.0' });
  const messageID = await server.broadcast({ MessageBody: { Message: 'gated', ExtendedData: '' } });
  await received(current.rec, messageID);
  // A round trip on the old session after the broadcast went out: anything written to it before
  // would have arrived before this answer (one ordered socket).
  await old.zim.renewToken(server.token('old-sdk'));
  assert.deepEqual(old.rec.messages, []);
  assert.equal(old.zim.state, S.Connected, 'the old SDK stays logged in; it only gets no broadcasts');
});

test('a malformed sdkVersion is refused with 6000004 (close 4506)', async () => {
  const { zim, rec } = client({ sdkVersion: 'two' });
  await assert.rejects(zim.login('bad-version', { token: server.token('bad-version') }), {
    code: 6000004,
    message: /sdk_version/,
  });
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.KickedOut]);
});

test('a wrong token rejects with 6000103 and a message saying why', async () => {
  const { zim, rec } = client();
  const forged = server.token('mallory', { secret: '0'.repeat(32) });
  await assert.rejects(zim.login('mallory', { token: forged }), (e) => {
    assert.equal(e.code, 6000103);
    assert.ok(e.message.length > 0, 'the server says what was wrong');
    return true;
  });
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.TokenExpired]);
  // Someone else's token is just as wrong.
  await assert.rejects(zim.login('mallory', { token: server.token('alice') }), { code: 6000103 });
});

test('two instances of one user (default deviceIDs) both receive', async () => {
  const a = await loggedIn('dora');
  const b = await loggedIn('dora');
  assert.notEqual(a.zim.deviceID, b.zim.deviceID);
  const messageID = await server.broadcast({ MessageBody: { Message: 'to both', ExtendedData: '' } });
  await received(a.rec, messageID);
  await received(b.rec, messageID);
  assert.equal(a.zim.state, S.Connected);
  assert.equal(b.zim.state, S.Connected, 'neither replaced the other');
});

test("the sender's own sessions receive its broadcast; logging in registered an unknown user", async () => {
  const { rec } = await loggedIn('eve-sender');
  // eve-sender was never registered through the API: the login did it, so eve can send.
  const messageID = await server.broadcast({ FromUserId: 'eve-sender', MessageBody: { Message: 'mine', ExtendedData: '' } });
  const message = await received(rec, messageID);
  assert.equal(message.senderUserID, 'eve-sender');
});

test('a second login with the same deviceID replaces the first: KickedOut, no reconnect', async () => {
  const first = await loggedIn('frank', { deviceID: 'frank-phone' });
  await loggedIn('frank', { deviceID: 'frank-phone' });
  await first.rec.state(S.Disconnected, E.KickedOut, 20_000);
  const [, data] = first.rec.events.filter(([k]) => k === 'state').at(-1);
  assert.equal(data.extendedData.closeCode, 4507);
});

// The state machine against a scripted fake socket: every close code, answer and drop, with
// backoff waits of zero so reconnects happen at once. No network, no timing claims.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import * as Herald from '../../dist/herald.mjs';
import { FakeServer, record } from '../support/fake.mjs';

const { ZIMConnectionState: S, ZIMConnectionEvent: E } = Herald;
const TOKEN = '04token';

// Every instance is destroyed after its test: a live heartbeat timer would keep the process up.
const instances = [];
const realCreate = Herald.create;
const create = (options) => {
  const zim = realCreate(options);
  instances.push(zim);
  return zim;
};
afterEach(() => instances.splice(0).forEach((zim) => zim.destroy()));

function setup(options = {}) {
  const server = new FakeServer();
  const zim = create({
    appID: 1234567890,
    servers: ['ws://a.test/ws'],
    WebSocket: server.WebSocket,
    reconnect: { initialDelayMs: 0, maxDelayMs: 0 },
    ...options,
  });
  return { server, zim, rec: record(zim) };
}

async function loggedIn(options) {
  const t = setup(options);
  await t.zim.login('alice', { token: TOKEN });
  return t;
}

/** Closes the current socket from the server side and waits for the SDK's reaction. */
async function dropAndReconnect({ server, rec }, code = 4000) {
  const before = server.sockets.length;
  server.last.serverClose(code, 'test');
  await rec.state(S.Connected, E.Success);
  assert.equal(server.sockets.length, before + 1);
}

test('bad arguments are refused at once with 6000001 and no socket is opened', async () => {
  const server = new FakeServer();
  const WebSocket = server.WebSocket;
  const bad = [
    [{ servers: ['ws://a/ws'], WebSocket }, /appID is missing/],
    [{ appID: '123', servers: ['ws://a/ws'], WebSocket }, /appID must be an integer/],
    [{ appID: 0, servers: ['ws://a/ws'], WebSocket }, /appID must be an integer/],
    [{ appID: 1, servers: [], WebSocket }, /servers is empty/],
    [{ appID: 1, servers: ['http://a/ws'], WebSocket }, /not a ws:\/\/ or wss:\/\/ URL/],
    [{ appID: 1, servers: ['ws://a/ws'] }, /no global WebSocket here; pass one/],
    [{ appID: 1, servers: ['ws://a/ws'], WebSocket, deviceID: 'x'.repeat(65) }, /deviceID must be 1 to 64 bytes/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => create(options), (e) => e.code === 6000001 && message.test(e.message), JSON.stringify(options));
  }
  const zim = create({ appID: 1, servers: ['ws://a/ws'], WebSocket });
  const rec = record(zim);
  const calls = [
    [() => zim.login('', { token: TOKEN }), /userID is empty/],
    [() => zim.login(undefined, { token: TOKEN }), /userID is empty/],
    [() => zim.login('x'.repeat(33), { token: TOKEN }), /33 bytes; at most 32/],
    [() => zim.login('alice', {}), /no token/],
    [() => zim.login('alice', { token: '' }), /no token/],
    [() => zim.login('alice'), /no token/],
    [() => zim.renewToken(''), /token is empty/],
    [() => zim.setPushID('', 'fcm'), /push ID is empty/],
    [() => zim.setPushID('p', 'gcm'), /unknown provider "gcm"/],
  ];
  for (const [call, message] of calls) {
    await assert.rejects(call(), (e) => e instanceof Herald.HeraldError && e.code === 6000001 && message.test(e.message));
  }
  // Calls that need a session say so.
  await assert.rejects(zim.renewToken('t'), { code: 6000002, message: /not logged in/ });
  await assert.rejects(zim.setPushID('p', 'fcm'), { code: 6000002 });
  await zim.logout(); // nothing to log out of: resolves
  assert.equal(server.sockets.length, 0, 'no socket was opened');
  assert.deepEqual(rec.states, [], 'no state changed');
});

test('login: Connecting/ActiveLogin then Connected/Success; the frame carries every required field', async () => {
  const { server, zim, rec } = setup({ deviceID: 'dev-1', platform: 'web', sdkVersion: '2.18.0' });
  const done = zim.login('alice', { token: TOKEN, userName: 'Alice' });
  assert.deepEqual(rec.states, [[S.Connecting, E.ActiveLogin]], 'Connecting is reported at once');
  await done;
  assert.deepEqual(rec.states, [[S.Connecting, E.ActiveLogin], [S.Connected, E.Success]]);
  assert.equal(zim.state, S.Connected);
  const socket = server.last;
  assert.equal(socket.url, 'ws://a.test/ws');
  assert.deepEqual(socket.protocols, ['herald.v1']);
  const login = socket.sent[0];
  assert.deepEqual(login, {
    t: 'login',
    id: login.id,
    app_id: 1234567890,
    user_id: 'alice',
    token: TOKEN,
    sdk_version: '2.18.0',
    platform: 'web',
    device_id: 'dev-1',
    user_name: 'Alice',
  });
  assert.equal(typeof login.id, 'number');
  assert.equal('since' in login, false, 'the first login of an instance sends no since');
  await assert.rejects(zim.login('alice', { token: TOKEN }), { code: 6000002, message: /already logged in/ });
});

test('defaults: platform web, an SDK version that receives broadcasts, a deviceID per instance without localStorage', async () => {
  const a = await loggedIn();
  const b = await loggedIn();
  const [fa, fb] = [a.server.last.sent[0], b.server.last.sent[0]];
  assert.equal(fa.platform, 'web');
  assert.equal(fa.sdk_version, Herald.DEFAULT_SDK_VERSION);
  assert.match(fa.device_id, /^js-[0-9a-f]{32}$/);
  assert.notEqual(fa.device_id, fb.device_id, 'two instances must not replace each other');
  assert.equal(a.zim.deviceID, fa.device_id);
});

test('deviceID is kept in localStorage where there is one', () => {
  const store = new Map();
  globalThis.localStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  try {
    const { WebSocket } = new FakeServer();
    const first = create({ appID: 1, servers: 'ws://a/ws', WebSocket });
    const second = create({ appID: 1, servers: 'ws://a/ws', WebSocket });
    assert.equal(first.deviceID, second.deviceID);
    assert.equal(store.get('herald.deviceID'), first.deviceID);
  } finally {
    delete globalThis.localStorage;
  }
});

test('login with since sends it and drops broadcasts up to it', async () => {
  const { server, zim, rec } = setup();
  await zim.login('alice', { token: TOKEN, since: '1000' });
  assert.equal(server.last.sent[0].since, '1000');
  server.last.serverSend({ t: 'bcast', msg: { messageID: '999', message: 'old' } });
  server.last.serverSend({ t: 'bcast', msg: { messageID: '1001', message: 'new' } });
  await rec.until('a message', () => rec.messages.length === 1);
  assert.equal(rec.messages[0].messageID, '1001');
});

test('frames in the same read as login_ok are delivered, after Connected', async () => {
  const { server, zim, rec } = setup();
  server.onLogin = (socket, frame) => {
    socket.serverSend({ t: 'login_ok', id: frame.id, session_id: '1', heartbeat_ms: 30000, timeout_ms: 90000, token_expire: 1, server_time_ms: 0 });
    socket.serverSend({ t: 'token_will_expire', seconds: 20 });
    socket.serverSend({ t: 'bcast', msg: { messageID: '7', message: 'replayed' } });
  };
  await zim.login('alice', { token: TOKEN });
  await rec.until('both frames', () => rec.events.length === 4);
  assert.deepEqual(rec.events.map(([k]) => k), ['state', 'state', 'tokenWillExpire', 'message']);
});

test('a transient close reconnects; the re-login sends since and surfaces recovered; replays are dropped', async () => {
  const t = await loggedIn();
  const { server, rec } = t;
  const msg = { messageID: '386505424368566272', senderUserID: 'admin', timestamp: 1, type: 1, message: 'hi', extendedData: '', subType: 0, isBroadcastMessage: true, isServerMessage: true };
  server.last.serverSend({ t: 'bcast', msg });
  server.last.serverSend({ t: 'bcast', msg: { ...msg, messageID: '386505424368566270' } });
  await rec.until('two messages', () => rec.messages.length === 2);
  server.loginOk = { recovered: true };
  await dropAndReconnect(t, 4000);
  const tail = rec.events.filter(([k]) => k === 'state').slice(-2).map(([, d]) => d);
  assert.deepEqual(tail[0], { state: S.Reconnecting, event: E.LoginInterrupted, extendedData: { closeCode: 4000, reason: 'test' } });
  assert.deepEqual(tail[1], { state: S.Connected, event: E.Success, extendedData: { recovered: true } });
  const relogin = server.last.sent[0];
  assert.equal(relogin.t, 'login');
  assert.equal(relogin.since, '386505424368566272', 'since is the newest delivered ID');
  // The server replays what it thinks we missed: the app sees each ID once.
  server.last.serverSend({ t: 'bcast', msg });
  server.last.serverSend({ t: 'bcast', msg: { ...msg, messageID: '386505424368566273' } });
  await rec.until('the new message', () => rec.messages.length === 3);
  assert.deepEqual(rec.messages.map((m) => m.messageID), ['386505424368566272', '386505424368566270', '386505424368566273']);
});

test('every transient cause reconnects: 4000-4499, 1001, 1006', async () => {
  const t = await loggedIn();
  for (const code of [4000, 4001, 4002, 4003, 4004, 4005, 4499, 1001, 1006]) {
    await dropAndReconnect(t, code);
  }
  assert.equal(t.rec.states.filter(([s]) => s === S.Reconnecting).length, 9);
});

const terminal = [
  [4502, E.TokenExpired, 6000106],
  [4501, E.TokenExpired, 6000103],
  [4507, E.KickedOut, 6000009],
  [4504, E.KickedOut, 6000003],
  [4506, E.KickedOut, 6000004],
  [4503, E.KickedOut, 6000002],
  [4500, E.KickedOut, 6000001],
  [4999, E.KickedOut, 6000009],
  [1000, E.KickedOut, 6000009],
];
for (const [closeCode, event, code] of terminal) {
  test(`close ${closeCode} is terminal: Disconnected with event ${event}, no reconnect, pending calls rejected`, async () => {
    const { server, zim, rec } = await loggedIn();
    server.onLogin = () => {}; // a new login would hang here; there must be none
    const waiting = zim.setPushID('p', 'fcm');
    await server.frame(server.last, 'set_push_id');
    server.last.serverClose(closeCode, 'why');
    await rec.state(S.Disconnected, event);
    const [, data] = rec.events.filter(([k]) => k === 'state').at(-1);
    assert.equal(data.extendedData.code, code);
    assert.equal(data.extendedData.closeCode, closeCode);
    await assert.rejects(waiting, { code, closeCode });
    assert.equal(server.sockets.length, 1, 'no reconnect');
    assert.equal(zim.state, S.Disconnected);
    assert.ok(!rec.states.some(([s]) => s === S.Reconnecting));
  });
}

test('an error frame before a terminal close explains it (and reaches the error event)', async () => {
  const { server, rec } = await loggedIn();
  server.last.serverSend({ t: 'error', id: 0, code: 6000106, message: 'token expired at 123' });
  server.last.serverClose(4502, 'token expired');
  await rec.state(S.Disconnected, E.TokenExpired);
  assert.deepEqual(rec.errors, [{ code: 6000106, message: 'token expired at 123' }]);
  const [, data] = rec.events.filter(([k]) => k === 'state').at(-1);
  assert.deepEqual(data.extendedData, { code: 6000106, message: 'token expired at 123' });
});

test('a refused re-login ends the session: the error event, then Disconnected/TokenExpired', async () => {
  const { server, rec } = await loggedIn();
  server.onLogin = (socket, frame) => {
    socket.serverSend({ t: 'error', id: frame.id, code: 6000106, message: 'the token expired' });
    socket.serverClose(4502, 'token expired');
  };
  server.last.serverClose(4000, 'restart');
  await rec.state(S.Disconnected, E.TokenExpired);
  assert.deepEqual(rec.states.slice(-2), [[S.Reconnecting, E.LoginInterrupted], [S.Disconnected, E.TokenExpired]]);
  assert.deepEqual(rec.errors, [{ code: 6000106, message: 'the token expired' }]);
  assert.equal(server.sockets.length, 2);
});

test('the first login: a refusal rejects with the server code and message', async () => {
  const { server, zim, rec } = setup();
  server.onLogin = (socket, frame) => {
    socket.serverSend({ t: 'error', id: frame.id, code: 6000103, message: 'token invalid: wrong secret' });
    socket.serverClose(4501, 'login failed');
  };
  await assert.rejects(zim.login('alice', { token: 'bad' }), { code: 6000103, message: 'token invalid: wrong secret' });
  assert.deepEqual(rec.states, [[S.Connecting, E.ActiveLogin], [S.Disconnected, E.TokenExpired]]);
  assert.deepEqual(rec.errors, [], 'the rejection carries it; no error event');
});

test('a 4501 close after a field error (6000004) is KickedOut, not TokenExpired', async () => {
  const { server, zim, rec } = setup({ deviceID: 'd' });
  server.onLogin = (socket, frame) => {
    socket.serverSend({ t: 'error', id: frame.id, code: 6000004, message: 'user_name is 300 bytes; at most 256' });
    socket.serverClose(4501, 'login failed');
  };
  await assert.rejects(zim.login('alice', { token: TOKEN, userName: 'x'.repeat(300) }), { code: 6000004 });
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.KickedOut]);
});

test('the first login walks the servers; none reachable rejects with 6000009 and LoginTimeout', async () => {
  const server = new FakeServer();
  server.mode = 'refuse';
  const zim = create({ appID: 1, servers: ['ws://a/ws', 'ws://b/ws'], WebSocket: server.WebSocket });
  const rec = record(zim);
  await assert.rejects(zim.login('alice', { token: TOKEN }), { code: 6000009, message: /any of 2 server/ });
  assert.deepEqual(server.sockets.map((s) => s.url), ['ws://a/ws', 'ws://b/ws']);
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.LoginTimeout]);
  // The first server still refuses, the second takes the login.
  server.sockets.length = 0;
  server.mode = (url) => (url === 'ws://a/ws' ? 'refuse' : 'accept');
  await zim.login('alice', { token: TOKEN });
  assert.deepEqual(server.sockets.map((s) => s.url), ['ws://a/ws', 'ws://b/ws']);
});

test('reconnects move on to the next server', async () => {
  const t = setup({ servers: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'] });
  await t.zim.login('alice', { token: TOKEN });
  await dropAndReconnect(t);
  await dropAndReconnect(t);
  await dropAndReconnect(t);
  assert.deepEqual(t.server.sockets.map((s) => s.url), ['ws://a/ws', 'ws://b/ws', 'ws://c/ws', 'ws://a/ws']);
});

test('reconnect attempts run out after maxAttempts: Disconnected/LoginTimeout', async () => {
  const { server, rec } = await loggedIn({ reconnect: { initialDelayMs: 0, maxDelayMs: 0, maxAttempts: 3 } });
  server.mode = 'refuse';
  server.last.serverClose(1006);
  await rec.state(S.Disconnected, E.LoginTimeout);
  assert.equal(server.sockets.length, 1 + 3);
});

test('heartbeat: pings at the advertised interval, pongs keep it alive; a silent server counts as gone', async () => {
  const { server, zim, rec } = setup();
  server.loginOk = { heartbeat_ms: 100, timeout_ms: 150 }; // silence limit: two heartbeats, 200 ms
  server.autoPong = true;
  // The sockets after the first get the default 30 s heartbeat: one reconnect to observe.
  zim.on('connectionStateChanged', (_z, { state }) => state === S.Reconnecting && (server.loginOk = {}));
  await zim.login('alice', { token: TOKEN });
  const first = server.last;
  // Five answered pings span more than the silence limit: the answers are what kept it alive.
  await server.frame(first, 'ping', 4);
  assert.ok(!rec.states.some(([state]) => state === S.Reconnecting));
  server.autoPong = false;
  // Reconnecting passes quickly (no backoff here): look for it, not for the latest state.
  const [, data] = await rec.until('Reconnecting', () =>
    rec.events.find(([k, d]) => k === 'state' && d.state === S.Reconnecting),
  );
  assert.equal(data.event, E.LoginInterrupted);
  assert.match(data.extendedData.reason, /server silent/);
  assert.equal(first.closedByClient, 1000, 'the dead socket is closed by the client');
  await rec.state(S.Connected, E.Success);
  await server.until('the second login', () => server.sockets.length === 2);
  assert.deepEqual(rec.states, [[S.Connecting, E.ActiveLogin], [S.Connected, E.Success], [S.Reconnecting, E.LoginInterrupted], [S.Connected, E.Success]]);
});

test('renewToken: the server acks, and re-logins use the newest token', async () => {
  const t = await loggedIn();
  const { server, zim } = t;
  const renewing = zim.renewToken('04new');
  const frame = await server.frame(server.last, 'renew_token');
  assert.equal(frame.token, '04new');
  server.last.serverSend({ t: 'ack', id: frame.id, token_expire: 2_100_000_000 });
  assert.deepEqual(await renewing, { token: '04new', tokenExpire: 2_100_000_000 });
  await dropAndReconnect(t);
  assert.equal(server.last.sent[0].token, '04new');
});

test('renewToken refused keeps the old token', async () => {
  const t = await loggedIn();
  const { server, zim } = t;
  const renewing = zim.renewToken('04short');
  const frame = await server.frame(server.last, 'renew_token');
  server.last.serverSend({ t: 'error', id: frame.id, code: 6000108, message: 'valid for 10 s; at least 30 s needed' });
  await assert.rejects(renewing, { code: 6000108, message: /at least 30 s/ });
  await dropAndReconnect(t);
  assert.equal(server.last.sent[0].token, TOKEN);
});

test('tokenWillExpire reaches the app as { second }', async () => {
  const { server, rec } = await loggedIn();
  server.last.serverSend({ t: 'token_will_expire', seconds: 29 });
  await rec.until('tokenWillExpire', () => rec.events.some(([k]) => k === 'tokenWillExpire'));
  assert.deepEqual(rec.events.find(([k]) => k === 'tokenWillExpire')[1], { second: 29 });
});

test('setPushID is sent again after every reconnect; calls made while reconnecting wait for the login', async () => {
  const t = await loggedIn();
  const { server, zim } = t;
  const setting = zim.setPushID('fcm-token-1', 'fcm');
  const frame = await server.frame(server.last, 'set_push_id');
  assert.deepEqual({ ...frame, id: 0 }, { t: 'set_push_id', id: 0, push_id: 'fcm-token-1', provider: 'fcm' });
  server.last.serverSend({ t: 'ack', id: frame.id });
  await setting;

  // Down, with the next login held back: a call now waits for it.
  server.onLogin = () => {};
  server.last.serverClose(4000);
  await t.rec.state(S.Reconnecting);
  await server.until('a login attempt', () => server.sockets.length === 2 && server.last.sent.length === 1);
  const later = zim.setPushID('fcm-token-2', 'fcm');
  const renewed = zim.renewToken('04newer');
  server.onLogin = undefined;
  const held = server.last;
  held.serverSend({ t: 'login_ok', id: held.sent[0].id, session_id: '2', heartbeat_ms: 30000, timeout_ms: 90000, token_expire: 5, server_time_ms: 0 });
  const again = await server.frame(held, 'set_push_id');
  assert.equal(again.push_id, 'fcm-token-2', 'the newest push ID');
  held.serverSend({ t: 'ack', id: again.id });
  await later;
  // The login in flight used the old token, so the new one goes as renew_token after it.
  const renew = await server.frame(held, 'renew_token');
  assert.equal(renew.token, '04newer');
  held.serverSend({ t: 'ack', id: renew.id, token_expire: 7 });
  assert.deepEqual(await renewed, { token: '04newer', tokenExpire: 7 });
});

test('logout: the logout frame, its ack, then Disconnected/Success', async () => {
  const { server, zim, rec } = await loggedIn();
  const out = zim.logout();
  const frame = await server.frame(server.last, 'logout');
  server.last.serverSend({ t: 'ack', id: frame.id });
  await out;
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.Success]);
  assert.equal(zim.state, S.Disconnected);
  // Logged out for good: a new login is allowed and starts fresh.
  await zim.login('bob', { token: TOKEN });
  assert.equal(server.last.sent[0].user_id, 'bob');
});

test('logout acknowledged only by the close 1000 still resolves', async () => {
  const { server, zim, rec } = await loggedIn();
  const out = zim.logout();
  await server.frame(server.last, 'logout');
  server.last.serverClose(1000, 'logged out');
  await out;
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.Success]);
});

test('logout while reconnecting skips the backoff, logs in and logs out there', async () => {
  const { server, zim, rec } = await loggedIn({ reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 } });
  server.last.serverClose(4000);
  await rec.state(S.Reconnecting);
  const out = zim.logout();
  await server.until('a second socket', () => server.sockets.length === 2);
  const frame = await server.frame(server.last, 'logout');
  server.last.serverSend({ t: 'ack', id: frame.id });
  await out;
  assert.deepEqual(rec.states.at(-1), [S.Disconnected, E.Success]);
});

test('logout during the first login cancels it', async () => {
  const { server, zim, rec } = setup();
  server.onLogin = () => {};
  const login = zim.login('alice', { token: TOKEN });
  await server.until('the login frame', () => server.last?.sent.length === 1);
  await zim.logout();
  await assert.rejects(login, { code: 6000009, message: /cancelled by logout/ });
  assert.deepEqual(rec.states, [[S.Connecting, E.ActiveLogin], [S.Disconnected, E.Success]]);
});

test('destroy closes without logout, rejects waiting calls and reports nothing more', async () => {
  const { server, zim, rec } = await loggedIn();
  const pending = zim.setPushID('p', 'fcm');
  await server.frame(server.last, 'set_push_id');
  const statesBefore = rec.states.length;
  zim.destroy();
  await assert.rejects(pending, { code: 6000002, message: /destroyed/ });
  assert.equal(server.last.closedByClient, 1000);
  assert.ok(!server.last.sent.some((f) => f.t === 'logout'), 'no logout: the push binding stays');
  assert.equal(rec.states.length, statesBefore);
  await assert.rejects(zim.login('alice', { token: TOKEN }), { code: 6000002 });
  assert.equal(Herald.ZIM.getInstance() === zim, false);
});

test('unknown frames and fields are ignored; a message gets exactly ZIM fields', async () => {
  const { server, rec } = await loggedIn();
  server.last.serverSend({ t: 'something_new', x: 1 });
  server.last.serverSend('not json');
  server.last.serverSend({ msg: { messageID: '5', extra: 1, type: 200, subType: 7 }, t: 'bcast' });
  await rec.until('the message', () => rec.messages.length === 1);
  assert.deepEqual(rec.messages[0], {
    messageID: '5',
    senderUserID: '',
    timestamp: 0,
    type: 200,
    message: '',
    extendedData: '',
    subType: 7,
    isBroadcastMessage: true,
    isServerMessage: true,
  });
});

test('a handler that throws does not break the SDK or the other handlers', async () => {
  const { server, zim, rec } = await loggedIn();
  // Where the runtime has reportError (browsers) the SDK reports there; a stand-in catches it.
  const uncaught = [];
  globalThis.reportError = (e) => uncaught.push(e);
  try {
    zim.on('broadcastMessageReceived', () => {
      throw new Error('app bug');
    });
    const seen = [];
    zim.on('broadcastMessageReceived', (_z, { message }) => seen.push(message.messageID));
    server.last.serverSend({ t: 'bcast', msg: { messageID: '1' } });
    server.last.serverSend({ t: 'bcast', msg: { messageID: '2' } });
    await rec.until('both messages', () => seen.length === 2 && rec.messages.length === 2);
    assert.deepEqual(uncaught.map((e) => e.message), ['app bug', 'app bug']);
  } finally {
    delete globalThis.reportError;
  }
});

test('the exports: ZIM numbers for states and events, create and ZIM.create', () => {
  assert.deepEqual(Herald.ZIMConnectionState, { Disconnected: 0, Connecting: 1, Connected: 2, Reconnecting: 3 });
  assert.deepEqual(Herald.ZIMConnectionEvent, {
    Success: 0,
    ActiveLogin: 1,
    LoginTimeout: 2,
    LoginInterrupted: 3,
    KickedOut: 4,
    TokenExpired: 5,
    Unregistered: 6,
  });
  assert.equal(typeof Herald.create, 'function');
  assert.equal(typeof Herald.ZIM.create, 'function');
});

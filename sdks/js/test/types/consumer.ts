// Compiled (not run) against dist/herald.d.ts, through the package's exports, by test/unit/types.test.mjs: the API
// names, as an app written in strict TypeScript would use them.
import * as Herald from 'herald-sdk';
import type { ZIMMessage } from 'herald-sdk';

declare const token: string;
declare const WebSocketFromWs: Herald.WebSocketConstructorLike;

export async function app(): Promise<void> {
  const zim: Herald.ZIM = Herald.create({ appID: 1234567890, servers: ['wss://chat.example.com/ws'], WebSocket: WebSocketFromWs });
  zim.on('broadcastMessageReceived', (_zim, { message }) => {
    const m: ZIMMessage = message;
    const fields: [string, string, number, number, string, string, number, boolean, boolean] = [
      m.messageID, m.senderUserID, m.timestamp, m.type, m.message, m.extendedData, m.subType, m.isBroadcastMessage, m.isServerMessage,
    ];
    void fields;
  });
  zim.on('connectionStateChanged', (_zim, { state, event, extendedData }) => {
    if (state === Herald.ZIMConnectionState.Disconnected && event === Herald.ZIMConnectionEvent.TokenExpired) void extendedData.code;
  });
  zim.on('tokenWillExpire', (_zim, { second }) => void (second + 1));
  zim.on('error', (_zim, { code, message }) => void `${code} ${message}`);
  await zim.login('alice', { token, userName: 'Alice' });
  await zim.login({ userID: 'alice', userName: 'Alice' }, token);
  const renewed: { token: string; tokenExpire: number } = await zim.renewToken(token);
  void renewed;
  await zim.setPushID('push-id', 'fcm');
  await zim.logout();
  zim.destroy();
  try {
    await zim.login('', { token });
  } catch (e) {
    if (e instanceof Herald.HeraldError) void (e.code === Herald.HeraldErrorCode.InvalidParameter);
  }
}

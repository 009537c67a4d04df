// Node: log in and print each broadcast as a JSON line. Node 20 has no global WebSocket, so the
// `ws` package's is passed in (npm install ws).
//
//   node examples/node/listen.mjs ws://127.0.0.1:8080/ws 1234567890 alice "$(herald token new …)"

import WebSocket from 'ws';
import * as Herald from '../../dist/herald.mjs';

const [url, appID, userID, token] = process.argv.slice(2);
if (!token) {
  console.error('usage: node examples/node/listen.mjs WS_URL APP_ID USER_ID TOKEN');
  process.exit(2);
}

const zim = Herald.create({ appID: Number(appID), servers: [url], WebSocket });
zim.on('connectionStateChanged', (_zim, { state, event, extendedData }) => {
  console.error(`state ${state} event ${event} ${JSON.stringify(extendedData)}`);
  if (state === Herald.ZIMConnectionState.Disconnected) process.exit(1);
});
zim.on('broadcastMessageReceived', (_zim, { message }) => console.log(JSON.stringify(message)));
zim.on('tokenWillExpire', (_zim, { second }) => console.error(`token expires in ${second} s: call renewToken`));

try {
  await zim.login(userID, { token });
} catch (e) {
  console.error(`login failed: ${e.code} ${e.message}`);
  process.exit(1);
}
process.on('SIGINT', async () => {
  await zim.logout().catch(() => {});
  process.exit(0);
});

// Herald's JavaScript/TypeScript SDK, shaped like ZEGOCLOUD ZIM's Web SDK: log in with a Token04,
// stay connected, receive `SendMessageToAllUsers` broadcasts, report a push ID.
//
// Layout: the app holds a `ZIM` (client.ts: argument checks, handlers) created by `create`.
// Its `Session` (session.ts) is the state machine: it pings, answers requests, turns server
// frames into events (events.ts), drops repeated message IDs (dedup.ts) and reconnects with
// jittered exponential backoff (backoff.ts) across the servers. One socket and one login attempt
// is connection.ts; the wire frames and close codes are protocol.ts (docs/protocol.md is the
// contract); failures are errors.ts; public shapes and ZIM's enums are types.ts.

import { ZIM } from './client.js';
import type { ZIMAppConfig } from './types.js';

/** `Herald.create({ appID, servers })`: a new client (ZIM's `ZIM.create`). */
export function create(config: ZIMAppConfig): ZIM {
  return ZIM.create(config);
}

export { ZIM, DEFAULT_SDK_VERSION, VERSION } from './client.js';
export { HeraldError, HeraldErrorCode } from './errors.js';
export { ZIMConnectionEvent, ZIMConnectionState, ZIMMessageType } from './types.js';
export { CloseCode } from './protocol.js';
export type {
  WebSocketConstructorLike,
  WebSocketLike,
  ZIMAppConfig,
  ZIMConnectionStateChangedResult,
  ZIMLoginConfig,
  ZIMMessage,
  ZIMPushProvider,
  ZIMReconnectPolicy,
  ZIMTokenRenewedResult,
  ZIMUserInfo,
} from './types.js';
export type { ZIMEventData, ZIMEventHandler, ZIMEventName } from './events.js';

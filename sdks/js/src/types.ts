// The public shapes: ZIM's enums and message, and the options of `create` and `login`.

/** ZIM's `ZIMConnectionState`; the numbers are ZIM's. */
export const ZIMConnectionState = {
  Disconnected: 0,
  Connecting: 1,
  Connected: 2,
  Reconnecting: 3,
} as const;
export type ZIMConnectionState = (typeof ZIMConnectionState)[keyof typeof ZIMConnectionState];

/**
 * ZIM's `ZIMConnectionEvent`: why the state changed; the numbers are ZIM's. How Herald's close
 * codes map to these is in `protocol.ts` and the README.
 */
export const ZIMConnectionEvent = {
  Success: 0,
  ActiveLogin: 1,
  LoginTimeout: 2,
  LoginInterrupted: 3,
  KickedOut: 4,
  TokenExpired: 5,
  /** ZIM's event for a deleted user. Herald has no close code for it, so it is never emitted. */
  Unregistered: 6,
} as const;
export type ZIMConnectionEvent = (typeof ZIMConnectionEvent)[keyof typeof ZIMConnectionEvent];

/** The message types a Herald broadcast can carry (ZIM's numbers). */
export const ZIMMessageType = {
  Text: 1,
  Image: 11,
  File: 12,
  Audio: 13,
  Video: 14,
  Custom: 200,
} as const;
export type ZIMMessageType = (typeof ZIMMessageType)[keyof typeof ZIMMessageType];

/** A broadcast as ZIM's `ZIMMessage` presents it, with ZIM's field names. */
export interface ZIMMessage {
  /** Unique 64-bit id as a decimal string (a JS number would lose precision). */
  messageID: string;
  senderUserID: string;
  /** The server's accept time, Unix milliseconds. */
  timestamp: number;
  /** 1 text, 11 image, 12 file, 13 audio, 14 video, 200 custom. */
  type: number;
  /** The text; for media types the API's `Message` JSON string exactly as the server received it. */
  message: string;
  extendedData: string;
  /** `SubMsgType` for custom messages (type 200), otherwise 0. */
  subType: number;
  isBroadcastMessage: boolean;
  isServerMessage: boolean;
}

/** Push providers the server accepts in `setPushID`. */
export type ZIMPushProvider = 'fcm' | 'apns' | 'webhook';

/** The part of the WebSocket API the SDK uses: browsers', React Native's and the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket constructor: the global one, or e.g. `WebSocket` from the `ws` package in Node. */
export type WebSocketConstructorLike = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** How reconnects are spaced and when they give up (Herald's addition; ZIM has no such option). */
export interface ZIMReconnectPolicy {
  /** Upper bound of the first wait, ms. Default 500. */
  initialDelayMs?: number;
  /** Upper bound of any wait, ms. Default 30000. */
  maxDelayMs?: number;
  /** Growth of the bound per failed attempt. Default 2. */
  factor?: number;
  /**
   * Failed attempts in a row after which the SDK gives up and reports Disconnected/LoginTimeout.
   * Default: never give up, as ZIM does.
   */
  maxAttempts?: number;
}

/** Options of `create`. */
export interface ZIMAppConfig {
  /** The ZIM AppID the tokens are made for: an integer from 1 to 2^32 - 1. */
  appID: number;
  /** Gateway URLs (`wss://host/ws`), tried in turn; reconnects walk on to the next one. */
  servers: string | string[];
  /** The WebSocket constructor. Default: the global `WebSocket` (browsers, React Native). */
  WebSocket?: WebSocketConstructorLike;
  /**
   * Identifies this device to the server (≤ 64 bytes): a second login with the same deviceID
   * replaces the first, and the push binding is keyed on it. Default: a random id kept in
   * `localStorage` where there is one, else a new random id per instance.
   */
  deviceID?: string;
  /** Free text reported at login. Default `web`. */
  platform?: string;
  /** The ZIM SDK version claimed at login. Default `2.18.0`; broadcasts need 2.10.0 or later. */
  sdkVersion?: string;
  /** Time one connection attempt (connect, upgrade, login) may take, ms. Default 10000. */
  loginTimeoutMs?: number;
  reconnect?: ZIMReconnectPolicy;
  /** Recent message IDs remembered to drop a broadcast delivered twice. Default 1024. */
  dedupCapacity?: number;
}

/** Options of `login` (ZIM's `ZIMLoginConfig`, plus `since`). */
export interface ZIMLoginConfig {
  /** Token04 from the app's backend. */
  token: string;
  /** Display name sent with the login (≤ 256 bytes). */
  userName?: string;
  /**
   * The `messageID` of the newest broadcast this app already has (e.g. stored before a page
   * reload). Sent with this login so a server that offers recovery replays what came after it;
   * broadcasts up to it are dropped as already delivered.
   */
  since?: string;
}

/** ZIM's legacy `login(userInfo, token)` first argument. */
export interface ZIMUserInfo {
  userID: string;
  userName?: string;
}

/** What `renewToken` resolves to: ZIM's `ZIMTokenRenewedResult`, plus the new expiry. */
export interface ZIMTokenRenewedResult {
  token: string;
  /** The token's expiry as the server read it, Unix seconds. */
  tokenExpire: number;
}

/** `connectionStateChanged`'s data. */
export interface ZIMConnectionStateChangedResult {
  state: ZIMConnectionState;
  event: ZIMConnectionEvent;
  /**
   * A plain object: `{}` for plain transitions; `{ code, reason }` with the WebSocket close code
   * for a close; `{ code, message }` with the server's error when it refused a (re-)login;
   * `{ reason }` for a network failure; `{ recovered }` on a reconnect when the server said
   * whether it replayed what was missed.
   */
  extendedData: Record<string, unknown>;
}

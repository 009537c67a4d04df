// Herald's wire protocol (docs/protocol.md): the JSON frames, the close codes, and what each
// close means to a ZIM app. The Rust twin is crates/herald-proto (frame.rs, close.rs, code.rs).

import { HeraldError, HeraldErrorCode } from './errors.js';
import { ZIMConnectionEvent, type ZIMMessage } from './types.js';

/** The subprotocol the client asks for; the server echoes it. */
export const SUBPROTOCOL = 'herald.v1';

/** WebSocket close codes. 1000 and 4500–4999 are terminal; everything else is worth a reconnect. */
export const CloseCode = {
  Normal: 1000,
  Shutdown: 4000,
  HeartbeatTimeout: 4001,
  SlowConsumer: 4002,
  Internal: 4003,
  LoginTimeout: 4004,
  Flood: 4005,
  BadFrame: 4500,
  LoginFailed: 4501,
  TokenExpired: 4502,
  NotLoggedIn: 4503,
  TooManySessions: 4504,
  FrameTooLarge: 4505,
  UnsupportedVersion: 4506,
  Replaced: 4507,
} as const;

export function isTerminal(code: number): boolean {
  return code === CloseCode.Normal || (code >= 4500 && code <= 4999);
}

// --- client → server ---

export interface LoginFrame {
  t: 'login';
  id: number;
  app_id: number;
  user_id: string;
  token: string;
  sdk_version: string;
  platform: string;
  device_id: string;
  user_name?: string;
  /** Recovery: the newest broadcast's messageID the client has delivered. */
  since?: string;
}

export type ClientFrame =
  | LoginFrame
  | { t: 'ping'; id: number }
  | { t: 'set_push_id'; id: number; push_id: string; provider: string }
  | { t: 'renew_token'; id: number; token: string }
  | { t: 'logout'; id: number };

// --- server → client ---

export interface LoginOkFrame {
  t: 'login_ok';
  id: number;
  session_id: string;
  heartbeat_ms: number;
  timeout_ms: number;
  token_expire: number;
  server_time_ms: number;
  /** Recovery: whether the broadcasts after `since` were replayed in full. */
  recovered?: boolean;
}

export type ServerFrame =
  | LoginOkFrame
  | { t: 'pong'; id: number }
  | { t: 'ack'; id: number; token_expire?: number }
  | { t: 'error'; id: number; code: number; message: string }
  | { t: 'token_will_expire'; seconds: number }
  | { t: 'bcast'; msg: ZIMMessage };

type Json = Record<string, unknown>;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

/**
 * Parses one server frame, checking the fields the SDK relies on. Anything else (a newer frame
 * type, a broken frame) is `undefined` and ignored, so an older SDK survives a newer server.
 */
export function decodeServerFrame(text: string): ServerFrame | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const f = v as Json;
  switch (f.t) {
    case 'login_ok':
      if (!isNum(f.id) || !isStr(f.session_id) || !isNum(f.heartbeat_ms) || !isNum(f.timeout_ms)) return undefined;
      return {
        t: 'login_ok',
        id: f.id,
        session_id: f.session_id,
        heartbeat_ms: f.heartbeat_ms,
        timeout_ms: f.timeout_ms,
        token_expire: isNum(f.token_expire) ? f.token_expire : 0,
        server_time_ms: isNum(f.server_time_ms) ? f.server_time_ms : 0,
        ...(typeof f.recovered === 'boolean' ? { recovered: f.recovered } : {}),
      };
    case 'pong':
      return isNum(f.id) ? { t: 'pong', id: f.id } : undefined;
    case 'ack':
      if (!isNum(f.id)) return undefined;
      return isNum(f.token_expire) ? { t: 'ack', id: f.id, token_expire: f.token_expire } : { t: 'ack', id: f.id };
    case 'error':
      return {
        t: 'error',
        id: isNum(f.id) ? f.id : 0,
        code: isNum(f.code) ? f.code : 0,
        message: isStr(f.message) ? f.message : '',
      };
    case 'token_will_expire':
      return isNum(f.seconds) ? { t: 'token_will_expire', seconds: f.seconds } : undefined;
    case 'bcast': {
      const msg = decodeMessage(f.msg);
      return msg && { t: 'bcast', msg };
    }
    default:
      return undefined;
  }
}

/** A ZIMMessage with exactly ZIM's fields; defaults for any the server left out. */
function decodeMessage(v: unknown): ZIMMessage | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Json;
  if (!isStr(m.messageID) || m.messageID === '') return undefined;
  return {
    messageID: m.messageID,
    senderUserID: isStr(m.senderUserID) ? m.senderUserID : '',
    timestamp: isNum(m.timestamp) ? m.timestamp : 0,
    type: isNum(m.type) ? m.type : 0,
    message: isStr(m.message) ? m.message : '',
    extendedData: isStr(m.extendedData) ? m.extendedData : '',
    subType: isNum(m.subType) ? m.subType : 0,
    isBroadcastMessage: m.isBroadcastMessage !== false,
    isServerMessage: m.isServerMessage !== false,
  };
}

const TOKEN_CODES: ReadonlySet<number> = new Set([
  HeraldErrorCode.AppIDInvalid,
  HeraldErrorCode.TokenInvalid,
  HeraldErrorCode.TokenExpired,
  HeraldErrorCode.TokenVersion,
  HeraldErrorCode.TokenTooShort,
]);

/**
 * The event to report when a connection ends for good, or `undefined` to reconnect.
 *
 * Token problems (a token error frame before the close, else 4501 or 4502) are `TokenExpired`:
 * the app's remedy is the same, fetch a new token and log in again. Any other terminal close means
 * the server will not take this client back as it is: `KickedOut` (4507, a newer login from this
 * device, is ZIM's own case of it).
 */
export function terminalEvent(closeCode: number, refusal?: HeraldError): ZIMConnectionEvent | undefined {
  if (!isTerminal(closeCode)) return undefined;
  // The server also closes 4501 for a bad user_id, device_id or user_name (6000004): the error
  // frame, when there is one, says which it was.
  if (refusal) return refusalEvent(refusal);
  if (closeCode === CloseCode.LoginFailed || closeCode === CloseCode.TokenExpired) return ZIMConnectionEvent.TokenExpired;
  return ZIMConnectionEvent.KickedOut;
}

/** The event for an `error` answer to `login` when no close code says more. */
export function refusalEvent(refusal: HeraldError): ZIMConnectionEvent {
  return TOKEN_CODES.has(refusal.code) ? ZIMConnectionEvent.TokenExpired : ZIMConnectionEvent.KickedOut;
}

const CLOSE_ERRORS: Readonly<Record<number, [number, string]>> = {
  [CloseCode.Normal]: [HeraldErrorCode.Disconnected, 'the server ended the session'],
  [CloseCode.BadFrame]: [HeraldErrorCode.InvalidParameter, 'the server could not parse a frame'],
  [CloseCode.LoginFailed]: [HeraldErrorCode.TokenInvalid, 'login failed: invalid token or wrong AppID'],
  [CloseCode.TokenExpired]: [HeraldErrorCode.TokenExpired, 'the token expired; log in again with a new one'],
  [CloseCode.NotLoggedIn]: [HeraldErrorCode.WrongState, 'a frame before login, or a second login'],
  [CloseCode.TooManySessions]: [HeraldErrorCode.TooManySessions, 'too many sessions for this user'],
  [CloseCode.FrameTooLarge]: [HeraldErrorCode.InvalidParameter, 'a frame was larger than the server accepts'],
  [CloseCode.UnsupportedVersion]: [HeraldErrorCode.FieldInvalid, 'the server refused this protocol or SDK version'],
  [CloseCode.Replaced]: [HeraldErrorCode.Disconnected, 'replaced by a newer login from the same deviceID'],
};

/** The error a close stands for when no `error` frame explained it. */
export function closeError(code: number, reason: string): HeraldError {
  const [zimCode, text] = CLOSE_ERRORS[code] ?? [HeraldErrorCode.Disconnected, 'connection closed'];
  return new HeraldError(zimCode, `${text} (close ${code}${reason ? `: ${reason}` : ''})`, code);
}

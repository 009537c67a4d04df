// The SDK's one error type: a ZIM error number and a message that says what was wrong.

/**
 * Error numbers the SDK rejects with. The server's come from its `error` frames
 * (docs/protocol.md); the SDK's own reuse ZIM's general codes with ZIM's meaning.
 */
export const HeraldErrorCode = {
  /** A bad argument (ZIM: "the parameter is invalid"); from the server: a malformed frame. */
  InvalidParameter: 6000001,
  /** The call does not fit the state: not logged in, already logged in, or destroyed. */
  WrongState: 6000002,
  /** Server: the user already has the maximum number of sessions. */
  TooManySessions: 6000003,
  /** Server: a field is invalid (too long, unknown push provider, malformed `sdk_version`). */
  FieldInvalid: 6000004,
  /** The connection was lost or never made: no server reachable, login timed out, session ended. */
  Disconnected: 6000009,
  /** Server: the token's AppID does not match, or the AppID is unknown. */
  AppIDInvalid: 6000101,
  /** Server: the token is invalid (bad base64, truncated, wrong secret, user mismatch). */
  TokenInvalid: 6000103,
  /** Server: the token has expired. */
  TokenExpired: 6000106,
  /** Server: the token is not a Token04. */
  TokenVersion: 6000107,
  /** Server: the new token is valid for less than 30 s (`renewToken`). */
  TokenTooShort: 6000108,
  /** Server: its storage failed; try again. */
  ServerStorage: 105001,
} as const;

/** ZIM's `ZIMError` shape: `{ code, message }`, as an `Error` so it carries a stack. */
export class HeraldError extends Error {
  readonly code: number;
  /** The WebSocket close code, when a close caused this error. */
  readonly closeCode: number | undefined;

  constructor(code: number, message: string, closeCode?: number) {
    super(message);
    this.name = 'HeraldError';
    this.code = code;
    this.closeCode = closeCode;
  }

  /** `{ code, message }` (and `closeCode`), for logs and `extendedData`. */
  toJSON(): { code: number; message: string; closeCode?: number } {
    const json: { code: number; message: string; closeCode?: number } = { code: this.code, message: this.message };
    if (this.closeCode !== undefined) json.closeCode = this.closeCode;
    return json;
  }
}

/** A bad argument: rejected before anything touches the network. */
export function invalid(message: string): HeraldError {
  return new HeraldError(HeraldErrorCode.InvalidParameter, message);
}

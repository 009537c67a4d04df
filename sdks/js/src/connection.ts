// One WebSocket: the connection attempt (upgrade, `login`, the server's verdict) and, once
// logged in, frames in and out until it closes.

import { HeraldError, HeraldErrorCode } from './errors.js';
import {
  SUBPROTOCOL,
  closeError,
  decodeServerFrame,
  isTerminal,
  refusalEvent,
  terminalEvent,
  type ClientFrame,
  type LoginFrame,
  type ServerFrame,
} from './protocol.js';
import type { WebSocketConstructorLike, WebSocketLike, ZIMConnectionEvent } from './types.js';

/** What `login_ok` told us about the session. */
export interface Accepted {
  sessionID: string;
  /** How often to ping. */
  heartbeatMs: number;
  /** How long the server may stay silent before the connection counts as dead. */
  silenceLimitMs: number;
  /** The token's expiry, Unix seconds. */
  tokenExpire: number;
  /** Recovery: present when the server said whether it replayed the broadcasts after `since`. */
  recovered: boolean | undefined;
}

/** A failed connection attempt. */
export class LoginFailure {
  constructor(
    readonly error: HeraldError,
    /** Set when trying again as-is would fail the same way: the event to report. */
    readonly terminal: ZIMConnectionEvent | undefined,
    /** The server answered with an `error` frame (as opposed to the network failing). */
    readonly refused: boolean,
  ) {}
}

/** Lets the session abort an attempt in flight (logout, destroy). */
export interface Cancel {
  cancel?: (() => void) | undefined;
}

const OPEN = 1;

/** Text of a message event; the protocol has no binary frames, so anything else is ignored. */
function textOf(data: unknown): string | undefined {
  if (typeof data === 'string') return data;
  // The `ws` package may hand over a Buffer; decode it rather than drop the frame.
  if (data instanceof Uint8Array && typeof TextDecoder !== 'undefined') return new TextDecoder().decode(data);
  return undefined;
}

/**
 * A logged-in socket. Handlers are detached once it ends or is abandoned, so nothing arrives late.
 *
 * Frames that follow `login_ok` in the same network read (a `token_will_expire`, replayed
 * broadcasts) are dispatched before the session has had a turn to attach its handlers; they are
 * held here until `start`, never dropped.
 */
export class Connection {
  private onMessage: ((frame: ServerFrame | undefined) => void) | undefined;
  private onEnd: ((code: number, reason: string) => void) | undefined;
  private held: Array<ServerFrame | undefined> | undefined = [];
  private ended: { code: number; reason: string } | undefined;

  constructor(private readonly ws: WebSocketLike) {
    ws.onmessage = (event) => {
      const text = textOf(event.data);
      const frame = text === undefined ? undefined : decodeServerFrame(text);
      if (this.held) this.held.push(frame);
      else this.onMessage?.(frame);
    };
    ws.onclose = (event) => {
      if (this.held) {
        this.ended = { code: event.code, reason: event.reason ?? '' };
        return;
      }
      const onEnd = this.onEnd;
      this.detach();
      onEnd?.(event.code, event.reason ?? '');
    };
    // The close event follows an error; it carries what there is to say.
    ws.onerror = () => {};
  }

  /**
   * Attaches the session: every message counts as the server being alive (`frame` is undefined
   * when it could not be read). Delivers what arrived before, then the close if it came too.
   */
  start(onMessage: (frame: ServerFrame | undefined) => void, onEnd: (code: number, reason: string) => void): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.onMessage = onMessage;
    this.onEnd = onEnd;
    for (const frame of held) {
      if (this.onMessage !== onMessage) return; // a frame ended the session (logout ack)
      onMessage(frame);
    }
    const ended = this.ended;
    if (ended && this.onEnd === onEnd) {
      this.detach();
      onEnd(ended.code, ended.reason);
    }
  }

  /** False when the socket is no longer open; its close event is then on the way. */
  send(frame: ClientFrame): boolean {
    if (this.ws.readyState !== OPEN) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stops listening and closes with 1000. A dead peer would make the close handshake hang, so
   * the caller moves on at once instead of waiting for the close event.
   */
  abandon(): void {
    this.detach();
    closeQuietly(this.ws);
  }

  private detach(): void {
    this.onMessage = undefined;
    this.onEnd = undefined;
    this.ws.onmessage = null;
    this.ws.onclose = null;
    this.ws.onerror = () => {};
    this.ws.onopen = null;
  }
}

function closeQuietly(ws: WebSocketLike): void {
  try {
    ws.close(1000);
  } catch {
    // Already closed, or still connecting in an implementation that refuses: nothing to do.
  }
}

/**
 * Connects to `url`, sends `frame` and waits for `login_ok`, all within `timeoutMs`. Rejects with
 * a `LoginFailure` saying whether another attempt could succeed.
 */
export function connectAndLogin(
  url: string,
  WebSocketCtor: WebSocketConstructorLike,
  frame: LoginFrame,
  timeoutMs: number,
  cancel: Cancel,
): Promise<{ connection: Connection; accepted: Accepted }> {
  return new Promise((resolve, reject) => {
    let ws: WebSocketLike;
    try {
      ws = new WebSocketCtor(url, [SUBPROTOCOL]);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      reject(new LoginFailure(new HeraldError(HeraldErrorCode.Disconnected, `${url}: ${why}`), undefined, false));
      return;
    }
    // An `error` frame comes before the close that says whether it is final; keep it so a
    // timeout or a dropped socket after it still reports the server's reason.
    let refusal: HeraldError | undefined;
    let settled = false;
    const fail = (failure: LoginFailure): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cancel.cancel = undefined;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
      closeQuietly(ws);
      reject(failure);
    };
    const refused = (error: HeraldError): LoginFailure => new LoginFailure(error, refusalEvent(error), true);
    const timer = setTimeout(() => {
      fail(
        refusal
          ? refused(refusal)
          : new LoginFailure(
              new HeraldError(HeraldErrorCode.Disconnected, `${url}: no login answer within ${timeoutMs} ms`),
              undefined,
              false,
            ),
      );
    }, timeoutMs);
    cancel.cancel = () =>
      fail(new LoginFailure(new HeraldError(HeraldErrorCode.Disconnected, 'login cancelled'), undefined, false));

    ws.onopen = () => {
      try {
        ws.send(JSON.stringify(frame));
      } catch {
        // The close event follows and reports it.
      }
    };
    ws.onerror = () => {};
    ws.onmessage = (event) => {
      const text = textOf(event.data);
      const f = text === undefined ? undefined : decodeServerFrame(text);
      if (f?.t === 'login_ok' && f.id === frame.id) {
        settled = true;
        clearTimeout(timer);
        cancel.cancel = undefined;
        ws.onopen = null;
        const heartbeatMs = Math.max(100, f.heartbeat_ms);
        resolve({
          connection: new Connection(ws),
          accepted: {
            sessionID: f.session_id,
            heartbeatMs,
            // Guard against a nonsensical advertisement: never less than two heartbeats.
            silenceLimitMs: Math.max(f.timeout_ms, 2 * heartbeatMs),
            tokenExpire: f.token_expire,
            recovered: f.recovered,
          },
        });
      } else if (f?.t === 'error') {
        refusal = new HeraldError(f.code, f.message);
      }
    };
    ws.onclose = (event) => {
      const code = event.code;
      // No close frame (1005) or a dropped socket (1006): a refusal stays a refusal.
      if (refusal && (code === 1005 || code === 1006)) return fail(refused(refusal));
      const error = refusal ?? closeErrorFor(url, code, event.reason ?? '');
      fail(new LoginFailure(error, terminalEvent(code, refusal), refusal !== undefined));
    };
  });
}

function closeErrorFor(url: string, code: number, reason: string): HeraldError {
  if (isTerminal(code)) return closeError(code, reason);
  if (code === 1005 || code === 1006) {
    return new HeraldError(HeraldErrorCode.Disconnected, `${url}: connection failed or dropped (close ${code})`, code);
  }
  return new HeraldError(
    HeraldErrorCode.Disconnected,
    `${url}: closed before login (close ${code}${reason ? `: ${reason}` : ''})`,
    code,
  );
}

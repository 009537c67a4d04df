// The session state machine: login, heartbeat, requests, events, and reconnects.
//
// One `Session` lives as long as its SDK instance. A *run* is one login() until the session
// ends for good (logout, a terminal close, reconnects given up, destroy); every async step
// remembers the run it belongs to and stops when the run has moved on, so a late callback of an
// abandoned socket or attempt can never touch the next run.
//
// Requests that cannot be answered on the current connection (it dropped with the request in
// flight, or it was down when the request came) wait for the next login and are sent then, so a
// reconnect is invisible to a caller that is willing to wait (as in crates/herald-sdk).

import { Backoff, type BackoffPolicy } from './backoff.js';
import { Connection, LoginFailure, connectAndLogin, type Accepted, type Cancel } from './connection.js';
import { Dedup } from './dedup.js';
import { HeraldError, HeraldErrorCode } from './errors.js';
import type { ZIMEventData, ZIMEventName } from './events.js';
import { CloseCode, closeError, refusalEvent, terminalEvent, type ClientFrame, type LoginFrame, type ServerFrame } from './protocol.js';
import {
  ZIMConnectionEvent,
  ZIMConnectionState,
  type WebSocketConstructorLike,
  type ZIMPushProvider,
  type ZIMTokenRenewedResult,
} from './types.js';

export interface SessionConfig {
  appID: number;
  servers: string[];
  WebSocket: WebSocketConstructorLike;
  deviceID: string;
  platform: string;
  sdkVersion: string;
  loginTimeoutMs: number;
  backoff: BackoffPolicy;
  dedupCapacity: number;
  /** Full-jitter source; tests pin it. */
  random?: () => number;
}

interface Deferred<T> {
  resolve: (value: T) => void;
  reject: (error: HeraldError) => void;
}

/** A request sent on the current connection, by id. */
type Pending =
  | { kind: 'ping' }
  | { kind: 'push'; pushID: string; provider: ZIMPushProvider; replies: Array<Deferred<void>> }
  | { kind: 'renew'; token: string; reply: Deferred<ZIMTokenRenewedResult> }
  | { kind: 'logout'; replies: Array<Deferred<void>> };

type Emit = <K extends ZIMEventName>(name: K, data: ZIMEventData[K]) => void;

export class Session {
  private stateValue: ZIMConnectionState = ZIMConnectionState.Disconnected;
  private run = 0;
  private destroyed = false;

  private userID = '';
  private userName: string | undefined;
  /** The newest token: every (re-)login uses it. */
  private token = '';
  /** The last push ID the app set, sent again after every login. */
  private push: { pushID: string; provider: ZIMPushProvider } | undefined;

  private connection: Connection | undefined;
  /** The last `error` frame no request claimed: it explains the close that usually follows. */
  private lastUnanswered: HeraldError | undefined;
  private readonly pending = new Map<number, Pending>();
  /** Requests waiting for the next login. */
  private waiting = {
    push: [] as Array<Deferred<void>>,
    /** Answered by the next login when it used this token, else sent as `renew_token` after it. */
    renew: [] as Array<{ token: string; reply: Deferred<ZIMTokenRenewedResult> }>,
    logout: [] as Array<Deferred<void>>,
  };
  /** The app's `login()` while the first login of a run is under way. */
  private loginCall: Deferred<void> | undefined;
  private attempt: Cancel = {};
  /** Ends the reconnect wait early (logout while reconnecting, end of the run). */
  private wake: (() => void) | undefined;

  private nextId = 1;
  /** Index into `servers` of the node we are (or were last) connected to. */
  private serverIndex = 0;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private silence: ReturnType<typeof setTimeout> | undefined;
  private lastHeard = 0;

  readonly dedup: Dedup;
  private readonly backoff: Backoff;

  constructor(
    private readonly config: SessionConfig,
    private readonly emit: Emit,
  ) {
    this.dedup = new Dedup(config.dedupCapacity);
    this.backoff = new Backoff(config.backoff, config.random);
  }

  get state(): ZIMConnectionState {
    return this.stateValue;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  // --- what the app calls (arguments already checked by the client) ---

  login(userID: string, token: string, userName: string | undefined, since: string | undefined): Promise<void> {
    if (this.destroyed) return Promise.reject(destroyedError());
    if (this.stateValue !== ZIMConnectionState.Disconnected) {
      return Promise.reject(
        new HeraldError(
          HeraldErrorCode.WrongState,
          `already logged in (or logging in) as ${JSON.stringify(this.userID)}; call logout() first`,
        ),
      );
    }
    this.userID = userID;
    this.userName = userName;
    this.token = token;
    this.push = undefined;
    if (since !== undefined) this.dedup.seed(since);
    const run = ++this.run;
    this.backoff.reset();
    return new Promise<void>((resolve, reject) => {
      this.loginCall = { resolve, reject };
      this.setState(ZIMConnectionState.Connecting, ZIMConnectionEvent.ActiveLogin, {});
      void this.firstLogin(run, since);
    });
  }

  renewToken(token: string): Promise<ZIMTokenRenewedResult> {
    const refused = this.refuseUnlessLoggedIn('renewToken');
    if (refused) return refused;
    return new Promise((resolve, reject) => {
      const reply = { resolve, reject };
      if (this.connection && this.stateValue === ZIMConnectionState.Connected) {
        const id = this.nextId++;
        this.request(id, { t: 'renew_token', id, token }, { kind: 'renew', token, reply });
      } else {
        // The next login uses it; one already under way gets a `renew_token` right after.
        this.token = token;
        this.waiting.renew.push({ token, reply });
      }
    });
  }

  setPushID(pushID: string, provider: ZIMPushProvider): Promise<void> {
    const refused = this.refuseUnlessLoggedIn('setPushID');
    if (refused) return refused;
    this.push = { pushID, provider };
    return new Promise((resolve, reject) => {
      const reply = { resolve, reject };
      if (this.connection && this.stateValue === ZIMConnectionState.Connected) {
        const id = this.nextId++;
        this.request(id, { t: 'set_push_id', id, push_id: pushID, provider }, { kind: 'push', pushID, provider, replies: [reply] });
      } else {
        this.waiting.push.push(reply);
      }
    });
  }

  /**
   * Logs out: the server removes this device's push binding and closes. While reconnecting it
   * waits for the next login to log out from there (so the binding really goes); `destroy()`
   * gives up on that.
   */
  logout(): Promise<void> {
    if (this.destroyed) return Promise.reject(destroyedError());
    switch (this.stateValue) {
      case ZIMConnectionState.Disconnected:
        return Promise.resolve();
      case ZIMConnectionState.Connecting:
        // The first login has not been answered: no session of ours to log out of yet.
        this.end(ZIMConnectionEvent.Success, new HeraldError(HeraldErrorCode.Disconnected, 'login cancelled by logout()'));
        return Promise.resolve();
      default:
        return new Promise((resolve, reject) => {
          const reply = { resolve, reject };
          if (this.connection && this.stateValue === ZIMConnectionState.Connected) {
            const id = this.nextId++;
            this.request(id, { t: 'logout', id }, { kind: 'logout', replies: [reply] });
          } else {
            this.waiting.logout.push(reply);
            this.wake?.();
          }
        });
    }
  }

  /** Closes without logout (the server keeps the push binding, as when an app is killed). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.stopRun(destroyedError());
    this.stateValue = ZIMConnectionState.Disconnected;
  }

  private refuseUnlessLoggedIn(what: string): Promise<never> | undefined {
    if (this.destroyed) return Promise.reject(destroyedError());
    if (this.stateValue === ZIMConnectionState.Disconnected) {
      return Promise.reject(new HeraldError(HeraldErrorCode.WrongState, `${what}: not logged in; call login() first`));
    }
    return undefined;
  }

  // --- logging in ---

  /** Walks the servers once; the first to accept wins, a refusal ends the run. */
  private async firstLogin(run: number, since: string | undefined): Promise<void> {
    let last = new HeraldError(HeraldErrorCode.Disconnected, 'no server tried');
    for (let i = 0; i < this.config.servers.length; i++) {
      try {
        const connected = await this.connect(i, since);
        if (run !== this.run) return connected.connection.abandon();
        this.serverIndex = i;
        const call = this.loginCall;
        this.loginCall = undefined;
        this.loggedIn(run, connected.connection, connected.accepted, connected.token, false);
        call?.resolve();
        return;
      } catch (e) {
        if (run !== this.run) return;
        const failure = asFailure(e);
        if (failure.refused || failure.terminal !== undefined) {
          return this.end(failure.terminal ?? refusalEvent(failure.error), failure.error);
        }
        last = failure.error;
      }
    }
    const error = new HeraldError(
      HeraldErrorCode.Disconnected,
      `could not log in at any of ${this.config.servers.length} server(s); last: ${last.message}`,
    );
    this.end(ZIMConnectionEvent.LoginTimeout, error);
  }

  /** Logs in again after a drop, at the next server each time, waiting out the backoff between. */
  private async reconnect(run: number): Promise<void> {
    let last = new HeraldError(HeraldErrorCode.Disconnected, 'connection lost');
    for (;;) {
      const delay = this.backoff.nextDelay();
      if (delay === undefined) {
        const error = new HeraldError(
          HeraldErrorCode.Disconnected,
          `gave up reconnecting after ${this.config.backoff.maxAttempts} attempt(s); last: ${last.message}`,
        );
        return this.end(ZIMConnectionEvent.LoginTimeout, error);
      }
      // A logout waiting for a session does not wait out the backoff.
      if (this.waiting.logout.length === 0) await this.sleep(delay);
      if (run !== this.run) return;
      this.serverIndex = (this.serverIndex + 1) % this.config.servers.length;
      try {
        const connected = await this.connect(this.serverIndex, this.dedup.newest);
        if (run !== this.run) return connected.connection.abandon();
        return this.loggedIn(run, connected.connection, connected.accepted, connected.token, true);
      } catch (e) {
        if (run !== this.run) return;
        const failure = asFailure(e);
        if (failure.terminal !== undefined) {
          // The SDK's own re-login was refused: nobody else would see the server's error.
          if (failure.refused) this.emit('error', { code: failure.error.code, message: failure.error.message });
          return this.end(failure.terminal, failure.error);
        }
        last = failure.error;
      }
    }
  }

  private async connect(
    index: number,
    since: string | undefined,
  ): Promise<{ connection: Connection; accepted: Accepted; token: string }> {
    const id = this.nextId++;
    const token = this.token;
    const frame: LoginFrame = {
      t: 'login',
      id,
      app_id: this.config.appID,
      user_id: this.userID,
      token,
      sdk_version: this.config.sdkVersion,
      platform: this.config.platform,
      device_id: this.config.deviceID,
    };
    if (this.userName !== undefined) frame.user_name = this.userName;
    if (since !== undefined) frame.since = since;
    const url = this.config.servers[index] as string;
    const connected = await connectAndLogin(url, this.config.WebSocket, frame, this.config.loginTimeoutMs, this.attempt);
    return { ...connected, token };
  }

  private loggedIn(run: number, connection: Connection, accepted: Accepted, token: string, again: boolean): void {
    this.connection = connection;
    this.backoff.reset();
    this.startHeartbeat(run, connection, accepted);
    this.stateValue = ZIMConnectionState.Connected;
    this.afterLogin(accepted, token);
    const extendedData: Record<string, unknown> = again && accepted.recovered !== undefined ? { recovered: accepted.recovered } : {};
    this.setState(ZIMConnectionState.Connected, ZIMConnectionEvent.Success, extendedData);
    // Only now the frames that came with login_ok: the app has seen Connected before them.
    if (connection !== this.connection) return; // a handler logged out or destroyed meanwhile
    connection.start(
      (frame) => this.onMessage(connection, frame),
      (code, reason) => this.onEnd(run, connection, code, reason),
    );
  }

  /** Restores what the app set on the previous connection and sends requests that waited. */
  private afterLogin(accepted: Accepted, token: string): void {
    for (const { token: wanted, reply } of this.waiting.renew.splice(0)) {
      if (wanted === token) {
        reply.resolve({ token, tokenExpire: accepted.tokenExpire });
      } else {
        const id = this.nextId++;
        this.request(id, { t: 'renew_token', id, token: wanted }, { kind: 'renew', token: wanted, reply });
      }
    }
    const replies = this.waiting.push.splice(0);
    if (this.push) {
      const { pushID, provider } = this.push;
      const id = this.nextId++;
      this.request(id, { t: 'set_push_id', id, push_id: pushID, provider }, { kind: 'push', pushID, provider, replies });
    } else {
      // Only when the server refused the push ID on a request sent after these.
      const error = new HeraldError(HeraldErrorCode.FieldInvalid, 'the server refused this push ID');
      replies.forEach((r) => r.reject(error));
    }
    const logout = this.waiting.logout.splice(0);
    if (logout.length > 0) {
      const id = this.nextId++;
      this.request(id, { t: 'logout', id }, { kind: 'logout', replies: logout });
    }
  }

  // --- a logged-in connection ---

  private onMessage(connection: Connection, frame: ServerFrame | undefined): void {
    this.lastHeard = Date.now();
    if (!frame || connection !== this.connection) return;
    switch (frame.t) {
      case 'bcast':
        if (this.dedup.firstSeen(frame.msg.messageID)) this.emit('broadcastMessageReceived', { message: frame.msg });
        return;
      case 'token_will_expire':
        this.emit('tokenWillExpire', { second: frame.seconds });
        return;
      case 'pong':
        this.pending.delete(frame.id);
        return;
      case 'ack':
        return this.onAck(connection, frame.id, frame.token_expire);
      case 'error':
        return this.onError(frame.id, new HeraldError(frame.code, frame.message));
      case 'login_ok':
        return; // only ever the answer to our login, which connectAndLogin took
    }
  }

  private onAck(connection: Connection, id: number, tokenExpire: number | undefined): void {
    const p = this.pending.get(id);
    this.pending.delete(id);
    switch (p?.kind) {
      case 'push':
        return p.replies.forEach((r) => r.resolve());
      case 'renew':
        if (tokenExpire === undefined) {
          return p.reply.reject(new HeraldError(HeraldErrorCode.Disconnected, 'renew_token ack without token_expire'));
        }
        this.token = p.token;
        return p.reply.resolve({ token: p.token, tokenExpire });
      case 'logout':
        // The server closes with 1000 next; nothing more to wait for.
        connection.abandon();
        p.replies.forEach((r) => r.resolve());
        return this.end(ZIMConnectionEvent.Success, loggedOutError());
    }
  }

  private onError(id: number, error: HeraldError): void {
    const p = this.pending.get(id);
    this.pending.delete(id);
    switch (p?.kind) {
      case 'push':
        // Refused once, refused after every reconnect: forget it.
        if (this.push?.pushID === p.pushID && this.push.provider === p.provider) this.push = undefined;
        return p.replies.forEach((r) => r.reject(error));
      case 'renew':
        return p.reply.reject(error);
      case 'logout':
        return p.replies.forEach((r) => r.reject(error));
      default:
        this.lastUnanswered = error;
        this.emit('error', { code: error.code, message: error.message });
    }
  }

  private onEnd(run: number, connection: Connection, code: number, reason: string): void {
    if (run !== this.run || connection !== this.connection) return;
    this.connection = undefined;
    this.stopHeartbeat();
    const explained = this.lastUnanswered;
    this.lastUnanswered = undefined;
    const loggingOut = [...this.pending.values()].some((p) => p.kind === 'logout');
    if (code === CloseCode.Normal && loggingOut) {
      // The ack was lost, but the server did log us out.
      for (const p of this.pending.values()) if (p.kind === 'logout') p.replies.forEach((r) => r.resolve());
      this.pending.clear();
      return this.end(ZIMConnectionEvent.Success, loggedOutError());
    }
    const event = terminalEvent(code, explained);
    if (event !== undefined) return this.end(event, explained ?? closeError(code, reason));
    this.interrupted(run, { closeCode: code, reason });
  }

  private interrupted(run: number, extendedData: Record<string, unknown>): void {
    this.requeuePending();
    this.setState(ZIMConnectionState.Reconnecting, ZIMConnectionEvent.LoginInterrupted, extendedData);
    void this.reconnect(run);
  }

  private startHeartbeat(run: number, connection: Connection, accepted: Accepted): void {
    this.lastHeard = Date.now();
    this.heartbeat = setInterval(() => {
      const id = this.nextId++;
      this.pending.set(id, { kind: 'ping' });
      connection.send({ t: 'ping', id });
    }, accepted.heartbeatMs);
    // One timer per silence limit, re-armed from the last message, rather than one per message.
    const check = (): void => {
      const quiet = Date.now() - this.lastHeard;
      if (quiet < accepted.silenceLimitMs) {
        this.silence = setTimeout(check, accepted.silenceLimitMs - quiet);
        return;
      }
      if (run !== this.run || connection !== this.connection) return;
      this.connection = undefined;
      this.stopHeartbeat();
      connection.abandon();
      this.interrupted(run, { reason: `server silent for ${quiet} ms (timeout_ms ${accepted.silenceLimitMs})` });
    };
    this.silence = setTimeout(check, accepted.silenceLimitMs);
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    clearTimeout(this.silence);
    this.heartbeat = this.silence = undefined;
  }

  /** Records the request before sending it, so a failed send leaves it to be retried. */
  private request(id: number, frame: ClientFrame, pending: Pending): void {
    this.pending.set(id, pending);
    // A failed send means the socket is closing; its close event requeues the request.
    this.connection?.send(frame);
  }

  /** Moves requests that were in flight on a lost connection to wait for the next login. */
  private requeuePending(): void {
    for (const p of this.pending.values()) {
      switch (p.kind) {
        case 'push': // the push ID itself is sent again after the login anyway
          this.waiting.push.push(...p.replies);
          break;
        case 'renew': // the server may or may not have taken it; log in with it either way
          this.token = p.token;
          this.waiting.renew.push({ token: p.token, reply: p.reply });
          break;
        case 'logout':
          this.waiting.logout.push(...p.replies);
          break;
      }
    }
    this.pending.clear();
  }

  // --- the end of a run ---

  /** Ends the run: answers every request with `error`, then reports Disconnected and `event`. */
  private end(event: ZIMConnectionEvent, error: HeraldError): void {
    this.stopRun(error);
    const extendedData: Record<string, unknown> = event === ZIMConnectionEvent.Success ? {} : { ...error.toJSON() };
    this.setState(ZIMConnectionState.Disconnected, event, extendedData);
  }

  private stopRun(error: HeraldError): void {
    this.run++;
    this.attempt.cancel?.();
    this.attempt = {};
    this.wake?.();
    this.stopHeartbeat();
    this.connection?.abandon();
    this.connection = undefined;
    this.lastUnanswered = undefined;
    this.requeuePending();
    const { push, renew, logout } = this.waiting;
    this.waiting = { push: [], renew: [], logout: [] };
    [...push, ...logout].forEach((r) => r.reject(error));
    renew.forEach((r) => r.reply.reject(error));
    const call = this.loginCall;
    this.loginCall = undefined;
    call?.reject(error);
  }

  private setState(state: ZIMConnectionState, event: ZIMConnectionEvent, extendedData: Record<string, unknown>): void {
    this.stateValue = state;
    if (!this.destroyed) this.emit('connectionStateChanged', { state, event, extendedData });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.wake === done) self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }
}

function asFailure(e: unknown): LoginFailure {
  if (e instanceof LoginFailure) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new LoginFailure(new HeraldError(HeraldErrorCode.Disconnected, message), undefined, false);
}

function destroyedError(): HeraldError {
  return new HeraldError(HeraldErrorCode.WrongState, 'this instance was destroyed; create a new one');
}

function loggedOutError(): HeraldError {
  return new HeraldError(HeraldErrorCode.Disconnected, 'logged out');
}

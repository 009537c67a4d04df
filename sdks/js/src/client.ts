// The app's handle, shaped like ZIM's Web SDK: `ZIM.create`, `zim.on`, `login`, `renewToken`,
// `setPushID`, `logout`, `destroy`. It checks arguments here, before anything touches the
// network, and leaves the protocol to the session.

import { backoffPolicy } from './backoff.js';
import { defaultDeviceId } from './device.js';
import { invalid } from './errors.js';
import { Emitter, type ZIMEventHandler, type ZIMEventName } from './events.js';
import { Session } from './session.js';
import type {
  WebSocketConstructorLike,
  ZIMAppConfig,
  ZIMConnectionState,
  ZIMLoginConfig,
  ZIMPushProvider,
  ZIMTokenRenewedResult,
  ZIMUserInfo,
} from './types.js';

/** The ZIM SDK version reported unless `sdkVersion` says otherwise; broadcasts need ≥ 2.10.0. */
export const DEFAULT_SDK_VERSION = '2.18.0';
/** This package's version. */
export const VERSION = '0.1.0';

const PROVIDERS: readonly string[] = ['fcm', 'apns', 'webhook'];

/** UTF-8 byte length, as the server counts it (without TextEncoder, which old React Native lacks). */
function utf8Length(s: string): number {
  let bytes = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

let latest: ZIM | undefined;

/** One Herald client: a login, its connection, and the events it reports. */
export class ZIM {
  private readonly emitter = new Emitter<ZIM>();
  private readonly session: Session;
  /** The device id sent at login (the default one when `create` was given none). */
  readonly deviceID: string;

  /** Checks the options and returns a new instance; throws a `HeraldError` (6000001) for bad ones. */
  static create(config: ZIMAppConfig): ZIM {
    return new ZIM(config);
  }

  /** The most recent instance not destroyed, as ZIM's `getInstance`. */
  static getInstance(): ZIM | undefined {
    return latest;
  }

  private constructor(config: ZIMAppConfig) {
    const checked = checkConfig(config);
    this.deviceID = checked.deviceID;
    this.session = new Session(checked, (name, data) => this.emitter.emit(this, name, data));
    latest = this;
  }

  on<K extends ZIMEventName>(name: K, handler: ZIMEventHandler<K, ZIM>): void {
    this.emitter.on(name, handler);
  }

  off<K extends ZIMEventName>(name: K, handler?: ZIMEventHandler<K, ZIM>): void {
    this.emitter.off(name, handler);
  }

  /** The current connection state (Herald's addition; ZIM reports it only through the event). */
  get state(): ZIMConnectionState {
    return this.session.state;
  }

  /**
   * Logs in and resolves once the server accepted; rejects with `{ code, message }` otherwise.
   * The servers are tried in turn; a refusal (bad token, …) rejects at once. ZIM's older form
   * `login({ userID, userName }, token)` works too.
   */
  login(userID: string, config: ZIMLoginConfig): Promise<void>;
  login(userInfo: ZIMUserInfo, token: string): Promise<void>;
  login(user: string | ZIMUserInfo, config: ZIMLoginConfig | string): Promise<void> {
    let userID: unknown;
    let options: Partial<ZIMLoginConfig>;
    if (typeof user === 'object' && user !== null) {
      userID = user.userID;
      options = { token: config as string, ...(user.userName !== undefined ? { userName: user.userName } : {}) };
    } else {
      userID = user;
      options = typeof config === 'object' && config !== null ? config : { token: config };
    }
    if (typeof userID !== 'string' || userID === '') {
      return Promise.reject(invalid('login: userID is empty; pass the user to log in as'));
    }
    if (utf8Length(userID) > 32) {
      return Promise.reject(invalid(`login: userID is ${utf8Length(userID)} bytes; at most 32`));
    }
    const { token, userName, since } = options;
    if (typeof token !== 'string' || token === '') {
      return Promise.reject(invalid('login: no token; pass { token } with a Token04 from your app server'));
    }
    if (userName !== undefined && typeof userName !== 'string') {
      return Promise.reject(invalid('login: userName must be a string'));
    }
    if (since !== undefined && (typeof since !== 'string' || since === '')) {
      return Promise.reject(invalid('login: since must be a messageID string'));
    }
    return this.session.login(userID, token, userName, since);
  }

  /** Replaces the session's token; reconnects log in with the newest accepted one. */
  renewToken(token: string): Promise<ZIMTokenRenewedResult> {
    if (typeof token !== 'string' || token === '') {
      return Promise.reject(invalid('renewToken: the token is empty'));
    }
    return this.session.renewToken(token);
  }

  /**
   * Binds this device's push ID to the user for offline pushes (Herald's addition: ZIM does
   * this through ZPNs). Remembered and reported again after every reconnect.
   */
  setPushID(pushID: string, provider: ZIMPushProvider): Promise<void> {
    if (typeof pushID !== 'string' || pushID === '') {
      return Promise.reject(invalid('setPushID: the push ID is empty'));
    }
    if (!PROVIDERS.includes(provider)) {
      return Promise.reject(invalid(`setPushID: unknown provider ${JSON.stringify(provider)}; use fcm, apns or webhook`));
    }
    return this.session.setPushID(pushID, provider);
  }

  /** Logs out: the server removes this device's push binding, then the state is Disconnected. */
  logout(): Promise<void> {
    return this.session.logout();
  }

  /**
   * Closes the connection without logging out (the server keeps the push binding, as when the
   * app is killed), rejects calls still waiting, and drops every handler. No event follows.
   */
  destroy(): void {
    this.session.destroy();
    this.emitter.clear();
    if (latest === this) latest = undefined;
  }
}

interface CheckedConfig {
  appID: number;
  servers: string[];
  WebSocket: WebSocketConstructorLike;
  deviceID: string;
  platform: string;
  sdkVersion: string;
  loginTimeoutMs: number;
  backoff: ReturnType<typeof backoffPolicy>;
  dedupCapacity: number;
}

const positive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

/** Everything the server would refuse anyway, refused before a round trip. */
function checkConfig(config: ZIMAppConfig): CheckedConfig {
  if (typeof config !== 'object' || config === null) throw invalid('create: pass { appID, servers }');
  const { appID } = config;
  if (appID === undefined || appID === null) throw invalid('create: appID is missing');
  if (typeof appID !== 'number' || !Number.isInteger(appID) || appID < 1 || appID > 0xffffffff) {
    throw invalid(`create: appID must be an integer from 1 to 4294967295, got ${JSON.stringify(appID)}`);
  }
  const servers = typeof config.servers === 'string' ? [config.servers] : config.servers;
  if (!Array.isArray(servers) || servers.length === 0) {
    throw invalid("create: servers is empty; pass the gateway URLs, e.g. ['wss://chat.example.com/ws']");
  }
  for (const url of servers) {
    if (typeof url !== 'string' || !/^wss?:\/\/[^/\s]+/i.test(url)) {
      throw invalid(`create: ${JSON.stringify(url)} is not a ws:// or wss:// URL`);
    }
  }
  const WebSocketCtor =
    config.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket;
  if (typeof WebSocketCtor !== 'function') {
    throw invalid("create: no global WebSocket here; pass one, e.g. { WebSocket } from the 'ws' package");
  }
  const deviceID = config.deviceID ?? defaultDeviceId();
  if (typeof deviceID !== 'string' || deviceID === '' || utf8Length(deviceID) > 64) {
    throw invalid('create: deviceID must be 1 to 64 bytes');
  }
  const platform = config.platform ?? 'web';
  const sdkVersion = config.sdkVersion ?? DEFAULT_SDK_VERSION;
  if (typeof platform !== 'string' || typeof sdkVersion !== 'string' || sdkVersion === '') {
    throw invalid('create: platform and sdkVersion must be strings');
  }
  const loginTimeoutMs = config.loginTimeoutMs ?? 10_000;
  if (!positive(loginTimeoutMs)) throw invalid('create: loginTimeoutMs must be a positive number');
  const r = config.reconnect;
  if (r !== undefined) {
    if (r.initialDelayMs !== undefined && !(r.initialDelayMs >= 0)) throw invalid('create: reconnect.initialDelayMs must be ≥ 0');
    if (r.maxDelayMs !== undefined && !(r.maxDelayMs >= 0)) throw invalid('create: reconnect.maxDelayMs must be ≥ 0');
    if (r.factor !== undefined && !(r.factor >= 1 && Number.isFinite(r.factor))) {
      throw invalid('create: reconnect.factor must be a finite number ≥ 1');
    }
    if (r.maxAttempts !== undefined && !(r.maxAttempts >= 0)) throw invalid('create: reconnect.maxAttempts must be ≥ 0');
  }
  const dedupCapacity = config.dedupCapacity ?? 1024;
  if (!Number.isInteger(dedupCapacity) || dedupCapacity < 0) throw invalid('create: dedupCapacity must be an integer ≥ 0');
  return {
    appID,
    servers: [...servers],
    WebSocket: WebSocketCtor,
    deviceID,
    platform,
    sdkVersion,
    loginTimeoutMs,
    backoff: backoffPolicy(r),
    dedupCapacity,
  };
}

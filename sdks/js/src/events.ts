// What the SDK tells the app: ZIM's event names, each handler called as `(zim, data)`.

import type { ZIMConnectionStateChangedResult, ZIMMessage } from './types.js';

/** The data of each event, by ZIM's event name. */
export interface ZIMEventData {
  /** A `SendMessageToAllUsers` message; each `messageID` is delivered once per instance. */
  broadcastMessageReceived: { message: ZIMMessage };
  connectionStateChanged: ZIMConnectionStateChangedResult;
  /** The token expires in `second` seconds: call `renewToken` with a fresh one. */
  tokenWillExpire: { second: number };
  /** A server `error` frame that no call of the app was waiting for. */
  error: { code: number; message: string };
}

export type ZIMEventName = keyof ZIMEventData;
export type ZIMEventHandler<K extends ZIMEventName, Z> = (zim: Z, data: ZIMEventData[K]) => void;

/**
 * Handlers by event name. A handler that throws does not break the SDK: the exception is
 * reported as uncaught (`reportError` in browsers, a rethrow on its own task elsewhere), and the
 * other handlers still run.
 */
export class Emitter<Z> {
  private handlers: { [K in ZIMEventName]?: Array<ZIMEventHandler<K, Z>> } = {};

  on<K extends ZIMEventName>(name: K, handler: ZIMEventHandler<K, Z>): void {
    const list: Array<ZIMEventHandler<K, Z>> = this.handlers[name] ?? [];
    list.push(handler);
    (this.handlers as Record<K, Array<ZIMEventHandler<K, Z>>>)[name] = list;
  }

  /** Removes one handler, or every handler of the event when none is given (ZIM's `off(name)`). */
  off<K extends ZIMEventName>(name: K, handler?: ZIMEventHandler<K, Z>): void {
    if (!handler) {
      delete this.handlers[name];
      return;
    }
    const list = this.handlers[name];
    if (list) (this.handlers as Record<K, Array<ZIMEventHandler<K, Z>>>)[name] = list.filter((h) => h !== handler);
  }

  emit<K extends ZIMEventName>(zim: Z, name: K, data: ZIMEventData[K]): void {
    // A copy: a handler may call on/off while we walk the list.
    const list = this.handlers[name]?.slice();
    if (!list) return;
    for (const handler of list) {
      try {
        handler(zim, data);
      } catch (e) {
        reportUncaught(e);
      }
    }
  }

  clear(): void {
    this.handlers = {};
  }
}

function reportUncaught(e: unknown): void {
  const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof report === 'function') return report(e);
  setTimeout(() => {
    throw e;
  }, 0);
}

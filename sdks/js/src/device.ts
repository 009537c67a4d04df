// The default deviceID: the server replaces a session by a newer login with the same deviceID
// and keys the push binding on it, so it must be stable for one device and differ between two.

/** Where the browser keeps this device's id. */
export const DEVICE_ID_KEY = 'herald.deviceID';

/** 128 random bits as hex; `crypto.getRandomValues` works outside secure contexts too. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (c?.getRandomValues) {
    c.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * A random id kept in `localStorage` where there is one (a browser: one id per browser profile
 * and origin), else a new one per SDK instance (Node, React Native: pass `deviceID` to keep one
 * across restarts). Storage that throws (privacy modes, sandboxed frames) counts as none.
 */
export function defaultDeviceId(): string {
  const fresh = `js-${randomId()}`;
  let storage: StorageLike | undefined;
  try {
    storage = (globalThis as { localStorage?: StorageLike }).localStorage;
  } catch {
    storage = undefined;
  }
  if (!storage) return fresh;
  try {
    const kept = storage.getItem(DEVICE_ID_KEY);
    if (kept) return kept;
    storage.setItem(DEVICE_ID_KEY, fresh);
  } catch {
    // Not persisted: this instance keeps its own id.
  }
  return fresh;
}

// Reconnect delays: exponential growth, capped, with full jitter.

import type { ZIMReconnectPolicy } from './types.js';

export interface BackoffPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  maxAttempts: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  maxAttempts: Infinity,
};

/** Fills in the defaults; the caller has checked the values. */
export function backoffPolicy(p: ZIMReconnectPolicy | undefined): BackoffPolicy {
  return {
    initialDelayMs: p?.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs,
    maxDelayMs: p?.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
    factor: p?.factor ?? DEFAULT_BACKOFF.factor,
    maxAttempts: p?.maxAttempts ?? DEFAULT_BACKOFF.maxAttempts,
  };
}

/**
 * Counts failed attempts in a row and turns the count into the next wait: attempt n (from 0)
 * waits a random time in [0, min(maxDelayMs, initialDelayMs · factor^n)]. Full jitter spreads
 * the reconnects of many clients dropped at once (a node restart) instead of bringing them back
 * in waves.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next attempt in ms, or `undefined` once `maxAttempts` are spent. */
  nextDelay(): number | undefined {
    if (this.attempt >= this.policy.maxAttempts) return undefined;
    const ceiling = this.ceiling(this.attempt);
    this.attempt += 1;
    return Math.floor(this.random() * (ceiling + 1));
  }

  /** A login succeeded: the next outage starts again from the smallest wait. */
  reset(): void {
    this.attempt = 0;
  }

  /** min(maxDelayMs, initialDelayMs · factor^attempt); a huge attempt count saturates. */
  ceiling(attempt: number): number {
    const { initialDelayMs, maxDelayMs, factor } = this.policy;
    const ms = initialDelayMs * Math.pow(factor, attempt);
    return Number.isFinite(ms) && ms < maxDelayMs ? Math.floor(ms) : maxDelayMs;
  }
}

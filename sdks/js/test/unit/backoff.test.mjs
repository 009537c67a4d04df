import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, DEFAULT_BACKOFF, backoffPolicy } from '../../build/backoff.js';

const policy = (maxAttempts = Infinity) => ({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2, maxAttempts });

test('the ceiling grows exponentially, then caps', () => {
  const b = new Backoff(policy());
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => b.ceiling(n)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(b.ceiling(10_000), 1000, 'a huge attempt count saturates instead of overflowing');
});

test('full jitter: every delay lies in [0, ceiling], both ends reachable', () => {
  const lowest = new Backoff(policy(), () => 0);
  const highest = new Backoff(policy(), () => 0.999999999);
  for (let n = 0; n < 8; n++) {
    assert.equal(lowest.nextDelay(), 0);
    assert.equal(highest.nextDelay(), highest.ceiling(n));
  }
  const real = new Backoff(policy());
  for (let n = 0; n < 200; n++) {
    const ceiling = real.ceiling(n);
    const d = real.nextDelay();
    assert.ok(Number.isInteger(d) && d >= 0 && d <= ceiling, `attempt ${n}: ${d} within [0, ${ceiling}]`);
  }
});

test('gives up after maxAttempts until a login resets it', () => {
  const b = new Backoff(policy(2), () => 0.5);
  assert.notEqual(b.nextDelay(), undefined);
  assert.notEqual(b.nextDelay(), undefined);
  assert.equal(b.nextDelay(), undefined);
  b.reset();
  assert.equal(b.nextDelay(), 50, 'after a reset the first ceiling (100) applies again');
});

test('defaults: 500 ms, doubling, capped at 30 s, never giving up', () => {
  assert.deepEqual(backoffPolicy(undefined), DEFAULT_BACKOFF);
  assert.deepEqual(backoffPolicy({ maxDelayMs: 5 }), { ...DEFAULT_BACKOFF, maxDelayMs: 5 });
  const b = new Backoff(DEFAULT_BACKOFF);
  assert.deepEqual([0, 1, 5, 6, 100].map((n) => b.ceiling(n)), [500, 1000, 16_000, 30_000, 30_000]);
});

// Remembers delivered message IDs so a broadcast delivered twice reaches the app once, and knows
// the newest one, which a re-login sends as `since` for missed-broadcast recovery.

/**
 * Compares two message IDs (unsigned 64-bit decimals) by value without BigInt; `undefined` when
 * either is not a plain decimal string.
 */
export function compareIds(a: string, b: string): number | undefined {
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return undefined;
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A bounded window of the last `capacity` IDs plus a watermark.
 *
 * Server message IDs rise with time, so an ID at or below the watermark (the highest ID that
 * left the window) is older than everything remembered and is dropped as delivered. Memory stays
 * at `capacity` IDs however long the session runs. The one cost: a broadcast that arrives more
 * than `capacity` deliveries late with a lower ID (possible only across cluster nodes) would be
 * dropped. The instance lives as long as the SDK instance, so it spans reconnects.
 */
export class Dedup {
  private readonly seen = new Set<string>();
  /** Insertion order, as a ring: `order[head]` is the oldest once the ring is full. */
  private readonly order: string[] = [];
  private head = 0;
  private watermark: string | undefined;
  private newestId: string | undefined;

  constructor(private readonly capacity: number) {}

  /** The highest ID delivered (or declared delivered by `seed`): what a re-login sends as `since`. */
  get newest(): string | undefined {
    return this.newestId;
  }

  /** The app already has everything up to `id`: drop replays of it and older, send it as `since`. */
  seed(id: string): void {
    this.raiseWatermark(id);
    this.raiseNewest(id);
  }

  /** True the first time `id` is offered, false for a repeat (or an ID at or below the watermark). */
  firstSeen(id: string): boolean {
    if (this.seen.has(id)) return false;
    if (this.watermark !== undefined && (compareIds(id, this.watermark) ?? 1) <= 0) return false;
    if (this.capacity > 0) {
      if (this.order.length < this.capacity) {
        this.order.push(id);
      } else {
        const evicted = this.order[this.head] as string;
        this.seen.delete(evicted);
        this.raiseWatermark(evicted);
        this.order[this.head] = id;
        this.head = (this.head + 1) % this.capacity;
      }
      this.seen.add(id);
    }
    this.raiseNewest(id);
    return true;
  }

  /** How many IDs are remembered (for tests and the README's memory claim). */
  get size(): number {
    return this.seen.size;
  }

  /** Only decimal IDs move the watermark: others cannot be ordered, so they never hide anything. */
  private raiseWatermark(id: string): void {
    if (!/^\d+$/.test(id)) return;
    if (this.watermark === undefined || (compareIds(id, this.watermark) as number) > 0) this.watermark = id;
  }

  /** The highest decimal ID; should IDs ever not be decimal, the latest to arrive. */
  private raiseNewest(id: string): void {
    if (this.newestId === undefined || (compareIds(id, this.newestId) ?? 1) > 0) this.newestId = id;
  }
}

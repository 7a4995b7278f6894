import type { Clock } from '../../signaling/server/index.js';

interface FakeTimer {
  fn: () => void;
  at: number;
  /** Interval period; null for a one-shot timer. */
  every: number | null;
}

/**
 * A Clock whose time and timers only move when a test says so: `tickIntervals()` runs the
 * heartbeat, `runTimeouts()` ends grace periods, `advance()` moves time (token buckets,
 * strike decay) and fires whatever falls due.
 */
export class FakeClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Map<number, FakeTimer>();

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    return this.add(fn, ms, null);
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  setInterval(fn: () => void, ms: number): unknown {
    return this.add(fn, ms, ms);
  }

  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers not yet cleared (one-shot timers that already fired are gone). */
  pending(): { timeouts: number; intervals: number } {
    let timeouts = 0;
    let intervals = 0;
    for (const t of this.timers.values()) {
      if (t.every === null) timeouts++;
      else intervals++;
    }
    return { timeouts, intervals };
  }

  /** Runs every interval callback once, now, without moving time. Returns how many ran. */
  tickIntervals(): number {
    const due = [...this.timers.values()].filter((t) => t.every !== null);
    for (const t of due) t.fn();
    return due.length;
  }

  /** Runs every pending one-shot timer now, without moving time. Returns how many ran. */
  runTimeouts(): number {
    const due = [...this.timers.entries()].filter(([, t]) => t.every === null);
    for (const [id] of due) this.timers.delete(id);
    for (const [, t] of due) t.fn();
    return due.length;
  }

  /** Moves time forward by `ms`, firing timers that fall due in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: [number, FakeTimer] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      const [id, timer] = next;
      this.time = Math.max(this.time, timer.at);
      if (timer.every === null) this.timers.delete(id);
      else timer.at += timer.every;
      timer.fn();
    }
    this.time = end;
  }

  private add(fn: () => void, ms: number, every: number | null): number {
    const id = ++this.seq;
    this.timers.set(id, { fn, at: this.time + ms, every });
    return id;
  }
}

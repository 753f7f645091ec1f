// Bounds how many expensive operations (argon2id: ~19 MiB each) run at once and how many may
// wait. Past both limits a caller is refused at once, so a login flood costs bounded memory
// instead of an ever-growing queue of hashes.
import { TemporarilyUnavailable } from "../errors.ts";

export class Bulkhead {
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxQueue: number,
  ) {}

  get running(): number {
    return this.#running;
  }
  get waiting(): number {
    return this.#waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.concurrency) {
      if (this.#waiting.length >= this.maxQueue) {
        throw new TemporarilyUnavailable("Too many sign-in attempts are in progress; retry shortly.", 1);
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      // Hand the slot straight to the next waiter; otherwise free it.
      if (next) next();
      else this.#running--;
    }
  }
}

/**
 * A bulkhead per key (e.g. account and address): at most `concurrency` tasks per key at once;
 * the others wait, and past `maxQueue` waiting in all (across keys, plus `alsoWaiting()`, e.g.
 * the password hasher's own queue, so that one budget bounds every login held in memory) a new
 * one is refused at once (503 + Retry-After). Idle keys hold no memory.
 */
export class KeyedBulkhead {
  readonly #slots = new Map<string, { running: number; waiters: Array<() => void> }>();
  #waiting = 0;

  constructor(
    private readonly concurrency: number,
    private readonly maxQueue: number,
    private readonly alsoWaiting: () => number = () => 0,
  ) {}

  get waiting(): number {
    return this.#waiting;
  }

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let slot = this.#slots.get(key);
    if (!slot) this.#slots.set(key, (slot = { running: 0, waiters: [] }));
    if (slot.running >= this.concurrency) {
      if (this.#waiting + this.alsoWaiting() >= this.maxQueue) {
        if (slot.running === 0 && slot.waiters.length === 0) this.#slots.delete(key);
        throw new TemporarilyUnavailable("Too many sign-in attempts are in progress; retry shortly.", 1);
      }
      const s = slot;
      this.#waiting++;
      await new Promise<void>((resolve) => s.waiters.push(resolve));
      this.#waiting--;
    } else {
      slot.running++;
    }
    try {
      return await task();
    } finally {
      const next = slot.waiters.shift();
      // Hand the slot straight to the next waiter; otherwise free it (and the key, once idle).
      if (next) next();
      else if (--slot.running === 0) this.#slots.delete(key);
    }
  }
}

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

// A clock tests move by hand: expiry, idle timeouts, grace windows and key lifecycles are
// tested without sleeping.
import type { Clock } from "../../src/domain/clock.ts";

export class FakeClock implements Clock {
  #ms: number;
  constructor(start: Date | number = Date.UTC(2030, 0, 1)) {
    this.#ms = typeof start === "number" ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.#ms);
  }
  advance(seconds: number): void {
    this.#ms += seconds * 1000;
  }
  set(at: Date): void {
    this.#ms = at.getTime();
  }
}

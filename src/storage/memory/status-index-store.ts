// An in-memory StatusIndexStore: one process's counter, for the unit tests of the rules that
// hand out token status list indices (the database's counter is shared by every instance).
import type { StatusIndexStore } from "../../domain/tokens/status-index.ts";

export class MemoryStatusIndexStore implements StatusIndexStore {
  #next = 0;

  async reserve(count: number): Promise<number> {
    const first = this.#next;
    this.#next += count;
    return first;
  }

  async reserved(): Promise<number> {
    return this.#next;
  }
}

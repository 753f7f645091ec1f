// Token Status List indices: every session and every client_credentials access token gets one
// (status-list.ts). The rule: an index is handed out once and never again, on one instance or
// several sharing a database (draft-ietf-oauth-status-list-20 §13.3: the issuer MUST prevent
// unintended double allocation), and handing one out costs the request nothing.
//
// A shared counter in the database is moved forward by a whole block in one atomic statement;
// the block's indices are then handed out from memory. Concurrent reservations by several
// instances get disjoint blocks; indices of a block unused when the process stops are skipped,
// never reused. The next block is fetched in the background when a quarter of the current one is
// left, so requests do not wait for the database (except the very first after a start).

/** The shared counter (implemented in storage/prisma). */
export interface StatusIndexStore {
  /** Atomically moves the counter forward by `count`; returns the first index of the block [first, first + count). */
  reserve(count: number): Promise<number>;
  /** One past the highest index any instance has reserved so far. */
  reserved(): Promise<number>;
}

/**
 * Indices per reservation: one database round trip per 1024 issuances (0.1%), and at most 1023
 * indices skipped per process stop (of 2^53).
 */
export const BLOCK_SIZE = 1024;

export class StatusIndexAllocator {
  /** the block being handed out: [#next, #end) */
  #next = 0;
  #end = 0;
  /** a block reserved ahead, taken when the current one runs out */
  #spare: { first: number; end: number } | null = null;
  #reserving: Promise<void> | null = null;

  constructor(
    private readonly store: StatusIndexStore,
    private readonly blockSize = BLOCK_SIZE,
  ) {}

  /** A fresh index; rejects only when a block had to be reserved and the database failed. */
  async allocate(): Promise<number> {
    for (;;) {
      if (this.#next < this.#end) {
        const idx = this.#next++;
        // Reserve the next block while a quarter of this one is left: no request waits for it.
        if (this.#end - this.#next <= this.blockSize / 4 && this.#spare === null) this.#reserve().catch(() => undefined);
        return idx;
      }
      if (this.#spare !== null) {
        ({ first: this.#next, end: this.#end } = this.#spare);
        this.#spare = null;
        continue;
      }
      await this.#reserve();
    }
  }

  /** One reservation at a time; concurrent callers share it. */
  #reserve(): Promise<void> {
    this.#reserving ??= this.store
      .reserve(this.blockSize)
      .then((first) => {
        this.#spare = { first, end: first + this.blockSize };
      })
      .finally(() => {
        this.#reserving = null;
      });
    return this.#reserving;
  }
}

import { describe, expect, it } from "vitest";
import { Bulkhead } from "../../src/domain/credentials/bulkhead.ts";
import { TemporarilyUnavailable } from "../../src/domain/errors.ts";

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe("Bulkhead", () => {
  it("runs at most `concurrency` tasks at once and queues the rest in order", async () => {
    const b = new Bulkhead(2, 10);
    const gates = Array.from({ length: 5 }, deferred);
    const started: number[] = [];
    const done = gates.map((g, i) =>
      b.run(async () => {
        started.push(i);
        await g.promise;
        return i;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(b.running).toBe(2);
    expect(b.waiting).toBe(3);
    gates[1]!.resolve();
    await done[1];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    gates.forEach((g) => g.resolve());
    expect(await Promise.all(done)).toEqual([0, 1, 2, 3, 4]);
    expect(b.running).toBe(0);
    expect(b.waiting).toBe(0);
  });

  it("refuses new work at once when the queue is full (bounded memory under a flood)", async () => {
    const b = new Bulkhead(1, 2);
    const gate = deferred();
    const held = [b.run(() => gate.promise), b.run(() => gate.promise), b.run(() => gate.promise)];
    await expect(b.run(async () => 1)).rejects.toBeInstanceOf(TemporarilyUnavailable);
    gate.resolve();
    await Promise.all(held);
    expect(await b.run(async () => 42)).toBe(42);
  });

  it("frees the slot when a task throws", async () => {
    const b = new Bulkhead(1, 0);
    await expect(b.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(b.running).toBe(0);
    expect(await b.run(async () => "ok")).toBe("ok");
  });
});

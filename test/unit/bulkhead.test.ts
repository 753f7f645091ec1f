import { describe, expect, it } from "vitest";
import { Bulkhead, KeyedBulkhead } from "../../src/domain/credentials/bulkhead.ts";
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

describe("KeyedBulkhead", () => {
  it("limits each key on its own, queues the rest in order, refuses past the shared queue, and forgets idle keys", async () => {
    const b = new KeyedBulkhead(2, 1);
    const gate = deferred();
    const started: string[] = [];
    const task = (name: string) => async () => {
      started.push(name);
      await gate.promise;
      return name;
    };
    const a = [b.run("a", task("a1")), b.run("a", task("a2")), b.run("a", task("a3"))];
    const other = b.run("b", task("b1"));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(["a1", "a2", "b1"]); // a3 waits for a slot of "a"; "b" is not held up
    await expect(b.run("a", task("a4"))).rejects.toBeInstanceOf(TemporarilyUnavailable);
    gate.resolve();
    expect(await Promise.all([...a, other])).toEqual(["a1", "a2", "a3", "b1"]);
    expect(started).toEqual(["a1", "a2", "b1", "a3"]);
    // Idle again: a new burst on "a" starts at once.
    expect(await b.run("a", async () => "again")).toBe("again");
  });
});

describe("KeyedBulkhead with a shared budget", () => {
  it("counts the hasher's own queue: when it is full, a login that would wait is refused at once", async () => {
    let hasherWaiting = 0;
    const b = new KeyedBulkhead(1, 3, () => hasherWaiting);
    const gate = deferred();
    const first = b.run("k", () => gate.promise);
    const second = b.run("k", () => gate.promise); // waits (1 of 3)
    hasherWaiting = 2;
    await expect(b.run("k", async () => 1)).rejects.toBeInstanceOf(TemporarilyUnavailable);
    // Running without waiting is not limited by the budget.
    expect(await b.run("other", async () => "runs")).toBe("runs");
    gate.resolve();
    await Promise.all([first, second]);
    expect(b.waiting).toBe(0);
  });
});

// The primary's sums of its workers' metrics (src/cluster/metric-sums.ts), with the races of a
// worker dying during a scrape played out in a fixed order: what a Prometheus scrape reads.
import { Counter, Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { WorkerMetricSums, type MetricJson } from "../../src/cluster/metric-sums.ts";

/** A worker's registry: one counter and one gauge, as a worker's /metrics holds. */
function fakeWorker(name: string) {
  const registry = new Registry();
  const tokens = new Counter({ name: "tokens_total", help: "tokens", registers: [registry] });
  const inFlight = new Gauge({ name: "in_flight", help: "in flight", registers: [registry], aggregator: "sum" });
  return {
    name,
    count: (n: number) => tokens.inc(n),
    busy: (n: number) => inFlight.set(n),
    // A copy, as the IPC message that carries it to the primary is (prom-client's objects are live).
    answer: async () => structuredClone(await registry.getMetricsAsJSON()) as MetricJson,
  };
}
type FakeWorker = ReturnType<typeof fakeWorker>;

function cluster() {
  const live = new Set<FakeWorker>();
  const sums = new WorkerMetricSums<FakeWorker>((w) => live.has(w));
  const start = (name: string) => {
    const w = fakeWorker(name);
    live.add(w);
    return w;
  };
  const die = (w: FakeWorker) => {
    live.delete(w);
    sums.retire(w);
  };
  /** A scrape whose answers arrive, then `meanwhile` runs (a death, say), then the sum is made. */
  const scrape = async (answering: FakeWorker[], opts: { silent?: FakeWorker[]; meanwhile?: () => void } = {}) => {
    const answers = await Promise.all(answering.map(async (w) => (opts.silent?.includes(w) ? null : await w.answer())));
    answering.forEach((w, i) => sums.answered(w, answers[i]!));
    opts.meanwhile?.();
    const text = await (await sums.sum(answering, answers)).metrics();
    const value = (metric: string) => {
      const m = new RegExp(`^${metric} (\\S+)$`, "m").exec(text);
      return m ? Number(m[1]) : undefined;
    };
    return { tokens: value("tokens_total"), inFlight: value("in_flight") };
  };
  return { start, die, scrape };
}

describe("the primary's sums of its workers' metrics", () => {
  it("sum every live worker's answer", async () => {
    const { start, scrape } = cluster();
    const a = start("a");
    const b = start("b");
    a.count(5);
    b.count(3);
    a.busy(2);
    b.busy(1);
    expect(await scrape([a, b])).toEqual({ tokens: 8, inFlight: 3 });
  });

  it("a worker that dies while a scrape waits is counted once in that scrape, and in the next", async () => {
    const { start, die, scrape } = cluster();
    const a = start("a");
    const b = start("b");
    a.count(5);
    b.count(3);
    expect((await scrape([a, b])).tokens).toBe(8);
    a.count(2);
    b.count(1);
    // Both answer (a: 7, b: 4), then a dies before the sum is made.
    expect((await scrape([a, b], { meanwhile: () => die(a) })).tokens).toBe(11);
    // Its replacement starts from zero; a's 7 stay in the sum, so it never goes down.
    const c = start("c");
    c.count(1);
    expect((await scrape([b, c])).tokens).toBe(12);
  });

  it("a dead worker keeps its counters as of its last answer; its gauges go with it", async () => {
    const { start, die, scrape } = cluster();
    const a = start("a");
    const b = start("b");
    a.count(5);
    a.busy(4);
    b.count(3);
    b.busy(1);
    expect(await scrape([a, b])).toEqual({ tokens: 8, inFlight: 5 });
    a.count(100); // counted after its last answer: lost with it
    die(a);
    expect(await scrape([b])).toEqual({ tokens: 8, inFlight: 1 });
  });

  it("a live worker that does not answer in time counts at its last answer", async () => {
    const { start, scrape } = cluster();
    const a = start("a");
    const b = start("b");
    a.count(5);
    b.count(3);
    expect((await scrape([a, b])).tokens).toBe(8);
    b.count(10);
    expect((await scrape([a, b], { silent: [b] })).tokens).toBe(8);
    expect((await scrape([a, b])).tokens).toBe(18);
  });

  it("a worker that dies before its first answer adds nothing", async () => {
    const { start, die, scrape } = cluster();
    const a = start("a");
    const b = start("b");
    a.count(5);
    b.count(3);
    die(b);
    expect((await scrape([a])).tokens).toBe(5);
  });
});

// What the primary's /metrics shows with WORKERS > 1: the workers' registries summed (prom-client's
// aggregation: counters and histograms summed, gauges by their aggregator). Each worker counts
// once in a sum, and a counter's sum does not drop when a worker dies and is replaced, which
// Prometheus would read as a counter reset:
// - a dead worker's counters and histograms stay in the sums as of the last scrape it answered
//   (what it counted after that is lost); its gauges go with it;
// - a live worker that does not answer a scrape in time counts at its last answer;
// - a worker that dies while a scrape waits for the others is in the dead workers' sums, not in
//   that scrape's answers too.
import { AggregatorRegistry } from "prom-client";

/** One registry's metrics, as `getMetricsAsJSON()` gives them. */
export type MetricJson = Array<{ type?: unknown }>;

const aggregate = (answers: MetricJson[]) => AggregatorRegistry.aggregate(answers as Parameters<typeof AggregatorRegistry.aggregate>[0]);
const cumulative = (metrics: MetricJson) => metrics.filter((m) => m.type === "counter" || m.type === "histogram");

export class WorkerMetricSums<W> {
  readonly #lastAnswer = new Map<W, MetricJson>();
  #retired: Promise<MetricJson> = Promise.resolve([]);

  /** `isLive(worker)`: false once the worker has died (and been retired). */
  constructor(private readonly isLive: (worker: W) => boolean) {}

  /** `worker`'s answer to a scrape (null: none in time). */
  answered(worker: W, metrics: MetricJson | null): void {
    if (metrics !== null && this.isLive(worker)) this.#lastAnswer.set(worker, metrics);
  }

  /** `worker` died: its counters and histograms join the dead workers' sums as of its last answer. */
  retire(worker: W): void {
    const last = this.#lastAnswer.get(worker);
    this.#lastAnswer.delete(worker);
    if (!last) return;
    this.#retired = this.#retired.then(async (sofar) => {
      try {
        return (await aggregate([sofar, cumulative(last)]).getMetricsAsJSON()) as MetricJson;
      } catch {
        return sofar; // one bad answer does not poison every later sum
      }
    });
  }

  /** The sum for one scrape: `answers[i]` is what `asked[i]` answered (after `answered()` was told). */
  async sum(asked: readonly W[], answers: ReadonlyArray<MetricJson | null>): Promise<ReturnType<typeof aggregate>> {
    const dead = await this.#retired;
    // After the await, with nothing in between: a worker that died while the scrape waited is in
    // `dead` already and is left out here.
    const live = asked.flatMap((worker, i): MetricJson[] => {
      if (!this.isLive(worker)) return [];
      const answer = answers[i];
      if (answer) return [answer];
      const last = this.#lastAnswer.get(worker);
      return last ? [cumulative(last)] : [];
    });
    return aggregate([...live, dead]);
  }
}

// WORKERS > 1: the cluster primary. It serves no request itself. It
// - does the first start's work once (migrations, first signing key, refresh-token secret), then
//   forks WORKERS workers, which share one listener (node:cluster hands connections round-robin);
// - relays what one worker changed to the others (cluster/ipc.ts: revocations, keys, clients);
// - keeps the host's rate-limit counters when there is no REDIS_URL;
// - serves METRICS_PORT with every worker's metrics summed, plus its own (workers, restarts), and
//   answers a worker's /metrics the same way;
// - replaces a worker that dies (after a delay that grows while they keep dying), and on
//   SIGTERM/SIGINT drains every worker (each runs the usual graceful shutdown) before exiting.
// Pruning runs in worker 0 only (server.ts): one pruner per host, as before.
import cluster, { type Worker } from "node:cluster";
import { createRequire } from "node:module";
import { Counter, Gauge, Registry } from "prom-client";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { buildMetricsListener } from "../http/routes/metrics.ts";
import { prepareFirstStart } from "../services.ts";
import { WorkerMetricSums, type MetricJson } from "./metric-sums.ts";
import { isSiblingEvent, WORKER_INDEX_ENV, type ToPrimary, type ToWorker } from "./ipc.ts";

type Counted = { current: number; ttl: number };
type Callback = (err: Error | null, res?: Counted) => void;
interface LocalStore {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
}
const require = createRequire(import.meta.url);
const LocalStore = require("@fastify/rate-limit/store/LocalStore.js") as new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => LocalStore;

/** A worker that stays up this long is healthy again: the next death restarts it at once. */
const HEALTHY_AFTER_MS = 30_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** Addresses each limiter's table keeps, as a single process's does (rate-limits.ts). */
const COUNTERS_PER_LIMITER = 20_000;

interface Slot {
  worker: Worker;
  startedAt: number;
  failures: number;
  listened: boolean;
}

/** Sends without throwing: a worker can die with messages to it still queued (EPIPE). */
function trySend(worker: Worker, message: ToWorker): void {
  if (worker.isConnected()) worker.send(message, undefined, {}, () => undefined);
}

export async function runPrimary(config: Config, logger: Logger): Promise<void> {
  await prepareFirstStart(config, logger);

  // The host's rate-limit counters: one table per limiter (the key's prefix is its name), as a
  // single process keeps them, so flooding one limiter cannot evict another's counters.
  const counters = new Map<string, LocalStore>();
  // Keys at their limit, announced to every worker (their checks are then local: cluster/ipc.ts),
  // and handed to a starting worker that asks before it listens (limitedList).
  const limited = new Map<string, number>();
  const announce = (entries: Array<[string, number]>, to: Iterable<Slot>) => {
    if (entries.length > 0) for (const s of to) trySend(s.worker, { tessera: "limited", entries });
  };
  const countersOf = (key: string): LocalStore => {
    const name = key.slice(0, Math.max(0, key.indexOf(":")));
    let store = counters.get(name);
    if (!store) counters.set(name, (store = new LocalStore(false, false, COUNTERS_PER_LIMITER)));
    return store;
  };

  // A scrape: every listening worker's registry, summed (prom-client's aggregation: counters and
  // most gauges summed; a worker that does not answer within 2 s is left out of that scrape).
  let nextCollect = 1;
  const waiting = new Map<number, (metrics: unknown[] | null) => void>();
  const collect = (worker: Worker): Promise<unknown[] | null> =>
    new Promise((resolve) => {
      const id = nextCollect++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(null);
      }, 2000);
      waiting.set(id, (metrics) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(metrics);
      });
      trySend(worker, { tessera: "collect", id });
    });
  const sums = new WorkerMetricSums<Worker>((worker) => indexOf(worker) !== undefined);
  // The primary's own metrics, after the workers' sums: a restart shows here.
  const own = new Registry();
  const restarts = new Counter({ name: "tessera_worker_restarts_total", help: "Workers replaced after they died", registers: [own] });
  const slots = new Map<number, Slot>();
  new Gauge({
    name: "tessera_workers",
    help: "Worker processes running, and listening",
    labelNames: ["state"],
    registers: [own],
    collect() {
      this.set({ state: "running" }, slots.size);
      this.set({ state: "listening" }, [...slots.values()].filter((s) => s.listened).length);
    },
  });
  const render = async () => {
    const answering = [...slots.values()].filter((s) => s.listened).map((s) => s.worker);
    const answers = await Promise.all(
      answering.map(async (worker) => {
        const metrics = (await collect(worker)) as MetricJson | null;
        sums.answered(worker, metrics);
        return metrics;
      }),
    );
    const workers = await sums.sum(answering, answers);
    return { contentType: own.contentType, body: `${await workers.metrics()}\n${await own.metrics()}` };
  };

  let allUp = false;
  let closing = false;
  let closingSignal: NodeJS.Signals | null = null;
  let exitCode = 0;
  let finished = false;
  let metricsApp: Awaited<ReturnType<typeof buildMetricsListener>> | null = null;

  const finish = () => {
    if (finished) return;
    finished = true;
    void (metricsApp?.close() ?? Promise.resolve()).finally(() => {
      logger.info({ exitCode }, "all workers stopped");
      process.exit(exitCode);
    });
  };

  const indexOf = (worker: Worker): number | undefined => [...slots.entries()].find(([, s]) => s.worker === worker)?.[0];

  const fork = (index: number, failures: number) => {
    // The first start's work is done above, once; each worker reads its config from the same env.
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index), MIGRATE_ON_START: "false" });
    // A write to a worker that just died fails with EPIPE as an 'error' event: never a crash here.
    worker.on("error", (err: Error) => logger.warn({ worker: index, err: { message: err.message } }, "worker channel error"));
    slots.set(index, { worker, startedAt: Date.now(), failures, listened: false });
  };

  cluster.on("listening", (worker, address) => {
    const slot = [...slots.values()].find((s) => s.worker === worker);
    if (slot) slot.listened = true;
    if (!allUp && slots.size === config.workers && [...slots.values()].every((s) => s.listened)) {
      allUp = true;
      logger.info({ workers: config.workers }, `Tessera listening on http://${config.host}:${address.port} with ${config.workers} workers (issuer ${config.issuer})`);
    }
  });

  cluster.on("exit", (worker, code, signal) => {
    const entry = [...slots.entries()].find(([, s]) => s.worker === worker);
    if (!entry) return;
    const [index, slot] = entry;
    // Gone from the table at once: a shutdown waits only for workers that are still running.
    slots.delete(index);
    sums.retire(worker);
    if (closing) {
      // A worker that failed to drain makes the primary's exit code; one that the shutdown's own
      // signal ended before it could handle it (still starting) had nothing to drain.
      if ((code !== null && code !== 0) || (signal !== null && signal !== closingSignal)) exitCode = 1;
      if (slots.size === 0) finish();
      return;
    }
    if (!allUp && !slot.listened) {
      // A worker that cannot start (port taken, database unreachable) would fail again: stop.
      logger.fatal({ worker: index, code, signal }, "cannot start: a worker exited before it was listening");
      exitCode = 1;
      shutdown("SIGTERM");
      return;
    }
    const failures = Date.now() - slot.startedAt >= HEALTHY_AFTER_MS ? 0 : slot.failures + 1;
    const delay = failures === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (failures - 1));
    restarts.inc();
    logger.error({ worker: index, pid: worker.process.pid, code, signal, restartInMs: delay }, "worker exited; starting another");
    setTimeout(() => {
      if (closing) {
        if (slots.size === 0) finish();
      } else {
        fork(index, failures);
      }
    }, delay);
  });

  cluster.on("message", (worker, raw: unknown) => {
    if (!raw || typeof raw !== "object" || !("tessera" in raw)) return; // prom-client's own
    const msg = raw as ToPrimary;
    if (msg.tessera === "sibling") {
      if (!isSiblingEvent(msg.event)) return;
      for (const s of slots.values()) if (s.worker !== worker) trySend(s.worker, { tessera: "sibling", event: msg.event });
    } else if (msg.tessera === "rate") {
      const done: Callback = (err, res) => {
        trySend(worker, err || !res ? { tessera: "failed", id: msg.id, message: err?.message ?? "no count" } : { tessera: "rate", id: msg.id, current: res.current, ttl: res.ttl });
        // Announced once per window: the window does not move while it is over (LocalStore
        // without continueExceeding), so further attempts from the address need no new message;
        // a later window ends later than the one announced, and is announced.
        // Only for the limiters whose check reads it (msg.announce: client authentication).
        if (res && msg.announce === true && res.current >= msg.max && res.ttl > 0 && Date.now() + res.ttl > (limited.get(msg.key) ?? 0) + 1000) {
          const until = Date.now() + res.ttl;
          limited.delete(msg.key);
          limited.set(msg.key, until);
          if (limited.size > COUNTERS_PER_LIMITER) limited.delete(limited.keys().next().value!);
          announce([[msg.key, until]], slots.values());
        }
      };
      const store = countersOf(String(msg.key));
      store.incr(msg.key, done, msg.timeWindow, msg.max);
    } else if (msg.tessera === "limited-list") {
      // A starting worker, before it listens: one message with every key still at its limit.
      const now = Date.now();
      for (const [key, until] of limited) if (until <= now) limited.delete(key);
      trySend(worker, { tessera: "limited", id: msg.id, entries: [...limited] });
    } else if (msg.tessera === "collected") {
      waiting.get(msg.id)?.(Array.isArray(msg.metrics) ? msg.metrics : []);
    } else if (msg.tessera === "metrics") {
      render().then(
        ({ contentType, body }) => trySend(worker, { tessera: "metrics", id: msg.id, contentType, body }),
        (err: Error) => trySend(worker, { tessera: "failed", id: msg.id, message: err.message }),
      );
    }
  });

  function shutdown(signal: NodeJS.Signals): void {
    if (closing) return;
    closing = true;
    closingSignal = signal;
    logger.info({ signal }, "shutting down: every worker drains");
    // Each worker runs its own graceful shutdown (SHUTDOWN_DELAY, drain, close) on this signal;
    // a worker that also got it from its process group (Ctrl-C, systemd) takes it once.
    for (const s of slots.values()) s.worker.process.kill(signal);
    setTimeout(() => {
      logger.error("workers took too long to stop; exiting");
      for (const s of slots.values()) s.worker.process.kill("SIGKILL");
      process.exit(1);
    }, (20 + config.shutdownDelay) * 1000).unref();
    if (slots.size === 0) finish();
  }
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  if (config.metricsEnabled && config.metricsPort !== null) {
    metricsApp = await buildMetricsListener(config, logger, { render }, () => false);
    await metricsApp.listen({ port: config.metricsPort, host: config.metricsHost });
    logger.info(`metrics listening on http://${config.metricsHost.includes(":") ? `[${config.metricsHost}]` : config.metricsHost}:${config.metricsPort}/metrics (every worker's, summed)`);
  }
  for (let i = 0; i < config.workers && !closing; i++) fork(i, 0);
  if (closing && slots.size === 0) finish();
}

// WORKERS > 1: the cluster primary. It serves no request itself. It
// - does the first start's work once (migrations, first signing key, refresh-token secret), then
//   forks WORKERS workers, which share one listener (node:cluster hands connections round-robin);
// - relays what one worker changed to the others (cluster/ipc.ts: revocations, keys, clients);
// - keeps the host's rate-limit counters when there is no REDIS_URL;
// - serves METRICS_PORT with every worker's metrics summed, and answers a worker's /metrics;
// - replaces a worker that dies (after a delay that grows while they keep dying), and on
//   SIGTERM/SIGINT drains every worker (each runs the usual graceful shutdown) before exiting.
// Pruning runs in worker 0 only (server.ts): one pruner per host, as before.
import cluster, { type Worker } from "node:cluster";
import { createRequire } from "node:module";
import { AggregatorRegistry } from "prom-client";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { buildMetricsListener } from "../http/routes/metrics.ts";
import { prepareFirstStart } from "../services.ts";
import { isSiblingEvent, WORKER_INDEX_ENV, type ToPrimary, type ToWorker } from "./ipc.ts";

type Counted = { current: number; ttl: number };
interface LocalStore {
  incr(key: string, cb: (err: Error | null, res?: Counted) => void, timeWindow: number, max: number): void;
  read(key: string, cb: (err: Error | null, res?: Counted) => void, timeWindow: number, max: number): void;
}
const require = createRequire(import.meta.url);
const LocalStore = require("@fastify/rate-limit/store/LocalStore.js") as new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => LocalStore;

/** A worker that stays up this long is healthy again: the next death restarts it at once. */
const HEALTHY_AFTER_MS = 30_000;
const MAX_RESTART_DELAY_MS = 30_000;

export async function runPrimary(config: Config, logger: Logger): Promise<void> {
  await prepareFirstStart(config, logger);

  // The host's rate-limit counters (the same store a single process keeps, now for all workers).
  const counters = new LocalStore(false, false, 20_000 * config.workers);
  const aggregator = new AggregatorRegistry();

  const slots = new Map<number, { worker: Worker; startedAt: number; failures: number; listened: boolean }>();
  let allUp = false;
  let closing = false;
  let exitCode = 0;

  const fork = (index: number, failures: number) => {
    // The first start's work is done above, once; each worker reads its config from the same env.
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index), MIGRATE_ON_START: "false" });
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
    if (closing) {
      // A worker's own failure to drain (or a kill) makes the primary's exit code.
      if (code !== 0) exitCode = 1;
      slots.delete(index);
      if (slots.size === 0) finish();
      return;
    }
    if (!allUp && !slot.listened) {
      // A worker that cannot start (port taken, database unreachable) would fail again: stop.
      logger.fatal({ worker: index, code, signal }, "cannot start: a worker exited before it was listening");
      closing = true;
      exitCode = 1;
      slots.delete(index);
      for (const s of slots.values()) s.worker.process.kill("SIGTERM");
      if (slots.size === 0) finish();
      return;
    }
    const failures = Date.now() - slot.startedAt >= HEALTHY_AFTER_MS ? 0 : slot.failures + 1;
    const delay = failures === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (failures - 1));
    logger.error({ worker: index, pid: worker.process.pid, code, signal, restartInMs: delay }, "worker exited; starting another");
    setTimeout(() => {
      if (!closing) fork(index, failures);
    }, delay);
  });

  cluster.on("message", (worker, raw: unknown) => {
    if (!raw || typeof raw !== "object" || !("tessera" in raw)) return; // prom-client's own
    const msg = raw as ToPrimary;
    const reply = (m: ToWorker) => {
      if (worker.isConnected()) worker.send(m);
    };
    if (msg.tessera === "sibling") {
      if (!isSiblingEvent(msg.event)) return;
      for (const s of slots.values()) if (s.worker !== worker && s.worker.isConnected()) s.worker.send({ tessera: "sibling", event: msg.event } satisfies ToWorker);
    } else if (msg.tessera === "rate") {
      const done = (err: Error | null, res?: Counted) =>
        err || !res ? reply({ tessera: "failed", id: msg.id, message: err?.message ?? "no count" }) : reply({ tessera: "rate", id: msg.id, current: res.current, ttl: res.ttl });
      if (msg.op === "incr") counters.incr(msg.key, done, msg.timeWindow, msg.max);
      else counters.read(msg.key, done, msg.timeWindow, msg.max);
    } else if (msg.tessera === "metrics") {
      aggregator.clusterMetrics().then(
        (body) => reply({ tessera: "metrics", id: msg.id, contentType: aggregator.contentType, body }),
        (err: Error) => reply({ tessera: "failed", id: msg.id, message: err.message }),
      );
    }
  });

  const metricsApp =
    config.metricsEnabled && config.metricsPort !== null
      ? await buildMetricsListener(config, logger, { render: async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() }) }, () => false)
      : null;

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    void (metricsApp?.close() ?? Promise.resolve()).finally(() => {
      logger.info({ exitCode }, "all workers stopped");
      process.exit(exitCode);
    });
  };
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, "shutting down: every worker drains");
    // Each worker runs its own graceful shutdown (SHUTDOWN_DELAY, drain, close) on this signal.
    for (const s of slots.values()) s.worker.process.kill(signal);
    setTimeout(() => {
      logger.error("workers took too long to stop; exiting");
      for (const s of slots.values()) s.worker.process.kill("SIGKILL");
      process.exit(1);
    }, (20 + config.shutdownDelay) * 1000).unref();
    if (slots.size === 0) finish();
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));

  if (metricsApp && config.metricsPort !== null) {
    await metricsApp.listen({ port: config.metricsPort, host: config.metricsHost });
    logger.info(`metrics listening on http://${config.metricsHost.includes(":") ? `[${config.metricsHost}]` : config.metricsHost}:${config.metricsPort}/metrics (every worker's, summed)`);
  }
  for (let i = 0; i < config.workers; i++) fork(i, 0);
}

// Process entry: config, logger, migrations, key bootstrap, listen, graceful shutdown.
// WORKERS > 1: this process becomes the cluster primary (cluster/primary.ts), which forks the
// workers that run the rest of this file.
import cluster from "node:cluster";
import { buildApp } from "./app.ts";
import { isClusterWorker, limitedList, workerIndex, workerSiblings } from "./cluster/ipc.ts";
import { runPrimary } from "./cluster/primary.ts";
import { ConfigError, isLoopbackHost, loadConfig } from "./config.ts";
import { buildMetricsApp, metricsOnPublicListener } from "./http/routes/metrics.ts";
import { createLogger } from "./logger.ts";
import { pruneExpired } from "./domain/retention.ts";
import { createServices } from "./services.ts";
import { KeyStoreError } from "./storage/key-store-error.ts";
import { migrate } from "./storage/prisma/migrate.ts";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const root = createLogger(config.logLevel);
  const worker = workerIndex();
  const logger = worker === null ? root : root.child({ worker });
  try {
    if (config.workers > 1 && cluster.isPrimary) {
      await runPrimary(config, logger);
      return;
    }
    if (config.migrateOnStart) {
      await migrate(config.databaseUrl);
      logger.info("database migrations applied");
    }
    const services = await createServices(config, logger, isClusterWorker() ? { siblings: workerSiblings() } : {});
    const app = await buildApp(services, logger);
    // METRICS_PORT: /metrics on its own listener (an internal interface), fed by the same registry;
    // in a cluster, the primary serves it with every worker's metrics.
    const metricsPort = config.metricsEnabled && !isClusterWorker() ? config.metricsPort : null;
    const metricsApp = metricsPort !== null ? await buildMetricsApp(services, logger) : null;

    // Pick up rotations done by the script, the CLI or another instance.
    services.keyReloader.start(config.keysReloadInterval);
    // Token status lists: the bits revoked through another instance or the CLI, every ttl/2.
    services.statusLists.start();

    // One pruner per host: in a cluster, worker 0 (a replacement keeps its index).
    const pruneTimer =
      config.pruneInterval > 0 && (worker === null || worker === 0)
        ? setInterval(() => {
            pruneExpired(services.storage, services.clock, services.audit, config).catch((err: Error) =>
              logger.warn({ err: { message: err.message } }, "prune failed"),
            );
          }, config.pruneInterval * 1000).unref()
        : undefined;

    let closing = false;
    const shutdown = (signal: string) => {
      if (closing) return;
      closing = true;
      logger.info({ signal }, "shutting down: draining in-flight requests");
      clearInterval(pruneTimer);
      services.keyReloader.stop();
      services.statusLists.stop();
      const force = setTimeout(() => {
        logger.error("shutdown took too long; exiting");
        process.exit(1);
      }, (15 + config.shutdownDelay) * 1000).unref();
      // Readiness off first; keep serving for SHUTDOWN_DELAY so load balancers stop sending
      // traffic before the listener closes (then in-flight requests drain).
      services.lifecycle.draining = true;
      new Promise((r) => setTimeout(r, config.shutdownDelay * 1000))
        .then(() => Promise.all([app.close(), metricsApp?.close()]))
        .then(() => services.storage.close())
        .then(() => {
          clearTimeout(force);
          logger.info("shutdown complete");
          process.exit(0);
        })
        .catch((err: Error) => {
          logger.error({ err }, "error during shutdown");
          process.exit(1);
        });
    };
    // on, not once: a cluster worker can get the signal twice (from its process group, as with
    // Ctrl-C or systemd, and from the primary); the second must not kill it mid-drain.
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));

    const issuerUrl = new URL(config.issuer);
    if (issuerUrl.protocol === "http:" && !isLoopbackHost(issuerUrl.hostname)) {
      logger.warn({ issuer: config.issuer }, "ISSUER is plain http (ALLOW_INSECURE_ISSUER=true): tokens and keys travel unprotected; development only (RFC 8414 §2)");
    }
    // Before the public listener, so "Tessera listening" means both are up.
    if (metricsApp && metricsPort !== null) {
      await metricsApp.listen({ port: metricsPort, host: config.metricsHost });
      const host = config.metricsHost.includes(":") ? `[${config.metricsHost}]` : config.metricsHost;
      logger.info(`metrics listening on http://${host}:${metricsPort}/metrics`);
    } else if (config.metricsEnabled && !metricsOnPublicListener(config) && config.metricsPort === null && (worker === null || worker === 0)) {
      logger.warn(
        "/metrics is not served: set METRICS_PORT to serve it on its own listener (bound to METRICS_HOST, default 127.0.0.1), or METRICS_TOKEN to serve it here behind a bearer token; METRICS_ENABLED=false silences this",
      );
    }
    if (isClusterWorker()) {
      // The addresses over a limit on this host, before the first connection (cluster/ipc.ts).
      await limitedList().then(
        (limited) => {
          if (limited > 0) logger.info({ limited }, "addresses at their limit on this host, refused from the first connection");
        },
        (err: Error) => logger.warn({ err: { message: err.message } }, "the cluster primary did not hand over the addresses at their limit"),
      );
    }
    await app.listen({ port: config.port, host: config.host });
    const signer = services.keys.signer();
    logger.info(
      { issuer: config.issuer, kid: signer.kid, alg: signer.alg },
      `Tessera listening on http://${config.host}:${app.server.address() && typeof app.server.address() === "object" ? (app.server.address() as { port: number }).port : config.port} (issuer ${config.issuer})`,
    );
  } catch (err) {
    if (err instanceof KeyStoreError) logger.fatal(`cannot start: ${err.message}`);
    else logger.fatal({ err }, `cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
}

void main();

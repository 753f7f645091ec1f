// Process entry: config, logger, migrations, key bootstrap, listen, graceful shutdown.
import { buildApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { pruneExpired } from "./domain/retention.ts";
import { createServices } from "./services.ts";
import { KeyStoreError } from "./storage/keys-file.ts";
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
  const logger = createLogger(config.logLevel);
  try {
    if (config.migrateOnStart) {
      await migrate(config.databaseUrl);
      logger.info("database migrations applied");
    }
    const services = await createServices(config, logger);
    const app = await buildApp(services, logger);

    // Pick up rotations done by the script, the CLI or another instance.
    services.keyReloader.start(config.keysReloadInterval);

    const pruneTimer =
      config.pruneInterval > 0
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
      const force = setTimeout(() => {
        logger.error("shutdown took too long; exiting");
        process.exit(1);
      }, (15 + config.shutdownDelay) * 1000).unref();
      // Readiness off first; keep serving for SHUTDOWN_DELAY so load balancers stop sending
      // traffic before the listener closes (then in-flight requests drain).
      services.lifecycle.draining = true;
      new Promise((r) => setTimeout(r, config.shutdownDelay * 1000))
        .then(() => app.close())
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
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));

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

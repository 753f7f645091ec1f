// What the admin scripts (rotate-keys, cli) run on: the same configuration, storage, key store
// and audit trail as the server, built through the same composition root, never through HTTP.
import { ConfigError, loadConfig, type Config } from "../config.ts";
import type { Audit } from "../domain/audit.ts";
import { systemClock, type Clock } from "../domain/clock.ts";
import type { Users } from "../domain/credentials/users.ts";
import type { KeyManager } from "../domain/keys/key-manager.ts";
import { createLogger } from "../logger.ts";
import { createAdminServices } from "../services.ts";
import { migrate } from "../storage/prisma/migrate.ts";
import type { KeyStore } from "../domain/keys/key-store.ts";
import type { Storage } from "../storage/storage.ts";

export interface AdminContext {
  config: Config;
  clock: Clock;
  storage: Storage;
  audit: Audit;
  keyStore: KeyStore;
  keyManager: KeyManager;
  users: Users;
  close(): Promise<void>;
}

export async function openAdmin(env: Record<string, string | undefined> = process.env, clock: Clock = systemClock): Promise<AdminContext> {
  // Scripts print their own output on stdout; the log (audit lines) goes to stderr, warnings only
  // unless LOG_LEVEL says otherwise.
  const config = loadConfig({ LOG_LEVEL: "warn", ...env });
  const logger = createLogger(config.logLevel, process.stderr);
  // A cron job may run before the server ever started on this database: migrate (idempotent).
  if (config.migrateOnStart) await migrate(config.databaseUrl);
  return { config, clock, ...(await createAdminServices(config, logger, clock)) };
}

/** Runs a command; config errors exit 2, anything else exits 1 with one clear line. */
export async function runMain(main: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`error: ${summarize(err)}\n`);
      process.exitCode = 1;
    }
  }
}

/** One readable line: database client errors put the cause on their last line. */
export function summarize(err: unknown): string {
  const lines = String((err as Error)?.message ?? err)
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.length <= 1) return lines[0] ?? "unknown error";
  return `${lines[0]} ${lines.at(-1)}`;
}

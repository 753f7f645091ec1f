// What the admin scripts (rotate-keys, cli) run on: the same configuration, storage, key store
// and audit trail as the server, built through the same composition root, never through HTTP.
import { ConfigError, loadConfig, type Config } from "../config.ts";
import { asActor, type Audit } from "../domain/audit.ts";
import { systemClock, type Clock } from "../domain/clock.ts";
import type { Users } from "../domain/credentials/users.ts";
import type { KeyManager } from "../domain/keys/key-manager.ts";
import { createLogger } from "../logger.ts";
import { createAdminServices, type Services } from "../services.ts";
import type { SessionRevocation } from "../domain/sessions/session-revocation.ts";
import { migrate } from "../storage/prisma/migrate.ts";
import type { KeyStore } from "../domain/keys/key-store.ts";
import type { Storage } from "../storage/storage.ts";

/**
 * What every admin function (src/admin/) runs on, whether the CLI or the admin API calls it:
 * the same rules either way. Built by openAdmin() for the CLI and by adminContextOf() in a server.
 */
export interface AdminContext {
  config: Config;
  clock: Clock;
  storage: Storage;
  audit: Audit;
  keyStore: KeyStore;
  keyManager: KeyManager;
  users: Users;
  /** ending sessions: in a server, the status lists are rebuilt at once; the CLI's reach servers at their next rebuild */
  sessions: Pick<SessionRevocation, "findById" | "listLive" | "revokeSession" | "revokeAllOfUser">;
  /** after a key change: a server reloads its key ring now (others within KEYS_RELOAD_INTERVAL) */
  keysChanged(): Promise<void>;
  /** after a client change: a server forgets its cached copy now (others within CLIENT_CACHE_TTL) */
  clientChanged(id: string): void;
  close(): Promise<void>;
}

/** The admin API's context: the server's own services. */
export function adminContextOf(services: Services): AdminContext {
  const { config, clock, storage, audit, keyStore, keyManager, users, sessions, keyReloader, clients, siblings } = services;
  return {
    config,
    clock,
    storage,
    audit,
    keyStore,
    keyManager,
    users,
    sessions: sessions.revocation,
    // Best effort: a failed reload leaves the change to the reloader's next run (KEYS_RELOAD_INTERVAL).
    // The other workers of this host (WORKERS > 1) reload or forget at once too.
    keysChanged: async () => {
      siblings.publish({ type: "keys-changed" });
      await keyReloader.reload().catch(() => false);
    },
    clientChanged: (id) => {
      siblings.publish({ type: "client-changed", id });
      clients.forget(id);
    },
    close: async () => undefined,
  };
}

export async function openAdmin(env: Record<string, string | undefined> = process.env, clock: Clock = systemClock): Promise<AdminContext> {
  // Scripts print their own output on stdout; the log (audit lines) goes to stderr, warnings only
  // unless LOG_LEVEL says otherwise.
  const config = loadConfig({ LOG_LEVEL: "warn", ...env });
  const logger = createLogger(config.logLevel, process.stderr);
  // A cron job may run before the server ever started on this database: migrate (idempotent).
  if (config.migrateOnStart) await migrate(config.databaseUrl);
  return { config, clock, keysChanged: async () => undefined, clientChanged: () => undefined, ...(await createAdminServices(config, logger, clock)) };
}

/** Runs a command; config errors exit 2, anything else exits 1 with one clear line. */
export async function runMain(main: () => Promise<number>): Promise<void> {
  try {
    // Every audit event a command records names the CLI as its actor.
    process.exitCode = await asActor({ via: "cli" }, main);
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

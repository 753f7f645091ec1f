// The composition root: storage -> domain services. The server, the scripts and the tests all
// build the issuer through here, so there is one wiring to trust.
import type { Config } from "./config.ts";
import { Audit, type AuditLogger } from "./domain/audit.ts";
import { systemClock, type Clock } from "./domain/clock.ts";
import { Clients } from "./domain/clients/clients.ts";
import { PasswordHasher } from "./domain/credentials/passwords.ts";
import { Users } from "./domain/credentials/users.ts";
import { KeyRing } from "./domain/keys/key-ring.ts";
import { RefreshFamilies } from "./domain/sessions/refresh-families.ts";
import { AccessTokenIssuer } from "./domain/tokens/access-token.ts";
import { ensureSigningKey, loadOrCreateSecret } from "./storage/keys-file.ts";
import { openPrismaStorage } from "./storage/prisma/index.ts";
import type { Storage } from "./storage/ports.ts";

export interface Services {
  config: Config;
  clock: Clock;
  storage: Storage;
  keys: KeyRing;
  users: Users;
  clients: Clients;
  families: RefreshFamilies;
  accessTokens: AccessTokenIssuer;
  audit: Audit;
  hasher: PasswordHasher;
}

export interface ServiceOverrides {
  clock?: Clock;
  storage?: Storage;
  /** REFRESH_TOKEN_SECRET, base64; otherwise a secret file in KEYS_DIR */
  refreshTokenSecret?: string;
}

export async function createServices(config: Config, logger: AuditLogger, overrides: ServiceOverrides = {}): Promise<Services> {
  const clock = overrides.clock ?? systemClock;
  const storage = overrides.storage ?? (await openPrismaStorage(config.databaseUrl));
  try {
    const keys = new KeyRing(await ensureSigningKey(config.keysDir, config.signingAlg, clock.now()), config.signingAlg);
    const secret = await loadOrCreateSecret(config.keysDir, "refresh-token", overrides.refreshTokenSecret ?? process.env.REFRESH_TOKEN_SECRET);
    const audit = new Audit(storage.audit, logger, clock);
    const hasher = new PasswordHasher(config.argon2, {
      concurrency: config.passwordHashConcurrency,
      queue: config.passwordHashQueue,
    });
    // The first-party public client behind the browser endpoints (config-owned).
    await storage.clients.upsert({
      id: config.webClientId,
      name: "First-party web client",
      type: "public",
      secretHash: null,
      grantTypes: ["password", "refresh_token"],
      scopes: config.webClientScopes,
      audiences: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: clock.now(),
      disabledAt: null,
    });
    return {
      config,
      clock,
      storage,
      keys,
      audit,
      hasher,
      users: new Users(storage.users, hasher, audit, clock),
      clients: new Clients(storage.clients),
      families: new RefreshFamilies(storage.sessions, clock, secret, audit, config),
      accessTokens: new AccessTokenIssuer(keys, clock, {
        issuer: config.issuer,
        audience: config.accessTokenAudience,
        ttl: config.accessTokenTtl,
      }),
    };
  } catch (err) {
    if (!overrides.storage) await storage.close().catch(() => undefined);
    throw err;
  }
}

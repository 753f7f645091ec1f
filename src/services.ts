// The composition root: storage -> domain services. The server, the scripts and the tests all
// build the issuer through here, so there is one wiring to trust.
import type { Config } from "./config.ts";
import { Account } from "./domain/account.ts";
import { Audit, type AuditLogger } from "./domain/audit.ts";
import { systemClock, type Clock } from "./domain/clock.ts";
import { Clients } from "./domain/clients/clients.ts";
import type { GrantType } from "./domain/clients/grant-types.ts";
import { PasswordHasher } from "./domain/credentials/passwords.ts";
import type { ThrottlePolicy } from "./domain/credentials/throttle.ts";
import { Users } from "./domain/credentials/users.ts";
import { KeyManager } from "./domain/keys/key-manager.ts";
import { KeyRing } from "./domain/keys/key-ring.ts";
import type { KeyPolicy } from "./domain/keys/lifecycle.ts";
import { KeyReloader } from "./domain/keys/reloader.ts";
import { parseEncryptionKey } from "./domain/keys/sealing.ts";
import { Sessions } from "./domain/sessions/sessions.ts";
import { SessionRevocation } from "./domain/sessions/session-revocation.ts";
import { AccessTokenIssuer } from "./domain/tokens/access-token.ts";
import { TokenIntrospection } from "./domain/tokens/introspection.ts";
import { TokenRevocation } from "./domain/tokens/revocation.ts";
import { StatusIndexAllocator } from "./domain/tokens/status-index.ts";
import { StatusListPublisher } from "./domain/tokens/status-publisher.ts";
import { FileKeyStore } from "./storage/file-key-store.ts";
import { loadOrCreateSecret } from "./storage/secret-file.ts";
import { IssuedTokens } from "./domain/tokens/issued-tokens.ts";
import { openPrismaStorage } from "./storage/prisma/index.ts";
import type { KeyStore } from "./domain/keys/key-store.ts";
import type { Storage } from "./storage/storage.ts";
import { noSiblings, type Siblings } from "./cluster/ipc.ts";
import type { RevocationListener } from "./domain/tokens/status-publisher.ts";
import { migrate } from "./storage/prisma/migrate.ts";

export interface Services {
  config: Config;
  clock: Clock;
  storage: Storage;
  keys: KeyRing;
  keyStore: KeyStore;
  keyManager: KeyManager;
  keyReloader: KeyReloader;
  users: Users;
  clients: Clients;
  sessions: Sessions;
  /** the user's own account (/account): password change, sessions */
  account: Account;
  accessTokens: AccessTokenIssuer;
  audit: Audit;
  hasher: PasswordHasher;
  /** grants report the tokens they issued here (the metrics count them) */
  issuedTokens: IssuedTokens;
  revocation: TokenRevocation;
  introspection: TokenIntrospection;
  /** token status list indices (sessions, client_credentials tokens) */
  statusIndices: StatusIndexAllocator;
  /** the token status lists this instance serves; start() rebuilds them every ttl/2 */
  statusLists: StatusListPublisher;
  /** process state the HTTP layer reports (readiness turns off while draining) */
  lifecycle: { draining: boolean };
  /** the other workers of this host (WORKERS > 1), told of revocations, key and client changes */
  siblings: Siblings;
}

export interface ServiceOverrides {
  clock?: Clock;
  storage?: Storage;
  siblings?: Siblings;
}

export function keyPolicy(config: Config): KeyPolicy {
  return {
    jwksMaxAge: config.jwksMaxAge,
    keyPublishMargin: config.keyPublishMargin,
    clockSkew: config.clockSkew,
    reloadInterval: config.keysReloadInterval,
    accessTokenTtl: config.accessTokenTtl,
    rotationInterval: config.keyRotationInterval,
  };
}

export function throttlePolicy(config: Config): ThrottlePolicy {
  return {
    threshold: config.loginLockoutThreshold,
    base: config.loginLockoutBase,
    max: config.loginLockoutMax,
    accountLimit: config.loginAccountFailuresPerHour,
  };
}

function openKeyStore(config: Config, storage: Storage): KeyStore {
  const encryptionKey = config.keysEncryptionKey ? parseEncryptionKey(config.keysEncryptionKey) : null;
  if (config.keyStore === "database") {
    if (!encryptionKey) throw new Error("KEY_STORE=database requires KEYS_ENCRYPTION_KEY");
    return storage.keyStore(encryptionKey);
  }
  return new FileKeyStore(config.keysDir, encryptionKey);
}

/** The key manager over `keyStore`, with audit events for what it does. */
function createKeyManager(config: Config, keyStore: KeyStore, audit: Audit, clock: Clock): KeyManager {
  return new KeyManager({
    store: keyStore,
    clock,
    policy: keyPolicy(config),
    signingAlg: config.signingAlg,
    rsaModulusLength: config.rsaModulusLength,
    onEvent: (e) => audit.record(e.type, { details: { kid: e.kid, alg: e.alg, ...e.details } }),
  });
}

function createUsers(config: Config, storage: Storage, hasher: PasswordHasher, audit: Audit, clock: Clock): Users {
  return new Users(storage.users, storage.loginThrottle, hasher, audit, clock, throttlePolicy(config), config.passwordHashQueue);
}

/** What the server and the operator commands share: the audit trail and the keys. */
function keysAndAudit(config: Config, storage: Storage, logger: AuditLogger, clock: Clock): { audit: Audit; keyStore: KeyStore; keyManager: KeyManager } {
  const audit = new Audit(storage.audit, logger, clock);
  const keyStore = openKeyStore(config, storage);
  return { audit, keyStore, keyManager: createKeyManager(config, keyStore, audit, clock) };
}

/** The refresh-token HMAC secret: REFRESH_TOKEN_SECRET, or one the key store keeps (created on first use). */
function refreshTokenSecret(config: Config, keyStore: KeyStore): Promise<Buffer> {
  const envSecret = config.refreshTokenSecret;
  return envSecret ? loadOrCreateSecret(config.keysDir, "refresh-token", envSecret) : keyStore.secret("refresh-token");
}

/**
 * What a first start creates, done once before the workers of a cluster start (so they do not all
 * race to): the migrations (MIGRATE_ON_START), the first signing key and the refresh-token secret.
 */
export async function prepareFirstStart(config: Config, logger: AuditLogger, clock: Clock = systemClock): Promise<void> {
  if (config.migrateOnStart) await migrate(config.databaseUrl);
  const storage = await openPrismaStorage(config.databaseUrl, { poolSize: config.databasePoolSize });
  try {
    const { keyStore, keyManager } = keysAndAudit(config, storage, logger, clock);
    await keyManager.ensureInitialKey();
    await refreshTokenSecret(config, keyStore);
  } finally {
    await storage.close();
  }
}

/** What the operator commands run on: storage, audit trail, key store and key manager, users. */
export async function createAdminServices(
  config: Config,
  logger: AuditLogger,
  clock: Clock,
): Promise<{ storage: Storage; audit: Audit; keyStore: KeyStore; keyManager: KeyManager; users: Users; sessions: SessionRevocation; close(): Promise<void> }> {
  const storage = await openPrismaStorage(config.databaseUrl, { poolSize: config.databasePoolSize });
  try {
    const { audit, keyStore, keyManager } = keysAndAudit(config, storage, logger, clock);
    // One hash at a time: a command registers one user.
    const users = createUsers(config, storage, new PasswordHasher(config.argon2, { concurrency: 1, queue: 1 }), audit, clock);
    // No status lists in a command: servers pick its revocations up at their next rebuild.
    const sessions = new SessionRevocation(storage.sessions, clock, audit, { revoked: async () => undefined });
    return { storage, audit, keyStore, keyManager, users, sessions, close: () => storage.close() };
  } catch (err) {
    await storage.close().catch(() => undefined);
    throw err;
  }
}

export async function createServices(config: Config, logger: AuditLogger, overrides: ServiceOverrides = {}): Promise<Services> {
  const clock = overrides.clock ?? systemClock;
  const storage = overrides.storage ?? (await openPrismaStorage(config.databaseUrl, { poolSize: config.databasePoolSize }));
  storage.watchCheckpointer?.((event) =>
    event.type === "failed"
      ? logger.error(
          { err: { message: event.error.message }, retryInMs: event.retryInMs },
          "the SQLite checkpoint worker failed: checkpoints run inline, in the statements that commit, until another worker starts",
        )
      : logger.info({}, "the SQLite checkpoint worker started again: checkpoints are off the event loop again"),
  );
  try {
    const { audit, keyStore, keyManager } = keysAndAudit(config, storage, logger, clock);
    await keyManager.ensureInitialKey();
    const keys = new KeyRing([], config.signingAlg);
    const keyReloader = new KeyReloader(
      keyStore,
      keys,
      (err) => logger.error({ err: { message: err.message } }, "key reload failed; keeping the current keys"),
      (loaded) =>
        logger.info({ keys: loaded.map((k) => ({ kid: k.kid, alg: k.alg, state: k.state })) }, "signing keys loaded"),
    );
    await keyReloader.reload();

    const secret = await refreshTokenSecret(config, keyStore);

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
      grantTypes: ["password", "refresh_token"] satisfies GrantType[],
      scopes: config.webClientScopes,
      audiences: [],
      resources: [],
      accessTokenTtl: null,
      refreshTokenTtl: null,
      createdAt: clock.now(),
      disabledAt: null,
    });
    // Token status lists (draft-ietf-oauth-status-list): built now, so the first request finds them.
    const statusIndices = new StatusIndexAllocator(storage.statusIndices);
    const statusLists = new StatusListPublisher({
      revoked: storage.revokedIndices,
      indices: storage.statusIndices,
      keys,
      clock,
      issuer: config.issuer,
      ttl: config.statusListTtl,
      onError: (err) => logger.error({ err: { message: err.message } }, "status list rebuild failed; serving the last lists until they expire"),
      onRecovered: () => logger.info({}, "status lists rebuilt again"),
    });
    await statusLists.rebuild();
    // A revocation committed here: served by this worker's lists at once, and by its siblings'.
    const siblings = overrides.siblings ?? noSiblings;
    const revocations: RevocationListener = {
      revoked: async () => {
        siblings.publish({ type: "revoked" });
        await statusLists.revoked();
      },
    };
    const sessions = new Sessions(storage.sessions, clock, secret, audit, config, statusIndices, revocations);
    const clients = new Clients(storage.clients, config.clientCacheTtl);
    siblings.subscribe((event) => {
      if (event.type === "revoked") void statusLists.revoked();
      else if (event.type === "keys-changed") void keyReloader.reload().catch(() => false);
      else clients.forget(event.id);
    });
    const users = createUsers(config, storage, hasher, audit, clock);
    const account = new Account({
      keys,
      clock,
      issuer: config.issuer,
      audience: config.accessTokenAudience,
      users,
      sessions,
      audit,
      revocations: storage.revocations,
      clients,
      userStore: storage.users,
    });
    return {
      config,
      clock,
      storage,
      keys,
      keyStore,
      keyManager,
      keyReloader,
      audit,
      hasher,
      users,
      clients,
      sessions,
      account,
      lifecycle: { draining: false },
      siblings,
      issuedTokens: new IssuedTokens(),
      statusIndices,
      statusLists,
      revocation: new TokenRevocation({ keys, clock, issuer: config.issuer, sessions, revocations: storage.revocations, audit, statusLists: revocations, clockSkew: config.clockSkew }),
      introspection: new TokenIntrospection({
        keys,
        clock,
        issuer: config.issuer,
        sessions,
        revocations: storage.revocations,
        clients,
        users: storage.users,
      }),
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

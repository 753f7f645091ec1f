// Environment -> one frozen, typed Config. Every bad variable gets its own line in one error,
// so an operator fixes them all in one go instead of one restart per typo.
import os from "node:os";
import path from "node:path";

export const SIGNING_ALGS = ["ES256", "RS256", "PS256", "EdDSA"] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export interface Argon2Params {
  /** memory cost in KiB */
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export interface Config {
  port: number;
  host: string;
  issuer: string;
  databaseUrl: string;
  keysDir: string;
  signingAlg: SigningAlg;
  /** seconds */
  accessTokenTtl: number;
  /** absolute session lifetime, seconds */
  refreshTokenTtl: number;
  /** idle timeout, seconds */
  refreshIdleTtl: number;
  /** seconds a consumed refresh token may be retried idempotently */
  refreshReuseGrace: number;
  accessTokenAudience: string;
  cookieSecure: boolean;
  allowRegistration: boolean;
  logLevel: string;
  /** Cache-Control max-age of the JWKS, seconds */
  jwksMaxAge: number;
  /** client_id of the first-party public client used by the browser endpoints */
  webClientId: string;
  /** scopes the first-party web client may request (space-separated in WEB_CLIENT_SCOPES) */
  webClientScopes: string[];
  /** origins allowed to call the cookie endpoints (CSRF Origin check) */
  allowedOrigins: string[];
  argon2: Argon2Params;
  /** concurrent password hash operations; more wait in a bounded queue */
  passwordHashConcurrency: number;
  /** waiting password hash operations before new logins get 503 */
  passwordHashQueue: number;
  /** seconds between prunes of dead sessions by the server; 0 = never (use the script) */
  pruneInterval: number;
  /** seconds audit events are kept */
  auditRetention: number;
  migrateOnStart: boolean;
  trustProxy: boolean;
  /** where signing keys live: one file per key in KEYS_DIR, or the database */
  keyStore: "file" | "database";
  /** KEYS_ENCRYPTION_KEY (base64, 32 bytes), or null */
  keysEncryptionKey: string | null;
  /** seconds a next key waits after a JWKS cache lifetime before it may sign */
  keyPublishMargin: number;
  /** seconds of clock difference tolerated between issuer and verifiers */
  clockSkew: number;
  /** seconds a key stays active */
  keyRotationInterval: number;
  /** seconds between key reloads of a running instance */
  keysReloadInterval: number;
  /** scopes only users with one of the listed roles may get (SCOPE_ROLES="admin:write=admin|ops;...") */
  scopeRoles: ReadonlyMap<string, readonly string[]>;
  /** seconds between SIGTERM (readiness off) and closing the listener, for load balancers to notice */
  shutdownDelay: number;
  /** serve Prometheus metrics at /metrics */
  metricsEnabled: boolean;
  /** when set, /metrics requires `Authorization: Bearer <token>` */
  metricsToken: string | null;
  /** failed logins from one address on one account before that address must wait; 0 = never */
  loginLockoutThreshold: number;
  /** first wait, seconds; doubles with each further failure */
  loginLockoutBase: number;
  /** longest wait, seconds */
  loginLockoutMax: number;
  /** failed logins per account per rolling hour that are evaluated, whatever the addresses (ASVS 2.2.1: <= 100) */
  loginAccountFailuresPerHour: number;
  /** seconds a client record is cached (a disabled client is refused within this time) */
  clientCacheTtl: number;
  /** RSA key size for RS256/PS256 */
  rsaModulusLength: 2048 | 3072;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "900", "900s", "15m", "12h", "30d" -> seconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(raw);
  if (!m) return undefined;
  const value = Number(m[1]) * (UNITS[m[2] || "s"] ?? 1);
  return Number.isSafeInteger(value) ? value : undefined;
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const str = (name: string, def: string): string => {
    const v = env[name];
    return v === undefined || v === "" ? def : v;
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const v = env[name];
    if (v === undefined || v === "") return def;
    if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max) {
      problems.push(`${name}=${JSON.stringify(v)}: expected a whole number from ${min} to ${max}`);
      return def;
    }
    return Number(v);
  };
  const duration = (name: string, def: number, min: number): number => {
    const v = env[name];
    if (v === undefined || v === "") return def;
    const secs = parseDuration(v);
    if (secs === undefined || secs < min) {
      problems.push(
        `${name}=${JSON.stringify(v)}: expected a duration of at least ${min}s, in seconds or with a unit (e.g. 900, 15m, 12h, 30d)`,
      );
      return def;
    }
    return secs;
  };
  const bool = (name: string, def: boolean): boolean => {
    const v = env[name];
    if (v === undefined || v === "") return def;
    if (/^(true|1|yes|on)$/i.test(v)) return true;
    if (/^(false|0|no|off)$/i.test(v)) return false;
    problems.push(`${name}=${JSON.stringify(v)}: expected true or false`);
    return def;
  };
  const url = (name: string, value: string): string => {
    try {
      const u = new URL(value);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
      return value.replace(/\/+$/, "");
    } catch {
      problems.push(`${name}=${JSON.stringify(value)}: expected an http(s) URL`);
      return value;
    }
  };

  const port = int("PORT", 3000, 0, 65535);
  const host = str("HOST", "127.0.0.1");
  const issuer = url("ISSUER", str("ISSUER", `http://localhost:${port}`));

  const signingAlgRaw = str("SIGNING_ALG", "ES256");
  const signingAlg = SIGNING_ALGS.find((a) => a === signingAlgRaw);
  if (!signingAlg) {
    problems.push(`SIGNING_ALG=${JSON.stringify(signingAlgRaw)}: expected one of ${SIGNING_ALGS.join(", ")}`);
  }

  const databaseUrl = str("DATABASE_URL", "file:./data/tessera.db");
  if (!/^(file:|postgres(ql)?:\/\/)/.test(databaseUrl)) {
    problems.push(`DATABASE_URL: expected file:<path> (SQLite) or postgresql://... (Postgres)`);
  }

  const accessTokenTtl = duration("ACCESS_TOKEN_TTL", 900, 1);
  const refreshTokenTtl = duration("REFRESH_TOKEN_TTL", 30 * 86400, 1);
  const refreshIdleTtl = duration("REFRESH_IDLE_TTL", 7 * 86400, 1);
  const refreshReuseGrace = duration("REFRESH_REUSE_GRACE", 10, 0);
  if (refreshReuseGrace > 300) {
    problems.push(`REFRESH_REUSE_GRACE=${refreshReuseGrace}: at most 300 seconds; a long grace window weakens reuse detection`);
  }

  const logLevel = str("LOG_LEVEL", "info");
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${JSON.stringify(logLevel)}: expected fatal, error, warn, info, debug, trace or silent`);
  }

  const allowedOrigins = str("ALLOWED_ORIGINS", new URL(issuer.startsWith("http") ? issuer : "http://invalid").origin)
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of allowedOrigins) {
    try {
      if (new URL(o).origin !== o) throw new Error();
    } catch {
      problems.push(`ALLOWED_ORIGINS: ${JSON.stringify(o)} is not an origin (scheme://host[:port], no path)`);
    }
  }

  const argon2: Argon2Params = {
    memoryCost: int("ARGON2_MEMORY_KIB", 19456, 19456, 4 * 1024 * 1024),
    timeCost: int("ARGON2_ITERATIONS", 2, 2, 100),
    parallelism: int("ARGON2_PARALLELISM", 1, 1, 16),
  };

  const keyStoreRaw = str("KEY_STORE", "file");
  if (keyStoreRaw !== "file" && keyStoreRaw !== "database") {
    problems.push(`KEY_STORE=${JSON.stringify(keyStoreRaw)}: expected file or database`);
  }
  const keysEncryptionKey = env.KEYS_ENCRYPTION_KEY ? env.KEYS_ENCRYPTION_KEY.trim() : null;
  if (keysEncryptionKey !== null) {
    const bytes = Buffer.from(keysEncryptionKey, /[-_]/.test(keysEncryptionKey) ? "base64url" : "base64");
    if (bytes.length !== 32) problems.push(`KEYS_ENCRYPTION_KEY: expected 32 bytes, base64-encoded (got ${bytes.length} bytes)`);
  } else if (keyStoreRaw === "database") {
    problems.push("KEYS_ENCRYPTION_KEY: required with KEY_STORE=database (keys are stored sealed); generate one with: openssl rand -base64 32");
  }
  const scopeRoles = new Map<string, string[]>();
  for (const entry of str("SCOPE_ROLES", "").split(/[;\s]+/).filter(Boolean)) {
    const m = /^([\x21\x23-\x3C\x3E-\x5B\x5D-\x7E]+)=([A-Za-z0-9._:-]+(\|[A-Za-z0-9._:-]+)*)$/.exec(entry);
    if (!m) {
      problems.push(`SCOPE_ROLES: ${JSON.stringify(entry)} is not scope=role[|role...]`);
      continue;
    }
    scopeRoles.set(m[1]!, m[2]!.split("|"));
  }
  const rsaModulusLength = int("RSA_MODULUS_LENGTH", 2048, 2048, 3072);
  if (rsaModulusLength !== 2048 && rsaModulusLength !== 3072) {
    problems.push(`RSA_MODULUS_LENGTH=${rsaModulusLength}: expected 2048 or 3072`);
  }

  const config: Config = {
    port,
    host,
    issuer,
    databaseUrl,
    keysDir: path.resolve(str("KEYS_DIR", "./keys")),
    signingAlg: signingAlg ?? "ES256",
    accessTokenTtl,
    refreshTokenTtl,
    refreshIdleTtl,
    refreshReuseGrace,
    accessTokenAudience: str("ACCESS_TOKEN_AUDIENCE", "api"),
    cookieSecure: bool("COOKIE_SECURE", true),
    allowRegistration: bool("ALLOW_REGISTRATION", true),
    logLevel,
    jwksMaxAge: duration("JWKS_MAX_AGE", 300, 0),
    webClientId: str("WEB_CLIENT_ID", "web"),
    webClientScopes: str("WEB_CLIENT_SCOPES", "profile").split(/[\s,]+/).filter(Boolean),
    allowedOrigins,
    argon2,
    // One argon2 (p=1) per core: more only queues inside libuv's pool, where it delays the
    // signing and hashing work that shares those threads.
    passwordHashConcurrency: int("PASSWORD_HASH_CONCURRENCY", os.availableParallelism(), 1, 256),
    passwordHashQueue: int("PASSWORD_HASH_QUEUE", 256, 0, 100000),
    pruneInterval: duration("PRUNE_INTERVAL", 3600, 0),
    auditRetention: duration("AUDIT_RETENTION", 90 * 86400, 86400),
    migrateOnStart: bool("MIGRATE_ON_START", true),
    trustProxy: bool("TRUST_PROXY", false),
    keyStore: keyStoreRaw === "database" ? "database" : "file",
    keysEncryptionKey,
    keyPublishMargin: duration("KEY_PUBLISH_MARGIN", 30, 0),
    clockSkew: duration("CLOCK_SKEW", 60, 0),
    keyRotationInterval: duration("KEY_ROTATION_INTERVAL", 30 * 86400, 1),
    keysReloadInterval: duration("KEYS_RELOAD_INTERVAL", 10, 1),
    rsaModulusLength: rsaModulusLength === 3072 ? 3072 : 2048,
    clientCacheTtl: duration("CLIENT_CACHE_TTL", 5, 0),
    scopeRoles,
    shutdownDelay: duration("SHUTDOWN_DELAY", 0, 0),
    metricsEnabled: bool("METRICS_ENABLED", true),
    metricsToken: env.METRICS_TOKEN ? env.METRICS_TOKEN : null,
    loginLockoutThreshold: int("LOGIN_LOCKOUT_THRESHOLD", 10, 0, 1000),
    loginLockoutBase: duration("LOGIN_LOCKOUT_BASE", 60, 1),
    loginLockoutMax: duration("LOGIN_LOCKOUT_MAX", 3600, 1),
    loginAccountFailuresPerHour: int("LOGIN_ACCOUNT_FAILURES_PER_HOUR", 100, 1, 100),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...config, argon2: Object.freeze(argon2), allowedOrigins: Object.freeze([...allowedOrigins]) as string[] });
}

// Environment -> one frozen, typed Config. Every bad variable gets its own line in one error,
// so an operator fixes them all in one go instead of one restart per typo.
import path from "node:path";
import proxyaddr from "proxy-addr";
import type { Argon2Params } from "./domain/credentials/passwords.ts";
import type { KeyStoreKind } from "./domain/keys/key-store.ts";
import { SIGNING_ALGS, type SigningAlg } from "./domain/keys/signing-key.ts";
import { isScopeToken } from "./domain/scope.ts";
import { usableCpus } from "./cpus.ts";


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
  /**
   * the admin API's resource identifier (ADMIN_API_AUDIENCE, default ISSUER + "/admin/v1"): it
   * accepts only client_credentials tokens with this `aud` (RFC 9068 §4), which an operator's
   * client gets by being allowed this audience (RFC 8707 `resource`)
   */
  adminApiAudience: string;
  cookieSecure: boolean;
  allowRegistration: boolean;
  logLevel: string;
  /** Cache-Control max-age of the JWKS, seconds */
  jwksMaxAge: number;
  /**
   * STATUS_LIST_TTL: the `ttl` of the token status lists and their Cache-Control max-age, seconds;
   * instances rebuild their lists every ttl/2
   */
  statusListTtl: number;
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
  /** DATABASE_POOL_SIZE: Postgres connections per process (each WORKERS worker has its own pool) */
  databasePoolSize: number;
  /** seconds between prunes of dead sessions by the server; 0 = never (use the script) */
  pruneInterval: number;
  /** seconds audit events are kept */
  auditRetention: number;
  migrateOnStart: boolean;
  /**
   * Which hops of X-Forwarded-For to trust: false (none: the socket's peer is the client), a
   * number of proxy hops, or the proxies' addresses/CIDRs (and loopback, linklocal, uniquelocal).
   * The client is the right-most address not trusted; never the left-most, which is whatever the
   * client wrote.
   */
  trustProxy: false | number | string[];
  /** per-address request limits (null: off); see http/plugins/rate-limits.ts */
  rateLimits: {
    /** password checks: /auth/login and the password grant */
    password: RateLimit | null;
    register: RateLimit | null;
    /** /auth/refresh and the refresh_token grant */
    refresh: RateLimit | null;
    /** failed client authentications on the token, revocation and introspection endpoints */
    clientAuthFailures: RateLimit | null;
  };
  /** redis://... : rate-limit counters shared by every instance; null: per instance */
  redisUrl: string | null;
  /** prefix of every key Tessera writes to Redis */
  redisKeyPrefix: string;
  /** where signing keys live: one file per key in KEYS_DIR, or the database */
  keyStore: KeyStoreKind;
  /** KEYS_ENCRYPTION_KEY (base64, 32 bytes), or null */
  keysEncryptionKey: string | null;
  /** REFRESH_TOKEN_SECRET (base64), or null: then a secret kept by the key store */
  refreshTokenSecret: string | null;
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
  /** METRICS_PORT: /metrics on its own listener; null = none (then only behind METRICS_TOKEN on the public one, or nowhere) */
  metricsPort: number | null;
  /** METRICS_HOST: the address the metrics listener binds, an internal interface */
  metricsHost: string;
  /** ALLOW_INSECURE_ISSUER: a plain-http ISSUER on a host that is not loopback (development only) */
  allowInsecureIssuer: boolean;
  /** REFRESH_COOKIE_NAME: the browser refresh-token cookie */
  refreshCookieName: string;
  /** REFRESH_COOKIE_PATH: its Path; the browser must send it to /auth/refresh and /auth/logout */
  refreshCookiePath: "/" | "/auth";
  /** SESSION_METADATA: keep the User-Agent and address seen at login on the session (GET /account/sessions) */
  sessionMetadata: boolean;
  /**
   * WORKERS: server processes on this host under node:cluster (one listener shared by all); 1 = no
   * cluster, the process serves itself; WORKERS=auto = one per usable
   * CPU (cpus.ts: the cores, capped by a container's CPU limit)
   */
  workers: number;
}

/** At most `max` requests per `window` seconds. */
export interface RateLimit {
  max: number;
  window: number;
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

/**
 * A loopback host as the WHATWG URL parser writes it (127.1 and 0x7f.0.0.1 become 127.0.0.1,
 * [0::1] becomes [::1]): localhost, 127.0.0.0/8, [::1]. Not *.localhost: browsers hard-wire it
 * to loopback, but the services that fetch the JWKS resolve names with the OS resolver, which
 * may ask DNS for it.
 */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

type Env = Record<string, string | undefined>;

/**
 * TRUST_PROXY: "false" (default), "true" (= 1: the directly connected proxy only; trusting every
 * hop would let a client pick its own address by writing X-Forwarded-For), a hop count, or a
 * comma-separated list of proxy addresses / CIDRs / loopback, linklocal, uniquelocal.
 */
function parseTrustProxy(raw: string, problems: string[]): false | number | string[] {
  const v = raw.trim();
  if (/^(false|0|no|off)$/i.test(v)) return false;
  if (/^(true|yes|on)$/i.test(v)) return 1;
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops <= 32) return hops;
  }
  const entries = v.split(",").map((e) => e.trim()).filter(Boolean);
  // Validated by what the server will run: proxy-addr refuses anything but addresses, CIDRs (not
  // /0) and its keywords.
  let compiles = entries.length > 0;
  try {
    if (compiles) proxyaddr.compile(entries);
  } catch {
    compiles = false;
  }
  if (!compiles) {
    problems.push(
      `TRUST_PROXY=${JSON.stringify(raw)}: expected false, true (one proxy hop), a hop count (1-32), or the proxies' addresses/CIDRs (e.g. 10.0.0.0/8,loopback)`,
    );
    return false;
  }
  return entries;
}

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
  const workersRaw = str("WORKERS", "1").trim();
  const cpus = usableCpus();
  const workers = /^auto$/i.test(workersRaw) ? cpus : /^\d+$/.test(workersRaw) ? Number(workersRaw) : NaN;
  if (!(workers >= 1 && workers <= 256)) problems.push(`WORKERS=${JSON.stringify(env.WORKERS)}: expected a whole number from 1 to 256, or auto (one per usable CPU)`);
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

  const statusListTtl = duration("STATUS_LIST_TTL", 10, 1);
  if (statusListTtl > 3600) {
    problems.push(`STATUS_LIST_TTL=${statusListTtl}: at most 3600 seconds; it bounds how long a revoked access token is still accepted by services`);
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
  /** "30/1m" -> 30 per 60 s; "0" or "off" -> no limit. */
  const rate = (name: string, def: string): RateLimit | null => {
    const v = str(name, def).trim();
    if (/^(0|off)$/i.test(v)) return null;
    const m = /^(\d+)\s*\/\s*(.+)$/.exec(v);
    const window = m ? parseDuration(m[2]!) : undefined;
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 1_000_000 || window === undefined || window < 1) {
      problems.push(`${name}=${JSON.stringify(v)}: expected requests/duration (e.g. 30/1m, 100/1h), or 0 to turn the limit off`);
      return null;
    }
    return { max: Number(m[1]), window };
  };
  const trustProxy = parseTrustProxy(str("TRUST_PROXY", "false"), problems);
  const redisUrl = env.REDIS_URL ? env.REDIS_URL.trim() : null;
  if (redisUrl !== null && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    problems.push(`REDIS_URL: expected redis://[user:password@]host[:port][/db] or rediss://...`);
  }

  const scopeRoles = new Map<string, string[]>();
  for (const entry of str("SCOPE_ROLES", "").split(/[;\s]+/).filter(Boolean)) {
    // scope (a scope-token without "=") = role[|role...]
    const eq = entry.indexOf("=");
    const scope = entry.slice(0, Math.max(eq, 0));
    const roles = entry.slice(eq + 1);
    if (eq < 1 || !isScopeToken(scope) || !/^[A-Za-z0-9._:-]+(\|[A-Za-z0-9._:-]+)*$/.test(roles)) {
      problems.push(`SCOPE_ROLES: ${JSON.stringify(entry)} is not scope=role[|role...]`);
      continue;
    }
    scopeRoles.set(scope, roles.split("|"));
  }
  const rsaModulusLength = int("RSA_MODULUS_LENGTH", 2048, 2048, 3072);
  if (rsaModulusLength !== 2048 && rsaModulusLength !== 3072) {
    problems.push(`RSA_MODULUS_LENGTH=${rsaModulusLength}: expected 2048 or 3072`);
  }

  // ---- metrics listener, issuer scheme, refresh cookie ----
  const metricsPort = env.METRICS_PORT ? int("METRICS_PORT", 0, 1, 65535) : null;
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === port) {
    problems.push(`METRICS_PORT=${metricsPort}: must differ from PORT (metrics get their own listener; leave METRICS_PORT unset to use METRICS_TOKEN on the public one)`);
  }
  const allowInsecureIssuer = bool("ALLOW_INSECURE_ISSUER", false);
  // RFC 8414 §2: the issuer identifier is an https URL. Over plain http the discovery document
  // and the JWKS that verifiers trust could be swapped on the way; loopback never leaves the host.
  const issuerUrl = URL.canParse(issuer) ? new URL(issuer) : null;
  if (issuerUrl?.protocol === "http:" && !isLoopbackHost(issuerUrl.hostname) && !allowInsecureIssuer) {
    problems.push(
      `ISSUER=${JSON.stringify(issuer)}: must be https (RFC 8414 §2); plain http is accepted only for localhost, 127.0.0.0/8 or [::1]. Use an https ISSUER, or set ALLOW_INSECURE_ISSUER=true for development`,
    );
  }
  const cookieSecure = bool("COOKIE_SECURE", true);
  const refreshCookieName = str("REFRESH_COOKIE_NAME", "refresh_token");
  // RFC 6265 §4.1.1: a cookie-name is a token (RFC 9110 §5.6.2 tchar).
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(refreshCookieName)) {
    problems.push(`REFRESH_COOKIE_NAME=${JSON.stringify(refreshCookieName)}: expected a cookie name (letters, digits and !#$%&'*+-.^_\`|~; no spaces, quotes, separators)`);
  }
  const refreshCookiePathRaw = str("REFRESH_COOKIE_PATH", "/auth");
  const refreshCookiePath = refreshCookiePathRaw === "/" || refreshCookiePathRaw === "/auth" ? refreshCookiePathRaw : "/auth";
  if (refreshCookiePath !== refreshCookiePathRaw) {
    problems.push(`REFRESH_COOKIE_PATH=${JSON.stringify(refreshCookiePathRaw)}: expected / or /auth (browsers must send the cookie to /auth/refresh and /auth/logout)`);
  }
  // Cookie prefixes (RFC 6265bis §4.1.3, matched case-insensitively by browsers): a browser drops
  // a __Secure- cookie without Secure, and a __Host- cookie without Secure, with a Domain, or
  // with a Path other than / (we never set Domain).
  const prefix = /^__(host|secure)-/i.exec(refreshCookieName)?.[1]?.toLowerCase();
  const missing = [
    ...(prefix && !cookieSecure ? ["COOKIE_SECURE=true"] : []),
    ...(prefix === "host" && refreshCookiePathRaw !== "/" ? ["REFRESH_COOKIE_PATH=/"] : []),
  ];
  if (missing.length > 0) {
    problems.push(
      `REFRESH_COOKIE_NAME=${JSON.stringify(refreshCookieName)}: a __${prefix === "host" ? "Host" : "Secure"}- cookie needs ${missing.join(" and ")}, or browsers reject it`,
    );
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
    adminApiAudience: str("ADMIN_API_AUDIENCE", `${issuer.replace(/\/+$/, "")}/admin/v1`),
    cookieSecure,
    allowRegistration: bool("ALLOW_REGISTRATION", true),
    logLevel,
    jwksMaxAge: duration("JWKS_MAX_AGE", 300, 0),
    statusListTtl,
    webClientId: str("WEB_CLIENT_ID", "web"),
    webClientScopes: str("WEB_CLIENT_SCOPES", "profile").split(/[\s,]+/).filter(Boolean),
    allowedOrigins,
    argon2,
    // One argon2 (p=1) per usable CPU: more only queues inside libuv's pool, where it delays the
    // signing and hashing work that shares those threads. With WORKERS, the host's CPUs are
    // shared among the workers.
    passwordHashConcurrency: int("PASSWORD_HASH_CONCURRENCY", Math.max(1, Math.floor(cpus / (workers >= 1 && workers <= 256 ? workers : 1))), 1, 256),
    passwordHashQueue: int("PASSWORD_HASH_QUEUE", 256, 0, 100000),
    databasePoolSize: int("DATABASE_POOL_SIZE", 10, 1, 1000),
    pruneInterval: duration("PRUNE_INTERVAL", 3600, 0),
    auditRetention: duration("AUDIT_RETENTION", 90 * 86400, 86400),
    migrateOnStart: bool("MIGRATE_ON_START", true),
    trustProxy,
    rateLimits: {
      password: rate("RATE_LIMIT_PASSWORD", "30/1m"),
      register: rate("RATE_LIMIT_REGISTER", "30/1h"),
      refresh: rate("RATE_LIMIT_REFRESH", "120/1m"),
      clientAuthFailures: rate("RATE_LIMIT_CLIENT_AUTH_FAILURES", "20/1m"),
    },
    redisUrl,
    redisKeyPrefix: str("REDIS_KEY_PREFIX", "tessera:"),
    keyStore: keyStoreRaw === "database" ? "database" : "file",
    keysEncryptionKey,
    refreshTokenSecret: env.REFRESH_TOKEN_SECRET || null,
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
    metricsPort,
    metricsHost: str("METRICS_HOST", "127.0.0.1"),
    allowInsecureIssuer,
    refreshCookieName,
    refreshCookiePath,
    sessionMetadata: bool("SESSION_METADATA", true),
    workers: workers >= 1 && workers <= 256 ? workers : 1,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...config, argon2: Object.freeze(argon2), allowedOrigins: Object.freeze([...allowedOrigins]) as string[] });
}

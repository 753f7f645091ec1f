// Test harness: a real issuer (real database, real keys, real argon2) behind app.inject(),
// with a fake clock and captured logs. One database per call, cloned from the run's template.
import { adminContextOf, type AdminContext } from "../../src/admin/context.ts";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { inflateSync } from "node:zlib";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";
import { describe, inject } from "vitest";
import { buildApp } from "../../src/app.ts";
import { loadConfig, type Config } from "../../src/config.ts";
import { FakeClock } from "./fake-clock.ts";
import { createLogger } from "../../src/logger.ts";
import type { Siblings } from "../../src/cluster/ipc.ts";
import { createServices, type Services } from "../../src/services.ts";
import { openPrismaStorage, type PrismaStorage } from "../../src/storage/prisma/index.ts";
import { createPgDatabase, tempSqliteDatabase, type TempDatabase } from "./databases.ts";

export type Flavor = "sqlite" | "postgres";

/** The databases this run tests against: SQLite always, Postgres when TEST_DATABASE_URL is set. */
export function flavors(): Flavor[] {
  return inject("postgres") ? ["sqlite", "postgres"] : ["sqlite"];
}

/** describe() once per database, named "[sqlite]" / "[postgres]". */
export function describeEachDb(name: string, body: (flavor: Flavor) => void): void {
  for (const flavor of flavors()) describe(`${name} [${flavor}]`, () => body(flavor));
}

let counter = 0;

/** A fresh, migrated, empty database; `drop` removes it. */
export async function freshDatabase(flavor: Flavor): Promise<TempDatabase> {
  if (flavor === "sqlite") return tempSqliteDatabase("tessera-db-", { copyOf: inject("sqliteTemplate") });
  const info = inject("postgres");
  if (!info) throw new Error("Postgres is not configured for this run");
  const name = `${info.prefix}_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`;
  return createPgDatabase(info.adminUrl, name, { template: info.template });
}

/** Collects every log line the issuer writes. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    cb();
  }
  get text(): string {
    return this.lines.join("\n");
  }
  parsed(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface TestIssuer {
  app: FastifyInstance;
  services: Services;
  storage: PrismaStorage;
  config: Config;
  clock: FakeClock;
  logs: LogCapture;
  databaseUrl: string;
  keysDir: string;
  close(): Promise<void>;
}

export interface IssuerOptions {
  env?: Record<string, string>;
  clock?: FakeClock;
  /** reuse an existing database / keys dir (e.g. a second instance) */
  databaseUrl?: string;
  keysDir?: string;
  /** the other workers of its host (test/helpers/siblings.ts links instances as a cluster would) */
  siblings?: Siblings;
}

export async function startIssuer(flavor: Flavor, opts: IssuerOptions = {}): Promise<TestIssuer> {
  const db = opts.databaseUrl ? { url: opts.databaseUrl, drop: async () => undefined } : await freshDatabase(flavor);
  const ownKeys = !opts.keysDir;
  const keysDir = opts.keysDir ?? mkdtempSync(path.join(os.tmpdir(), "tessera-keys-"));
  const config = loadConfig({
    ISSUER: "https://issuer.test",
    DATABASE_URL: db.url,
    KEYS_DIR: keysDir,
    LOG_LEVEL: "info",
    ALLOWED_ORIGINS: "https://app.test",
    // Suites register and log in many users from one address (the test's): per-address limits
    // are off unless a test sets them (test/security/rate-limits.test.ts runs the defaults).
    RATE_LIMIT_PASSWORD: "0",
    RATE_LIMIT_REGISTER: "0",
    RATE_LIMIT_REFRESH: "0",
    RATE_LIMIT_CLIENT_AUTH_FAILURES: "0",
    ...opts.env,
  });
  const clock = opts.clock ?? new FakeClock(new Date());
  const logs = new LogCapture();
  const logger = createLogger(config.logLevel, logs);
  const storage = await openPrismaStorage(db.url);
  const services = await createServices(config, logger, { clock, storage, ...(opts.siblings ? { siblings: opts.siblings } : {}) });
  const app = await buildApp(services, logger);
  await app.ready();
  return {
    app,
    services,
    storage,
    config,
    clock,
    logs,
    databaseUrl: db.url,
    keysDir,
    async close() {
      services.statusLists.stop();
      await app.close();
      await storage.close();
      if (!opts.databaseUrl) await db.drop();
      if (ownKeys) rmSync(keysDir, { recursive: true, force: true });
    },
  };
}

/** Several issuer instances on one fresh database, as behind a load balancer. */
export interface InstanceGroup {
  db: TempDatabase;
  instances: TestIssuer[];
  /** closes every instance (the first last: others may share its keys directory), then drops the database */
  close(): Promise<void>;
}

/** `count` instances on one fresh database; with `shareKeysDir`, all use the first one's KEYS_DIR (the file key store). */
export async function startInstances(
  flavor: Flavor,
  count: number,
  opts: Omit<IssuerOptions, "databaseUrl" | "keysDir"> & { shareKeysDir?: boolean } = {},
): Promise<InstanceGroup> {
  const { shareKeysDir, ...issuerOpts } = opts;
  const db = await freshDatabase(flavor);
  const instances: TestIssuer[] = [];
  const close = async () => {
    for (const i of [...instances].reverse()) await i.close();
    await db.drop();
  };
  try {
    for (let i = 0; i < count; i++) {
      const keysDir = shareKeysDir && instances[0] ? { keysDir: instances[0].keysDir } : {};
      instances.push(await startIssuer(flavor, { ...issuerOpts, ...keysDir, databaseUrl: db.url }));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { db, instances, close };
}

// ---- protocol helpers: what a client does ----

/** What the operator commands (src/admin/) run on, built from the test issuer's services. */
export function adminOf(issuer: TestIssuer): AdminContext {
  return adminContextOf(issuer.services);
}

export const form = (params: Record<string, string>) => ({
  headers: { "content-type": "application/x-www-form-urlencoded" },
  payload: new URLSearchParams(params).toString(),
});

let userCounter = 0;
export const uniqueEmail = (tag = "user") => `${tag}.${process.pid}.${++userCounter}.${Date.now()}@example.test`;
export const PASSWORD = "correct horse battery staple";

export async function register(app: FastifyInstance, email = uniqueEmail(), password = PASSWORD) {
  const res = await app.inject({ method: "POST", url: "/auth/register", payload: { email, password } });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return { email, password, id: (res.json() as { id: string }).id };
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
  scope: string;
}

export function passwordGrant(app: FastifyInstance, username: string, password: string, extra: Record<string, string> = {}) {
  return app.inject({
    method: "POST",
    url: "/oauth/token",
    ...form({ grant_type: "password", username, password, client_id: "web", ...extra }),
  });
}

export function refreshGrant(app: FastifyInstance, refreshToken: string, extra: Record<string, string> = {}) {
  return app.inject({
    method: "POST",
    url: "/oauth/token",
    ...form({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: "web", ...extra }),
  });
}

/** Register a user and log in with the password grant. */
export async function login(app: FastifyInstance): Promise<TokenPair & { userId: string; email: string }> {
  const user = await register(app);
  const res = await passwordGrant(app, user.email, user.password);
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return { ...(res.json() as TokenPair), userId: user.id, email: user.email };
}

export interface VerifyOptions {
  /** default: the issuer's signing algorithm */
  algorithms?: string[];
  /** default: the issuer's ACCESS_TOKEN_AUDIENCE */
  audience?: string;
}

/** Verify an access token the way a microservice must: JWKS from the issuer, every check pinned. */
export async function verifyAccessToken(issuer: TestIssuer, token: string, opts: VerifyOptions = {}): Promise<JWTPayload> {
  const jwksRes = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
  const jwks = createLocalJWKSet(jwksRes.json());
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: opts.algorithms ?? [issuer.config.signingAlg],
    issuer: issuer.config.issuer,
    audience: opts.audience ?? issuer.config.accessTokenAudience,
    typ: "at+jwt",
    currentDate: issuer.clock.now(),
  });
  return payload;
}

// ---- token status lists: what a service does (draft-ietf-oauth-status-list-20 §8.3) ----

/** The token's `status.status_list` reference (§6.2), or null when it has none. */
export function statusRefOf(token: string): { idx: number; uri: string } | null {
  const ref = (decodeJwt(token).status as { status_list?: { idx: number; uri: string } } | undefined)?.status_list;
  return ref ?? null;
}

/**
 * The status of `token` as a service finds it: GET the list its claim names (from `from`, another
 * instance on the same database if given), verify the list token with that instance's JWKS (the
 * issuer's algorithm pinned, typ statuslist+jwt, iss, exp at the issuer's clock), check that its
 * sub is the claim's uri, and read the token's bit: 0 valid, 1 revoked.
 *
 * A revocation answers before the rebuild it starts on its instance has finished (milliseconds
 * later): this waits for a rebuild `from` has running or queued, never starts one, so a
 * revocation made elsewhere still shows only after `from`'s own next rebuild.
 */
export async function statusOf(issuer: TestIssuer, token: string, from: TestIssuer = issuer): Promise<number> {
  const ref = statusRefOf(token);
  if (!ref) throw new Error("the token has no status claim");
  await from.services.statusLists.settled();
  const res = await from.app.inject({ method: "GET", url: new URL(ref.uri).pathname });
  if (res.statusCode !== 200) throw new Error(`GET ${ref.uri}: ${res.statusCode} ${res.body}`);
  const jwks = (await from.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as JSONWebKeySet;
  const { payload } = await jwtVerify(res.body, createLocalJWKSet(jwks), {
    algorithms: [from.config.signingAlg],
    issuer: from.config.issuer,
    typ: "statuslist+jwt",
    subject: ref.uri,
    currentDate: from.clock.now(),
    requiredClaims: ["iat", "exp", "sub"],
  });
  const { bits, lst } = payload.status_list as { bits: number; lst: string };
  if (bits !== 1) throw new Error(`unexpected bits ${bits}`);
  const bytes = inflateSync(Buffer.from(lst, "base64url"));
  // §6.2: idx is the position in the list the uri names.
  const position = ref.idx;
  // §8.3: an index out of the list's bounds says nothing; the token is rejected.
  if (position >> 3 >= bytes.length) throw new Error(`index ${ref.idx} is out of the list's bounds`);
  return ((bytes[position >> 3] ?? 0) >> (position & 7)) & 1;
}

export function errorOf(res: LightMyRequestResponse): { status: number; error: string; description: string } {
  const body = res.json() as { error: string; error_description: string };
  return { status: res.statusCode, error: body.error, description: body.error_description };
}

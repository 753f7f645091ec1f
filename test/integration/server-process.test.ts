// The issuer as an operator runs it: `node --import tsx src/server.ts` in a child process, real
// HTTP on a real port. First start (migrations, key generation, file modes), restart (same key,
// same data), graceful SIGTERM, and the start-up refusals (bad config, world-readable key).
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from "jose";
import pg from "pg";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { freshDatabase, PASSWORD, uniqueEmail, type Flavor } from "../helpers/issuer.ts";
import { killAllIssuers, ROOT, spawnIssuer, untilServerHasRead, within, type IssuerProcess } from "../helpers/process.ts";

const ISSUER = "https://issuer.test";
const ORIGIN = "https://app.test";

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-proc-"));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  await killAllIssuers();
});
afterAll(async () => {
  await killAllIssuers();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function issuerEnv(keysDir: string, databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: "0",
    HOST: "127.0.0.1",
    ISSUER,
    ALLOWED_ORIGINS: ORIGIN,
    KEYS_DIR: keysDir,
    DATABASE_URL: databaseUrl,
    COOKIE_SECURE: "false",
    LOG_LEVEL: "info",
    PRUNE_INTERVAL: "0",
    ...extra,
  };
}

async function startAndListen(env: Record<string, string>) {
  const proc = spawnIssuer(env);
  const { baseUrl } = await proc.listening(90_000);
  return { proc, baseUrl };
}

/** SIGTERM and wait for a clean exit. */
async function stop(proc: IssuerProcess): Promise<void> {
  proc.child.kill("SIGTERM");
  const exit = await proc.exited(30_000);
  expect(exit, proc.output()).toEqual({ code: 0, signal: null });
}

const keyFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith(".json") && !n.startsWith("."));
const modeOf = (file: string) => statSync(file).mode & 0o777;

/** fetch with a bound: a hung server fails the test instead of the whole run. */
const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(15_000) });
const postJson = (url: string, body: unknown) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", origin: ORIGIN },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });

async function registerOverHttp(baseUrl: string, email = uniqueEmail("proc")) {
  const res = await postJson(`${baseUrl}/auth/register`, { email, password: PASSWORD });
  expect(res.status, await res.clone().text()).toBe(201);
  return email;
}

async function loginOverHttp(baseUrl: string, email: string) {
  const res = await postJson(`${baseUrl}/auth/login`, { email, password: PASSWORD });
  const body = (await res.json()) as { access_token?: string; token_type?: string; refresh_token?: string };
  return { res, body };
}

async function jwksOf(baseUrl: string): Promise<JSONWebKeySet> {
  const res = await get(`${baseUrl}/.well-known/jwks.json`);
  expect(res.status).toBe(200);
  return (await res.json()) as JSONWebKeySet;
}

/** What a resource server does: verify against the issuer's JWKS. Returns the token's kid. */
async function verifyOverHttp(baseUrl: string, token: string): Promise<string> {
  const jwks = await jwksOf(baseUrl);
  await jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, audience: "api", typ: "at+jwt" });
  return decodeProtectedHeader(token).kid!;
}

const migrationNames = (flavor: Flavor) =>
  readdirSync(path.join(ROOT, "prisma", flavor, "migrations"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

const TABLES = ["AuditEvent", "Client", "RefreshToken", "Session", "User"];

async function assertMigrated(flavor: Flavor, databaseUrl: string): Promise<void> {
  if (flavor === "sqlite") {
    const file = databaseUrl.replace(/^file:/, "");
    expect(existsSync(file)).toBe(true);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const applied = db
        .prepare("SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY 1")
        .all() as { migration_name: string }[];
      expect(applied.map((r) => r.migration_name)).toEqual(migrationNames("sqlite"));
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(TABLES));
    } finally {
      db.close();
    }
    return;
  }
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const applied = await c.query<{ migration_name: string }>(
      "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY 1",
    );
    expect(applied.rows.map((r) => r.migration_name)).toEqual(migrationNames("postgres"));
    const tables = await c.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
    expect(tables.rows.map((t) => t.table_name)).toEqual(expect.arrayContaining(TABLES));
  } finally {
    await c.end();
  }
}

/** First start on empty dirs / an empty database, then a restart on the same state. */
async function firstStartThenRestart(flavor: Flavor, databaseUrl: string, keysDir: string): Promise<void> {
  expect(existsSync(keysDir)).toBe(false);
  const env = issuerEnv(keysDir, databaseUrl);

  // ---- first start ----
  const first = await startAndListen(env);
  await assertMigrated(flavor, databaseUrl);
  expect(first.proc.logs().some((l) => l.msg === "database migrations applied"), first.proc.output()).toBe(true);

  const keys = keyFiles(keysDir);
  expect(keys).toHaveLength(1);
  const keyFile = path.join(keysDir, keys[0]!);
  expect(modeOf(keyFile).toString(8)).toBe("600");
  // The refresh-token secret next to it is private too.
  for (const name of readdirSync(keysDir)) expect(modeOf(path.join(keysDir, name)).toString(8), name).toBe("600");

  const health = await get(`${first.baseUrl}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toEqual({ status: "ok" });
  const ready = await get(`${first.baseUrl}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toMatchObject({ status: "ready", checks: { database: "ok", signingKey: "ok" } });

  const email = await registerOverHttp(first.baseUrl);
  const login1 = await loginOverHttp(first.baseUrl, email);
  expect(login1.res.status, JSON.stringify(login1.body)).toBe(200);
  expect(login1.body.token_type).toBe("Bearer");
  expect(login1.body.refresh_token).toBeUndefined(); // browser endpoint: cookie only
  const cookie = login1.res.headers.get("set-cookie") ?? "";
  expect(cookie).toMatch(/^refresh_token=[A-Za-z0-9_-]{43};/);
  expect(cookie).toMatch(/HttpOnly/i);
  expect(cookie).not.toMatch(/Secure/i); // COOKIE_SECURE=false
  const kid1 = await verifyOverHttp(first.baseUrl, login1.body.access_token!);
  expect(`${kid1}.json`).toBe(keys[0]);
  const jwks1 = await jwksOf(first.baseUrl);
  expect(jwks1.keys.map((k) => k.kid)).toEqual([kid1]);

  await stop(first.proc);
  expect(first.proc.logs().some((l) => l.msg === "shutdown complete")).toBe(true);
  const keyBytes = readFileSync(keyFile);

  // ---- second start on the same dirs ----
  const second = await startAndListen(env);
  expect(keyFiles(keysDir)).toEqual(keys);
  expect(readFileSync(keyFile).equals(keyBytes)).toBe(true);
  const jwks2 = await jwksOf(second.baseUrl);
  expect(jwks2.keys.map((k) => k.kid)).toEqual([kid1]);
  expect(jwks2.keys[0]).toEqual(jwks1.keys[0]);

  const login2 = await loginOverHttp(second.baseUrl, email);
  expect(login2.res.status, JSON.stringify(login2.body)).toBe(200);
  expect(await verifyOverHttp(second.baseUrl, login2.body.access_token!)).toBe(kid1);
  // A token from before the restart still verifies against the restarted issuer's JWKS.
  expect(await verifyOverHttp(second.baseUrl, login1.body.access_token!)).toBe(kid1);
  // The account survived: registering the same email again is a conflict.
  const again = await postJson(`${second.baseUrl}/auth/register`, { email, password: PASSWORD });
  expect(again.status).toBe(409);

  await stop(second.proc);
}

describe("server process: first start and restart", () => {
  it("[sqlite] first start creates and migrates the database file and one 0600 key; a restart reuses both", async () => {
    const dir = tempDir();
    // Neither the data directory nor the keys directory exists yet.
    await firstStartThenRestart("sqlite", `file:${path.join(dir, "data", "tessera.db")}`, path.join(dir, "keys"));
  }, 180_000);

  it.skipIf(!inject("postgres"))(
    "[postgres] first start migrates an empty database and creates one 0600 key; a restart reuses both",
    async () => {
      const db = await freshDatabase("postgres");
      try {
        // freshDatabase is a clone of the migrated template: empty it so the server must migrate.
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        await c.query("DROP SCHEMA public CASCADE");
        await c.query("CREATE SCHEMA public");
        await c.end();
        await firstStartThenRestart("postgres", db.url, path.join(tempDir(), "keys"));
      } finally {
        await killAllIssuers();
        await db.drop();
      }
    },
    180_000,
  );
});

interface SentRequest {
  /** the whole request has been handed to the socket */
  sent: Promise<void>;
  response: Promise<{ status: number; body: string }>;
}

/** One POST on its own connection, with a "sent" signal fetch() does not give. */
function postOnNewConnection(url: string, body: unknown): SentRequest {
  const payload = JSON.stringify(body);
  let markSent!: () => void;
  const sent = new Promise<void>((r) => (markSent = r));
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", origin: ORIGIN, "content-length": Buffer.byteLength(payload) },
        timeout: 20_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.on("finish", markSent);
    req.end(payload);
  });
  response.catch(() => markSent());
  return { sent, response };
}

describe("server process: graceful shutdown", () => {
  it("SIGTERM drains in-flight logins: all complete with 200, exit code 0, then connections are refused", async () => {
    const dir = tempDir();
    const { proc, baseUrl } = await startAndListen(issuerEnv(path.join(dir, "keys"), `file:${path.join(dir, "db", "t.db")}`));
    const email = await registerOverHttp(baseUrl);
    // Warm-up: the first login loads code lazily (tsx transpiles on first import), which stalls
    // the event loop; the burst below should meet a server that is up to speed.
    expect((await loginOverHttp(baseUrl, email)).res.status).toBe(200);

    const N = 20;
    const requests = Array.from({ length: N }, () => postOnNewConnection(`${baseUrl}/auth/login`, { email, password: PASSWORD }));
    await within(10_000, Promise.all(requests.map((r) => r.sent)), "sending the logins");
    // SIGTERM as soon as the server has read all 20 requests (they are in flight, not in kernel
    // queues). Each login then spends tens of ms in argon2, at most PASSWORD_HASH_CONCURRENCY at
    // once, so most of them are still running when the signal lands.
    await untilServerHasRead(Number(new URL(baseUrl).port));
    proc.child.kill("SIGTERM");

    const settled = await within(30_000, Promise.allSettled(requests.map((r) => r.response)), "in-flight logins");
    const outcomes = settled.map((r) => (r.status === "fulfilled" ? r.value.status : `${(r.reason as Error).message}`));
    expect(outcomes, proc.output()).toEqual(Array(N).fill(200));
    const results = settled.map((r) => (r as PromiseFulfilledResult<{ status: number; body: string }>).value);
    for (const r of results) expect(JSON.parse(r.body)).toMatchObject({ token_type: "Bearer", access_token: expect.any(String) });

    const exit = await proc.exited(30_000);
    expect(exit, proc.output()).toEqual({ code: 0, signal: null });

    const logs = proc.logs();
    const draining = logs.findIndex((l) => typeof l.msg === "string" && l.msg.startsWith("shutting down"));
    const complete = logs.findIndex((l) => l.msg === "shutdown complete");
    expect(draining, proc.output()).toBeGreaterThanOrEqual(0);
    expect(complete).toBeGreaterThan(draining);
    // The test really overlapped shutdown with work: some logins finished after SIGTERM...
    const loginLines = logs.flatMap((l, i) => (l.msg === "request" && l.path === "/auth/login" ? [{ i, status: l.status }] : []));
    expect(loginLines).toHaveLength(N + 1); // + the warm-up
    expect(loginLines.filter((l) => l.i > draining).length).toBeGreaterThan(0);
    // ...and all of them before the process declared itself done.
    expect(loginLines.every((l) => l.i < complete && l.status === 200)).toBe(true);

    // Nobody listens on the port any more.
    const refused = await get(`${baseUrl}/healthz`).then(
      (res) => ({ ok: true as const, status: res.status }),
      (err: Error & { cause?: { code?: string } }) => ({ ok: false as const, code: err.cause?.code }),
    );
    expect(refused).toEqual({ ok: false, code: "ECONNREFUSED" });
  }, 120_000);
});

describe("server process: shutdown delay", () => {
  it("with SHUTDOWN_DELAY, SIGTERM turns readiness off at once but keeps serving until the delay ends, then exits 0", async () => {
    const dir = tempDir();
    const { proc, baseUrl } = await startAndListen(issuerEnv(path.join(dir, "keys"), `file:${path.join(dir, "db", "t.db")}`, { SHUTDOWN_DELAY: "3" }));
    const email = await registerOverHttp(baseUrl);
    expect((await get(`${baseUrl}/readyz`)).status).toBe(200);
    proc.child.kill("SIGTERM");
    // Readiness answers 503 "draining" while requests are still served normally.
    let ready = await get(`${baseUrl}/readyz`);
    for (let i = 0; i < 20 && ready.status === 200; i++) ready = await get(`${baseUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(await ready.text())).toMatchObject({ status: "draining" });
    expect((await loginOverHttp(baseUrl, email)).res.status).toBe(200);
    const exit = await proc.exited(30_000);
    expect(exit, proc.output()).toEqual({ code: 0, signal: null });
  }, 60_000);
});

describe("server process: refusing to start", () => {
  it("bad configuration: exit code 2, one stderr line per bad variable, nothing created", async () => {
    const dir = tempDir();
    const keysDir = path.join(dir, "keys");
    const dbFile = path.join(dir, "data", "t.db");
    const proc = spawnIssuer(issuerEnv(keysDir, `file:${dbFile}`, { PORT: "abc", SIGNING_ALG: "HS256", ACCESS_TOKEN_TTL: "-5" }));
    const exit = await proc.exited(30_000);
    expect(exit, proc.output()).toEqual({ code: 2, signal: null });

    const problems = proc.stderr.split("\n").filter((l) => /^\s+-\s/.test(l));
    expect(problems, proc.stderr).toHaveLength(3);
    for (const name of ["PORT", "SIGNING_ALG", "ACCESS_TOKEN_TTL"]) {
      const lines = problems.filter((l) => l.trimStart().startsWith(`- ${name}=`));
      expect(lines, `${name} in:\n${proc.stderr}`).toHaveLength(1);
    }
    expect(problems.find((l) => l.includes("PORT="))).toContain('"abc"');
    expect(problems.find((l) => l.includes("SIGNING_ALG="))).toContain("HS256");
    expect(problems.find((l) => l.includes("ACCESS_TOKEN_TTL="))).toContain("-5");
    expect(proc.stdout.join("\n")).not.toMatch(/listening/);
    // Nothing was created: no keys dir (or an empty one), no database.
    expect(existsSync(keysDir) ? readdirSync(keysDir) : []).toEqual([]);
    expect(existsSync(path.join(dir, "data"))).toBe(false);
  }, 60_000);

  it("a world-readable key file: the start fails with a chmod 600 hint and the key file is left as it is", async () => {
    const dir = tempDir();
    const keysDir = path.join(dir, "keys");
    const env = issuerEnv(keysDir, `file:${path.join(dir, "db", "t.db")}`);
    const first = await startAndListen(env);
    await stop(first.proc);

    const [name] = keyFiles(keysDir);
    expect(name).toBeDefined();
    const keyFile = path.join(keysDir, name!);
    chmodSync(keyFile, 0o644);
    const before = readFileSync(keyFile);
    const entriesBefore = readdirSync(keysDir).sort();

    const second = spawnIssuer(env);
    const exit = await second.exited(90_000);
    expect(exit.code, second.output()).not.toBe(0);
    expect(exit.code).not.toBeNull();
    const out = second.output();
    expect(out).not.toMatch(/Tessera listening/);
    expect(out).toContain(`chmod 600 ${keyFile}`);
    // Unchanged: same bytes, same (bad) mode, no new key generated next to it.
    expect(readFileSync(keyFile).equals(before)).toBe(true);
    expect(modeOf(keyFile).toString(8)).toBe("644");
    expect(readdirSync(keysDir).sort()).toEqual(entriesBefore);
  }, 180_000);
});

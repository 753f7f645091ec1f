// Several issuer instances on one database with the database key store (KEY_STORE=database):
// a rotation done through one is served by the others within the reload interval, tokens from
// one verify against another's JWKS, refresh tokens move freely between them (one shared
// derivation secret), and an instance with the wrong KEYS_ENCRYPTION_KEY refuses to start
// without touching the keys.
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { decodeProtectedHeader, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import { createLogger } from "../../src/logger.ts";
import { createServices } from "../../src/services.ts";
import { openPrismaStorage } from "../../src/storage/prisma/index.ts";
import {
  LogCapture,
  login,
  refreshGrant,
  startInstances,
  verifyAccessToken,
  type Flavor,
  type InstanceGroup,
  type TestIssuer,
  type TokenPair,
} from "../helpers/issuer.ts";
import { within } from "../helpers/process.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const kidOf = (token: string) => decodeProtectedHeader(token).kid!;

async function servedKids(issuer: TestIssuer): Promise<string[]> {
  const res = await issuer.app.inject({ method: "GET", url: "/.well-known/jwks.json" });
  expect(res.statusCode).toBe(200);
  return (res.json() as JSONWebKeySet).keys.map((k) => k.kid!).sort();
}

/** Polls `check` until it holds, for at most `ms` (a bounded wait, not a speed assertion). */
async function eventually(ms: number, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

function twoInstances(flavor: Flavor): void {
  const encryptionKey = randomBytes(32).toString("base64");
  const env = { KEY_STORE: "database", KEYS_ENCRYPTION_KEY: encryptionKey, KEYS_RELOAD_INTERVAL: "1", REFRESH_REUSE_GRACE: "10", LOG_LEVEL: "warn" };
  const clock = new FakeClock(new Date());
  let group: InstanceGroup;
  let db: { url: string };
  let a: TestIssuer;
  let b: TestIssuer;

  beforeAll(async () => {
    group = await startInstances(flavor, 2, { clock, env });
    ({ db } = group);
    [a, b] = group.instances as [TestIssuer, TestIssuer];
    a.services.keyReloader.start(1);
    b.services.keyReloader.start(1);
  });
  afterAll(async () => {
    for (const i of [b, a]) i?.services.keyReloader.stop();
    await group?.close();
  });

  const signingKeyRows = () => a.storage.db.signingKey.findMany({ orderBy: { kid: "asc" } });

  it("both instances serve one key set from the database, sealed, with no key files", async () => {
    expect(a.keysDir).not.toBe(b.keysDir);
    expect(await servedKids(a)).toEqual(await servedKids(b));
    expect(a.services.keys.signer().kid).toBe(b.services.keys.signer().kid);
    const rows = await signingKeyRows();
    expect(rows.map((r) => r.kid)).toEqual(await servedKids(a));
    for (const row of rows) {
      const sealed = JSON.parse(row.sealed) as Record<string, unknown>;
      expect(sealed).toMatchObject({ v: 1, alg: "A256GCM" });
      expect(row.sealed).not.toMatch(/"d"\s*:/);
    }
    for (const dir of [a.keysDir, b.keysDir]) expect(readdirSync(dir).filter((n) => n.endsWith(".json"))).toEqual([]);
  });

  it("a rotation through A is served (and, once active, used) by B within the reload interval", async () => {
    // Scheduled rotation: a next key appears in B's JWKS.
    const created = await a.services.keyManager.rotate();
    expect(created.map((x) => x.action)).toContain("create_next");
    const next = created.find((x) => x.action === "create_next")!.kid;
    await within(10_000, eventually(3000, `B serves the next key ${next}`, async () => (await servedKids(b)).includes(next)), "poll");
    expect(kidOf((await login(b.app)).access_token)).not.toBe(next);

    // Emergency rotation: the new key signs on B after B's reload.
    const [fresh] = await a.services.keyManager.rotateNow();
    expect(fresh).toMatchObject({ action: "create_active" });
    await eventually(3000, `B signs with ${fresh!.kid}`, async () => kidOf((await login(b.app)).access_token) === fresh!.kid);
    expect(await servedKids(b)).toContain(fresh!.kid);
    await eventually(3000, "A and B serve the same set", async () => (await servedKids(a)).join() === (await servedKids(b)).join());
  });

  it("a token issued by A verifies against B's JWKS, and vice versa", async () => {
    await eventually(3000, "A and B sign with the same key", async () => a.services.keys.signer().kid === b.services.keys.signer().kid);
    const fromA = (await login(a.app)).access_token;
    const fromB = (await login(b.app)).access_token;
    await verifyAccessToken(b, fromA);
    await verifyAccessToken(a, fromB);
    await verifyAccessToken(a, fromA);
    await verifyAccessToken(b, fromB);
  });

  it("both derive the same refresh-token secret: A's refresh token rotates through B, and a retry on B gets A's successor", async () => {
    const pair = await login(a.app);
    const viaA = await refreshGrant(a.app, pair.refresh_token);
    expect(viaA.statusCode, viaA.body).toBe(200);
    const successor = (viaA.json() as TokenPair).refresh_token;
    // A retry of the same token inside the grace window, on the other instance: B recomputes the
    // successor with its own secret; only the same secret gives the stored token.
    const retryOnB = await refreshGrant(b.app, pair.refresh_token);
    expect(retryOnB.statusCode, retryOnB.body).toBe(200);
    expect((retryOnB.json() as TokenPair).refresh_token).toBe(successor);
    const viaB = await refreshGrant(b.app, successor);
    expect(viaB.statusCode, viaB.body).toBe(200);
    const back = await refreshGrant(a.app, (viaB.json() as TokenPair).refresh_token);
    expect(back.statusCode, back.body).toBe(200);
    await verifyAccessToken(b, (back.json() as TokenPair).access_token);
    expect((await a.storage.db.serverSecret.findMany()).map((s) => s.name)).toEqual(["refresh-token"]);
  });

  it("an instance with a wrong KEYS_ENCRYPTION_KEY fails to start, saying so, and the keys are unchanged", async () => {
    const before = { keys: await signingKeyRows(), secrets: await a.storage.db.serverSecret.findMany({ orderBy: { name: "asc" } }) };
    expect(before.keys.length).toBeGreaterThan(0);
    const wrong = randomBytes(32).toString("base64");
    const config = loadConfig({
      ISSUER: "https://issuer.test",
      DATABASE_URL: db.url,
      KEYS_DIR: a.keysDir,
      ALLOWED_ORIGINS: "https://app.test",
      ...env,
      KEYS_ENCRYPTION_KEY: wrong,
    });
    const storage = await openPrismaStorage(db.url);
    try {
      const err = await createServices(config, createLogger("warn", new LogCapture()), { clock, storage }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err, "the start must fail").toBeInstanceOf(Error);
      expect(err!.message).toMatch(/KEYS_ENCRYPTION_KEY/);
      // The key material never appears in the message.
      expect(err!.message).not.toContain(wrong);
      expect(err!.message).not.toContain(encryptionKey);
    } finally {
      await storage.close();
    }
    expect(await signingKeyRows()).toEqual(before.keys);
    expect(await a.storage.db.serverSecret.findMany({ orderBy: { name: "asc" } })).toEqual(before.secrets);
    // The right key still works: the running instances are unaffected.
    await verifyAccessToken(b, (await login(a.app)).access_token);
  });
}

describe.skipIf(!inject("postgres"))("two instances with the database key store [postgres]", () => twoInstances("postgres"));
describe("two instances with the database key store on one SQLite file [sqlite]", () => twoInstances("sqlite"));

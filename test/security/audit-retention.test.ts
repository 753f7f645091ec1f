// Finding 9: audit events must not grow without bound. Every failed login writes one, so an
// attacker could grow the table for ever. Events are kept for AUDIT_RETENTION (default 90 days)
// and pruned with the sessions, by the running server (PRUNE_INTERVAL) and by rotate-keys; the
// login throttle's own records go after the day the throttle remembers them.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { pruneExpired } from "../../src/domain/retention.ts";
import { openPrismaStorage } from "../../src/storage/prisma/index.ts";
import { describeEachDb, form, freshDatabase, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";
import { describeResult, runRotateKeys } from "../helpers/cli.ts";
import { killAllIssuers, spawnIssuer } from "../helpers/process.ts";

const DAY = 86400;

describeEachDb("security: audit retention", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { AUDIT_RETENTION: "30d" } });
  });
  afterAll(async () => issuer?.close());
  afterEach(async () => killAllIssuers());

  const failLogin = (email: string) =>
    issuer.app.inject({ method: "POST", url: "/oauth/token", ...form({ grant_type: "password", client_id: "web", username: email, password: "wrong password!" }) });

  it("failed logins' audit events and throttle records are deleted once past their retention, newer ones kept", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 5; i++) await failLogin(user.email);
    const count = () => issuer.storage.db.auditEvent.count({ where: { userId: user.id, type: "login.failed" } });
    const throttleRows = () => issuer.storage.db.loginFailure.count({ where: { userId: user.id } });
    expect(await count()).toBe(5);
    expect(await throttleRows()).toBe(5);

    issuer.clock.advance(2 * DAY); // throttle records are a day old: gone; audit events kept
    await failLogin(user.email);
    let pruned = await pruneExpired(issuer.storage, issuer.clock, issuer.services.audit, issuer.config);
    expect(pruned.loginFailures).toBe(5);
    expect(pruned.auditEvents).toBe(0);
    expect(await throttleRows()).toBe(1);
    expect(await count()).toBe(6);

    issuer.clock.advance(29 * DAY); // the first five are 31 days old, the sixth 29
    pruned = await pruneExpired(issuer.storage, issuer.clock, issuer.services.audit, issuer.config);
    expect(pruned.auditEvents).toBeGreaterThanOrEqual(5);
    expect(await count()).toBe(1);
    // The prune itself is on record.
    expect((await issuer.storage.audit.list({ type: "records.pruned" })).length).toBeGreaterThanOrEqual(1);
  });

  it("a running server prunes old audit events on its schedule (PRUNE_INTERVAL)", async () => {
    const keysDir = mkdtempSync(path.join(os.tmpdir(), "tessera-retention-"));
    const db = await freshDatabase(flavor);
    try {
      const storage = await openPrismaStorage(db.url);
      const old = new Date(Date.now() - 100 * DAY * 1000);
      const recent = new Date(Date.now() - 10 * DAY * 1000);
      for (let i = 0; i < 30; i++) {
        await storage.audit.record({ id: `old-${i}`, type: "login.failed", at: old, details: { reason: "unknown_user" } });
      }
      await storage.audit.record({ id: "recent", type: "login.failed", at: recent, details: { reason: "unknown_user" } });
      const proc = spawnIssuer({
        PORT: "0",
        HOST: "127.0.0.1",
        ISSUER: "http://127.0.0.1",
        KEYS_DIR: keysDir,
        DATABASE_URL: db.url,
        LOG_LEVEL: "info", // the "listening" line is what the helper waits for
        PRUNE_INTERVAL: "1",
      });
      await proc.listening(90_000);
      const deadline = Date.now() + 20_000;
      while ((await storage.db.auditEvent.count({ where: { id: { startsWith: "old-" } } })) > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(await storage.db.auditEvent.count({ where: { id: { startsWith: "old-" } } })).toBe(0);
      expect(await storage.db.auditEvent.count({ where: { id: "recent" } })).toBe(1);
      await proc.kill();
      await storage.close();
    } finally {
      await db.drop();
      rmSync(keysDir, { recursive: true, force: true });
    }
  }, 120_000);

  it("the rotate-keys cron job prunes them too, and says so", async () => {
    const keysDir = mkdtempSync(path.join(os.tmpdir(), "tessera-retention-"));
    const db = await freshDatabase(flavor);
    try {
      const storage = await openPrismaStorage(db.url);
      const old = new Date(Date.now() - 40 * DAY * 1000);
      for (let i = 0; i < 3; i++) await storage.audit.record({ id: `cron-old-${i}`, type: "login.failed", at: old, details: {} });
      await storage.audit.record({ id: "cron-recent", type: "login.failed", at: new Date(), details: {} });
      const run = await runRotateKeys(["--json"], { DATABASE_URL: db.url, KEYS_DIR: keysDir, LOG_LEVEL: "warn", AUDIT_RETENTION: "30d" });
      expect(run.code, describeResult(run)).toBe(0);
      expect((JSON.parse(run.stdout) as { pruned: { auditEvents: number } }).pruned.auditEvents).toBe(3);
      expect(await storage.db.auditEvent.count({ where: { id: { startsWith: "cron-" } } })).toBe(1);
      await storage.close();
    } finally {
      await db.drop();
      rmSync(keysDir, { recursive: true, force: true });
    }
  }, 90_000);
});

it("AUDIT_RETENTION below a day is refused at start", () => {
  expect(() => loadConfig({ AUDIT_RETENTION: "3600" })).toThrow(/AUDIT_RETENTION/);
  expect(loadConfig({}).auditRetention).toBe(90 * DAY);
});

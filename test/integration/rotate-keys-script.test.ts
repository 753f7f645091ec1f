// The key scripts as an operator and cron run them: `npm run rotate-keys` and `npm run cli --
// keys ...` as real child processes (node --import tsx scripts/...), on a real database and key
// store. What they print, their exit codes, concurrent runs converging on one active and one
// next key, session pruning, and sealed key files that a wrong KEYS_ENCRYPTION_KEY cannot open.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, expect, it } from "vitest";
import { FakeClock } from "../helpers/fake-clock.ts";
import { hashRefreshToken } from "../../src/domain/tokens/refresh-token.ts";
import { openPrismaStorage } from "../../src/storage/prisma/index.ts";
import {
  describeResult,
  killAllScripts,
  listKeysJson,
  runCli,
  runRotateKeys,
  type ListedKey,
  type ScriptResult,
} from "../helpers/cli.ts";
import { describeEachDb, freshDatabase, login, startIssuer, type Flavor, type TestIssuer } from "../helpers/issuer.ts";
import { killAllIssuers, spawnIssuer } from "../helpers/process.ts";

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-rotate-"));
  tempDirs.push(dir);
  return dir;
}
const drops: (() => Promise<void>)[] = [];
const issuers: TestIssuer[] = [];

afterEach(async () => {
  await killAllScripts();
  await killAllIssuers();
  for (const i of issuers.splice(0)) await i.close();
  for (const drop of drops.splice(0)) await drop();
});
afterAll(async () => {
  await killAllScripts();
  await killAllIssuers();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

const keyFiles = (dir: string) =>
  readdirSync(dir)
    .filter((n) => n.endsWith(".json") && !n.startsWith("."))
    .sort();
const states = (keys: ListedKey[]) => keys.map((k) => k.state).sort();
const expectExit = (r: ScriptResult, code: number) => expect(r.code, describeResult(r)).toBe(code);

/** A fresh database and an empty keys dir, with the environment the scripts need. */
async function setup(flavor: Flavor, extra: Record<string, string> = {}) {
  const db = await freshDatabase(flavor);
  drops.push(db.drop);
  const keysDir = path.join(tempDir(), "keys");
  // The fresh database is migrated already; the runs that should migrate (as cron would) say so.
  const env = { DATABASE_URL: db.url, KEYS_DIR: keysDir, LOG_LEVEL: "warn", MIGRATE_ON_START: "false", ...extra };
  return { url: db.url, keysDir, env };
}

/** Empty the database (no tables at all), as on a host where nothing has migrated it yet. */
async function emptyDatabase(flavor: Flavor, url: string): Promise<void> {
  if (flavor === "sqlite") {
    rmSync(url.replace(/^file:/, ""), { force: true });
    return;
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
  await c.end();
}

/** Move every key's timestamps `seconds` into the past (as if that much time had gone by). */
async function ageKeys(store: "file" | "database", url: string, keysDir: string, seconds: number): Promise<void> {
  const back = (iso: string | null | undefined) => (iso ? new Date(Date.parse(iso) - seconds * 1000).toISOString() : iso);
  if (store === "file") {
    for (const name of keyFiles(keysDir)) {
      const file = path.join(keysDir, name);
      const key = JSON.parse(readFileSync(file, "utf8")) as Record<string, string | null>;
      for (const f of ["createdAt", "activatedAt", "retiredAt"]) key[f] = back(key[f]) ?? null;
      writeFileSync(file, JSON.stringify(key, null, 2) + "\n"); // existing file: mode stays 0600
    }
    return;
  }
  const storage = await openPrismaStorage(url);
  try {
    for (const row of await storage.db.signingKey.findMany()) {
      const shift = (d: Date | null) => (d ? new Date(d.getTime() - seconds * 1000) : null);
      await storage.db.signingKey.update({
        where: { kid: row.kid },
        data: { createdAt: shift(row.createdAt)!, activatedAt: shift(row.activatedAt), retiredAt: shift(row.retiredAt) },
      });
    }
  } finally {
    await storage.close();
  }
}

describeEachDb("rotate-keys script and keys CLI", (flavor) => {
  it("first run creates an active and a next key and says so; a second run has nothing due; --json prints one object", async () => {
    const { env, keysDir } = await setup(flavor);
    const first = await runRotateKeys([], env);
    expectExit(first, 0);
    const active = /created active key (\S+) \(ES256\)/.exec(first.stdout)?.[1];
    const next = /created next key (\S+) \(ES256\)/.exec(first.stdout)?.[1];
    expect(active, first.stdout).toBeDefined();
    expect(next, first.stdout).toBeDefined();
    expect(first.stdout).toMatch(/^sessions: nothing to prune$/m);

    const listed = await listKeysJson(env);
    expect(listed.store).toBe("file");
    expect(listed.keys.map((k) => [k.kid, k.state]).sort()).toEqual(
      [
        [active, "active"],
        [next, "next"],
      ].sort(),
    );
    expect(keyFiles(keysDir)).toEqual([`${active}.json`, `${next}.json`].sort());
    for (const name of keyFiles(keysDir)) expect((statSync(path.join(keysDir, name)).mode & 0o777).toString(8)).toBe("600");

    const second = await runRotateKeys([], env);
    expectExit(second, 0);
    expect(second.stdout).toMatch(/^keys: nothing due$/m);
    expect(second.stdout).not.toMatch(/created|activated|retired|removed/);

    const json = await runRotateKeys(["--json"], env);
    expectExit(json, 0);
    const lines = json.stdout.trim().split("\n");
    expect(lines, json.stdout).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({ actions: [], prunedSessions: 0, pruned: { sessions: 0, deniedAccessTokens: 0, loginFailures: 0, auditEvents: 0 } });
    // Nothing changed on disk or in the listing.
    expect((await listKeysJson(env)).keys).toEqual(listed.keys);
  }, 60_000);

  it("keys list shows kid, alg, state, created, activated, retired and publishes-until; --json gives the same fields", async () => {
    const { env } = await setup(flavor);
    expectExit(await runRotateKeys([], env), 0);
    expectExit(await runCli(["keys", "rotate", "--now"], env), 0); // one key of each state

    const text = await runCli(["keys", "list"], env);
    expectExit(text, 0);
    const [header, ...rows] = text.stdout.trim().split("\n");
    const columns = header!.split(/\s{2,}/);
    expect(columns.slice(0, 7)).toEqual(["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED", "PUBLISHES-UNTIL"]);

    const { keys } = await listKeysJson(env);
    expect(states(keys)).toEqual(["active", "next", "retired"]);
    expect(rows).toHaveLength(3);
    const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;
    for (const k of keys) {
      expect(Object.keys(k)).toEqual(
        expect.arrayContaining(["kid", "alg", "state", "createdAt", "activatedAt", "retiredAt", "publishesUntil"]),
      );
      expect(k.alg).toBe("ES256");
      expect(k.createdAt).toMatch(iso);
      expect(k.activatedAt === null).toBe(k.state === "next");
      expect(k.retiredAt === null).toBe(k.state !== "retired");
      expect(k.publishesUntil === null).toBe(k.state !== "retired");
      if (k.retiredAt) expect(Date.parse(k.publishesUntil!)).toBeGreaterThan(Date.parse(k.retiredAt));

      const row = rows.find((r) => r.startsWith(`${k.kid} `));
      expect(row, `row for ${k.kid}\n${text.stdout}`).toBeDefined();
      const cells = row!.split(/\s{2,}/);
      const secs = (s: string | null) => (s ? s.replace(/\.\d{3}Z$/, "Z") : "-");
      expect(cells.slice(0, 7)).toEqual([
        k.kid,
        k.alg,
        k.state,
        secs(k.createdAt),
        secs(k.activatedAt),
        secs(k.retiredAt),
        secs(k.publishesUntil),
      ]);
    }
  }, 60_000);

  for (const store of ["file", "database"] as const) {
    it(`two rotate-keys runs started at the same instant leave one active and one next key (${store} store, 3 rounds)`, async () => {
      // Migrations off: this is about the key store (two runs with migrations: see below).
      const extra: Record<string, string> = {
        KEY_ROTATION_INTERVAL: "60",
        ...(store === "database" ? { KEY_STORE: "database", KEYS_ENCRYPTION_KEY: randomBytes(32).toString("base64") } : {}),
      };
      const { env, url, keysDir } = await setup(flavor, extra);
      let previous: ListedKey[] = [];
      for (let round = 1; round <= 3; round++) {
        if (round > 1) {
          // Make the promotion due for both runs (rotation interval 60 s, publication window
          // 10+300+30 s), while the retired keys stay inside their 1270 s window.
          await ageKeys(store, url, keysDir, 400);
        }
        const runs = await Promise.all([runRotateKeys([], env), runRotateKeys([], env)]);
        for (const r of runs) expectExit(r, 0);
        const { keys, store: kind } = await listKeysJson(env);
        expect(kind).toBe(store);
        const summary = `round ${round}\n${runs.map(describeResult).join("\n")}\n${JSON.stringify(keys, null, 2)}`;
        expect(keys.filter((k) => k.state === "active"), summary).toHaveLength(1);
        expect(keys.filter((k) => k.state === "next"), summary).toHaveLength(1);
        // Exactly one promotion per round: one more retired key each time.
        expect(keys.filter((k) => k.state === "retired"), summary).toHaveLength(round - 1);
        if (round > 1) {
          // The active key is the previous round's next key; the previous active one is retired.
          expect(keys.find((k) => k.state === "active")!.kid, summary).toBe(previous.find((k) => k.state === "next")!.kid);
          expect(keys.find((k) => k.kid === previous.find((p) => p.state === "active")!.kid)?.state, summary).toBe("retired");
        }
        // Between them, the two runs report each step once.
        const reported = runs.flatMap((r) => r.stdout.split("\n").filter((l) => /^keys: (created|activated)/.test(l)));
        expect(reported, summary).toHaveLength(2); // created active + next, or activated + new next
        if (store === "file") expect(keyFiles(keysDir)).toHaveLength(keys.length);
        else expect(existsSync(keysDir) ? keyFiles(keysDir) : []).toEqual([]);
        previous = keys;
      }
    }, 90_000);
  }

  it("two cron runs at the same instant on an unmigrated database, migrations on (the default): both succeed", async () => {
    const { env, url } = await setup(flavor, { MIGRATE_ON_START: "true" });
    await emptyDatabase(flavor, url);
    const runs = await Promise.all([runRotateKeys([], env), runRotateKeys([], env)]);
    for (const r of runs) expectExit(r, 0);
    const { keys } = await listKeysJson(env);
    expect(states(keys), runs.map(describeResult).join("\n")).toEqual(["active", "next"]);
  }, 60_000);

  it.skipIf(flavor !== "postgres")(
    "rotate-keys' migration step does not keep the migration lock while idle (a second cron host would time out on it)",
    async () => {
      // Prisma's migrate deploy takes pg_advisory_lock(72707369) and waits at most 10 s for it.
      // Two cron hosts (or a host and a starting server) run it at the same moment; if the lock
      // stays held by an idle connection after the (sub-second) migration, the other one fails.
      const { env, url } = await setup(flavor, { MIGRATE_ON_START: "true" });
      await emptyDatabase(flavor, url); // so the CLI really migrates (and takes the lock)
      const observer = new pg.Client({ connectionString: url });
      await observer.connect();
      const idleHolders: string[] = [];
      try {
        const run = runRotateKeys([], env);
        let done = false;
        void run.finally(() => (done = true));
        while (!done) {
          const { rows } = await observer.query<{ pid: number; state: string; idle_ms: number; query: string }>(
            `SELECT a.pid, a.state, EXTRACT(EPOCH FROM now() - a.state_change) * 1000 AS idle_ms, left(a.query, 80) AS query
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          );
          // Idle for seconds while holding the lock: nothing left to do, yet the lock is kept.
          for (const r of rows) if (r.state === "idle" && Number(r.idle_ms) > 3000) idleHolders.push(`pid ${r.pid} idle ${Math.round(Number(r.idle_ms))} ms after: ${r.query}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        expectExit(await run, 0);
      } finally {
        await observer.end();
      }
      expect(idleHolders.slice(0, 3)).toEqual([]);
    },
    60_000,
  );

  it("keys rotate --now: a new key signs, the old one is retired; keys revoke removes a key and says what happens to live tokens", async () => {
    const { env } = await setup(flavor);
    expectExit(await runRotateKeys([], env), 0);
    const before = (await listKeysJson(env)).keys;
    const oldActive = before.find((k) => k.state === "active")!.kid;
    const next = before.find((k) => k.state === "next")!.kid;

    const now = await runCli(["keys", "rotate", "--now"], env);
    expectExit(now, 0);
    const fresh = /created active key (\S+) \(ES256\): emergency rotation/.exec(now.stdout)?.[1];
    expect(fresh, now.stdout).toBeDefined();
    expect(now.stdout).toMatch(/new key signs/);
    expect(now.stdout).toContain(`retired key ${oldActive}`);
    const afterNow = (await listKeysJson(env)).keys;
    expect(afterNow.map((k) => [k.kid, k.state]).sort()).toEqual(
      [
        [oldActive, "retired"],
        [next, "next"],
        [fresh, "active"],
      ].sort(),
    );

    const revoke = await runCli(["keys", "revoke", oldActive], env);
    expectExit(revoke, 0);
    expect(revoke.stdout).toContain(`revoked key ${oldActive}`);
    expect(revoke.stdout).toMatch(/live tokens/i);
    expect(revoke.stdout).toMatch(/stop verifying/);
    const afterRevoke = (await listKeysJson(env)).keys;
    expect(afterRevoke.map((k) => k.kid)).not.toContain(oldActive);
    expect(afterRevoke.map((k) => [k.kid, k.state]).sort()).toEqual(
      [
        [next, "next"],
        [fresh, "active"],
      ].sort(),
    );
    const listText = await runCli(["keys", "list"], env);
    expect(listText.stdout).not.toContain(oldActive);

    // Revoking the signing key: a replacement signs, and the output says so.
    const revokeActive = await runCli(["keys", "revoke", fresh!, "--json"], env);
    expectExit(revokeActive, 0);
    const out = JSON.parse(revokeActive.stdout) as { revoked: { kid: string; state: string }; actions: { action: string; kid: string }[] };
    expect(out.revoked).toMatchObject({ kid: fresh, state: "active" });
    expect(out.actions.map((a) => a.action)).toEqual(["revoke", "create_active"]);
    const finalKeys = (await listKeysJson(env)).keys;
    expect(finalKeys.filter((k) => k.state === "active").map((k) => k.kid)).toEqual([out.actions[1]!.kid]);
    expect(finalKeys.map((k) => k.kid)).not.toContain(fresh);

    const unknown = await runCli(["keys", "revoke", "no-such-kid"], env);
    expectExit(unknown, 1);
    expect(unknown.stderr).toMatch(/no key with kid no-such-kid/i);
    expect((await listKeysJson(env)).keys).toEqual(finalKeys);
  }, 90_000);

  it("an unknown command exits 64 with the usage on stderr", async () => {
    const { env } = await setup(flavor);
    for (const args of [["keys", "frobnicate"], ["users", "frob"], ["sessions", "list"], [], ["keys", "revoke"]]) {
      const r = await runCli(args, env);
      expectExit(r, 64);
      expect(r.stderr, args.join(" ")).toMatch(/^usage: npm run cli -- <command>/m);
      expect(r.stderr).toContain("keys revoke <kid>");
      expect(r.stdout).toBe("");
    }
  }, 60_000);

  it("rotate-keys prunes dead sessions (expired, idle, long-revoked) and keeps live, recently revoked and recently ended ones", async () => {
    const { env, url, keysDir } = await setup(flavor);
    // Sessions made two days ago (idle timeout 1 h) and now, through an issuer on the same database.
    const clock = new FakeClock(Date.now() - 2 * 86400_000);
    const issuer = await startIssuer(flavor, { databaseUrl: url, keysDir, clock, env: { REFRESH_IDLE_TTL: "1h", LOG_LEVEL: "warn" } });
    issuers.push(issuer);
    const sidOf = async (refreshToken: string) =>
      (await issuer.storage.db.refreshToken.findFirstOrThrow({ where: { hash: hashRefreshToken(refreshToken) } })).sessionId;

    const longRevoked = await login(issuer.app);
    await issuer.services.sessions.revokeByToken(longRevoked.refresh_token, "logout");
    const idle = await login(issuer.app);
    const expired = await login(issuer.app);
    clock.set(new Date());
    const live = await login(issuer.app);
    const recentlyRevoked = await login(issuer.app);
    await issuer.services.sessions.revokeByToken(recentlyRevoked.refresh_token, "logout");
    const recentlyEnded = await login(issuer.app);
    // Each dead session dead for one reason only: the long-revoked and the ended ones get
    // refresh tokens that are not idle. The expired one ended longer ago than an access token
    // lives (ACCESS_TOKEN_TTL + CLOCK_SKEW, 960 s here); the recently ended one a minute ago, so
    // its last access token may still be valid: kept (its row sets its status list bit).
    const inAnHour = new Date(Date.now() + 3600_000);
    const expiredSid = await sidOf(expired.refresh_token);
    const recentlyEndedSid = await sidOf(recentlyEnded.refresh_token);
    await issuer.storage.db.session.update({ where: { id: expiredSid }, data: { expiresAt: new Date(Date.now() - 3600_000) } });
    await issuer.storage.db.session.update({ where: { id: recentlyEndedSid }, data: { expiresAt: new Date(Date.now() - 60_000) } });
    for (const sid of [expiredSid, recentlyEndedSid, await sidOf(longRevoked.refresh_token)]) {
      await issuer.storage.db.refreshToken.updateMany({ where: { sessionId: sid }, data: { expiresAt: inAnHour } });
    }

    const sids = {
      longRevoked: await sidOf(longRevoked.refresh_token),
      idle: await sidOf(idle.refresh_token),
      expired: expiredSid,
      live: await sidOf(live.refresh_token),
      recentlyRevoked: await sidOf(recentlyRevoked.refresh_token),
      recentlyEnded: recentlyEndedSid,
    };
    const run = await runRotateKeys(["--json"], env);
    expectExit(run, 0);
    expect((JSON.parse(run.stdout) as { prunedSessions: number }).prunedSessions).toBe(3);
    const remaining = await issuer.storage.db.session.findMany({ where: { id: { in: Object.values(sids) } } });
    expect(remaining.map((s) => s.id).sort()).toEqual([sids.live, sids.recentlyRevoked, sids.recentlyEnded].sort());
    // Their refresh tokens went with them; the live session still works.
    expect(await issuer.storage.db.refreshToken.count({ where: { sessionId: { in: [sids.longRevoked, sids.idle, sids.expired] } } })).toBe(0);
    const res = await issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: new URLSearchParams({ grant_type: "refresh_token", refresh_token: live.refresh_token, client_id: "web" }).toString(),
    });
    expect(res.statusCode, res.body).toBe(200);

    const again = await runRotateKeys([], env);
    expectExit(again, 0);
    expect(again.stdout).toMatch(/^sessions: nothing to prune$/m);
  }, 60_000);

  it("a server with KEYS_ENCRYPTION_KEY writes sealed key files; a restart (or rotate-keys) with a wrong key fails, naming KEYS_ENCRYPTION_KEY, and changes no file", async () => {
    const { url, keysDir } = await setup(flavor);
    const key = randomBytes(32).toString("base64");
    const serverEnv = {
      PORT: "0",
      HOST: "127.0.0.1",
      ISSUER: "https://issuer.test",
      ALLOWED_ORIGINS: "https://app.test",
      KEYS_DIR: keysDir,
      DATABASE_URL: url,
      LOG_LEVEL: "info",
      PRUNE_INTERVAL: "0",
      MIGRATE_ON_START: "false", // migrated already
      KEYS_ENCRYPTION_KEY: key,
    };
    const first = spawnIssuer(serverEnv);
    const { baseUrl } = await first.listening(90_000);
    const jwks = (await (await fetch(`${baseUrl}/.well-known/jwks.json`, { signal: AbortSignal.timeout(15_000) })).json()) as {
      keys: { kid: string }[];
    };
    first.child.kill("SIGTERM");
    expect(await first.exited(30_000), first.output()).toEqual({ code: 0, signal: null });

    const files = keyFiles(keysDir);
    expect(files).toEqual(jwks.keys.map((k) => `${k.kid}.json`).sort());
    for (const name of files) {
      const text = readFileSync(path.join(keysDir, name), "utf8");
      const parsed = JSON.parse(text) as Record<string, unknown>;
      expect(parsed).not.toHaveProperty("privateJwk");
      expect(parsed.sealed).toMatchObject({ v: 1, alg: "A256GCM", iv: expect.any(String), ct: expect.any(String), tag: expect.any(String) });
      expect(text).not.toMatch(/"d"\s*:/);
      expect(text).not.toContain(key);
    }
    const snapshot = () => Object.fromEntries(readdirSync(keysDir).sort().map((n) => [n, readFileSync(path.join(keysDir, n)).toString("base64")]));
    const before = snapshot();

    const wrong = randomBytes(32).toString("base64");
    const second = spawnIssuer({ ...serverEnv, KEYS_ENCRYPTION_KEY: wrong });
    const exit = await second.exited(90_000);
    expect(exit.code, second.output()).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(second.output()).not.toMatch(/Tessera listening/);
    expect(second.output()).toMatch(/KEYS_ENCRYPTION_KEY/);
    expect(snapshot()).toEqual(before);

    const script = await runRotateKeys([], { DATABASE_URL: url, KEYS_DIR: keysDir, MIGRATE_ON_START: "false", KEYS_ENCRYPTION_KEY: wrong });
    expectExit(script, 1);
    expect(script.stderr).toMatch(/KEYS_ENCRYPTION_KEY/);
    expect(snapshot()).toEqual(before);

    // With the right key the scheduled run works on the sealed files.
    const ok = await runRotateKeys([], { DATABASE_URL: url, KEYS_DIR: keysDir, MIGRATE_ON_START: "false", KEYS_ENCRYPTION_KEY: key });
    expectExit(ok, 0);
    expect(ok.stdout).toMatch(/created next key/);
  }, 120_000);
});

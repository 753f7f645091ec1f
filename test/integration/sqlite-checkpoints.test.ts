// SQLite's WAL checkpoints run in a worker thread (src/storage/prisma/checkpointer.ts), not inline
// in the statement that commits: what a commit writes stays readable, the WAL stays bounded under
// steady writes, and a worker that fails gives the connections their own checkpoints back.
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { closeDirect, openDb, type Db, type DirectHandle } from "../../src/storage/prisma/client.ts";
import { AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT, type CheckpointerOptions } from "../../src/storage/prisma/checkpointer.ts";
import type { CheckpointerEvent } from "../../src/storage/storage.ts";
import { retryWhileBusy } from "../../src/storage/prisma/driver.ts";
import { openPrismaStorage } from "../../src/storage/prisma/index.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { createServices } from "../../src/services.ts";
import { freshDatabase, LogCapture } from "../helpers/issuer.ts";

const PAGE = 4096;
const dirs: string[] = [];
const open: Array<{ db: Db; direct: DirectHandle }> = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.db.$disconnect();
    await closeDirect(o.direct);
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openSqlite(checkpointer: false | CheckpointerOptions) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-ckpt-"));
  dirs.push(dir);
  const file = path.join(dir, "t.db");
  const { db, direct } = await openDb(`file:${file}`, { checkpointer });
  open.push({ db, direct });
  if (direct.flavor !== "sqlite") throw new Error("expected sqlite");
  direct.sqlite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  return { file, wal: `${file}-wal`, db, direct, sqlite: direct.sqlite };
}

const walBytes = (wal: string) => (existsSync(wal) ? statSync(wal).size : 0);
/** The largest the WAL file got while `pages` one-page commits were written. */
function largestWalWhileWriting(sqlite: Database.Database, wal: string, pages: number): number {
  let largest = 0;
  for (let i = 0; i < pages; i++) {
    insertPage(sqlite);
    largest = Math.max(largest, walBytes(wal));
  }
  return largest;
}
/** one commit of about one page, as the hot paths write: one row per statement */
const insertPage = (sqlite: Database.Database) => sqlite.prepare("INSERT INTO t (v) VALUES (?)").run("x".repeat(PAGE - 200));
/** The settings each commit checks on its own connection: both connections write. */
const settings = async (db: Db, sqlite: Database.Database) => {
  const prisma = async (name: string) => Number(Object.values((await db.$queryRawUnsafe<Array<Record<string, number | bigint>>>(`PRAGMA ${name}`))[0]!)[0]);
  return {
    direct: { autocheckpoint: sqlite.pragma("wal_autocheckpoint", { simple: true }), sizeLimit: sqlite.pragma("journal_size_limit", { simple: true }) },
    prisma: { autocheckpoint: await prisma("wal_autocheckpoint"), sizeLimit: await prisma("journal_size_limit") },
  };
};
const withWorker = { autocheckpoint: 0, sizeLimit: WAL_SIZE_LIMIT };
const sqliteOwn = { autocheckpoint: AUTOCHECKPOINT_PAGES, sizeLimit: -1 };
const until = (check: () => void) => vi.waitFor(check, { timeout: 15_000, interval: 10 });

/** A driver whose first load fails (as a full disk or an I/O error would end a worker) and whose next ones work. */
function flakyDriver(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-flaky-driver-"));
  dirs.push(dir);
  const driver = path.join(dir, "flaky-driver.cjs");
  writeFileSync(
    driver,
    `const fs = require("node:fs");
const marker = ${JSON.stringify(path.join(dir, "loaded"))};
if (!fs.existsSync(marker)) { fs.writeFileSync(marker, "1"); throw new Error("flaky driver: the first load fails"); }
module.exports = require(${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))});
`,
  );
  return driver;
}

describe("SQLite WAL checkpoints in a worker thread", () => {
  it("a commit does not checkpoint inline: the WAL grows past SQLite's 1000 pages until the worker's round", async () => {
    // The worker's first round runs at start; the next not for a minute.
    const rounds: unknown[] = [];
    const { wal, db, sqlite } = await openSqlite({ intervalMs: 60_000, onRound: (r) => rounds.push(r) });
    expect(await settings(db, sqlite)).toEqual({ direct: withWorker, prisma: withWorker });
    await until(() => expect(rounds.length).toBe(1));
    for (let i = 0; i < 1500; i++) insertPage(sqlite);
    // SQLite's default would have copied the WAL back at 1000 pages and started it over.
    expect(walBytes(wal)).toBeGreaterThan(1400 * PAGE);
  });

  it("under steady writes the WAL is copied back and started over: bounded, every row kept", async () => {
    const rounds: Array<{ log: number; checkpointed: number; restarted: boolean }> = [];
    const { file, wal, sqlite } = await openSqlite({ intervalMs: 10, restartPages: 200, onRound: (r) => rounds.push(r) });
    await until(() => expect(rounds.length).toBeGreaterThan(0)); // the worker is up
    let maxWal = 0;
    const N = 6000;
    for (let i = 0; i < N; i++) {
      // The RESTART holds the write lock for a moment: retried, as the hot paths retry.
      await retryWhileBusy(() => insertPage(sqlite));
      // Other work between commits, as in a server: about 4,000 commits a second here.
      if (i % 4 === 3) {
        maxWal = Math.max(maxWal, walBytes(wal));
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    // Without the RESTART, a WAL that is never seen fully copied when a write begins grows to
    // about 2 × N frames (46 MB here); with it, by what is written between two rounds.
    expect(maxWal).toBeLessThan(4000 * PAGE);
    expect(rounds.some((r) => r.restarted)).toBe(true);
    expect(rounds.some((r) => r.checkpointed > 0)).toBe(true);
    // Another connection sees every committed row.
    const reader = new Database(file, { readonly: true });
    try {
      expect(reader.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: N });
    } finally {
      reader.close();
    }
  });

  it("after a RESTART the worker writes first: starting the WAL over (a sync of its header) is its cost, not a request's", async () => {
    const rounds: Array<{ log: number; checkpointed: number; restarted: boolean }> = [];
    const { file, sqlite } = await openSqlite({ intervalMs: 10, restartPages: 64, onRound: (r) => rounds.push(r) });
    await until(() => expect(rounds.length).toBeGreaterThan(0)); // the worker is up
    // A reader's old snapshot keeps the worker from starting the WAL over while we write (see
    // the next test); so the RESTART comes after our last write.
    const reader = new Database(file, { readonly: true });
    reader.exec("BEGIN");
    reader.prepare("SELECT count(*) FROM t").get();
    for (let i = 0; i < 100; i++) insertPage(sqlite);
    const before = rounds.length;
    reader.exec("COMMIT");
    reader.close();
    await until(() => expect(rounds.slice(before).some((r) => r.restarted)).toBe(true));
    // The WAL started over, and holds one frame: the worker's own write, which began the new WAL
    // (SQLite syncs its header then, and cuts the file back to journal_size_limit), so no
    // request's first write after it does. (log: frames in the WAL since it started over.)
    expect(sqlite.pragma("wal_checkpoint(PASSIVE)")).toEqual([{ busy: 0, log: 1, checkpointed: 1 }]);
    expect(sqlite.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 100 });
  });

  it("a reader holding an old snapshot does not make the worker hold writers up", async () => {
    const rounds: Array<{ log: number; checkpointed: number; restarted: boolean }> = [];
    const { file, sqlite } = await openSqlite({ intervalMs: 10, restartPages: 100, onRound: (r) => rounds.push(r) });
    await until(() => expect(rounds.length).toBeGreaterThan(0));
    // A reader (another process, a backup) keeps the snapshot it began with: the WAL written
    // after it cannot be copied back, so it cannot start over until the reader ends.
    const reader = new Database(file, { readonly: true });
    try {
      reader.exec("BEGIN");
      reader.prepare("SELECT count(*) FROM t").get();
      let busy = 0;
      let tries = 0;
      const end = Date.now() + 600;
      while (Date.now() < end) {
        tries++;
        try {
          insertPage(sqlite);
        } catch (err) {
          if ((err as { code?: string }).code !== "SQLITE_BUSY") throw err;
          busy++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      // A RESTART, which cannot finish past the reader, would hold the write lock for its wait
      // every round: about half of these writes refused.
      expect(tries).toBeGreaterThan(50);
      expect(busy).toBe(0);
      expect(rounds.filter((r) => r.log >= 100).length).toBeGreaterThan(5);
      reader.exec("COMMIT");
    } finally {
      reader.close();
    }
    // Once the reader is gone, the WAL starts over again.
    await until(() => expect(rounds.some((r) => r.restarted)).toBe(true));
  });

  it("a worker that fails gives both connections SQLite's own checkpoints back", async () => {
    // The next worker not before a minute: this test watches the fallback.
    const { wal, db, direct, sqlite } = await openSqlite({ driver: "tessera-no-such-driver", retryMs: 60_000 });
    if (direct.flavor !== "sqlite" || !direct.checkpointer) throw new Error("expected a checkpointer");
    const err = await direct.checkpointer.failed;
    expect(err.message).toMatch(/tessera-no-such-driver/);
    expect(direct.checkpointer.running).toBe(false);
    expect(await settings(db, sqlite)).toEqual({ direct: sqliteOwn, prisma: sqliteOwn });
    expect(largestWalWhileWriting(sqlite, wal, 3000)).toBeLessThan((AUTOCHECKPOINT_PAGES + 100) * PAGE);
  });

  it("a listener that comes after a failure is told of it; one that throws does not stop the retries", async () => {
    const { direct } = await openSqlite({ driver: "tessera-no-such-driver", retryMs: 20 });
    if (direct.flavor !== "sqlite" || !direct.checkpointer) throw new Error("expected a checkpointer");
    await direct.checkpointer.failed;
    const seen: CheckpointerEvent[] = [];
    direct.checkpointer.watch(() => {
      throw new Error("a broken logger");
    });
    direct.checkpointer.watch((event) => seen.push(event));
    // The failure in force, told at once (no worker has run since it)...
    expect(seen).toHaveLength(1);
    // ...then each new one: the retries go on past the throwing listener.
    await until(() => expect(seen.length).toBeGreaterThanOrEqual(3));
    for (const event of seen) expect(event).toMatchObject({ type: "failed", error: { message: expect.stringMatching(/tessera-no-such-driver/) } });
  });

  it("a failed worker is started again, and the connections hand their checkpoints back to it", async () => {
    const driver = flakyDriver();
    const rounds: unknown[] = [];
    const { db, direct, sqlite } = await openSqlite({ driver, retryMs: 50, intervalMs: 20, onRound: (r) => rounds.push(r) });
    if (direct.flavor !== "sqlite" || !direct.checkpointer) throw new Error("expected a checkpointer");
    expect((await direct.checkpointer.failed).message).toMatch(/first load fails/);
    await until(() => expect(rounds.length).toBeGreaterThan(2));
    expect(direct.checkpointer.running).toBe(true);
    expect(await settings(db, sqlite)).toEqual({ direct: withWorker, prisma: withWorker });
  });

  it("closing ends the worker, and the last connection's close removes the WAL", async () => {
    let rounds = 0;
    const { file, wal, db, direct, sqlite } = await openSqlite({ intervalMs: 10, onRound: () => rounds++ });
    for (let i = 0; i < 50; i++) insertPage(sqlite);
    expect(walBytes(wal)).toBeGreaterThan(0);
    await until(() => expect(rounds).toBeGreaterThan(2));
    open.pop();
    await db.$disconnect();
    await closeDirect(direct);
    if (direct.flavor !== "sqlite") throw new Error("expected sqlite");
    expect(direct.checkpointer?.running).toBe(false);
    // No round after close...
    const after = rounds;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(rounds).toBe(after);
    // ...and the worker's connection is closed too: SQLite removes the WAL only when the last
    // connection to the database, the worker's included, closes.
    expect(existsSync(wal)).toBe(false);
    const reader = new Database(file, { readonly: true });
    try {
      expect(reader.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 50 });
    } finally {
      reader.close();
    }
  });

  it("without the worker (checkpointer: false) SQLite checkpoints inline as before", async () => {
    const { db, sqlite, direct, wal } = await openSqlite(false);
    expect(direct.flavor === "sqlite" && direct.checkpointer).toBeFalsy();
    expect(await settings(db, sqlite)).toEqual({ direct: sqliteOwn, prisma: sqliteOwn });
    // The commits checkpoint inline: 3000 pages written, the WAL never far past SQLite's 1000.
    expect(largestWalWhileWriting(sqlite, wal, 3000)).toBeLessThan((AUTOCHECKPOINT_PAGES + 100) * PAGE);
  });
});

describe("what the server logs about the checkpoint worker", () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  /** The server's services on a fresh SQLite database whose checkpoint worker runs with `checkpointer`; its log. */
  async function serverWith(checkpointer: CheckpointerOptions): Promise<LogCapture> {
    const db = await freshDatabase("sqlite");
    const keysDir = mkdtempSync(path.join(os.tmpdir(), "tessera-ckpt-keys-"));
    const config = loadConfig({ ISSUER: "https://issuer.test", DATABASE_URL: db.url, KEYS_DIR: keysDir, LOG_LEVEL: "info" });
    const logs = new LogCapture();
    const storage = await openPrismaStorage(db.url, { checkpointer });
    closers.push(async () => {
      await storage.close();
      await db.drop();
      rmSync(keysDir, { recursive: true, force: true });
    });
    await createServices(config, createLogger(config.logLevel, logs), { storage });
    return logs;
  }
  const aboutTheWorker = (logs: LogCapture) =>
    logs.parsed().filter((line) => /checkpoint worker/.test(String(line.msg))) as Array<{ level: number; msg: string; err?: unknown; retryInMs?: number }>;

  it("every failure is logged, with when the next worker starts: not only the first", async () => {
    const logs = await serverWith({ driver: "tessera-no-such-driver", retryMs: 20 });
    await until(() => expect(aboutTheWorker(logs).length).toBeGreaterThanOrEqual(3));
    const [first, second, third] = aboutTheWorker(logs);
    for (const line of [first, second, third]) {
      expect(line).toMatchObject({ level: 50, err: { message: expect.stringMatching(/tessera-no-such-driver/) } });
      expect(line!.msg).toMatch(/failed: checkpoints run inline/);
    }
    // The delay doubles while new workers keep failing.
    expect([first, second, third].map((line) => line!.retryInMs)).toEqual([20, 40, 80]);
  });

  it("a worker that starts and runs after a failure is logged too", async () => {
    const logs = await serverWith({ driver: flakyDriver(), retryMs: 20, intervalMs: 20 });
    await until(() => expect(aboutTheWorker(logs).length).toBe(2));
    const [failed, back] = aboutTheWorker(logs);
    expect(failed).toMatchObject({ level: 50, err: { message: expect.stringMatching(/first load fails/) }, retryInMs: 20 });
    expect(back).toMatchObject({ level: 30 });
    expect(back!.msg).toMatch(/started again: checkpoints are off the event loop again/);
  });
});

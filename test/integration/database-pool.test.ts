// DATABASE_POOL_SIZE: the Postgres connections one server process opens at most (with WORKERS,
// each worker its own pool), counted by the database server itself.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterEach, describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { createServices } from "../../src/services.ts";
import { freshDatabase, LogCapture } from "../helpers/issuer.ts";

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The connections to the server's database once 30 of its queries ran at the same time. */
async function connectionsUnderLoad(env: Record<string, string>): Promise<number> {
  const db = await freshDatabase("postgres");
  const keysDir = mkdtempSync(path.join(os.tmpdir(), "tessera-pool-keys-"));
  closers.push(async () => {
    await db.drop();
    rmSync(keysDir, { recursive: true, force: true });
  });
  const config = loadConfig({ ISSUER: "https://issuer.test", DATABASE_URL: db.url, KEYS_DIR: keysDir, LOG_LEVEL: "warn", ...env });
  const services = await createServices(config, createLogger("warn", new LogCapture()));
  closers.unshift(() => services.storage.close());
  await Promise.all(Array.from({ length: 30 }, () => services.storage.ping()));
  const observer = new pg.Client({ connectionString: inject("postgres")!.adminUrl });
  await observer.connect();
  try {
    const { rows } = await observer.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1`, [new URL(db.url).pathname.slice(1)]);
    return rows[0]!.n;
  } finally {
    await observer.end();
  }
}

describe.skipIf(!inject("postgres"))("DATABASE_POOL_SIZE [postgres]", () => {
  it("caps the connections a server process opens (10 by default)", async () => {
    expect(await connectionsUnderLoad({ DATABASE_POOL_SIZE: "2" })).toBe(2);
    expect(await connectionsUnderLoad({})).toBe(10);
  }, 60_000);

  it("a pool size that is not a whole number from 1 to 1000 is a configuration error", () => {
    for (const bad of ["0", "-1", "ten", "1001"]) {
      expect(() => loadConfig({ ISSUER: "https://issuer.test", DATABASE_URL: "postgresql://x/y", DATABASE_POOL_SIZE: bad })).toThrow(/DATABASE_POOL_SIZE/);
    }
  });
});

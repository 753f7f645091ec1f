// `npm run bench:status-lists`: the token status lists at scale. Seeds BENCH_STATUS_SESSIONS
// (default 1,000,000) sessions with status list indices, 1% of them revoked (spread at random),
// then measures what
// a server does with them: a full rebuild (read the revoked indices, build, compress and sign
// every list), a rebuild with nothing changed, a rebuild after one more revocation, and the bytes
// a verifier downloads per list (and gzip-encoded). SQLite; Postgres too with BENCH_DATABASE_URL.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { systemClock } from "../src/domain/clock.ts";
import { newId } from "../src/domain/ids.ts";
import { generateKey } from "../src/domain/keys/generate.ts";
import { KeyRing } from "../src/domain/keys/key-ring.ts";
import { toSigningKey } from "../src/domain/keys/signing-key.ts";
import { LIST_SIZE } from "../src/domain/tokens/status-list.ts";
import { StatusListPublisher } from "../src/domain/tokens/status-publisher.ts";
import { migrate } from "../src/storage/prisma/migrate.ts";
import { openPrismaStorage } from "../src/storage/prisma/index.ts";
import { tempSqliteDatabase } from "../test/helpers/databases.ts";
import { runCleanups, runDatabase } from "./lib/proc.ts";
import { seedSessions } from "./lib/seed.ts";

const N = Number(process.env.BENCH_STATUS_SESSIONS ?? 1_000_000);
const PG = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || "";
const JSON_OUTPUT = process.argv.includes("--json");
const log = (s: string) => (JSON_OUTPUT ? process.stderr : process.stdout).write(`${s}\n`);
const ms = (t: number) => `${(performance.now() - t).toFixed(0)} ms`;

async function flavorRun(flavor: "sqlite" | "postgres") {
  const db = flavor === "sqlite" ? tempSqliteDatabase("tessera-status-") : await runDatabase(PG, `bench_status_${randomBytes(4).toString("hex")}`);
  try {
    await migrate(db.url);
    const s = await openPrismaStorage(db.url);
    try {
      const now = new Date();
      const userId = newId();
      await s.users.create({ id: userId, email: `${userId}@bench.test`, passwordHash: "x", roles: [], createdAt: now, disabledAt: null });
      await s.clients.upsert({ id: "bench", name: "bench", type: "public", secretHash: null, grantTypes: ["password"], scopes: [], audiences: [], resources: [], accessTokenTtl: null, refreshTokenTtl: null, createdAt: now, disabledAt: null });
      let t = performance.now();
      await seedSessions(s, { tag: "s", userId, clientId: "bench", count: N, createdAt: now, expiresAt: new Date(now.getTime() + 86400_000), statusIdxBase: 0, revokeOneIn: 100 });
      await s.statusIndices.reserve(N);
      const revoked = (await s.revokedIndices.revokedIndices()).length;
      log(`[${flavor}] seeded ${N.toLocaleString("en-US")} sessions with status list indices, ${revoked.toLocaleString("en-US")} revoked at random, in ${ms(t)}`);

      const keys = new KeyRing([await toSigningKey(await generateKey("ES256", "active", now))], "ES256");
      const publisher = new StatusListPublisher({ revoked: s.revokedIndices, indices: s.statusIndices, keys, clock: systemClock, issuer: "https://issuer.bench", ttl: 300 });
      const timings: Record<string, number> = {};
      const time = async (name: string, fn: () => Promise<unknown>) => {
        const started = performance.now();
        await fn();
        timings[name] = performance.now() - started;
        log(`[${flavor}] ${name}: ${timings[name]!.toFixed(0)} ms`);
      };
      await time("first rebuild (read, build, compress, sign every list)", () => publisher.rebuild());
      await time("rebuild, nothing changed", () => publisher.rebuild());
      await s.sessions.revoke("s-1", "bench", now);
      await time("rebuild after one more revocation", () => publisher.rebuild());
      const lists = Math.ceil(N / LIST_SIZE);
      const bytes = [];
      for (let n = 0; n < lists + 1; n++) {
        const found = publisher.lookup(n);
        if (found.found !== "ok") continue;
        bytes.push({ list: n, bytes: found.list.body.length, gzipBytes: found.list.gzip?.body.length ?? null });
        log(`[${flavor}] list ${n}: ${found.list.body.length.toLocaleString("en-US")} bytes (${found.list.gzip ? `${found.list.gzip.body.length.toLocaleString("en-US")} gzip-encoded` : "no gzip"})`);
      }
      return { revoked, timingsMs: timings, lists: bytes };
    } finally {
      await s.close();
    }
  } finally {
    await db.drop();
  }
}

try {
  const result: Record<string, unknown> = { sessions: N, revokedShare: 0.01, sqlite: await flavorRun("sqlite") };
  if (PG) result.postgres = await flavorRun("postgres");
  if (JSON_OUTPUT) process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (err) {
  process.stderr.write(`bench:status-lists failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}

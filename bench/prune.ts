// `npm run bench:prune`: pruning a large number of dead sessions, and what it does to the
// requests of the process that runs it. The server prunes on a timer (PRUNE_INTERVAL) in its own
// process, so that is where it is measured: the store's pruneDead() runs over BENCH_PRUNE_SESSIONS
// (default 1,000,000) dead sessions, each with a refresh token, seeded in one statement, while a
// "request" (a session lookup by id, the refresh path's first query) is made every 5 ms. Reported:
// the prune's duration, the worst event-loop delay during it, and the worst request latency;
// then the same for one DELETE of everything (how it was done before), on a fresh seed; then
// pruneDead again over as many live sessions of which about 1 in 100 were revoked long ago.
// SQLite in a temp file; Postgres too with BENCH_DATABASE_URL (or TEST_DATABASE_URL).
import { randomBytes } from "node:crypto";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { newId } from "../src/domain/ids.ts";
import { migrate } from "../src/storage/prisma/migrate.ts";
import { openPrismaStorage, type PrismaStorage } from "../src/storage/prisma/index.ts";
import { PRUNE_CHUNK } from "../src/storage/prisma/sessions.ts";
import { runCleanups, runDatabase } from "./lib/proc.ts";
import { seedSessions } from "./lib/seed.ts";
import { tempSqliteDatabase } from "../test/helpers/databases.ts";

const N = Number(process.env.BENCH_PRUNE_SESSIONS ?? 1_000_000);
const PG = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || "";
const JSON_OUTPUT = process.argv.includes("--json");
const log = (s: string) => (JSON_OUTPUT ? process.stderr : process.stdout).write(`${s}\n`);

const T0 = new Date("2030-01-01T00:00:00.000Z");
const DEAD_AT = new Date(T0.getTime() + 3600_000);
const NOW = new Date(T0.getTime() + 2 * 86400_000);
/** the live sessions' end, for the sparse case */
const LATER = new Date(T0.getTime() + 30 * 86400_000);

/** N dead sessions (ended an hour after T0), each with one refresh token. */
const seed = (s: PrismaStorage, userId: string, tag: string) =>
  seedSessions(s, { tag, userId, clientId: "bench", count: N, createdAt: T0, expiresAt: DEAD_AT });

interface Run {
  how: string;
  /** null when the prune failed (error) */
  deleted: number | null;
  error?: string;
  seconds: number;
  worstLoopDelayMs: number;
  worstRequestMs: number;
  requests: number;
  p99RequestMs: number;
  /** requests that took longer than the 50 ms goal */
  requestsOver50Ms: number;
}

/** Runs `prune` while requests go on every 5 ms; the worst of both. */
async function measure(s: PrismaStorage, how: string, prune: () => Promise<number>): Promise<Run> {
  // The lookup as a running server makes it: its query compiled and its connection open already.
  await Promise.all([1, 2, 3].map((i) => s.sessions.findSession(`probe-warm-up-${i}`)));
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  let worstRequest = 0;
  let requests = 0;
  const latencies: number[] = [];
  let running = true;
  const requester = (async () => {
    while (running) {
      const started = performance.now();
      await s.sessions.findSession(`probe-${requests}`);
      const ms = performance.now() - started;
      worstRequest = Math.max(worstRequest, ms);
      latencies.push(ms);
      requests++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  histogram.enable();
  const started = performance.now();
  let deleted: number | null = null;
  let error: string | undefined;
  try {
    deleted = await prune();
  } catch (err) {
    error = String((err as Error).message).split("\n")[0];
  }
  const seconds = (performance.now() - started) / 1000;
  // A loop blocked until now records its delay at its next turn: give it one.
  await new Promise((r) => setTimeout(r, 20));
  histogram.disable();
  running = false;
  await requester;
  latencies.sort((a, b) => a - b);
  const p99RequestMs = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0;
  const over50 = latencies.filter((l) => l > 50).length;
  return { how, deleted, ...(error ? { error } : {}), seconds, worstLoopDelayMs: histogram.max / 1e6, worstRequestMs: worstRequest, p99RequestMs, requestsOver50Ms: over50, requests };
}

async function flavorRun(flavor: "sqlite" | "postgres"): Promise<Run[]> {
  const db = flavor === "sqlite" ? tempSqliteDatabase("tessera-prune-") : await runDatabase(PG, `bench_prune_${randomBytes(4).toString("hex")}`);
  try {
    await migrate(db.url);
    const s = await openPrismaStorage(db.url);
    try {
      const userId = newId();
      await s.users.create({ id: userId, email: `${userId}@bench.test`, passwordHash: "x", roles: [], createdAt: T0, disabledAt: null });
      await s.clients.upsert({ id: "bench", name: "bench", type: "public", secretHash: null, grantTypes: ["password"], scopes: [], audiences: [], resources: [], accessTokenTtl: null, refreshTokenTtl: null, createdAt: T0, disabledAt: null });
      const runs: Run[] = [];
      let t = performance.now();
      await seed(s, userId, "a");
      log(`[${flavor}] seeded ${N.toLocaleString("en-US")} dead sessions with their tokens in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      runs.push(await measure(s, `pruneDead, ${PRUNE_CHUNK} per chunk`, async () => (await s.sessions.pruneDead(NOW, NOW)).sessions));
      t = performance.now();
      await seed(s, userId, "b");
      log(`[${flavor}] seeded again in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      runs.push(await measure(s, "one DELETE (before)", async () => (await s.db.session.deleteMany({ where: { expiresAt: { lt: NOW } } })).count));
      // Few dead among many live, as in a running service: each chunk looks at PRUNE_CHUNK
      // sessions, dead or not, so its work stays bounded however sparse the dead ones are.
      await s.db.session.deleteMany();
      t = performance.now();
      await seedSessions(s, { tag: "c", userId, clientId: "bench", count: N, createdAt: T0, expiresAt: LATER, revokeOneIn: 100 });
      log(`[${flavor}] seeded ${N.toLocaleString("en-US")} live sessions, about 1 in 100 of them revoked long ago, in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      runs.push(await measure(s, "pruneDead, 1 in 100 dead", async () => (await s.sessions.pruneDead(NOW, NOW)).sessions));
      for (const r of runs) {
        log(
          `[${flavor}] ${r.how.padEnd(32)} ${r.deleted === null ? `FAILED after ${r.seconds.toFixed(1)} s (${r.error})` : `deleted ${r.deleted.toLocaleString("en-US")} in ${r.seconds.toFixed(1)} s`}; worst event-loop delay ${r.worstLoopDelayMs.toFixed(0)} ms; ` +
            `worst request ${r.worstRequestMs.toFixed(0)} ms, p99 ${r.p99RequestMs.toFixed(0)} ms, ${r.requestsOver50Ms} over 50 ms (${r.requests} requests, one every 5 ms)`,
        );
      }
      return runs;
    } finally {
      await s.close();
    }
  } finally {
    await db.drop();
  }
}

try {
  const result: Record<string, Run[]> = { sqlite: await flavorRun("sqlite") };
  if (PG) result.postgres = await flavorRun("postgres");
  if (JSON_OUTPUT) process.stdout.write(`${JSON.stringify({ sessions: N, chunk: PRUNE_CHUNK, ...result })}\n`);
} catch (err) {
  process.stderr.write(`bench:prune failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}

// `npm run bench:jwks-starts`: the JWKS fast path's CPU per response from one server start to the
// next. `npm run bench` measures one Tessera process per database; this starts a new one for
// each measurement (on a new database, and on one migrated by an earlier start), with the Fastify
// hello world started anew each round too, and reports the spread: how much of a JWKS ratio is
// the process rather than the code. BENCH_STARTS rounds (default 4); Postgres too with
// BENCH_DATABASE_URL. Each measurement: BENCH_WARMUP s of load (default 2), then BENCH_SECONDS s
// (default 5) with BENCH_CONNECTIONS connections (default 32); CPU from /proc, all threads.
import path from "node:path";
import { randomBytes } from "node:crypto";
import { loadSlice } from "./lib/load.ts";
import { makeTempDir, runCleanups, runDatabase } from "./lib/proc.ts";
import { startHello } from "./scenarios/jwks.ts";
import { envNum, serverEntry, startTessera } from "./lib/server.ts";

const ROUNDS = envNum("BENCH_STARTS", 4);
const WARMUP = envNum("BENCH_WARMUP", 2);
const SECONDS = envNum("BENCH_SECONDS", 5);
const CONNECTIONS = envNum("BENCH_CONNECTIONS", 32);
const PG = process.env.BENCH_DATABASE_URL || "";
const JSON_OUTPUT = process.argv.includes("--json");
const log = (s: string) => (JSON_OUTPUT ? process.stderr : process.stdout).write(`${s}\n`);

interface Measurement {
  rps: number;
  cpuMsPerResponse: number;
}

async function measure(url: string, pid: number): Promise<Measurement> {
  await loadSlice({ url, connections: CONNECTIONS, seconds: WARMUP, graceful: true });
  const s = await loadSlice({ url, connections: CONNECTIONS, seconds: SECONDS, graceful: true, serverPid: pid });
  if (s.failed > 0) throw new Error(`${s.failed} failed responses from ${url}`);
  return { rps: s.ok / s.window, cpuMsPerResponse: s.cpuMs! / (s.completed ?? s.ok) };
}

/** A case: starts a process, measures it, stops it. */
type Case = { name: string; run: () => Promise<Measurement> };

const hello: Case = {
  name: "hello world (baseline)",
  async run() {
    const { child, url } = await startHello();
    try {
      return await measure(url, child.pid);
    } finally {
      await child.stop();
    }
  },
};

function tessera(flavor: "sqlite" | "postgres", name: string, database: () => Promise<string>): Case {
  return {
    name,
    async run() {
      const url = await database();
      const keysDir = path.join(makeTempDir("tessera-jwks-starts-keys-"), "keys");
      const server = await startTessera(flavor, url, keysDir, serverEntry().args);
      try {
        return await measure(`${server.base}/.well-known/jwks.json`, server.child.pid);
      } finally {
        await server.child.stop();
      }
    },
  };
}

async function main(): Promise<void> {
  const scratch = makeTempDir("tessera-jwks-starts-");
  let n = 0;
  const migratedSqlite = `file:${path.join(scratch, "migrated.db")}`;
  const cases: Case[] = [
    hello,
    tessera("sqlite", "sqlite, new database", async () => `file:${path.join(scratch, `new-${++n}.db`)}`),
    tessera("sqlite", "sqlite, migrated database", async () => migratedSqlite),
  ];
  if (PG) {
    const migrated = await runDatabase(PG, `bench_jwks_${randomBytes(4).toString("hex")}`);
    cases.push(
      tessera("postgres", "postgres, new database", async () => (await runDatabase(PG, `bench_jwks_${randomBytes(4).toString("hex")}`)).url),
      tessera("postgres", "postgres, migrated database", async () => migrated.url),
    );
  }
  // The "migrated" databases: migrated by a start of their own before the first round.
  log(`server: ${serverEntry().how}; ${ROUNDS} rounds; ${WARMUP} s warm-up + ${SECONDS} s, ${CONNECTIONS} connections each`);
  await tessera("sqlite", "", async () => migratedSqlite).run();
  if (PG) await cases.at(-1)!.run();
  const results = new Map<string, Measurement[]>(cases.map((c) => [c.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of cases) {
      const m = await c.run();
      results.get(c.name)!.push(m);
      log(`round ${round}: ${c.name.padEnd(28)} ${Math.round(m.rps).toLocaleString("en-US").padStart(7)} req/s, ${m.cpuMsPerResponse.toFixed(4)} ms CPU per response`);
    }
  }
  log("\nCPU ms per response, one figure per start, sorted:");
  const summary = [...results].map(([name, ms]) => {
    const cpuMsPerResponse = ms.map((m) => m.cpuMsPerResponse).sort((a, b) => a - b);
    log(`  ${name.padEnd(28)} ${cpuMsPerResponse.map((c) => c.toFixed(4)).join("  ")}`);
    return { name, cpuMsPerResponse };
  });
  if (JSON_OUTPUT) process.stdout.write(`${JSON.stringify({ rounds: ROUNDS, warmupSeconds: WARMUP, seconds: SECONDS, connections: CONNECTIONS, summary, results: Object.fromEntries(results) })}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench:jwks-starts failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}

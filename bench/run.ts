// `npm run bench`: Tessera under load, each figure next to a baseline measured in the same run
// on the same machine, against a goal for the ratio between the two.
//
// Everything runs on 127.0.0.1. Tessera is a real child process (built dist if it is current,
// otherwise src/server.ts through tsx) on a temp SQLite file, then, when BENCH_DATABASE_URL (or
// TEST_DATABASE_URL) is set, on a fresh Postgres database created for the run and dropped after.
//
// Goals are issue 11's (performance at the limit).
// Scenarios (per database; one file each in scenarios/, run in the order of scenarios/index.ts):
//   a. JWKS vs a Fastify "hello world" child process                         goal >= 0.9x
//   b. password grant vs raw argon2id verifies (same params, same pool size) goal >= 0.95x
//   c. refresh rotation, one chain per connection, vs the raw-driver transaction
//      on a scratch table (better-sqlite3 WAL/NORMAL; pg Pool 10, 64 in flight)  goal >= 0.5x
//      plus reuse detection checked after the run
//   e. client_credentials vs jose signing alone (same algorithm)             goal >= 0.6x
//      and vs node-oidc-provider 9 (in-memory adapter, same client auth, JWT access tokens of
//      the same algorithm, same load)                                       goal >= 3x
//   f. client_credentials with WORKERS=1 vs WORKERS=N (BENCH_WORKERS, default one per core), two
//      more servers on the same database; reported, no goal (the load generator shares the cores)
//   d. peak RSS of the server, and RSS under a login flood (bounded hash queue -> 503)
//
// This file parses the environment, starts and stops the server per database, runs the
// scenarios and prints the summary of what they return.
//
// It reports, it does not gate: a missed goal still exits 0. It exits 1 when a scenario could
// not run (server did not start, > 1% errors, reuse detection not intact).
//
// Environment (all optional):
//   BENCH_SECONDS=5            measured seconds per side (subject and baseline) per scenario
//   BENCH_SLICES=5             ...taken in this many alternating slices (ABBA), so background
//                              load shifts hit both sides alike
//   BENCH_WARMUP_SECONDS=1     warm-up before each HTTP measurement (0 = none)
//   BENCH_CONNECTIONS=50       connections for JWKS / hello world
//   BENCH_LOGIN_CONNECTIONS=16 connections for the password grant (and argon2 baseline concurrency)
//   BENCH_REFRESH_CHAINS=64    refresh chains = connections
//   BENCH_FLOOD_CONNECTIONS=500, BENCH_FLOOD_SECONDS=BENCH_SECONDS
//   BENCH_USERS=8              pre-registered users
//   BENCH_DATABASE_URL / TEST_DATABASE_URL  Postgres admin URL; enables the Postgres run
//   BENCH_ONLY=sqlite|postgres run one database only
//   BENCH_SCENARIOS=jwks,login,refresh,client_credentials,workers,memory  run a subset (default: all)
//   BENCH_WORKERS=N            workers of the cluster side of f. (default: os.availableParallelism())
//   BENCH_SERVER=dist|src      force the server entry point
//   BENCH_SERVER_NODE_ARGS     extra node flags for Tessera, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   UV_THREADPOOL_SIZE         passed to Tessera and to the argon2 baseline alike (default 4)
//
// `npm run bench -- --json`: the report goes to stderr and stdout gets one JSON object for
// machines: the machine, the settings, every summary row (with the measured figures behind each
// ratio: req/s, p50/p99 ms, operations, failures, CPU ms per operation) and the failures.
//   ARGON2_*, PASSWORD_HASH_*, SIGNING_ALG  passed through to Tessera (the baseline follows)
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { makeTempDir, RssSampler, runCleanups, runDatabase } from "./lib/proc.ts";
import { fmtMiB, heading, note, table, type SummaryRow } from "./lib/report.ts";
import { envNum, registerUsers, serverEntry, startTessera } from "./lib/server.ts";
import { Findings, scenarios, type Flavor, type Server, type Settings } from "./scenarios/index.ts";

// ---------------------------------------------------------------- settings

const JSON_OUTPUT = process.argv.includes("--json");
// With --json, stdout carries only the JSON document: the human report goes to stderr.
if (JSON_OUTPUT) console.log = (...args: unknown[]) => console.error(...args);

const SECONDS = envNum("BENCH_SECONDS", 5);
const SETTINGS: Settings = {
  seconds: SECONDS,
  slices: Math.round(envNum("BENCH_SLICES", 5)),
  warmup: envNum("BENCH_WARMUP_SECONDS", 1, 0),
  connections: envNum("BENCH_CONNECTIONS", 50),
  loginConnections: envNum("BENCH_LOGIN_CONNECTIONS", 16),
  refreshChains: envNum("BENCH_REFRESH_CHAINS", 64),
  floodConnections: envNum("BENCH_FLOOD_CONNECTIONS", 500),
  floodSeconds: envNum("BENCH_FLOOD_SECONDS", SECONDS),
  uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE || "4",
};
const USERS = envNum("BENCH_USERS", 8);
const PG_ADMIN_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || "";
const ONLY = process.env.BENCH_ONLY ?? "";
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS || [...scenarios.keys()].join(",")).split(",").map((s) => s.trim()));

// ---------------------------------------------------------------- one database

/** Runs the selected scenarios on one database; what they return (and what failed here) goes to `found`. */
async function runFlavor(flavor: Flavor, entry: string[], found: Findings): Promise<void> {
  const scratchDir = makeTempDir(`tessera-bench-${flavor}-`);
  const keysDir = path.join(scratchDir, "keys");
  let databaseUrl: string;
  let dropDb: (() => Promise<void>) | undefined;
  if (flavor === "sqlite") {
    databaseUrl = `file:${path.join(scratchDir, "tessera.db")}`;
  } else {
    const db = await runDatabase(PG_ADMIN_URL, `bench_${randomBytes(6).toString("hex")}`);
    databaseUrl = db.url;
    dropDb = db.drop;
  }
  const started = Date.now();
  let server: Server;
  try {
    server = await startTessera(flavor, databaseUrl, keysDir, entry, { UV_THREADPOOL_SIZE: SETTINGS.uvThreadpoolSize });
  } catch (err) {
    found.fail(`Tessera did not start: ${(err as Error).message}`);
    found.notRun("(all)");
    await dropDb?.();
    return;
  }
  heading(`[${flavor}] Tessera pid ${server.child.pid} ready at ${server.base} in ${((Date.now() - started) / 1000).toFixed(1)}s (migrations applied at start)`);
  try {
    const users = await registerUsers(server, USERS);
    for (const scenario of scenarios.values()) {
      if (!SCENARIOS.has(scenario.key)) continue;
      if (!server.child.isRunning()) {
        found.fail(`${scenario.name}: the server is no longer running:\n${server.child.tail()}`);
        found.notRun(scenario.name);
        continue;
      }
      const rss = new RssSampler(server.child.pid, 100);
      try {
        const startServer = (env: Record<string, string>) => startTessera(flavor, databaseUrl, keysDir, entry, { UV_THREADPOOL_SIZE: SETTINGS.uvThreadpoolSize, ...env });
        found.add(await scenario.run({ flavor, server, users, databaseUrl, keysDir, scratchDir, pgAdminUrl: PG_ADMIN_URL, settings: SETTINGS, startServer }));
        note(`server RSS peak during ${scenario.name} (sampled every 100 ms): ${fmtMiB(rss.stop())}`);
      } catch (err) {
        rss.stop();
        found.fail(`${scenario.name} could not run: ${(err as Error).stack ?? String(err)}`);
        found.notRun(scenario.name);
      }
    }
    const tail = server.child.tail();
    if (/"level":(50|60)/.test(tail)) note(`server logged errors; last lines:\n${tail}`);
  } catch (err) {
    found.fail(`setup failed: ${(err as Error).message}`);
  } finally {
    await server.child.stop();
    await dropDb?.();
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const entry = serverEntry();
  const flavors: Flavor[] = [];
  if (ONLY !== "postgres") flavors.push("sqlite");
  if (PG_ADMIN_URL && ONLY !== "sqlite") flavors.push("postgres");
  console.log("Tessera benchmark");
  console.log(
    `  node ${process.version}, ${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (other work on the machine skews absolute numbers; ratios are measured side by side)`,
  );
  console.log(`  server: ${entry.how}; databases: ${flavors.join(", ")}${PG_ADMIN_URL ? "" : " (set BENCH_DATABASE_URL for Postgres)"}`);
  console.log(
    `  ${SETTINGS.seconds}s per side per scenario in ${SETTINGS.slices} alternating slices, ${SETTINGS.warmup}s warm-up each; UV_THREADPOOL_SIZE=${SETTINGS.uvThreadpoolSize}`,
  );
  console.log("  req/s counts successful operations completed inside the measured windows; cpu/op is the measured");
  console.log("  process's CPU time (all threads; not the database server's) per completed operation.");

  const started = Date.now();
  const rows: SummaryRow[] = [];
  const failures: string[] = [];
  for (const flavor of flavors) {
    const found = new Findings(flavor);
    try {
      await runFlavor(flavor, entry.args, found);
    } catch (err) {
      found.fail(`could not run: ${(err as Error).message}`);
      found.notRun("(all)");
    }
    rows.push(...found.rows);
    failures.push(...found.failures.map((f) => `[${flavor}] ${f}`));
  }

  if (JSON_OUTPUT) {
    const machine = { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, loadavg: os.loadavg(), platform: `${os.platform()} ${os.release()}` };
    process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), machine, server: entry.how, databases: flavors, settings: SETTINGS, rows, failures })}\n`);
  }
  heading(`Summary (${((Date.now() - started) / 1000).toFixed(0)}s)`);
  console.log(table(rows));
  const missed = rows.filter((r) => r.status === "MISSED").length;
  if (failures.length > 0) {
    console.log(`\n${failures.length} scenario failure(s):\n${failures.map((f) => `  - ${f.replace(/\s*\n\s*/g, " | ").slice(0, 300)}`).join("\n")}`);
    process.exitCode = 1;
  } else {
    console.log(`\nAll scenarios ran. ${missed === 0 ? "Every goal met." : `${missed} goal(s) missed (reported, not gating).`}`);
  }
}

try {
  await main();
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}

// `npm run bench`: Tessera under load, each figure next to a baseline measured in the same run
// on the same machine, against a goal for the ratio between the two.
//
// Everything runs on 127.0.0.1. Tessera is a real child process (built dist if it is current,
// otherwise src/server.ts through tsx) on a temp SQLite file, then, when BENCH_DATABASE_URL (or
// TEST_DATABASE_URL) is set, on a fresh Postgres database created for the run and dropped after.
//
// Scenarios (per database; one file each in scenarios/, run in the order of scenarios/index.ts):
//   a. JWKS vs a Fastify "hello world" child process                         goal >= 0.8x
//   b. password grant vs raw argon2id verifies (same params, same pool size) goal >= 0.9x
//   c. refresh rotation, one chain per connection, vs the raw-driver transaction
//      on a scratch table (better-sqlite3 WAL/NORMAL; pg Pool 10, 64 in flight)  goal >= 0.25x
//      plus reuse detection checked after the run
//   e. client_credentials vs jose signing alone (same algorithm)             goal >= 0.5x
//      and vs node-oidc-provider 9 (in-memory adapter, same client auth, JWT access tokens of
//      the same algorithm, same load)                                       goal >= 3x
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
//   BENCH_SCENARIOS=jwks,login,refresh,client_credentials,memory  run a subset (default: all)
//   BENCH_SERVER=dist|src      force the server entry point
//   BENCH_SERVER_NODE_ARGS     extra node flags for Tessera, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   UV_THREADPOOL_SIZE         passed to Tessera and to the argon2 baseline alike (default 4)
//
// `npm run bench -- --json`: the report goes to stderr and stdout gets one JSON object for
// machines: the machine, the settings, every summary row (with the measured figures behind each
// ratio: req/s, p50/p99 ms, operations, failures, CPU ms per operation) and the failures.
//   ARGON2_*, PASSWORD_HASH_*, SIGNING_ALG  passed through to Tessera (the baseline follows)
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config.ts";
import { freePort } from "../test/helpers/ports.ts";
import { ROOT, spawnIssuer, waitReady } from "../test/helpers/process.ts";
import { limited, PASSWORD, post } from "./lib/http.ts";
import { benchEnv, makeTempDir, RssSampler, runCleanups, runDatabase } from "./lib/proc.ts";
import { fmtMiB, heading, note, table, type SummaryRow } from "./lib/report.ts";
import { Findings, scenarios, type Flavor, type Server, type Settings } from "./scenarios/index.ts";

// ---------------------------------------------------------------- settings

function envNum(name: string, def: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new Error(`${name}=${JSON.stringify(raw)}: expected a number >= ${min}`);
  return v;
}

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

const PASS_THROUGH = [
  "ARGON2_MEMORY_KIB",
  "ARGON2_ITERATIONS",
  "ARGON2_PARALLELISM",
  "PASSWORD_HASH_CONCURRENCY",
  "PASSWORD_HASH_QUEUE",
  "SIGNING_ALG",
];

// ---------------------------------------------------------------- the server

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (/\.(ts|js|json)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** The built server if it is at least as new as every source file, else src through tsx. */
function serverEntry(): { args: string[]; how: string } {
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);
  const entry = serverEntryFile();
  return { args: [...extra, ...entry.args], how: ["node", ...extra, entry.how.replace(/^node /, "")].join(" ") };
}

function serverEntryFile(): { args: string[]; how: string } {
  const pref = process.env.BENCH_SERVER;
  const dist = path.join(ROOT, "dist/src/server.js");
  if (pref !== "src" && existsSync(dist)) {
    const current = statSync(dist).mtimeMs >= newestMtime(path.join(ROOT, "src"));
    if (current || pref === "dist") return { args: [dist], how: `node dist/src/server.js${current ? "" : " (forced; older than src/)"}` };
  }
  return {
    args: ["--import", "tsx", "src/server.ts"],
    how: `node --import tsx src/server.ts${existsSync(dist) && pref !== "src" ? " (dist/ is older than src/)" : ""}`,
  };
}

async function startTessera(flavor: Flavor, databaseUrl: string, keysDir: string, entry: string[]): Promise<Server> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const env: Record<string, string> = { ...benchEnv() };
    for (const k of PASS_THROUGH) if (process.env[k]) env[k] = process.env[k]!;
    Object.assign(env, {
      DATABASE_URL: databaseUrl,
      KEYS_DIR: keysDir,
      LOG_LEVEL: "warn",
      COOKIE_SECURE: "false",
      ALLOW_REGISTRATION: "true",
      HOST: "127.0.0.1",
      PORT: String(port),
      ISSUER: `http://127.0.0.1:${port}`,
      UV_THREADPOOL_SIZE: SETTINGS.uvThreadpoolSize,
      // The load generator is one address: per-address limits would measure the limiter, not the
      // path. The bench measures the paths; the limits are tested in test/security/rate-limits.
      RATE_LIMIT_PASSWORD: "0",
      RATE_LIMIT_REGISTER: "0",
      RATE_LIMIT_REFRESH: "0",
      RATE_LIMIT_CLIENT_AUTH_FAILURES: "0",
    });
    const config = loadConfig(env);
    const child = spawnIssuer(env, { name: `tessera[${flavor}]`, args: entry, bounded: true });
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitReady(`${base}/readyz`, child, 120_000);
      return { child, base, config };
    } catch (err) {
      lastError = err as Error;
      await child.stop();
      if (!/EADDRINUSE/.test(lastError.message)) break; // only a lost port race is worth a retry
    }
  }
  throw lastError ?? new Error("Tessera did not start");
}

async function registerUsers(server: Server): Promise<string[]> {
  const tag = randomBytes(4).toString("hex");
  return limited(USERS, 4, async (i) => {
    const email = `bench-${tag}-${i}@example.test`;
    const r = await post(`${server.base}/auth/register`, JSON.stringify({ email, password: PASSWORD }), {
      "content-type": "application/json",
    });
    if (r.status !== 201) throw new Error(`register failed: ${r.status} ${JSON.stringify(r.json)}`);
    return email;
  });
}

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
    server = await startTessera(flavor, databaseUrl, keysDir, entry);
  } catch (err) {
    found.fail(`Tessera did not start: ${(err as Error).message}`);
    found.notRun("(all)");
    await dropDb?.();
    return;
  }
  heading(`[${flavor}] Tessera pid ${server.child.pid} ready at ${server.base} in ${((Date.now() - started) / 1000).toFixed(1)}s (migrations applied at start)`);
  try {
    const users = await registerUsers(server);
    for (const scenario of scenarios.values()) {
      if (!SCENARIOS.has(scenario.key)) continue;
      if (!server.child.isRunning()) {
        found.fail(`${scenario.name}: the server is no longer running:\n${server.child.tail()}`);
        found.notRun(scenario.name);
        continue;
      }
      const rss = new RssSampler(server.child.pid, 100);
      try {
        found.add(await scenario.run({ flavor, server, users, databaseUrl, keysDir, scratchDir, pgAdminUrl: PG_ADMIN_URL, settings: SETTINGS }));
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

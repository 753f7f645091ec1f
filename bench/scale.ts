// `npm run bench:scale`: the refresh and password grants on a full database against the same on
// an empty one, side by side. Per database kind, two databases and two Tessera processes (real
// child processes, rate limits off as in run.ts): one database holding only the bench users, and
// one where, after its bench users registered, BENCH_SCALE_USERS users and BENCH_SCALE_SESSIONS
// live sessions, each with a refresh token, were bulk-inserted (10% of the sessions owned by the
// bench users, the rest spread round-robin over the seeded users; random token hashes; status list
// indices reserved as the server would; then settle() in lib/scale-seed.ts: VACUUM ANALYZE +
// CHECKPOINT, or a WAL checkpoint), timed, with its server stopped. Then refresh rotation (one
// chain per connection) and the password grant, each measured on both servers in alternating
// slices (slices.ts: ABBA), so background work (the database settling after the seed, other load
// on the machine) falls on both sides alike. Goal: full / empty >= 0.8 for both.
// The hot paths then meet big indices: refresh looks its token up by hash and joins session,
// user and successor (parentId), then inserts one token; login reads the user by email and
// inserts a session (statusIdx unique) and a token.
//
// Reports, does not gate (a missed goal exits 0); exits 1 when a side could not run or > 1% of its
// requests failed. `--json`: the human report goes to stderr, one JSON document to stdout.
//
// Environment (all optional):
//   BENCH_SCALE_SESSIONS=1000000  seeded sessions;  BENCH_SCALE_USERS=100000  seeded users
//   BENCH_SECONDS=5          measured seconds per side per grant, in BENCH_SLICES=2 alternating
//                            slices, after BENCH_WARMUP_SECONDS=1 of each
//   BENCH_USERS=8, BENCH_LOGIN_CONNECTIONS=16, BENCH_REFRESH_CHAINS=64   as in run.ts
//   BENCH_DATABASE_URL / TEST_DATABASE_URL  Postgres admin URL; enables the Postgres run
//   BENCH_ONLY=sqlite|postgres;  BENCH_SERVER=dist|src  (default: dist when it is current, as in run.ts)
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import type autocannon from "autocannon";
import { openPrismaStorage } from "../src/storage/prisma/index.ts";
import { FORM, limited, login, passwordBody, refreshRequest } from "./lib/http.ts";
import { loadSlice } from "./lib/load.ts";
import { makeTempDir, runCleanups, runDatabase } from "./lib/proc.ts";
import { envNum, registerUsers, serverEntry, startTessera } from "./lib/server.ts";
import { heading, line, note, table, type Figure, type SummaryRow } from "./lib/report.ts";
import { seedSpreadSessions, seedUsers, settle } from "./lib/scale-seed.ts";
import { seedSessions } from "./lib/seed.ts";
import { alternate, type Plan, type Side } from "./lib/slices.ts";
import { Findings, type Flavor, type Server } from "./scenarios/scenario.ts";

const JSON_OUTPUT = process.argv.includes("--json");
if (JSON_OUTPUT) console.log = (...args: unknown[]) => console.error(...args);

const GOAL = 0.8;
const SESSIONS = Math.round(envNum("BENCH_SCALE_SESSIONS", 1_000_000));
const USERS = Math.round(envNum("BENCH_SCALE_USERS", 100_000));
const BENCH_USERS = Math.round(envNum("BENCH_USERS", 8));
const LOGIN_CONNECTIONS = Math.round(envNum("BENCH_LOGIN_CONNECTIONS", 16));
const CHAINS = Math.round(envNum("BENCH_REFRESH_CHAINS", 64));
const PLAN: Plan = { seconds: envNum("BENCH_SECONDS", 5), slices: Math.round(envNum("BENCH_SLICES", 2)), warmup: envNum("BENCH_WARMUP_SECONDS", 1, 0) };
const PG_ADMIN_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || "";
const ONLY = process.env.BENCH_ONLY ?? "";
const ENTRY = serverEntry();
const SEED_PREFIX = "scale-u";

/** Load on one server: refresh rotation (one chain per connection) and the password grant. */
async function sidesOf(server: Server, users: string[], label: string, found: Findings): Promise<{ refresh: Side; password: Side; done(): void }> {
  // Each connection owns one chain and always presents its newest token.
  const chains = await limited(CHAINS, 16, async (i) => ({ token: await login(server.base, users[i % users.length]!) }));
  let rejected = 0;
  const refresh: Side = {
    run: (seconds) => {
      let n = 0;
      const setupClient = (client: autocannon.Client) => {
        const chain = chains[n++ % chains.length]!;
        client.setRequests([refreshRequest(chain, (status) => void (status === 400 && rejected++))]);
      };
      return loadSlice({ url: server.base, connections: chains.length, seconds, graceful: true, setupClient, serverPid: server.child.pid });
    },
  };
  const password: Side = {
    run: (seconds) => {
      let n = 0;
      const setupClient = (client: autocannon.Client) => {
        client.setRequests([{ method: "POST", path: "/oauth/token", headers: FORM, body: passwordBody(users[n++ % users.length]!) }]);
      };
      return loadSlice({ url: server.base, connections: LOGIN_CONNECTIONS, seconds, graceful: true, setupClient, serverPid: server.child.pid });
    },
  };
  const done = () => {
    if (rejected > 0) found.fail(`${label} refresh rotation: ${rejected} responses were 400 (a chain presented a stale token)`);
  };
  return { refresh, password, done };
}

/** The bulk seed (server stopped); returns the seconds it took and the rows then in the tables. */
async function seed(databaseUrl: string, benchEmails: string[]): Promise<{ seconds: number; users: number; sessions: number; refreshTokens: number }> {
  const started = performance.now();
  const s = await openPrismaStorage(databaseUrl);
  try {
    const bench = await Promise.all(benchEmails.map(async (e) => (await s.users.findByEmail(e))!.id));
    const now = new Date();
    const expiresAt = new Date(now.getTime() + 30 * 86400_000);
    // 10% of the sessions belong to the bench users (a few thousand each at full size), the rest
    // to the seeded users; indices reserved from the counter, as the server's allocator does.
    const perBench = Math.max(1, Math.floor(SESSIONS / 10 / bench.length));
    const spread = Math.max(0, SESSIONS - perBench * bench.length);
    const idx = await s.statusIndices.reserve(perBench * bench.length + spread + 1);
    await seedUsers(s, { templateId: bench[0]!, prefix: SEED_PREFIX, count: USERS });
    for (const [i, userId] of bench.entries()) {
      await seedSessions(s, { tag: `b${i}`, userId, clientId: "web", count: perBench, createdAt: now, expiresAt, statusIdxBase: idx + i * perBench });
    }
    await seedSpreadSessions(s, { tag: "s", templateId: "tpl-b0", userPrefix: SEED_PREFIX, users: USERS, count: spread, statusIdxBase: idx + perBench * bench.length });
    await settle(s, databaseUrl);
    const count = async (table: string) => Number((await s.db.$queryRawUnsafe<Array<{ n: bigint | number }>>(`SELECT COUNT(*) AS n FROM "${table}"`))[0]!.n);
    const seconds = (performance.now() - started) / 1000;
    return { seconds, users: await count("User"), sessions: await count("Session"), refreshTokens: await count("RefreshToken") };
  } finally {
    await s.close();
  }
}

async function runFlavor(flavor: Flavor, found: Findings): Promise<Record<string, unknown>> {
  const scratchDir = makeTempDir(`tessera-scale-${flavor}-`);
  const dbs: Array<{ url: string; drop: () => Promise<void> }> = [];
  for (const name of ["empty", "full"]) {
    dbs.push(flavor === "sqlite" ? { url: `file:${path.join(scratchDir, `${name}.db`)}`, drop: async () => undefined } : await runDatabase(PG_ADMIN_URL, `bench_scale_${name}_${randomBytes(6).toString("hex")}`));
  }
  try {
    return await phases(flavor, dbs[0]!.url, dbs[1]!.url, scratchDir, found);
  } finally {
    for (const db of dbs) await db.drop();
  }
}

async function phases(flavor: Flavor, emptyUrl: string, fullUrl: string, scratchDir: string, found: Findings): Promise<Record<string, unknown>> {
  // The full database: its bench users registered through its server, then the bulk seed with
  // that server stopped, then the server started again.
  const fullKeys = path.join(scratchDir, "keys-full");
  let full = await startTessera(flavor, fullUrl, fullKeys, ENTRY.args);
  let fullUsers: string[];
  try {
    fullUsers = await registerUsers(full, BENCH_USERS);
  } finally {
    await full.child.stop();
  }
  heading(`[${flavor}] seeding ${USERS.toLocaleString("en-US")} users and ${SESSIONS.toLocaleString("en-US")} sessions (server stopped)`);
  const seeded = await seed(fullUrl, fullUsers);
  note(
    `seeded in ${seeded.seconds.toFixed(1)}s; now ${seeded.users.toLocaleString("en-US")} users, ${seeded.sessions.toLocaleString("en-US")} sessions, ` +
      `${seeded.refreshTokens.toLocaleString("en-US")} refresh tokens`,
  );
  full = await startTessera(flavor, fullUrl, fullKeys, ENTRY.args);
  const empty = await startTessera(flavor, emptyUrl, path.join(scratchDir, "keys-empty"), ENTRY.args);
  try {
    const emptyUsers = await registerUsers(empty, BENCH_USERS);
    const e = await sidesOf(empty, emptyUsers, `[${flavor}] empty database`, found);
    const f = await sidesOf(full, fullUsers, `[${flavor}] full database`, found);
    const figures: Record<string, { empty: Figure; full: Figure }> = {};
    for (const [key, name] of [["refresh", `refresh rotation, ${SESSIONS.toLocaleString("en-US")} sessions`], ["password", `password grant, ${USERS.toLocaleString("en-US")} users`]] as const) {
      heading(`[${flavor}] ${key}: empty database vs full, ${PLAN.seconds}s each in ${PLAN.slices} alternating slices`);
      const { base, subject } = await alternate(e[key], f[key], PLAN);
      line(`${key}: empty database`, base.figure());
      line(`${key}: full database`, subject.figure());
      const ok = found.checkFailures(`${key}, empty database`, base) && found.checkFailures(`${key}, full database`, subject);
      found.ratio(name, subject.figure(), base.figure(), "empty database", GOAL, ok);
      note(`server CPU per request, full / empty: ${((subject.figure().cpuPerOp ?? NaN) / (base.figure().cpuPerOp ?? NaN)).toFixed(2)}x`);
      figures[key] = { empty: base.figure(), full: subject.figure() };
    }
    e.done();
    f.done();
    return { seed: seeded, ...figures, ratios: { refresh: figures.refresh!.full.rps / figures.refresh!.empty.rps, password: figures.password!.full.rps / figures.password!.empty.rps } };
  } finally {
    await empty.child.stop();
    await full.child.stop();
  }
}

async function main(): Promise<void> {
  const flavors: Flavor[] = [];
  if (ONLY !== "postgres") flavors.push("sqlite");
  if (PG_ADMIN_URL && ONLY !== "sqlite") flavors.push("postgres");
  console.log("Tessera scale benchmark: refresh and password grants, empty database vs full");
  console.log(`  node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`  databases: ${flavors.join(", ")}${PG_ADMIN_URL ? "" : " (set BENCH_DATABASE_URL for Postgres)"}; server: ${ENTRY.how}`);
  console.log(`  full = ${SESSIONS.toLocaleString("en-US")} sessions, ${USERS.toLocaleString("en-US")} users; ${PLAN.seconds}s per side per grant in ${PLAN.slices} alternating slices, ${PLAN.warmup}s warm-up`);
  const rows: SummaryRow[] = [];
  const failures: string[] = [];
  const results: Record<string, unknown> = {};
  for (const flavor of flavors) {
    const found = new Findings(flavor);
    try {
      results[flavor] = await runFlavor(flavor, found);
    } catch (err) {
      found.fail(`could not run: ${(err as Error).stack ?? String(err)}`);
    }
    rows.push(...found.rows);
    failures.push(...found.failures.map((f) => `[${flavor}] ${f}`));
  }
  heading("Summary (figure: full database; baseline: empty database)");
  console.log(table(rows));
  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s):\n${failures.map((f) => `  - ${f.replace(/\s*\n\s*/g, " | ").slice(0, 300)}`).join("\n")}`);
    process.exitCode = 1;
  }
  if (JSON_OUTPUT) {
    const machine = { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, loadavg: os.loadavg(), platform: `${os.platform()} ${os.release()}` };
    const settings = { ...PLAN, sessions: SESSIONS, users: USERS, benchUsers: BENCH_USERS, loginConnections: LOGIN_CONNECTIONS, refreshChains: CHAINS, goal: GOAL };
    process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), machine, server: ENTRY.how, settings, results, rows, failures })}\n`);
  }
}

try {
  await main();
} catch (err) {
  console.error(`bench:scale failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}
